//! A PostgreSQL differential harness: a script of protocol messages (simple and extended)
//! is sent to a server directly and through Throome, and what comes back is compared
//! message by message. The client here is raw bytes over a socket, so nothing a driver does
//! (retries, caches, hiding errors) stands between the two answers.
//!
//! Script lines (`@N ` in front sends on connection N, default 1):
//! - `Q sql` Query; `P name sql` Parse (`-` is the unnamed statement); `B portal stmt
//!   [args]` Bind with text arguments (`\N` is NULL); `D S|P name` Describe; `E portal
//!   rows` Execute; `C S|P name` Close; `H` Flush; `S` Sync;
//! - `d text` CopyData (a line, `\n` added), `c` CopyDone, `f text` CopyFail;
//! - `cancel` sends a CancelRequest for the connection's last BackendKeyData;
//! - `sleep MS`; `# comment`; `!` before a message: its answer is read with the next one.
//!
//! Header lines: `startup name=value ...` (extra startup parameters for every connection),
//! `modes session transaction` (which Throome pool modes the script runs through).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use throome_pgwire::build;

#[derive(Clone, Debug)]
pub struct Line {
    pub conn: usize,
    pub text: String,
}

pub struct Script {
    pub startup: Vec<(String, String)>,
    pub modes: Vec<String>,
    pub lines: Vec<Line>,
}

pub fn parse(text: &str) -> Script {
    let mut script = Script {
        startup: Vec::new(),
        modes: vec!["session".into(), "transaction".into()],
        lines: Vec::new(),
    };
    for raw in text.lines() {
        let line = raw.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("startup ") {
            for pair in rest.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("startup name=value");
                script.startup.push((k.into(), v.replace("\\s", " ")));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("modes ") {
            script.modes = rest.split_whitespace().map(String::from).collect();
            continue;
        }
        let (conn, text) = match line.strip_prefix('@') {
            Some(rest) => {
                let (n, text) = rest.split_once(' ').expect("@N line");
                (n.parse().expect("connection number"), text.to_string())
            }
            None => (1, line.to_string()),
        };
        script.lines.push(Line { conn, text });
    }
    script
}

/// How the client writes: each message as it comes (reading each answer before the next
/// read point), everything before reading, or everything one byte at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Writes {
    Stream,
    Whole,
    ByteByByte,
}

/// The wire bytes of one script line; None for lines that are not messages.
fn encode(text: &str) -> Option<Vec<u8>> {
    let (op, rest) = text.split_once(' ').unwrap_or((text, ""));
    let name = |s: &str| {
        if s == "-" {
            String::new()
        } else {
            s.to_string()
        }
    };
    let mut out = Vec::new();
    match op {
        "Q" => out.extend_from_slice(&build::query(rest)),
        "P" => {
            let (n, sql) = rest.split_once(' ').expect("P name sql");
            out.extend_from_slice(&build::parse(name(n).as_bytes(), sql.as_bytes(), &[0, 0]));
        }
        "B" => {
            let mut words = rest.split(' ');
            let portal = name(words.next().expect("portal"));
            let stmt = name(words.next().expect("statement"));
            let args: Vec<&str> = words.collect();
            let mut body = vec![0, 0];
            body.extend_from_slice(&(args.len() as i16).to_be_bytes());
            for a in &args {
                match *a {
                    "\\N" => body.extend_from_slice(&(-1i32).to_be_bytes()),
                    a => {
                        body.extend_from_slice(&(a.len() as i32).to_be_bytes());
                        body.extend_from_slice(a.as_bytes());
                    }
                }
            }
            body.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&build::bind(portal.as_bytes(), stmt.as_bytes(), &body));
        }
        "D" | "C" => {
            let (kind, n) = rest.split_once(' ').unwrap_or((rest, "-"));
            let tag = op.as_bytes()[0];
            out.extend_from_slice(&build::target(tag, kind.as_bytes()[0], name(n).as_bytes()));
        }
        "E" => {
            let (portal, rows) = rest.split_once(' ').unwrap_or((rest, "0"));
            let mut body = name(portal).into_bytes();
            body.push(0);
            body.extend_from_slice(&rows.parse::<i32>().expect("rows").to_be_bytes());
            out.extend_from_slice(&build::message(b'E', &body));
        }
        "H" => out.extend_from_slice(&build::message(b'H', b"")),
        "S" => out.extend_from_slice(&build::sync()),
        "d" => out.extend_from_slice(&build::message(b'd', format!("{rest}\n").as_bytes())),
        "c" => out.extend_from_slice(&build::message(b'c', b"")),
        "f" => out.extend_from_slice(&build::message(b'f', format!("{rest}\0").as_bytes())),
        _ => return None,
    }
    Some(out)
}

