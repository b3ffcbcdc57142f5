//! Replies from a Redis backend, RESP2 and RESP3: framed whole (nested aggregates, maps,
//! attributes, push frames) so each can be matched to its request, without re-scanning a
//! partial reply from its start. <https://redis.io/docs/latest/develop/reference/protocol-spec/#resp-protocol-description>

use bytes::{Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::request::{find_crlf, parse_count};

/// Bounds on what a backend may send (it is trusted, but a bug must not exhaust memory).
#[derive(Clone, Copy, Debug)]
pub struct ReplyLimits {
    pub max_bulk_len: usize,
    /// Most open aggregates tracked at once (memory: 16 bytes each).
    pub max_depth: usize,
    /// Longest simple-string, error or number line.
    pub max_line_len: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_bulk_len: 512 * 1024 * 1024,
            // Open aggregates, not nesting levels: a run of one-element aggregates (what a
            // Lua script nesting tables returns, thousands deep) is one entry.
            max_depth: 65_536,
            max_line_len: 64 * 1024 * 1024,
        }
    }
}

/// One whole reply, as the backend sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    frame: Bytes,
    /// Type byte of the reply itself (after any attribute).
    kind: u8,
}

impl Reply {
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }

    pub fn into_frame(self) -> Bytes {
        self.frame
    }

    /// `+`, `-`, `:`, `$`, `*`, `%`, `~`, `>`, `_`, `,`, `#`, `(`, `!`, `=`.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// A simple (`-`) or blob (`!`) error.
    pub fn is_error(&self) -> bool {
        matches!(self.kind, b'-' | b'!')
    }

    /// An out-of-band RESP3 push (pub/sub message, tracking invalidation): not a reply to
    /// any request.
    pub fn is_push(&self) -> bool {
        self.kind == b'>'
    }

    /// The text of a simple error (`-MOVED 3999 127.0.0.1:6381`), without `-` and CRLF.
    pub fn error_line(&self) -> Option<&[u8]> {
        if self.kind != b'-' {
            return None;
        }
        let start = self.frame.iter().position(|&b| b == b'-')? + 1;
        let end = self.frame.len().checked_sub(2)?;
        self.frame.get(start..end)
    }
}

#[derive(Clone, Copy, Debug)]
struct Level {
    left: u64,
    /// An attribute map: when done, the value it annotates still follows at this level.
    attribute: bool,
    /// With `left == 1`: this many nested aggregates, each the last element of the one
    /// around it, all done when the innermost is. Deep nesting costs no memory per level.
    run: u32,
}

/// Frames replies out of a growing buffer. Keep one per upstream connection.
#[derive(Debug)]
pub struct ReplyScanner {
    limits: ReplyLimits,
    pos: usize,
    stack: Vec<Level>,
    kind: Option<u8>,
}

impl ReplyScanner {
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyScanner {
            limits,
            pos: 0,
            stack: Vec::new(),
            kind: None,
        }
    }

    /// Splits the next whole reply off the front of `buf`, or `Ok(None)` if more is needed.
    pub fn scan(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ProtocolError> {
        Ok(self
            .measure(buf)?
            .map(|measured| Self::split(buf, measured)))
    }

    /// Splits off the front of `buf` the reply that [`measure`](Self::measure) just found.
    pub fn split(buf: &mut BytesMut, (len, kind): (usize, u8)) -> Reply {
        Reply {
            frame: buf.split_to(len).freeze(),
            kind,
        }
    }

    /// The length and type byte of the whole reply at the front of `buf`, or `Ok(None)` if
    /// more is needed. The caller consumes those bytes before the next call: a proxy that
    /// passes replies through unchanged copies them out without a `Bytes` per reply.
    pub fn measure(&mut self, buf: &[u8]) -> Result<Option<(usize, u8)>, ProtocolError> {
        loop {
            let Some(&t) = buf.get(self.pos) else {
                return Ok(None);
            };
            if self.stack.is_empty() && t != b'|' && self.kind.is_none() {
                self.kind = Some(t);
            }
            let done = match t {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                    let Some(eol) = find_crlf(buf, self.pos + 1, self.limits.max_line_len) else {
                        return self.need_more(buf);
                    };
                    self.pos = eol + 2;
                    true
                }
                b'$' | b'!' | b'=' => {
                    let Some(eol) = find_crlf(buf, self.pos + 1, 32) else {
                        return self.need_more(buf);
                    };
                    let len = parse_count(&buf[self.pos + 1..eol])
                        .ok_or(ProtocolError::InvalidBulkLength)?;
                    if len < 0 {
                        self.pos = eol + 2; // null bulk
                    } else {
                        if len as u64 > self.limits.max_bulk_len as u64 {
                            return Err(ProtocolError::InvalidBulkLength);
                        }
                        let end = eol + 2 + len as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        self.pos = end;
                    }
                    true
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let Some(eol) = find_crlf(buf, self.pos + 1, 32) else {
                        return self.need_more(buf);
                    };
                    let n = parse_count(&buf[self.pos + 1..eol])
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    self.pos = eol + 2;
                    let n = if matches!(t, b'%' | b'|') {
                        n.saturating_mul(2)
                    } else {
                        n
                    };
                    if n <= 0 {
                        true // empty or null aggregate
                    } else {
                        self.open(n as u64, t == b'|')?;
                        false
                    }
                }
                other => return Err(ProtocolError::UnexpectedReplyType(other)),
            };
            if done && self.element_done() {
                let len = std::mem::take(&mut self.pos);
                return Ok(Some((len, self.kind.take().unwrap_or(b'+'))));
            }
        }
    }

    /// Starts an aggregate of `n` elements inside the current one.
    fn open(&mut self, n: u64, attribute: bool) -> Result<(), ProtocolError> {
        if let Some(top) = self.stack.last_mut()
            && n == 1
            && !attribute
            && top.left == 1
            && !top.attribute
            && top.run < u32::MAX
        {
            top.run += 1;
            return Ok(());
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(ProtocolError::ReplyTooDeep(self.limits.max_depth));
        }
        self.stack.push(Level {
            left: n,
            attribute,
            run: 1,
        });
        Ok(())
    }

    fn need_more<T>(&self, buf: &[u8]) -> Result<Option<T>, ProtocolError> {
        if buf.len() - self.pos > self.limits.max_line_len + 34 {
            Err(ProtocolError::TooBigBulkCount)
        } else {
            Ok(None)
        }
    }

    /// Counts one finished element against the open aggregates; true when the whole reply is.
    fn element_done(&mut self) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return true;
            };
            top.left -= 1;
            if top.left > 0 {
                return false;
            }
            let attribute = top.attribute;
            self.stack.pop();
            if attribute {
                // The annotated value comes next at this level; it is the element.
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests;
