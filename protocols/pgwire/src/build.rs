//! The messages a proxy writes itself, in both directions. Each returns one whole frame.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Frame;

/// A message with `tag` and `body`, length filled in.
pub fn message(tag: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_u8(tag);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(body);
    out.freeze()
}

/// As a [`Frame`], for code that handles frames read and frames built alike.
pub fn frame(tag: u8, body: &[u8]) -> Frame {
    Frame::from_validated(message(tag, body))
}

fn auth(code: i32, rest: &[u8]) -> Bytes {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(rest);
    message(b'R', &body)
}

pub fn auth_ok() -> Bytes {
    auth(0, &[])
}

pub fn auth_cleartext() -> Bytes {
    auth(3, &[])
}

pub fn auth_md5(salt: [u8; 4]) -> Bytes {
    auth(5, &salt)
}

/// AuthenticationSASL listing the mechanisms offered.
pub fn auth_sasl(mechanisms: &[&str]) -> Bytes {
    let mut rest = Vec::new();
    for m in mechanisms {
        rest.extend_from_slice(m.as_bytes());
        rest.push(0);
    }
    rest.push(0);
    auth(10, &rest)
}

pub fn auth_sasl_continue(data: &[u8]) -> Bytes {
    auth(11, data)
}

pub fn auth_sasl_final(data: &[u8]) -> Bytes {
    auth(12, data)
}

pub fn parameter_status(name: &[u8], value: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(name.len() + value.len() + 2);
    body.extend_from_slice(name);
    body.push(0);
    body.extend_from_slice(value);
    body.push(0);
    message(b'S', &body)
}

pub fn backend_key_data(pid: i32, key: &[u8]) -> Bytes {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(key);
    message(b'K', &body)
}

pub fn ready_for_query(status: u8) -> Bytes {
    message(b'Z', &[status])
}

/// ErrorResponse with severity (`ERROR`, `FATAL`), SQLSTATE and message.
pub fn error(severity: &str, code: &str, text: &str) -> Bytes {
    let mut body = Vec::new();
    for (kind, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(kind);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// An ErrorResponse or NoticeResponse (`tag`) of `fields` (type, value), in order.
pub fn fields<'a>(tag: u8, fields: impl Iterator<Item = (u8, &'a [u8])>) -> Bytes {
    let mut body = Vec::new();
    for (kind, value) in fields {
        body.push(kind);
        body.extend_from_slice(value);
        body.push(0);
    }
    body.push(0);
    message(tag, &body)
}

pub fn parse_complete() -> Bytes {
    message(b'1', &[])
}

pub fn close_complete() -> Bytes {
    message(b'3', &[])
}

pub fn command_complete(tag: &str) -> Bytes {
    let mut body = tag.as_bytes().to_vec();
    body.push(0);
    message(b'C', &body)
}

/// A RowDescription of text columns, for answers the proxy makes up (its admin console).
pub fn row_description(columns: &[&str]) -> Bytes {
    let mut body = (columns.len() as i16).to_be_bytes().to_vec();
    for c in columns {
        body.extend_from_slice(c.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_be_bytes()); // table oid
        body.extend_from_slice(&0i16.to_be_bytes()); // column number
        body.extend_from_slice(&25i32.to_be_bytes()); // text
        body.extend_from_slice(&(-1i16).to_be_bytes());
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes()); // text format
    }
    message(b'T', &body)
}

/// A DataRow of text values (`None` is NULL).
pub fn data_row(values: &[Option<&str>]) -> Bytes {
    let mut body = (values.len() as i16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    message(b'D', &body)
}

/// NegotiateProtocolVersion: the newest minor version we speak and the `_pq_.` options we
/// do not recognise.
pub fn negotiate_protocol_version(minor: u32, unrecognized: &[&str]) -> Bytes {
    let mut body = minor.to_be_bytes().to_vec();
    body.extend_from_slice(&(unrecognized.len() as i32).to_be_bytes());
    for o in unrecognized {
        body.extend_from_slice(o.as_bytes());
        body.push(0);
    }
    message(b'v', &body)
}

/// StartupMessage (protocol 3.0) with `params`.
pub fn startup(params: &[(&str, &str)]) -> Bytes {
    startup_version(3, 0, params)
}

/// StartupMessage asking for protocol `major.minor` (a proxy passing on what a client asked).
pub fn startup_version(major: u16, minor: u16, params: &[(&str, &str)]) -> Bytes {
    let version = (u32::from(major) << 16) | u32::from(minor);
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(&body);
    out.freeze()
}

/// CancelRequest for a backend's process id and key.
pub fn cancel_request(pid: i32, key: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(12 + key.len());
    out.put_i32((12 + key.len()) as i32);
    out.put_u32(crate::CANCEL_REQUEST);
    out.put_i32(pid);
    out.put_slice(key);
    out.freeze()
}

/// Parse with another statement name; `rest` is the parameter-type part from
/// [`crate::msg::parse`].
pub fn parse(name: &[u8], query: &[u8], rest: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(name.len() + query.len() + rest.len() + 2);
    for part in [name, query] {
        body.extend_from_slice(part);
        body.push(0);
    }
    body.extend_from_slice(rest);
    message(b'P', &body)
}

/// Bind with another statement name; `rest` from [`crate::msg::bind`].
pub fn bind(portal: &[u8], statement: &[u8], rest: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(portal.len() + statement.len() + rest.len() + 2);
    for part in [portal, statement] {
        body.extend_from_slice(part);
        body.push(0);
    }
    body.extend_from_slice(rest);
    message(b'B', &body)
}

/// Describe (`D`) or Close (`C`) of a statement (`S`) or portal (`P`).
pub fn target(tag: u8, kind: u8, name: &[u8]) -> Bytes {
    let mut body = vec![kind];
    body.extend_from_slice(name);
    body.push(0);
    message(tag, &body)
}

pub fn query(sql: &str) -> Bytes {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

pub fn sync() -> Bytes {
    message(b'S', &[])
}

pub fn terminate() -> Bytes {
    message(b'X', &[])
}

/// PasswordMessage / SASLResponse (same wire type `p`).
pub fn password(data: &[u8]) -> Bytes {
    message(b'p', data)
}

/// SASLInitialResponse: mechanism and the client-first message.
pub fn sasl_initial(mechanism: &str, data: &[u8]) -> Bytes {
    let mut body = mechanism.as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    message(b'p', &body)
}
