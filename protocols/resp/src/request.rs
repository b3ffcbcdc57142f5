//! Client requests: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`), framed without
//! allocating and without re-scanning a partial frame from its start when more bytes arrive,
//! and inline commands (`PING\r\n`), split as Redis splits them and re-encoded as multibulk. <https://redis.io/docs/latest/develop/reference/protocol-spec/#sending-commands-to-a-redis-server>

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;

/// Longest `*N` / `$N` header line accepted (Redis: 32 bytes for a count string).
const MAX_COUNT_LINE: usize = 32;

/// Limits a peer cannot exceed; the defaults are Redis's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// `proto-max-bulk-len`: largest single argument.
    pub max_bulk_len: usize,
    /// Largest number of arguments in one command.
    pub max_args: usize,
    /// Longest inline command line (`PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
    /// `client-query-buffer-limit`: largest whole request.
    pub max_request_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_request_len: 1024 * 1024 * 1024,
        }
    }
}

mod inline;

/// One whole request: its original bytes (forwarded as they are; an inline command in the
/// multibulk form Redis parses it to) and how to read its args.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    frame: Bytes,
    argc: usize,
    inline: bool,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Idle,
    /// Inside a multibulk frame: `pos` is where the next `$` header starts.
    Multibulk {
        pos: usize,
        argc: usize,
        left: usize,
    },
}

/// Frames requests out of a growing buffer. Keep one per connection.
#[derive(Debug)]
pub struct RequestScanner {
    limits: Limits,
    state: State,
}

impl RequestScanner {
    pub fn new(limits: Limits) -> Self {
        RequestScanner {
            limits,
            state: State::Idle,
        }
    }

    /// Splits the next whole request off the front of `buf`, or returns `Ok(None)` when more
    /// bytes are needed. After an error the connection must be closed: the stream position is
    /// lost, as in Redis.
    pub fn scan(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            match self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first != b'*' {
                        match self.inline(buf)? {
                            Scan::Done(r) => return Ok(Some(r)),
                            Scan::Skip => continue,
                            Scan::More => return Ok(None),
                        }
                    }
                    let Some(eol) = find_crlf(buf, 1, MAX_COUNT_LINE) else {
                        return if buf.len() > MAX_COUNT_LINE + 3 {
                            Err(ProtocolError::TooBigMultibulkCount)
                        } else {
                            Ok(None)
                        };
                    };
                    let n =
                        parse_count(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if n > self.limits.max_args as i64 {
                        return Err(ProtocolError::InvalidMultibulkLength);
                    }
                    if n <= 0 {
                        // Redis ignores empty multibulks.
                        let _ = buf.split_to(eol + 2);
                        continue;
                    }
                    let n = n as usize;
                    self.state = State::Multibulk {
                        pos: eol + 2,
                        argc: n,
                        left: n,
                    };
                }
                State::Multibulk { pos, argc, left } => {
                    return self.multibulk(buf, pos, argc, left);
                }
            }
        }
    }

    fn multibulk(
        &mut self,
        buf: &mut BytesMut,
        mut pos: usize,
        argc: usize,
        mut left: usize,
    ) -> Result<Option<Request>, ProtocolError> {
        while left > 0 {
            let Some(&b) = buf.get(pos) else { break };
            if b != b'$' {
                return Err(ProtocolError::ExpectedBulk(char::from(b)));
            }
            let Some(eol) = find_crlf(buf, pos + 1, MAX_COUNT_LINE) else {
                if buf.len() - pos > MAX_COUNT_LINE + 3 {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                break;
            };
            let len = parse_count(&buf[pos + 1..eol]).ok_or(ProtocolError::InvalidBulkLength)?;
            if len < 0 || len as u64 > self.limits.max_bulk_len as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            let end = eol + 2 + len as usize + 2;
            if end > self.limits.max_request_len {
                return Err(ProtocolError::RequestTooLarge(self.limits.max_request_len));
            }
            if buf.len() < end {
                break;
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(ProtocolError::BulkNotTerminated);
            }
            pos = end;
            left -= 1;
        }
        if left > 0 {
            self.state = State::Multibulk { pos, argc, left };
            return Ok(None);
        }
        self.state = State::Idle;
        Ok(Some(Request {
            frame: buf.split_to(pos).freeze(),
            argc,
            inline: false,
        }))
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Scan, ProtocolError> {
        let window = &buf[..buf.len().min(self.limits.max_inline_len)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            return if buf.len() >= self.limits.max_inline_len {
                Err(ProtocolError::TooBigInline)
            } else {
                Ok(Scan::More)
            };
        };
        let line = buf.split_to(nl + 1);
        let args = inline::split(&line[..nl])?;
        Ok(if args.is_empty() {
            Scan::Skip
        } else {
            Scan::Done(Request {
                frame: inline::encode(&args).freeze(),
                argc: args.len(),
                inline: true,
            })
        })
    }
}

enum Scan {
    Done(Request),
    Skip,
    More,
}

impl Request {
    /// The request as the client sent it (an inline command: its multibulk form).
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    pub fn into_frame(self) -> Bytes {
        self.frame
    }

    pub fn argc(&self) -> usize {
        self.argc
    }

    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// The arguments, command name first, as slices of the frame.
    pub fn args(&self) -> Args<'_> {
        let start = self
            .frame
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.frame.len(), |p| p + 1);
        Args {
            frame: &self.frame,
            pos: start,
            left: self.argc,
        }
    }

    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.args().nth(i)
    }

    /// An argument as zero-copy `Bytes` sharing the frame's buffer.
    pub fn arg_bytes(&self, i: usize) -> Option<Bytes> {
        self.arg(i).map(|a| self.frame.slice_ref(a))
    }

    pub fn name(&self) -> &[u8] {
        self.arg(0).unwrap_or_default()
    }
}

/// Iterator over a validated request's arguments.
pub struct Args<'a> {
    frame: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // The scanner validated (or built) the frame: `$len\r\n<len bytes>\r\n` at `pos`.
        let frame = self.frame;
        let eol = find_crlf(frame, self.pos + 1, MAX_COUNT_LINE)?;
        let len = usize::try_from(parse_count(&frame[self.pos + 1..eol])?).ok()?;
        let data = frame.get(eol + 2..eol + 2 + len)?;
        self.pos = eol + 2 + len + 2;
        self.left -= 1;
        Some(data)
    }
}

/// Position of the `\r` of the first CRLF at or after `from`, looking at most `max` bytes.
pub(crate) fn find_crlf(buf: &[u8], from: usize, max: usize) -> Option<usize> {
    let end = buf.len().min(from.saturating_add(max).saturating_add(2));
    let window = buf.get(from..end)?;
    window
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| from + p)
}

/// A RESP count or length: optional `-`, then ASCII digits, fitting an i64.
pub(crate) fn parse_count(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests;
