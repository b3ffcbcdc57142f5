//! A client connection as accepted: plain TCP, or TLS when the service's listener has
//! `tls` (the handshake done here). Reads and writes the same either way; writes to a TLS
//! side are flushed by the caller (`flush` is free on plain TCP).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

pub enum Accepted {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Accepted {
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

impl AsyncRead for Accepted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Accepted::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Accepted::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_flush(cx),
            Accepted::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Accepted::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Accepted::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
