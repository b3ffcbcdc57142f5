//! Sans-IO RESP for a Redis proxy: a resumable request scanner (RESP multibulk and inline
//! commands), a resumable reply framer for RESP2 and RESP3, and the Redis 7 command table
//! with key extraction. No sockets; "incomplete" is a normal outcome; frames are zero-copy
//! `Bytes`. <https://redis.io/docs/latest/develop/reference/protocol-spec/>

pub mod commands;
#[rustfmt::skip]
#[allow(clippy::all)]
mod command_table;

pub use commands::{CommandSpec, lookup, resolve};
pub mod error;
pub mod request;

pub use error::ProtocolError;
pub use request::{Limits, Request, RequestScanner};
pub mod reply;

pub use reply::{Reply, ReplyLimits, ReplyScanner};
