//! Differential sessions for Redis: the same commands sent to a redis-server directly and to
//! another one through Throome, and the replies compared frame by frame. The server is the
//! specification: a difference is a defect (or a limitation the README documents).
//!
//! A session is text, one command per line, split as redis-cli splits arguments (spaces,
//! double quotes with `\"`, `\\`, `\r`, `\n`, `\t` escapes). `@N ` before a command sends it on
//! connection N (default 1). `#` starts a comment. Lines starting with `:` order what
//! several connections do, as a client waiting for a reply would:
//! - `:wait-blocked N`: until the server has N blocked clients (a blocking command is in
//!   place before the command that wakes it);
//! - `:wait-numsub CHANNEL N`, `:wait-numpat N`: until the server has N subscribers;
//! - `:wait-frames CONN K`: until connection CONN has received K replies in all.
//!
//! The server's own figures are read on a connection of the test's own, straight to it. Every connection ends with QUIT and is read to its end, so a command that
//! answers with several frames (or none) is compared whole, whatever the count.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use throome_resp::{ReplyLimits, ReplyScanner};

/// How the client writes its commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    /// Each command written as it comes, replies read by a reader of their own meanwhile.
    Stream,
    /// Every command of a connection written before any reply is read (redis-py's
    /// pipelines); a `:wait-blocked` line writes what came before it.
    Whole,
    /// One byte per write.
    ByteByByte,
}

pub enum Line {
    Command(usize, Vec<Vec<u8>>),
    Wait(Wait),
}

pub enum Wait {
    Blocked(u32),
    NumSub(String, u32),
    NumPat(u32),
    Frames(usize, usize),
}

/// Parses a session; panics with the line number on a malformed one (test input).
pub fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for (no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(directive) = line.strip_prefix(':') {
            lines.push(Line::Wait(self::directive(directive).unwrap_or_else(
                || panic!("line {}: unknown directive {directive}", no + 1),
            )));
            continue;
        }
        let (conn, rest) = match line.strip_prefix('@') {
            Some(r) => {
                let (n, rest) = r.split_once(' ').unwrap_or((r, ""));
                (
                    n.parse().unwrap_or_else(|_| panic!("line {}: @N", no + 1)),
                    rest,
                )
            }
            None => (1, line),
        };
        let args = split_args(rest).unwrap_or_else(|| panic!("line {}: quotes", no + 1));
        lines.push(Line::Command(conn, args));
    }
    lines
}

fn directive(text: &str) -> Option<Wait> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let n = |i: usize| words.get(i).and_then(|w| w.parse::<usize>().ok());
    let c = |i: usize| n(i).and_then(|v| u32::try_from(v).ok());
    Some(match *words.first()? {
        "wait-blocked" => Wait::Blocked(c(1)?),
        "wait-numsub" => Wait::NumSub(words.get(1)?.to_string(), c(2)?),
        "wait-numpat" => Wait::NumPat(c(1)?),
        "wait-frames" => Wait::Frames(n(1)?, n(2)?),
        _ => return None,
    })
}

/// redis-cli's argument splitting, enough for test sessions.
pub fn split_args(line: &str) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Some(args);
        };
        let mut arg = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => arg.push(match chars.next()? {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        other => other,
                    }),
                    c => arg.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg.into_bytes());
    }
}

pub fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What each connection received, until the server closed it after QUIT.
pub type Transcripts = Vec<Vec<u8>>;

