//! A bounds-checked cursor over one message body: the primitive types of the
//! [protocol guide](https://kafka.apache.org/protocol.html#protocol_types), each read failing
//! with `Truncated` rather than panicking, and array counts checked against what remains.

use crate::KafkaError;

pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Cursor { buf, pos }
    }

    pub(crate) fn whole(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], KafkaError> {
        let end = self.pos.checked_add(n).ok_or(KafkaError::Truncated(what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(KafkaError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], KafkaError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, KafkaError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, KafkaError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn uvarint(&mut self, what: &'static str) -> Result<u32, KafkaError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.take(1, what)?[0];
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KafkaError::Malformed(what))
    }

    /// A (nullable) string: Int16 length, or in flexible versions an unsigned varint of
    /// length + 1. Returns the bytes, `None` for null.
    pub(crate) fn string(
        &mut self,
        flexible: bool,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, KafkaError> {
        let len = if flexible {
            match self.uvarint(what)? {
                0 => return Ok(None),
                n => (n - 1) as usize,
            }
        } else {
            match self.i16(what)? {
                -1 => return Ok(None),
                n if n < 0 => return Err(KafkaError::Malformed(what)),
                n => n as usize,
            }
        };
        self.take(len, what).map(Some)
    }

    /// An array's element count (null counts as empty), refused when the elements could not
    /// fit in what remains: every element is at least `min_element` bytes.
    pub(crate) fn count(
        &mut self,
        flexible: bool,
        min_element: usize,
        what: &'static str,
    ) -> Result<usize, KafkaError> {
        let n = if flexible {
            (self.uvarint(what)? as usize).saturating_sub(1)
        } else {
            match self.i32(what)? {
                -1 => 0,
                n if n < 0 => return Err(KafkaError::Malformed(what)),
                n => n as usize,
            }
        };
        if n.saturating_mul(min_element.max(1)) > self.remaining() {
            return Err(KafkaError::Truncated(what));
        }
        Ok(n)
    }

    /// Skips a tagged-field section (flexible versions only).
    pub(crate) fn skip_tags(&mut self, what: &'static str) -> Result<(), KafkaError> {
        let n = self.uvarint(what)?;
        for _ in 0..n {
            self.uvarint(what)?;
            let size = self.uvarint(what)? as usize;
            self.take(size, what)?;
        }
        Ok(())
    }
}

/// Appends an array count in the version's encoding.
pub(crate) fn put_count(out: &mut Vec<u8>, flexible: bool, n: usize) -> Result<(), KafkaError> {
    let n = u32::try_from(n).map_err(|_| KafkaError::Encode("array too long".into()))?;
    if flexible {
        put_uvarint(out, n + 1);
    } else {
        out.extend_from_slice(&(n as i32).to_be_bytes());
    }
    Ok(())
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u32, 1, 127, 128, 300, 16_383, 16_384, u32::MAX] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            assert_eq!(Cursor::new(&out, 0).uvarint("v"), Ok(v));
        }
    }

    #[test]
    fn huge_counts_are_refused_before_any_allocation() {
        let bytes = i32::MAX.to_be_bytes();
        assert_eq!(
            Cursor::new(&bytes, 0).count(false, 1, "a"),
            Err(KafkaError::Truncated("a"))
        );
        let mut flex = Vec::new();
        put_uvarint(&mut flex, u32::MAX);
        assert!(Cursor::new(&flex, 0).count(true, 1, "a").is_err());
    }
}
