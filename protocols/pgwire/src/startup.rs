//! The startup phase: the first packet has no type byte, only an Int32 length and an Int32
//! code ([StartupMessage, SSLRequest, GSSENCRequest, CancelRequest](https://www.postgresql.org/docs/current/protocol-message-formats.html)).

use bytes::{Buf, Bytes, BytesMut};

use crate::PgError;

/// PostgreSQL's own bound on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;
pub const PROTOCOL_3_0: u32 = 3 << 16;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.2 cancel keys are variable length, at most 256 bytes.
const MAX_CANCEL_KEY: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    /// A cancel request for the session with this process id and secret key.
    Cancel {
        pid: i32,
        key: Bytes,
    },
    /// A StartupMessage: the requested protocol version and the parameters in order
    /// (`user`, `database`, `application_name`, `options`, `_pq_.*` extensions, ...).
    Startup {
        major: u16,
        minor: u16,
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// A startup parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        match self {
            Startup::Startup { params, .. } => params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Splits the startup packet off the front of `buf`; `Ok(None)` when more is needed.
pub fn scan_startup(buf: &mut BytesMut) -> Result<Option<Startup>, PgError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let declared = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if declared < 8 || declared as usize > MAX_STARTUP_PACKET {
        return Err(PgError::StartupLength(i64::from(declared)));
    }
    let len = declared as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let mut packet = buf.split_to(len).freeze();
    packet.advance(4);
    let code = packet.get_u32();
    match code {
        SSL_REQUEST | GSSENC_REQUEST if !packet.is_empty() => Err(PgError::StartupLayout),
        SSL_REQUEST => Ok(Some(Startup::Ssl)),
        GSSENC_REQUEST => Ok(Some(Startup::GssEnc)),
        CANCEL_REQUEST => {
            if packet.len() < 8 || packet.len() > 4 + MAX_CANCEL_KEY {
                return Err(PgError::StartupLayout);
            }
            let pid = packet.get_i32();
            Ok(Some(Startup::Cancel { pid, key: packet }))
        }
        version => {
            let params = params(&packet).ok_or(PgError::StartupLayout)?;
            Ok(Some(Startup::Startup {
                major: (version >> 16) as u16,
                minor: (version & 0xffff) as u16,
                params,
            }))
        }
    }
}

/// `name\0value\0 ... \0`, UTF-8 (clients send the names and values as text).
fn params(mut rest: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        let (name, after) = cstr(rest)?;
        if name.is_empty() {
            return after.is_empty().then_some(out);
        }
        let (value, after) = cstr(after)?;
        out.push((
            String::from_utf8(name.to_vec()).ok()?,
            String::from_utf8(value.to_vec()).ok()?,
        ));
        rest = after;
    }
}

/// A NUL-terminated string and what follows it.
pub(crate) fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(0, buf)?;
    Some((&buf[..end], &buf[end + 1..]))
}
