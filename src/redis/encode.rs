//! Building the few RESP values the proxy answers itself (RESP2 and RESP3 forms).
//! <https://redis.io/docs/latest/develop/reference/protocol-spec/#resp-protocol-description>

use bytes::Bytes;

pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        bulk_into(out, a);
    }
}

fn bulk_into(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

pub fn bulk(b: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(b.len() + 16);
    bulk_into(&mut out, b);
    out.into()
}

pub fn simple(s: &str) -> Bytes {
    Bytes::from(format!("+{s}\r\n"))
}

/// An error line; `msg` starts with its code (`ERR`, `NOAUTH`, `WRONGPASS`, ...).
pub fn error(msg: &str) -> Bytes {
    let clean: String = msg
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    Bytes::from(format!("-{clean}\r\n"))
}

pub fn integer(n: i64) -> Bytes {
    Bytes::from(format!(":{n}\r\n"))
}

pub fn null(resp3: bool) -> Bytes {
    Bytes::from_static(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}

/// A map of string keys to values already encoded: `%n` in RESP3, a flat array in RESP2.
pub fn map(resp3: bool, pairs: &[(&str, Bytes)]) -> Bytes {
    let mut out = Vec::new();
    let head = if resp3 {
        format!("%{}\r\n", pairs.len())
    } else {
        format!("*{}\r\n", pairs.len() * 2)
    };
    out.extend_from_slice(head.as_bytes());
    for (k, v) in pairs {
        bulk_into(&mut out, k.as_bytes());
        out.extend_from_slice(v);
    }
    out.into()
}

pub fn empty_array() -> Bytes {
    Bytes::from_static(b"*0\r\n")
}
