//! A socket with a read buffer that yields whole, size-checked protocol messages. A client
//! socket may turn into TLS after SSLRequest.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use throome_pgwire::{Frame, FrameScanner, PgError};

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Protocol(#[from] PgError),
    #[error("connection closed")]
    Closed,
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// A Unix-domain socket: a client on the service's `unix_socket`, or a server at
    /// `host: /dir` (as libpq).
    Unix(UnixStream),
    /// A server connection over TLS.
    TlsToServer(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between the two, while the handshake runs (or after it failed).
    Gone,
}

impl Stream {
    /// A read from the socket that does not wait, for telling whether an idle server
    /// connection was closed: under TLS any byte (an alert, a close_notify) means the
    /// connection is not reused either, so reading beneath TLS does no harm.
    pub fn try_read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
            Stream::TlsToServer(s) => s.get_ref().0.try_read(buf),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Waits until a read may find bytes. TLS may hold decrypted bytes the socket no
    /// longer shows, so it is always taken as readable.
    pub async fn readable(&self) -> std::io::Result<()> {
        // The poll form: `readable()` queues a waiter on the socket (a lock per wait).
        match self {
            Stream::Plain(s) => std::future::poll_fn(|cx| s.poll_read_ready(cx)).await,
            Stream::Unix(s) => std::future::poll_fn(|cx| s.poll_read_ready(cx)).await,
            Stream::Tls(_) | Stream::TlsToServer(_) | Stream::Gone => Ok(()),
        }
    }

    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::TlsToServer(s) => s.read_buf(buf).await,
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                // rustls buffers a record until flushed.
                s.flush().await
            }
            Stream::TlsToServer(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

pub struct Wire {
    pub stream: Stream,
    pub buf: BytesMut,
    scanner: FrameScanner,
    /// A send is under way (still set if its future was dropped part way).
    writing: bool,
}

impl Wire {
    pub fn over(stream: Stream, buf: BytesMut, max_message: usize) -> Wire {
        Wire {
            stream,
            buf,
            scanner: FrameScanner::new(max_message),
            writing: false,
        }
    }

    /// Runs the TLS handshake on this plain socket; later reads and writes are encrypted.
    /// Bytes the client sent after SSLRequest and before the handshake would be taken as
    /// if encrypted (CVE-2021-23222): they are refused.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> Result<(), WireError> {
        if !self.buf.is_empty() {
            return Err(WireError::Protocol(PgError::StartupLayout));
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(WireError::Closed);
        };
        let tls = acceptor.accept(tcp).await?;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The Common Name of the certificate a TLS client presented (checked against the
    /// service's `client_ca` in the handshake).
    pub fn peer_common_name(&self) -> Option<String> {
        let Stream::Tls(tls) = &self.stream else {
            return None;
        };
        let der = tls.get_ref().1.peer_certificates()?.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let cn = cert.subject().iter_common_name().next()?;
        cn.as_str().ok().map(str::to_string)
    }

    /// The server name a TLS client asked for (SNI), which may name its cluster.
    pub fn server_name(&self) -> Option<&str> {
        match &self.stream {
            Stream::Tls(tls) => tls.get_ref().1.server_name(),
            _ => None,
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self.stream, Stream::Unix(_))
    }

    /// A whole message already in the buffer.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, PgError> {
        self.scanner.scan(&mut self.buf)
    }

    /// Reads more bytes; `Closed` at end of stream. Cancel-safe (for `select!`). With
    /// nothing buffered, the buffer goes back to the worker's pool until the socket is
    /// readable: an idle client (or idle pooled server) holds no buffer.
    pub async fn fill(&mut self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            crate::bufpool::give(&mut self.buf);
            self.stream.readable().await?;
        }
        if self.buf.capacity() == 0 {
            self.buf = crate::bufpool::take();
        } else if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(WireError::Closed),
            _ => Ok(()),
        }
    }

    /// The next whole message, reading as needed.
    pub async fn frame(&mut self) -> Result<Frame, WireError> {
        loop {
            if let Some(f) = self.try_frame()? {
                return Ok(f);
            }
            self.fill().await?;
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.writing = true;
        self.stream.write_all(bytes).await?;
        self.writing = false;
        Ok(())
    }

    /// Whether a message may have been cut off part way: a send was stopped (its future
    /// dropped) or failed, so nothing more can be written that the peer would parse.
    pub fn cut_off(&self) -> bool {
        self.writing
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::{Stream, Wire};

    /// A client between messages holds no read buffer (memory per idle connection): it is
    /// lent back while the wire waits, and lent again when bytes come.
    #[tokio::test]
    async fn a_wire_waiting_for_its_peer_holds_no_buffer() {
        let (socket, mut peer) = crate::test_support::tcp_pair().await;
        let mut wire = Wire::over(Stream::Plain(socket), bytes::BytesMut::new(), 1 << 20);
        let query = b"Q\0\0\0\x0dSELECT 1\0";
        peer.write_all(query).await.unwrap();
        let frame = wire.frame().await.unwrap();
        assert_eq!(&frame.bytes()[..], &query[..]);
        let waiting = tokio::time::timeout(Duration::from_millis(50), wire.fill()).await;
        assert!(waiting.is_err(), "nothing was sent, so nothing was read");
        assert_eq!(wire.buf.capacity(), 0);
        peer.write_all(query).await.unwrap();
        assert_eq!(&wire.frame().await.unwrap().bytes()[..], &query[..]);
    }
}
