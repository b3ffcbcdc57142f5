//! A connection to a Redis backend: plain TCP, TLS (Redis 6+ `tls-port`, managed Redis
//! with encryption in transit) when the service has `server_tls`, or a Unix-domain socket
//! (`unixsocket`) when the backend's host is a path. Either reads and writes
//! the same; a shared connection is split in halves for its reader and writer tasks.

use std::io;

use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio_rustls::client::TlsStream;

use crate::snapshot::ServiceRuntime;

pub enum RedisStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

/// TLS over `tcp` to `host` when the service asks for it (verified for `host` under
/// `verify-full`).
pub async fn secure(
    service: &ServiceRuntime,
    host: &str,
    tcp: TcpStream,
) -> io::Result<RedisStream> {
    let Some(config) = &service.spec.server_tls else {
        return Ok(RedisStream::Plain(tcp));
    };
    let tls = crate::tls::connect(config, host, tcp).await?;
    Ok(RedisStream::Tls(Box::new(tls)))
}

impl RedisStream {
    /// The reader's and the writer's halves.
    pub fn split(self) -> (ReadSide, WriteSide) {
        match self {
            RedisStream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadSide::Plain(r), WriteSide::Plain(w))
            }
            RedisStream::Tls(s) => {
                let (r, w) = tokio::io::split(*s);
                (ReadSide::Tls(r), WriteSide::Tls(w))
            }
            RedisStream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadSide::Unix(r), WriteSide::Unix(w))
            }
        }
    }
}

pub enum ReadSide {
    Plain(tcp::OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
    Unix(unix::OwnedReadHalf),
}

pub enum WriteSide {
    Plain(tcp::OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
    Unix(unix::OwnedWriteHalf),
}

impl WriteSide {
    /// Writes all of `bytes` and sends them on (TLS holds records until flushed).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            WriteSide::Plain(w) => w.write_all(bytes).await,
            WriteSide::Unix(w) => w.write_all(bytes).await,
            WriteSide::Tls(w) => {
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }

    /// Lets go without a half-close: Redis drops a client whose read side ends, even one
    /// blocked in BLPOP. (Dropping a TLS half closes nothing either.)
    pub fn forget(self) {
        match self {
            WriteSide::Plain(w) => w.forget(),
            WriteSide::Unix(w) => w.forget(),
            WriteSide::Tls(_) => {}
        }
    }
}

crate::accepted::either_io!(
    RedisStream,
    RedisStream::Plain,
    RedisStream::Tls,
    RedisStream::Unix
);
crate::accepted::either_io!(read: ReadSide, ReadSide::Plain, ReadSide::Tls, ReadSide::Unix);
