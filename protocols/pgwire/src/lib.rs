//! Sans-IO PostgreSQL frontend/backend protocol (v3) for a proxy: the startup packet, message
//! framing with a size limit checked before anything is decoded, just enough parsing to route
//! and pool (transaction status, statement names, error fields, the first SQL keyword), and
//! builders for the few messages a proxy writes itself.
//! Spec: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

pub mod build;
mod error;
mod frame;
pub mod msg;
mod startup;

pub use error::PgError;
pub use frame::{DEFAULT_MAX_MESSAGE, Frame, FrameScanner};
pub use startup::{
    CANCEL_REQUEST, GSSENC_REQUEST, MAX_STARTUP_PACKET, PROTOCOL_3_0, SSL_REQUEST, Startup,
    scan_startup,
};
