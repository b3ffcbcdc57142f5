//! Regular-phase framing: a type byte, then an Int32 length that counts itself but not the
//! type byte ([message flow](https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS)).
//! The length is checked against the limit before the body is awaited, so a peer cannot make
//! the proxy buffer more than the limit, and a short length never reaches a decoder.

use bytes::{Bytes, BytesMut};

use crate::PgError;

/// Default largest message accepted: PostgreSQL's own limit for most messages is 1 GB, but a
/// proxy that buffers whole messages bounds them lower; configurable per service.
pub const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// One whole message as it was on the wire (type byte and length included), so it can be
/// forwarded without re-encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl Frame {
    /// A frame from bytes already known to be one whole message (built by this crate).
    pub(crate) fn from_validated(bytes: Bytes) -> Frame {
        Frame { bytes }
    }

    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The message body, after the type byte and the length.
    pub fn body(&self) -> &[u8] {
        &self.bytes[5..]
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Splits messages off a read buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameScanner {
    max: usize,
}

impl Default for FrameScanner {
    fn default() -> Self {
        FrameScanner::new(DEFAULT_MAX_MESSAGE)
    }
}

impl FrameScanner {
    pub fn new(max: usize) -> Self {
        FrameScanner { max: max.max(5) }
    }

    /// The next whole message, `Ok(None)` when more bytes are needed.
    pub fn scan(&self, buf: &mut BytesMut) -> Result<Option<Frame>, PgError> {
        let Some(len) = self.check(buf)? else {
            return Ok(None);
        };
        Ok(Some(Frame {
            bytes: buf.split_to(len).freeze(),
        }))
    }

    /// The total size of the whole message at the front of `buf` once it is all there;
    /// errors as soon as the header shows a bad or oversized length.
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, PgError> {
        let Some(header) = buf.get(1..5) else {
            return Ok(None);
        };
        let declared = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if declared < 4 {
            return Err(PgError::Length(i64::from(declared)));
        }
        let total = declared as usize + 1;
        if total > self.max {
            return Err(PgError::TooLarge {
                len: total,
                max: self.max,
            });
        }
        Ok((buf.len() >= total).then_some(total))
    }
}
