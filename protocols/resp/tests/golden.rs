//! Bytes recorded between real clients (redis-cli, `redis-cli --pipe`, `redis-cli -3`,
//! redis-benchmark -P 8, a telnet-style inline client, a RESP3 subscriber) and a real Redis 7
//! with `gen/capture.py`. Every byte must land in exactly one frame, in order, and every
//! reply frame must be one whole value to an independent decoder (redis-protocol).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use bytes::BytesMut;
use throome_resp::{Limits, ReplyLimits, ReplyScanner, RequestScanner};

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// (command names upper-cased, frames re-joined)
fn requests(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let bytes = golden(&format!("{name}.req"));
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::from(&bytes[..]);
    let (mut names, mut all, mut at) = (Vec::new(), Vec::new(), 0);
    while let Some(r) = s.scan(&mut buf).unwrap() {
        names.push(String::from_utf8_lossy(r.name()).to_uppercase());
        all.push(
            r.args()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        );
        // Only blank lines (which Redis ignores too) may stand between frames.
        while bytes[at..].starts_with(b"\r\n") && !bytes[at..].starts_with(r.frame()) {
            at += 2;
        }
        if r.is_inline() {
            // Forwarded in its multibulk form; the input line is consumed whole.
            let line = bytes[at..].iter().position(|&b| b == b'\n');
            at += line.map_or(bytes.len() - at, |n| n + 1);
            continue;
        }
        assert!(
            bytes[at..].starts_with(r.frame()),
            "{name}: frame {} is not the next input",
            names.len()
        );
        at += r.frame().len();
    }
    assert!(buf.is_empty(), "{name}: unframed bytes left");
    assert_eq!(at, bytes.len(), "{name}: frames must cover the input");
    (names, all)
}

/// Reply type bytes; each frame is checked against redis-protocol.
fn replies(name: &str, resp3: bool) -> Vec<u8> {
    let bytes = golden(&format!("{name}.rep"));
    let mut s = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::from(&bytes[..]);
    let (mut kinds, mut joined) = (Vec::new(), Vec::new());
    while let Some(r) = s.scan(&mut buf).unwrap() {
        let consumed = if resp3 {
            redis_protocol::resp3::decode::complete::decode(r.frame())
                .unwrap()
                .map(|(_, n)| n)
        } else {
            redis_protocol::resp2::decode::decode(r.frame())
                .unwrap()
                .map(|(_, n)| n)
        };
        assert_eq!(
            consumed,
            Some(r.frame().len()),
            "{name}: frame is not exactly one value"
        );
        kinds.push(r.kind());
        joined.extend_from_slice(r.frame());
    }
    assert!(buf.is_empty());
    assert!(
        joined == bytes,
        "{name}: reply frames must cover the input exactly"
    );
    kinds
}

#[test]
fn redis_cli_resp2() {
    let (names, _) = requests("redis_cli_resp2");
    assert_eq!(
        names,
        ["SET", "GET", "MGET", "HSET", "HGETALL", "INCR", "NOPE"]
    );
    assert_eq!(replies("redis_cli_resp2", false), b"+$*:*:-".to_vec());
}

#[test]
fn redis_cli_resp3_sends_hello_and_gets_maps() {
    let (names, args) = requests("redis_cli_resp3");
    assert_eq!(
        names,
        [
            "HELLO", "HGETALL", "HELLO", "SMEMBERS", "HELLO", "ZADD", "HELLO", "ZRANGE"
        ]
    );
    assert_eq!(args[0], ["HELLO", "3"]);
    let kinds = replies("redis_cli_resp3", true);
    assert_eq!(kinds, b"%%%~%:%*".to_vec());
}

#[test]
fn redis_cli_pipe_mass_insert() {
    let (names, args) = requests("redis_cli_pipe");
    assert_eq!(names.len(), 51);
    assert!(names[..50].iter().all(|n| n == "SET"));
    assert_eq!(args[49], ["SET", "key:50", "val50"]);
    assert_eq!(
        names[50], "ECHO",
        "--pipe ends with an ECHO of a random marker"
    );
    assert_eq!(replies("redis_cli_pipe", false).len(), 51);
}

#[test]
fn redis_benchmark_pipelined() {
    let (names, _) = requests("redis_benchmark_pipelined");
    for n in ["SET", "GET", "INCR", "LPUSH", "MSET"] {
        assert!(names.iter().any(|x| x == n), "{n} missing");
    }
    assert_eq!(
        replies("redis_benchmark_pipelined", false).len(),
        names.len()
    );
}

#[test]
fn inline_commands_from_a_telnet_client() {
    let (names, args) = requests("inline_telnet");
    assert_eq!(names, ["PING", "SET", "GET", "ECHO"]);
    assert_eq!(args[1], ["SET", "inl", "a b"]);
    assert_eq!(replies("inline_telnet", false), b"++$$".to_vec());
}

#[test]
fn resp3_pubsub_pushes_are_recognised() {
    let (names, _) = requests("pubsub_resp3");
    assert_eq!(names, ["HELLO", "SUBSCRIBE", "PING", "UNSUBSCRIBE"]);
    assert_eq!(replies("pubsub_resp3", true), b"%>>$>".to_vec());
}