/// What one connection has received so far, filled by a reader thread until EOF.
type Received = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Runs `lines` against `port`; `server` is the redis-server itself (for the waits).
pub fn run(port: u16, server: u16, lines: &[Line], writes: Writes) -> Transcripts {
    let conns = lines
        .iter()
        .map(|l| match l {
            Line::Command(c, _) => *c,
            Line::Wait(Wait::Frames(c, _)) => *c,
            Line::Wait(_) => 0,
        })
        .max()
        .unwrap_or(1)
        .max(1);
    let mut streams: Vec<TcpStream> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_nodelay(true).unwrap();
            s
        })
        .collect();
    let received: Vec<Received> = (0..conns).map(|_| Received::default()).collect();
    let mut readers = Vec::new();
    let start_readers = |streams: &[TcpStream], readers: &mut Vec<_>| {
        if readers.is_empty() {
            for (s, r) in streams.iter().zip(&received) {
                readers.push(read_to_end(s.try_clone().unwrap(), r.clone()));
            }
        }
    };
    if writes != Writes::Whole {
        start_readers(&streams, &mut readers);
    }
    let mut held: Vec<Vec<u8>> = vec![Vec::new(); conns];
    for line in lines {
        match line {
            Line::Command(c, args) => {
                let bytes = encode(args);
                match writes {
                    Writes::Whole => held[c - 1].extend_from_slice(&bytes),
                    Writes::Stream => streams[c - 1].write_all(&bytes).unwrap(),
                    Writes::ByteByByte => {
                        for b in bytes {
                            streams[c - 1].write_all(&[b]).unwrap();
                        }
                    }
                }
            }
            Line::Wait(w) => {
                for (i, bytes) in held.iter_mut().enumerate() {
                    streams[i].write_all(bytes).unwrap();
                    bytes.clear();
                }
                start_readers(&streams, &mut readers);
                wait(server, w, &received);
            }
        }
    }
    for (i, s) in streams.iter_mut().enumerate() {
        held[i].extend_from_slice(&encode(&[b"QUIT".to_vec()]));
        s.write_all(&held[i]).unwrap();
    }
    start_readers(&streams, &mut readers);
    // QUIT after CLIENT REPLY OFF has nothing to write, and Redis closes a client after
    // writing: the end of input closes those still open a while later.
    let deadline = Instant::now() + Duration::from_secs(1);
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (s, r) in streams.iter().zip(&readers) {
        if !r.is_finished() {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
    }
    for r in readers {
        r.join().unwrap();
    }
    received.iter().map(|r| r.lock().unwrap().clone()).collect()
}

fn read_to_end(mut s: TcpStream, into: Received) -> std::thread::JoinHandle<()> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 16 * 1024];
        while let Ok(n) = s.read(&mut chunk) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    })
}

/// Waits (bounded: a difference then shows in the replies) until `w` holds.
fn wait(server: u16, w: &Wait, received: &[Received]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut con = super::redis_con(server);
    let mut holds = || -> bool {
        match w {
            Wait::Blocked(n) => {
                let info: String = redis::cmd("INFO").arg("clients").query(&mut con).unwrap();
                let blocked = info
                    .lines()
                    .find_map(|l| l.strip_prefix("blocked_clients:"))
                    .and_then(|v| v.trim().parse::<u32>().ok());
                blocked == Some(*n)
            }
            Wait::NumSub(channel, n) => {
                let (_, count): (String, u32) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query(&mut con)
                    .unwrap();
                count == *n
            }
            Wait::NumPat(n) => {
                let count: u32 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut con).unwrap();
                count == *n
            }
            Wait::Frames(c, k) => {
                let got = frames(&received[c - 1].lock().unwrap());
                got.iter().filter(|f| !f.starts_with("<unframed>")).count() >= *k
            }
        }
    };
    while Instant::now() < deadline {
        if holds() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The frames of a transcript, readable: one per line, CRLF shown as `\r\n`. HELLO's reply
/// names the server's version and the connection's id, which differ by design: it is
/// reduced to its protocol.
pub fn frames(transcript: &[u8]) -> Vec<String> {
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::from(transcript);
    let mut out = Vec::new();
    while let Ok(Some(r)) = scanner.scan(&mut buf) {
        out.push(normalize(&String::from_utf8_lossy(r.frame())));
    }
    if !buf.is_empty() {
        out.push(format!("<unframed> {}", String::from_utf8_lossy(&buf)));
    }
    out
}

fn normalize(frame: &str) -> String {
    let hello = frame.contains("$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n");
    if hello && (frame.starts_with("%7\r\n") || frame.starts_with("*14\r\n")) {
        let proto = if frame.starts_with('%') { 3 } else { 2 };
        return format!("<hello proto {proto}>");
    }
    frame.replace("\r\n", "\\r\\n")
}

/// Panics with the first differing frame of each connection, in context.
pub fn assert_same(name: &str, writes: Writes, direct: &Transcripts, proxied: &Transcripts) {
    for (i, (d, p)) in direct.iter().zip(proxied).enumerate() {
        let (d, p) = (frames(d), frames(p));
        if d == p {
            continue;
        }
        for (j, t) in proxied.iter().enumerate() {
            eprintln!("throome, connection {}: {:?}", j + 1, frames(t));
        }
        let at = d
            .iter()
            .zip(&p)
            .position(|(a, b)| a != b)
            .unwrap_or(d.len().min(p.len()));
        let from = at.saturating_sub(3);
        panic!(
            "{name} ({writes:?}), connection {}: frame {at} differs\n redis-server: {:#?}\n throome:      {:#?}",
            i + 1,
            &d[from..d.len().min(at + 4)],
            &p[from..p.len().min(at + 4)],
        );
    }
}
