//! Just enough of the message bodies to route and pool: every function takes a message
//! body (after type byte and length) that the framer already bounded, and returns `None` on
//! anything malformed instead of panicking.

use crate::startup::cstr;

/// Frontend message type bytes.
pub mod front {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const PASSWORD: u8 = b'p';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const FUNCTION_CALL: u8 = b'F';
}

/// Backend message type bytes.
pub mod back {
    pub const AUTHENTICATION: u8 = b'R';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const EMPTY_QUERY: u8 = b'I';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const NO_DATA: u8 = b'n';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const COPY_IN: u8 = b'G';
    pub const COPY_OUT: u8 = b'H';
    pub const COPY_BOTH: u8 = b'W';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// ReadyForQuery: `I` idle, `T` in a transaction, `E` in a failed transaction.
pub fn ready_status(body: &[u8]) -> Option<u8> {
    match body {
        [s @ (b'I' | b'T' | b'E')] => Some(*s),
        _ => None,
    }
}

/// Authentication request code (0 ok, 3 cleartext, 5 md5 + salt, 10 SASL, 11/12 SASL
/// continue/final) and what follows it.
pub fn auth_request(body: &[u8]) -> Option<(i32, &[u8])> {
    let code = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    Some((code, &body[4..]))
}

/// BackendKeyData: process id and secret key (4 bytes in 3.0, up to 256 in 3.2).
pub fn backend_key(body: &[u8]) -> Option<(i32, &[u8])> {
    let pid = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let key = &body[4..];
    (!key.is_empty()).then_some((pid, key))
}

/// ParameterStatus: name and value.
pub fn parameter_status(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (value, _) = cstr(rest)?;
    Some((name, value))
}

/// DataRow: each column's value (None for NULL); None if the body is malformed.
pub fn data_row(body: &[u8]) -> Option<Vec<Option<&[u8]>>> {
    let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut rest = &body[2..];
    // Each column takes at least its 4-byte length: a count the body cannot hold is false.
    let mut columns = Vec::with_capacity(usize::from(count).min(rest.len() / 4));
    for _ in 0..count {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        if len < 0 {
            columns.push(None);
            continue;
        }
        let len = usize::try_from(len).ok()?;
        columns.push(Some(rest.get(..len)?));
        rest = &rest[len..];
    }
    Some(columns)
}

/// ErrorResponse / NoticeResponse fields: (field type, value) until the terminating NUL.
pub fn fields(body: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (&kind, after) = rest.split_first()?;
        if kind == 0 {
            return None;
        }
        let (value, after) = cstr(after)?;
        rest = after;
        Some((kind, value))
    })
}

/// One field of an ErrorResponse: `C` is the SQLSTATE, `M` the message, `S` the severity.
pub fn field(body: &[u8], kind: u8) -> Option<&[u8]> {
    fields(body).find(|(k, _)| *k == kind).map(|(_, v)| v)
}

/// Parse: statement name, query text, and where the rest (parameter types) starts.
pub fn parse(body: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (query, rest) = cstr(rest)?;
    let count = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    let types_len = usize::try_from(count).ok()? * 4;
    (rest.len() == 2 + types_len).then_some((name, query, rest))
}

/// Bind: portal name, statement name, and the rest (formats, values, result formats).
pub fn bind(body: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (portal, rest) = cstr(body)?;
    let (statement, rest) = cstr(rest)?;
    Some((portal, statement, rest))
}

/// Describe or Close: `S` (statement) or `P` (portal), and the name.
pub fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, rest) = cstr(rest)?;
    (matches!(kind, b'S' | b'P') && rest.is_empty()).then_some((kind, name))
}

/// Query: the SQL text without its terminating NUL.
pub fn query(body: &[u8]) -> Option<&[u8]> {
    cstr(body).map(|(q, _)| q)
}

/// The first keyword of a SQL text, upper-cased, after whitespace, `--` line comments and
/// `/* */` block comments (nested, as PostgreSQL allows); empty if there is none.
pub fn first_keyword(sql: &[u8]) -> String {
    let rest = skip_blanks(sql);
    rest.iter()
        .take_while(|b| b.is_ascii_alphabetic() || **b == b'_')
        .take(32)
        .map(|b| b.to_ascii_uppercase() as char)
        .collect()
}

/// Skips whitespace and comments at the front of `sql`.
pub fn skip_blanks(mut sql: &[u8]) -> &[u8] {
    loop {
        match sql {
            [b, rest @ ..] if b.is_ascii_whitespace() || *b == b'(' => sql = rest,
            [b'-', b'-', rest @ ..] => {
                sql = match memchr::memchr(b'\n', rest) {
                    Some(end) => &rest[end + 1..],
                    None => &[],
                }
            }
            [b'/', b'*', rest @ ..] => {
                let mut depth = 1usize;
                let mut i = 0;
                while depth > 0 && i + 1 < rest.len() {
                    match (rest[i], rest[i + 1]) {
                        (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
                        (b'*', b'/') => (depth, i) = (depth - 1, i + 2),
                        _ => i += 1,
                    }
                }
                sql = if depth == 0 { &rest[i..] } else { &[] };
            }
            _ => return sql,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_rows_with_nulls_and_lies() {
        let row = [0, 2, 0, 0, 0, 2, b'h', b'i', 0xff, 0xff, 0xff, 0xff];
        assert_eq!(data_row(&row), Some(vec![Some(&b"hi"[..]), None]));
        assert_eq!(data_row(&[0, 1, 0, 0, 0, 9, b'x']), None);
        assert_eq!(data_row(&[0xff, 0xff]), None);
        assert_eq!(data_row(&[0]), None);
    }

    #[test]
    fn first_keyword_skips_comments_and_parentheses() {
        assert_eq!(first_keyword(b"  select 1"), "SELECT");
        assert_eq!(
            first_keyword(b"-- hi\n/* a /* nested */ b */ (SELECT 1)"),
            "SELECT"
        );
        assert_eq!(first_keyword(b"begin read only"), "BEGIN");
        assert_eq!(first_keyword(b"/* unterminated"), "");
        assert_eq!(first_keyword(b""), "");
    }

    #[test]
    fn malformed_bodies_are_none_not_panics() {
        assert_eq!(
            parse(b"s1\0select 1\0\0\x05"),
            None,
            "5 types declared, none there"
        );
        assert_eq!(parse(b"s1\0select 1\0\xff\xff"), None, "negative count");
        assert_eq!(bind(b"portal-without-nul"), None);
        assert_eq!(target(b"Xname\0"), None);
        assert_eq!(ready_status(b"IT"), None);
        assert_eq!(backend_key(b"\0\0"), None);
        assert_eq!(fields(b"Sbroken").count(), 0);
    }

    #[test]
    fn error_fields() {
        let body = b"SERROR\0C28P01\0Mpassword authentication failed\0\0";
        assert_eq!(field(body, b'C'), Some(&b"28P01"[..]));
        assert_eq!(
            field(body, b'M'),
            Some(&b"password authentication failed"[..])
        );
        assert_eq!(fields(body).count(), 3);
    }
}
