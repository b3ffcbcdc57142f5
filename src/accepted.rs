//! A client connection as accepted: plain TCP, TLS when the service's listener has `tls`
//! (the handshake done here), or a Unix-domain socket (local, never TLS). Reads and writes the same either way; writes to a TLS
//! side are flushed by the caller (`flush` is free on plain TCP).

use std::io;

use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

pub enum Accepted {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl Accepted {
    /// The socket's file descriptor and local address, as Redis's CLIENT LIST shows them
    /// (`fd`, `laddr`); a Unix socket's local address is its path.
    pub fn socket_info(&self) -> (i32, String) {
        use std::os::fd::AsRawFd;
        match self {
            Accepted::Plain(s) => (s.as_raw_fd(), local_of(s.local_addr())),
            Accepted::Tls(s) => {
                let tcp = s.get_ref().0;
                (tcp.as_raw_fd(), local_of(tcp.local_addr()))
            }
            Accepted::Unix(s) => {
                let path = s
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| format!("{}:0", p.display())))
                    .unwrap_or_default();
                (s.as_raw_fd(), path)
            }
        }
    }

    /// The server name a TLS client asked for (SNI), which may name its cluster.
    pub fn server_name(&self) -> Option<&str> {
        match self {
            Accepted::Tls(s) => s.get_ref().1.server_name(),
            _ => None,
        }
    }

    /// Writes `bytes` (a refusal) and closes, whatever the stream.
    pub async fn refuse(self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let _ = match self {
            Accepted::Plain(mut s) => s.write_all(bytes).await.and(s.shutdown().await),
            Accepted::Tls(mut s) => s.write_all(bytes).await.and(s.shutdown().await),
            Accepted::Unix(mut s) => s.write_all(bytes).await.and(s.shutdown().await),
        };
    }

    /// The handshake for a session's client as its service asks; a failure is logged and
    /// counted (`client_tls`) and gives `None`.
    pub async fn for_session(
        session: &crate::session::Session,
        client: crate::session::ClientConn,
    ) -> Option<Accepted> {
        let tcp = match client {
            crate::session::ClientConn::Tcp(tcp) => tcp,
            crate::session::ClientConn::Unix(unix) => return Some(Accepted::Unix(unix)),
        };
        let service = &session.service;
        let limit = service.spec.connect_timeout;
        match Accepted::accept(tcp, service.spec.tls.as_ref(), limit).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(cluster = %service.cluster, service = %service.name, peer = %session.peer, error = %e, "TLS handshake with a client failed");
                session.metrics.error(service, "client_tls");
                None
            }
        }
    }

    /// Runs the TLS handshake when `tls` is set, within `limit`.
    pub async fn accept(
        tcp: TcpStream,
        tls: Option<&TlsConfig>,
        limit: std::time::Duration,
    ) -> io::Result<Accepted> {
        let Some(tls) = tls else {
            return Ok(Accepted::Plain(tcp));
        };
        let acceptor = crate::tls::cached_acceptor(tls).map_err(io::Error::other)?;
        match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(r) => Ok(Accepted::Tls(Box::new(r?))),
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// AsyncRead (and, unless `read:`, AsyncWrite) for an enum whose variants each hold an
/// Unpin stream: every call goes to the variant's own.
macro_rules! either_io {
    (read: $t:ty, $($v:path),+) => {
        impl tokio::io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $($v(s) => std::pin::Pin::new(s).poll_read(cx, buf),)+
                }
            }
        }
    };
    ($t:ty, $($v:path),+) => {
        $crate::accepted::either_io!(read: $t, $($v),+);
        impl tokio::io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                match self.get_mut() {
                    $($v(s) => std::pin::Pin::new(s).poll_write(cx, buf),)+
                }
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $($v(s) => std::pin::Pin::new(s).poll_flush(cx),)+
                }
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                match self.get_mut() {
                    $($v(s) => std::pin::Pin::new(s).poll_shutdown(cx),)+
                }
            }
        }
    };
}
pub(crate) use either_io;

either_io!(Accepted, Accepted::Plain, Accepted::Tls, Accepted::Unix);

fn local_of(addr: std::io::Result<std::net::SocketAddr>) -> String {
    addr.map(|a| a.to_string()).unwrap_or_default()
}
