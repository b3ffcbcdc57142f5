//! The client socket, read and written at once. Redis keeps reading a client's commands
//! while its replies wait in the output buffer (`client-output-buffer-limit normal 0 0 0`),
//! so a client that writes a whole pipeline before reading any reply never deadlocks with
//! it. The proxy does the same: one future polls both directions, and the replies owed are
//! bounded in bytes by the caller, not by stopping to read.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::bufpool;

/// What one turn of client I/O did.
pub(super) enum Io {
    /// Everything owed to the client was written and flushed.
    Wrote,
    /// Bytes of requests arrived.
    Read,
    /// The client closed its side (or reading failed).
    Closed,
    /// Writing failed: the client is gone.
    Failed,
}

/// A client stream that can say whether it has bytes to read without reading them, so a
/// buffer is lent only when there is something to read into it.
pub(crate) trait Readiness {
    /// Ready when a read may find bytes (or an error); a stream that cannot tell is always
    /// ready.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl Readiness for tokio::net::TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_read_ready(cx).map(|_| ())
    }
}

impl Readiness for tokio::net::UnixStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_read_ready(cx).map(|_| ())
    }
}

/// TLS may hold decrypted bytes the socket no longer shows.
impl Readiness for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn poll_readable(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// The client socket and its write state.
pub(super) struct ClientIo<S> {
    pub stream: S,
    /// Written but not flushed (TLS keeps records until flushed).
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Readiness> ClientIo<S> {
    pub fn new(stream: S) -> Self {
        ClientIo {
            stream,
            unflushed: false,
        }
    }

    /// Writes what the socket takes now of `out`, without waiting. Err: the client is gone.
    pub async fn write_now(&mut self, out: &mut BytesMut) -> io::Result<()> {
        poll_fn(|cx| match self.push(cx, out) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        })
        .await
    }

    /// Waits until `out` is all written, or (when `readable`) requests arrive in `buf`.
    pub async fn turn(&mut self, out: &mut BytesMut, buf: &mut BytesMut, readable: bool) -> Io {
        poll_fn(|cx| {
            if !out.is_empty() || self.unflushed {
                match self.push(cx, out) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Io::Wrote),
                    Poll::Ready(Err(_)) => return Poll::Ready(Io::Failed),
                    Poll::Pending => {}
                }
            }
            if readable {
                match self.poll_read(cx, buf) {
                    Poll::Ready(Ok(n)) if n > 0 => return Poll::Ready(Io::Read),
                    Poll::Ready(_) => return Poll::Ready(Io::Closed),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Reads into `buf`, lent by the worker's pool for the read and given back when the
    /// read finds nothing and the buffer is empty: a client with nothing in flight holds no
    /// buffer (memory per idle connection).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        if buf.capacity() == 0 {
            ready!(self.stream.poll_readable(cx));
            *buf = bufpool::take();
        } else if buf.capacity() - buf.len() < bufpool::CHUNK / 4 {
            buf.reserve(bufpool::CHUNK);
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, buf);
        if read.is_pending() {
            bufpool::give(buf);
        }
        read
    }

    /// Writes `out` until the socket is full, then flushes.
    fn push(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<io::Result<()>> {
        while !out.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            out.advance(n);
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
            self.unflushed = false;
        }
        // All written: the reply buffer goes back to the worker's pool until the next reply.
        bufpool::give(out);
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;
    use tokio::io::AsyncWriteExt;

    use super::{ClientIo, Io};

    /// Between requests a client holds neither a read nor a reply buffer (memory per idle
    /// connection); both are lent again when bytes come or a reply is owed.
    #[tokio::test]
    async fn a_client_between_requests_holds_no_buffer() {
        let (socket, mut peer) = crate::test_support::tcp_pair().await;
        let mut client = ClientIo::new(socket);
        let (mut out, mut buf) = (BytesMut::new(), BytesMut::new());
        peer.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
        assert!(matches!(
            client.turn(&mut out, &mut buf, true).await,
            Io::Read
        ));
        assert_eq!(&buf[..], b"*1\r\n$4\r\nPING\r\n");
        buf.clear();
        out = crate::bufpool::take();
        out.extend_from_slice(b"+PONG\r\n");
        client.write_now(&mut out).await.unwrap();
        assert_eq!(out.capacity(), 0, "the written reply buffer went back");
        let idle = tokio::time::timeout(
            Duration::from_millis(50),
            client.turn(&mut out, &mut buf, true),
        )
        .await;
        assert!(idle.is_err(), "nothing was sent, so nothing was read");
        assert_eq!(buf.capacity(), 0, "no read buffer while waiting");
    }
}