/// After this line the client reads (in `Writes::Stream`): what ends the wait.
fn read_point(text: &str) -> Option<Until> {
    match text.split(' ').next() {
        Some("Q" | "S" | "c" | "f") => Some(Until::ReadyOrCopy),
        Some("H") => Some(Until::Quiet),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Until {
    ReadyOrCopy,
    Quiet,
}

/// One raw connection: its socket, unread bytes and the BackendKeyData it was given.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
    key: (i32, Vec<u8>),
}

impl Conn {
    fn open(port: u16, database: &str, startup: &[(String, String)]) -> (Conn, Vec<String>) {
        let sock = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        sock.set_nodelay(true).unwrap();
        let mut params: Vec<(&str, &str)> = vec![("user", "postgres"), ("database", database)];
        params.extend(startup.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut c = Conn {
            sock,
            buf: Vec::new(),
            key: (0, Vec::new()),
        };
        c.sock.write_all(&build::startup(&params)).unwrap();
        let mut got = Vec::new();
        while let Some((tag, body)) = c.next(Duration::from_secs(10)) {
            if tag == b'K' {
                c.key = (
                    i32::from_be_bytes(body[..4].try_into().unwrap()),
                    body[4..].to_vec(),
                );
            }
            got.push(show(tag, &body));
            if tag == b'Z' || tag == b'E' {
                break;
            }
        }
        // The server reports parameters in an order of its own.
        got.sort();
        (c, got)
    }

    /// The next whole message, waiting at most `limit`.
    fn next(&mut self, limit: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + limit;
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() > len {
                    let msg: Vec<u8> = self.buf.drain(..len + 1).collect();
                    return Some((msg[0], msg[5..].to_vec()));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 65536];
            match self.sock.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }
}

/// A message as text: the tag and its body, with what differs between two servers (or
/// two databases) that run the same session blanked (pids, table oids).
fn show(tag: u8, body: &[u8]) -> String {
    let mut body = body.to_vec();
    match tag {
        // BackendKeyData: process id and secret are the connection's own.
        b'K' => return "K".into(),
        // NotificationResponse: the sender's pid.
        b'A' => body[..4].fill(0),
        // RowDescription: each field's table oid and column number; types made by the
        // session (oids of its database's own).
        b'T' => blank_table_oids(&mut body),
        b't' => body[2..].chunks_mut(4).for_each(blank_user_oid),
        // ErrorResponse, NoticeResponse: the server's source file, line and function are
        // not for clients (an error the proxy gives for the server has none).
        b'E' | b'N' => body = without_source(&body),
        _ => {}
    }
    let text: String = body
        .iter()
        .map(|&b| match b {
            0 => "|".to_string(),
            32..=126 => (b as char).to_string(),
            b => format!("\\x{b:02x}"),
        })
        .collect();
    format!("{} {text}", tag as char)
}

/// An oid of an object created in the database (not built in) differs between databases.
fn blank_user_oid(oid: &mut [u8]) {
    if u32::from_be_bytes([oid[0], oid[1], oid[2], oid[3]]) >= 16384 {
        oid.fill(0xff);
    }
}

fn without_source(body: &[u8]) -> Vec<u8> {
    body.split_inclusive(|&b| b == 0)
        .filter(|field| !matches!(field.first(), Some(b'F' | b'L' | b'R')))
        .flatten()
        .copied()
        .collect()
}

fn blank_table_oids(body: &mut [u8]) {
    let mut at = 2;
    let count = i16::from_be_bytes([body[0], body[1]]);
    for _ in 0..count {
        let Some(end) = body[at..].iter().position(|&b| b == 0) else {
            return;
        };
        at += end + 1;
        body[at..at + 6].fill(0);
        blank_user_oid(&mut body[at + 6..at + 10]);
        at += 18;
    }
}

/// What each connection received, message by message, in script order.
pub type Transcript = Vec<String>;

/// Runs `script` against the server (or proxy) on `port`, database `database`.
pub fn run(port: u16, database: &str, script: &Script, writes: Writes) -> Transcript {
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut out = Vec::new();
    let mut owed = Vec::new();
    for line in &script.lines {
        if conns.len() <= line.conn {
            conns.resize_with(line.conn + 1, || None);
        }
        if conns[line.conn].is_none() {
            let (c, hello) = Conn::open(port, database, &script.startup);
            out.extend(hello.into_iter().map(|m| format!("@{} {m}", line.conn)));
            conns[line.conn] = Some(c);
            owed.resize(conns.len(), 0usize);
        }
        let Some(conn) = conns[line.conn].as_mut() else {
            continue;
        };
        let text = line.text.as_str();
        if let Some(ms) = text.strip_prefix("sleep ") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            continue;
        }
        if text == "cancel" {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(&build::cancel_request(conn.key.0, &conn.key.1))
                .unwrap();
            continue;
        }
        // `!` in front: sent, its answer read at the next read point.
        let (defer, text) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let bytes = encode(text).unwrap_or_else(|| panic!("bad script line {text:?}"));
        match writes {
            Writes::ByteByByte => {
                for b in &bytes {
                    conn.sock.write_all(std::slice::from_ref(b)).unwrap();
                }
            }
            _ => conn.sock.write_all(&bytes).unwrap(),
        }
        let until = read_point(text);
        if until == Some(Until::ReadyOrCopy) {
            owed[line.conn] += 1;
        }
        if writes == Writes::Stream
            && !defer
            && let Some(until) = until
        {
            let times = match until {
                Until::ReadyOrCopy => owed[line.conn],
                Until::Quiet => 1,
            };
            for _ in 0..times {
                read(conn, line.conn, until, &mut out);
            }
            owed[line.conn] = 0;
        }
    }
    // Whatever is still owed, then anything unsolicited. Written whole, a script's Query
    // or Sync after an error in a batch has no answer of its own: everything is read
    // until the connection is quiet.
    for (n, conn) in conns.iter_mut().enumerate() {
        if let Some(conn) = conn {
            if writes == Writes::Stream {
                for _ in 0..owed[n] {
                    read(conn, n, Until::ReadyOrCopy, &mut out);
                }
            }
            read(conn, n, Until::Quiet, &mut out);
        }
    }
    out
}

/// Reads messages into `out` until a ReadyForQuery or CopyInResponse, or (for `Quiet`) a
/// pause; a wait longer than a few seconds is recorded as a hang.
fn read(conn: &mut Conn, n: usize, until: Until, out: &mut Vec<String>) {
    let pause = match until {
        Until::Quiet => Duration::from_millis(500),
        Until::ReadyOrCopy => Duration::from_secs(5),
    };
    loop {
        let Some((tag, body)) = conn.next(pause) else {
            if until == Until::ReadyOrCopy {
                out.push(format!("@{n} <no answer within {pause:?}>"));
            }
            return;
        };
        out.push(format!("@{n} {}", show(tag, &body)));
        if until == Until::ReadyOrCopy && (tag == b'Z' || tag == b'G') {
            return;
        }
    }
}

/// Fails with both transcripts side by side from the first difference.
pub fn assert_same(name: &str, how: &str, direct: &Transcript, proxied: &Transcript) {
    assert_same_in(name, how, direct, proxied, "");
}

/// `assert_same`, the report ending with `script` (for generated ones).
pub fn assert_same_in(
    name: &str,
    how: &str,
    direct: &Transcript,
    proxied: &Transcript,
    script: &str,
) {
    if direct == proxied {
        return;
    }
    let first = direct
        .iter()
        .zip(proxied)
        .position(|(a, b)| a != b)
        .unwrap_or(direct.len().min(proxied.len()));
    let from = first.saturating_sub(3);
    let mut report = format!("{name} ({how}): answers differ at message {first}\n");
    for i in from..(first + 8).max(from) {
        let a = direct.get(i).map(String::as_str).unwrap_or("-");
        let b = proxied.get(i).map(String::as_str).unwrap_or("-");
        let mark = if a == b { ' ' } else { '!' };
        report.push_str(&format!("{mark} direct:  {a}\n{mark} throome: {b}\n"));
    }
    panic!("{report}{script}");
}
