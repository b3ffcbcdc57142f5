//! Redis commands from JSON and replies to JSON, as Upstash's REST API has them: a command is
//! an array of strings and numbers; a reply is a string, a number, null or an array
//! (<https://upstash.com/docs/redis/features/restapi>). Bulk strings that are not UTF-8, or
//! all of them under `encoding=base64`, are given in base64.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use serde_json::Value;

/// A command's arguments from its JSON array.
pub fn args(command: &[Value]) -> Result<Vec<Vec<u8>>, String> {
    if command.is_empty() {
        return Err("a command is a non-empty array of strings".into());
    }
    command
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            Value::Number(n) => Ok(n.to_string().into_bytes()),
            Value::Bool(b) => Ok(if *b { b"1".to_vec() } else { b"0".to_vec() }),
            other => Err(format!(
                "command arguments are strings or numbers, not {other}"
            )),
        })
        .collect()
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode(args: &[Vec<u8>], out: &mut BytesMut) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply: `Ok(value)`, or `Err(message)` for an error reply.
pub type Json = Result<Value, String>;

/// A whole RESP2 reply frame (as `ReplyScanner` framed it) as JSON.
pub fn reply(frame: &[u8], base64: bool) -> Json {
    let mut at = 0;
    match value(frame, &mut at, base64) {
        Some(v) => v,
        None => Err("ERR the proxy could not read the reply".into()),
    }
}

fn line<'a>(frame: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let rest = frame.get(*at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    *at += end + 2;
    rest.get(..end)
}

fn number(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn text(bytes: &[u8], base64: bool) -> Value {
    match (base64, std::str::from_utf8(bytes)) {
        (false, Ok(s)) => Value::String(s.to_string()),
        _ => Value::String(STANDARD.encode(bytes)),
    }
}

/// One value at `at`; an error reply nested in an array (EXEC's) is `{"error": ...}`.
fn value(frame: &[u8], at: &mut usize, base64: bool) -> Option<Json> {
    let kind = *frame.get(*at)?;
    *at += 1;
    let head = line(frame, at)?;
    Some(match kind {
        b'+' => Ok(text(head, base64)),
        b'-' => Err(String::from_utf8_lossy(head).into_owned()),
        b':' => Ok(Value::from(number(head)?)),
        b'$' => {
            let Ok(len) = usize::try_from(number(head)?) else {
                return Some(Ok(Value::Null));
            };
            let bytes = frame.get(*at..*at + len)?;
            *at += len + 2;
            Ok(text(bytes, base64))
        }
        b'*' => {
            let Ok(n) = usize::try_from(number(head)?) else {
                return Some(Ok(Value::Null));
            };
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(match value(frame, at, base64)? {
                    Ok(v) => v,
                    Err(e) => serde_json::json!({ "error": e }),
                });
            }
            Ok(Value::Array(items))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_as_upstash_gives_them() {
        assert_eq!(reply(b"+OK\r\n", false), Ok(json!("OK")));
        assert_eq!(reply(b":-7\r\n", false), Ok(json!(-7)));
        assert_eq!(reply(b"$-1\r\n", false), Ok(Value::Null));
        assert_eq!(reply(b"$3\r\nabc\r\n", true), Ok(json!("YWJj")));
        assert_eq!(reply(b"$2\r\n\xff\x00\r\n", false), Ok(json!("/wA=")));
        assert_eq!(
            reply(b"*3\r\n$1\r\na\r\n:1\r\n-ERR no\r\n", false),
            Ok(json!(["a", 1, {"error": "ERR no"}]))
        );
        assert_eq!(reply(b"-WRONGTYPE x\r\n", false), Err("WRONGTYPE x".into()));
    }

    #[test]
    fn commands_from_json() {
        let mut out = BytesMut::new();
        encode(
            &args(&[json!("SET"), json!("k"), json!(5)]).unwrap(),
            &mut out,
        );
        assert_eq!(&out[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n");
        assert!(args(&[]).is_err());
        assert!(args(&[json!("GET"), json!(null)]).is_err());
    }
}
