//! Cut-through framing for big frames. A Produce batch or a Fetch answer is often megabytes;
//! holding it whole before passing it on adds one full transfer time to every exchange (a
//! consumer waits for each fetch) and a buffer of its size per connection. Once the first
//! bytes of such a frame say where it goes (the request header, a response's correlation id),
//! the caller may `pass` it: the bytes at hand go out at once and the rest follows as it
//! arrives. Frames the caller must see whole (the ones it rewrites) are `hold`-ed instead.

use bytes::{Bytes, BytesMut};

use crate::{FrameScanner, KafkaError};

/// Frames smaller than this are always delivered whole (Kafka's default `batch.size` is
/// 16 KiB; below this streaming saves nothing).
pub const STREAM_MIN: usize = 64 * 1024;

/// Bytes of a big frame a caller is shown before it decides: enough for any request header
/// plus a Produce `transactional_id` and `acks` in practice; a caller that cannot decide from
/// them holds the frame.
pub const HEAD_MIN: usize = 1024;

/// What `FrameSplitter::next` found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A whole frame, size prefix included.
    Whole(Bytes),
    /// A frame of `total` bytes (size prefix included) is arriving and at least
    /// `HEAD_MIN.min(total)` of them, but not all, are in the buffer: look at them and call
    /// `pass` or `hold`.
    Big { total: usize },
    /// More bytes of the frame being passed through, in order.
    Rest(Bytes),
}

#[derive(Clone, Copy, Debug)]
pub struct FrameSplitter {
    scanner: FrameScanner,
    /// Bytes of the passed-through frame still to come.
    left: usize,
    /// The frame at the front was held: deliver it whole.
    holding: bool,
}

impl FrameSplitter {
    pub fn new(scanner: FrameScanner) -> Self {
        FrameSplitter {
            scanner,
            left: 0,
            holding: false,
        }
    }

    /// The next piece, or `Ok(None)` when more bytes are needed. Errors as `FrameScanner`.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, KafkaError> {
        if self.left > 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            let n = self.left.min(buf.len());
            self.left -= n;
            return Ok(Some(Piece::Rest(buf.split_to(n).freeze())));
        }
        if !self.holding
            && let Some(total) = self.scanner.declared_total(buf)?
            && total >= STREAM_MIN
            && buf.len() < total
            && buf.len() >= HEAD_MIN.min(total)
        {
            return Ok(Some(Piece::Big { total }));
        }
        let whole = self.scanner.next(buf)?;
        if whole.is_some() {
            self.holding = false;
        }
        Ok(whole.map(Piece::Whole))
    }

    /// Passes the big frame just announced through: returns its bytes at hand; the rest comes
    /// as `Piece::Rest`.
    pub fn pass(&mut self, buf: &mut BytesMut, total: usize) -> Bytes {
        let n = total.min(buf.len());
        self.left = total - n;
        buf.split_to(n).freeze()
    }

    /// Waits for the big frame just announced to be whole.
    pub fn hold(&mut self, buf: &mut BytesMut, total: usize) {
        self.holding = true;
        buf.reserve(total.saturating_sub(buf.len()));
    }

    /// Whether a frame is part way through.
    pub fn passing(&self) -> bool {
        self.left > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: usize) -> Vec<u8> {
        let mut f = (body as i32).to_be_bytes().to_vec();
        f.extend((0..body).map(|i| i as u8));
        f
    }

    #[test]
    fn small_frames_come_whole() {
        let mut s = FrameSplitter::new(FrameScanner::default());
        let mut buf = BytesMut::from(&frame(10)[..]);
        assert_eq!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Whole(frame(10).into()))
        );
        assert_eq!(s.next(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_passed_big_frame_arrives_in_order_then_the_next_whole() {
        let big = frame(STREAM_MIN);
        let mut s = FrameSplitter::new(FrameScanner::default());
        let mut buf = BytesMut::from(&big[..2000]);
        let Some(Piece::Big { total }) = s.next(&mut buf).unwrap() else {
            panic!("expected Big")
        };
        assert_eq!(total, big.len());
        let mut got = s.pass(&mut buf, total).to_vec();
        assert!(s.passing());
        buf.extend_from_slice(&big[2000..]);
        buf.extend_from_slice(&frame(3));
        let Some(Piece::Rest(rest)) = s.next(&mut buf).unwrap() else {
            panic!("expected Rest")
        };
        got.extend_from_slice(&rest);
        assert_eq!(got, big);
        assert!(!s.passing());
        assert_eq!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Whole(frame(3).into()))
        );
    }

    #[test]
    fn a_held_big_frame_comes_whole() {
        let big = frame(STREAM_MIN);
        let mut s = FrameSplitter::new(FrameScanner::default());
        let mut buf = BytesMut::from(&big[..HEAD_MIN]);
        assert_eq!(
            s.next(&mut buf).unwrap(),
            Some(Piece::Big { total: big.len() })
        );
        s.hold(&mut buf, big.len());
        assert_eq!(s.next(&mut buf).unwrap(), None);
        buf.extend_from_slice(&big[HEAD_MIN..]);
        assert_eq!(s.next(&mut buf).unwrap(), Some(Piece::Whole(big.into())));
    }

    #[test]
    fn too_few_head_bytes_wait() {
        let big = frame(STREAM_MIN);
        let mut s = FrameSplitter::new(FrameScanner::default());
        let mut buf = BytesMut::from(&big[..HEAD_MIN - 1]);
        assert_eq!(s.next(&mut buf).unwrap(), None);
    }
}
