//! A socket with a read buffer that yields whole, size-checked protocol messages.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

pub struct Wire {
    pub stream: TcpStream,
    pub buf: BytesMut,
    scanner: FrameScanner,
}

impl Wire {
    pub fn new(stream: TcpStream, max_message: usize) -> Wire {
        Wire::with_buffer(stream, BytesMut::with_capacity(8 * 1024), max_message)
    }

    pub fn with_buffer(stream: TcpStream, buf: BytesMut, max_message: usize) -> Wire {
        Wire {
            stream,
            buf,
            scanner: FrameScanner::new(max_message),
        }
    }

    /// A whole message already in the buffer.
    pub fn try_frame(&mut self) -> Result<Option<Frame>, PgError> {
        self.scanner.scan(&mut self.buf)
    }

    /// Reads more bytes; `Closed` at end of stream. Cancel-safe (for `select!`).
    pub async fn fill(&mut self) -> Result<(), WireError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
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
        self.stream.write_all(bytes).await?;
        Ok(())
    }
}
