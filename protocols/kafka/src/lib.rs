//! Sans-IO pieces of the [Kafka protocol](https://kafka.apache.org/protocol.html) a proxy
//! needs: length-prefixed framing with a limit, request headers read by hand, and rewriting
//! of the few broker responses that carry broker addresses (Metadata, FindCoordinator,
//! DescribeCluster) plus ApiVersions clamping. Everything else is forwarded byte for byte.
//!
//! Client request bodies are never decoded with `kafka-protocol`: its array decoders reserve
//! capacity from the wire count and abort the process on a huge one. Even broker responses are
//! only decoded element by element, after this crate has checked every array count against
//! the bytes that remain.

mod error;
mod frame;
mod header;
mod rewrite;
pub mod sasl;
mod split;
mod versions;
mod wire;

pub use error::KafkaError;
pub use frame::{DEFAULT_MAX_FRAME, FrameScanner};
pub use header::{RequestHeader, expects_response, response_correlation_id};
pub use rewrite::{Broker, BrokerMap, Rewritten, rewrite_response, rewrites};
pub use split::{FrameSplitter, HEAD_MIN, Piece, STREAM_MIN};
pub use versions::{
    api_name, clamp_api_versions, client_software, needs_api_versions_fallback, newest_rewritable,
    sasl_handshake_v0_refusal, unsupported_api_versions,
};

/// API keys this crate knows by name ([api keys](https://kafka.apache.org/protocol.html#protocol_api_keys)).
pub mod api {
    pub const PRODUCE: i16 = 0;
    pub const FETCH: i16 = 1;
    pub const METADATA: i16 = 3;
    pub const FIND_COORDINATOR: i16 = 10;
    pub const SASL_HANDSHAKE: i16 = 17;
    pub const API_VERSIONS: i16 = 18;
    pub const DESCRIBE_CLUSTER: i16 = 60;
}

/// Kafka error codes this crate produces ([error codes](https://kafka.apache.org/protocol.html#protocol_error_codes)).
pub mod code {
    pub const UNSUPPORTED_VERSION: i16 = 35;
}
