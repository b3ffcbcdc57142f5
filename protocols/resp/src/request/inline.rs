//! Inline commands (`SET k "a b"\r\n`, as telnet and some tests send) split into arguments
//! exactly as Redis splits them (`sdssplitargs` in sds.c, called by processInlineBuffer):
//! blanks separate; `"..."` takes `\xHH`, `\n`, `\r`, `\t`, `\b`, `\a` and `\<any>` escapes;
//! `'...'` takes `\'`; a closing quote must be followed by a blank or the end of the line;
//! a NUL byte ends the line, as it ends Redis's C string. The result is re-encoded as a
//! multibulk request, so the backend and the proxy's key routing see the same arguments.

use bytes::{BufMut, BytesMut};

use crate::error::ProtocolError;

/// The arguments of one inline line (without its line ending).
pub fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(args);
        }
        let (arg, next) = one(line, p)?;
        args.push(arg);
        p = next;
    }
}

/// The argument starting at `p` and where scanning resumes.
fn one(line: &[u8], mut p: usize) -> Result<(Vec<u8>, usize), ProtocolError> {
    let mut arg = Vec::new();
    let (mut in_double, mut in_single) = (false, false);
    loop {
        let c = line.get(p).copied();
        let next = line.get(p + 1).copied();
        if in_double {
            match (c, next) {
                (None, _) => return Err(ProtocolError::UnbalancedQuotes),
                (Some(b'\\'), Some(b'x'))
                    if let (Some(h), Some(l)) = (
                        line.get(p + 2).and_then(|&b| hex(b)),
                        line.get(p + 3).and_then(|&b| hex(b)),
                    ) =>
                {
                    arg.push(h * 16 + l);
                    p += 3;
                }
                (Some(b'\\'), Some(e)) => {
                    arg.push(match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 1;
                }
                (Some(b'"'), _) => return Ok((arg, closed(line, p)?)),
                (Some(b), _) => arg.push(b),
            }
        } else if in_single {
            match (c, next) {
                (None, _) => return Err(ProtocolError::UnbalancedQuotes),
                (Some(b'\\'), Some(b'\'')) => {
                    arg.push(b'\'');
                    p += 1;
                }
                (Some(b'\''), _) => return Ok((arg, closed(line, p)?)),
                (Some(b), _) => arg.push(b),
            }
        } else {
            match c {
                None => return Ok((arg, p)),
                Some(b) if is_space(b) => return Ok((arg, p)),
                Some(b'"') => in_double = true,
                Some(b'\'') => in_single = true,
                Some(b) => arg.push(b),
            }
        }
        p += 1;
    }
}

/// A closing quote at `p` must be followed by a blank or the end of the line; scanning
/// resumes after it.
fn closed(line: &[u8], p: usize) -> Result<usize, ProtocolError> {
    match line.get(p + 1) {
        Some(&b) if !is_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(p + 1),
    }
}

/// C's `isspace`, as sdssplitargs uses it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// `args` as a multibulk request.
pub fn encode(args: &[Vec<u8>]) -> BytesMut {
    let size: usize = args.iter().map(|a| a.len() + 16).sum();
    let mut out = BytesMut::with_capacity(size + 16);
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.put_slice(format!("${}\r\n", a.len()).as_bytes());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    out
}
