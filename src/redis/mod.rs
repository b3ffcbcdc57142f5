//! `type: redis`: a native RESP2/RESP3 listener. Requests are framed by `throome-resp`,
//! answered locally when they concern the client's connection (HELLO, AUTH, PING, CLIENT
//! SETNAME, ...), and otherwise forwarded as their original bytes over shared, pipelined
//! upstream connections. Commands that carry connection state move the client to a
//! connection of its own: MULTI/WATCH until EXEC/DISCARD/UNWATCH, a blocking command for its
//! one reply, and SUBSCRIBE, MONITOR, CLIENT TRACKING or SELECT of another database for the
//! rest of the connection (a raw pass-through from then on).

mod adapter;
mod by_cluster;
mod clients;
pub mod cluster;
mod encode;
pub mod hash;
mod local;
mod merge;
mod pause;
pub(crate) mod pool;
pub mod probe;
pub use adapter::Adapter;
mod ring;
mod scan;
mod session;
pub mod shard;
mod sharded;
mod spares;
mod upstream;

pub use session::serve;
