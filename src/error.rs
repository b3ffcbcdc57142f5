//! Errors of the data path. Each knows which side caused it and whether retrying elsewhere is
//! safe; `kind()` is the `throome_errors_total{kind}` label and the start of what a protocol
//! adapter tells its client.

use std::io;
use std::time::Duration;

/// Who is at fault, for logs and for deciding what to tell whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Backend,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no healthy backend for service {cluster}/{service}")]
    NoBackend { cluster: String, service: String },
    #[error("connect to backend {backend} failed: {source}")]
    Connect { backend: String, source: io::Error },
    #[error("connect to backend {backend} timed out after {after:?}")]
    ConnectTimeout { backend: String, after: Duration },
    #[error("client I/O error: {0}")]
    ClientIo(io::Error),
    #[error("backend I/O error: {0}")]
    BackendIo(io::Error),
    #[error("service is no longer configured")]
    ServiceGone,
    #[error("SASL login to {0} failed: {1}")]
    Login(String, String),
}

impl ProxyError {
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NoBackend { .. } => "no_backend",
            ProxyError::Connect { .. } => "connect",
            ProxyError::ConnectTimeout { .. } => "connect_timeout",
            ProxyError::ClientIo(_) => "client_io",
            ProxyError::BackendIo(_) => "backend_io",
            ProxyError::ServiceGone => "internal",
            ProxyError::Login(..) => "backend_auth",
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ProxyError::ClientIo(_) => Side::Client,
            ProxyError::ServiceGone => Side::Internal,
            _ => Side::Backend,
        }
    }

    /// Safe to try another backend: nothing was sent upstream yet.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. } | ProxyError::ConnectTimeout { .. }
        )
    }
}
