//! Misbehaving clients for the chaos suite, on raw sockets: connections that never send,
//! trickle a request one byte at a time (slowloris), churn, or send garbage. Each helper
//! reports how the gateway dealt with it, bounded in time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a hostile connection may live past its limit before the test calls it a hang.
const GRACE: Duration = Duration::from_secs(5);

fn open(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// Reads until the gateway closes `s` (or `GRACE` passes): what it sent, and whether it
/// closed.
pub fn until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + GRACE;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// `n` connections that send nothing: how long the slowest took to be closed.
pub fn never_send(port: u16, n: usize) -> Duration {
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..n).map(|_| open(port)).collect();
    for c in &mut conns {
        let (_, closed) = until_closed(c);
        assert!(closed, "a silent connection was not closed");
    }
    started.elapsed()
}

/// Writes `request` (longer than the trickle lasts) one byte every `every` while the
/// gateway lets it: how long until it was closed, and the bytes it sent back. A trickle is
/// not activity.
pub fn slowloris(port: u16, request: &[u8], every: Duration) -> (Duration, Vec<u8>) {
    let mut s = open(port);
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in request {
        assert!(started.elapsed() < GRACE * 2, "slowloris was never cut off");
        if s.write_all(&[*byte]).is_err() {
            return (started.elapsed(), got);
        }
        let pause = Instant::now() + every;
        let mut closed = false;
        while Instant::now() < pause {
            match s.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(_) => closed = true,
            }
            if closed {
                break;
            }
        }
        if closed {
            return (started.elapsed(), got);
        }
    }
    panic!("the whole request went out: slowloris was never cut off");
}

/// Sends `bytes` on a new connection: what came back until the gateway closed it.
pub fn send_until_closed(port: u16, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = open(port);
    s.write_all(bytes).unwrap();
    until_closed(&mut s)
}

/// Opens and closes `n` connections, every tenth writing `hello` first and reading the
/// answer's first byte: how long it took.
pub fn churn(port: u16, n: usize, hello: &[u8]) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "churn over a minute"
        );
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i % 10 == 0 {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(hello).unwrap();
            let mut b = [0u8; 1];
            assert_eq!(
                s.read(&mut b).unwrap(),
                1,
                "churned connection {i} got no answer"
            );
        }
    }
    started.elapsed()
}
