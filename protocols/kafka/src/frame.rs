//! Framing: every request and response is an Int32 size followed by that many bytes
//! ([protocol framing](https://kafka.apache.org/protocol.html#protocol_common)). The size is
//! checked against the limit as soon as its four bytes arrive, so a peer cannot make the proxy
//! buffer more than the limit.

use bytes::{Buf, Bytes, BytesMut};

use crate::KafkaError;

/// Kafka's own default for `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

/// Splits whole frames (size prefix included, so they can be forwarded as they came) off a
/// read buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameScanner {
    max: usize,
}

impl Default for FrameScanner {
    fn default() -> Self {
        FrameScanner::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameScanner {
    pub fn new(max: usize) -> Self {
        FrameScanner { max }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or an error when the
    /// declared size is negative or over the limit (the connection cannot continue).
    pub fn next(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, KafkaError> {
        let Some(size) = self.declared(buf)? else {
            return Ok(None);
        };
        let total = 4 + size;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        Ok(Some(buf.split_to(total).freeze()))
    }

    /// The whole frame's size (prefix included) once its four size bytes are there.
    pub fn declared_total(&self, buf: &[u8]) -> Result<Option<usize>, KafkaError> {
        Ok(self.declared(buf)?.map(|size| 4 + size))
    }

    /// The declared body size once four bytes are there.
    fn declared(&self, buf: &[u8]) -> Result<Option<usize>, KafkaError> {
        let Some(mut head) = buf.get(..4) else {
            return Ok(None);
        };
        let size = head.get_i32();
        let size = usize::try_from(size).map_err(|_| KafkaError::NegativeSize(size))?;
        if size > self.max {
            return Err(KafkaError::TooLarge {
                size: size as i64,
                max: self.max,
            });
        }
        Ok(Some(size))
    }
}
