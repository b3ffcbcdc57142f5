//! Long pipelines from clients that write everything before reading anything, as redis-py's
//! `pipeline(transaction=False)` and `redis-cli --pipe` do: the proxy keeps reading while
//! replies wait (Redis's `client-output-buffer-limit normal 0 0 0`), never stalls, and closes
//! only a client whose unread replies pass `client_output_buffer_limit`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::RedisServer;
use throome_resp::{ReplyLimits, ReplyScanner};

/// Writes `pipeline` whole before reading anything (redis-py's way), then reads `n` replies
/// (or until the connection ends or `limit` passes); gives the replies read. A proxy that
/// stops reading while its replies are not read leaves the write unfinished: no replies.
fn write_all_then_read(port: u16, pipeline: Vec<u8>, n: usize, limit: Duration) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut w = s.try_clone().unwrap();
    let (done, written) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let _ = done.send(w.write_all(&pipeline).is_ok());
    });
    let deadline = Instant::now() + limit;
    if written.recv_timeout(limit) != Ok(true) {
        let _ = s.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
        return Vec::new();
    }
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::new();
    let mut replies = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while replies.len() < n && Instant::now() < deadline {
        while let Some(r) = scanner.scan(&mut buf).unwrap() {
            replies.push(r.frame().to_vec());
        }
        if replies.len() >= n {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let _ = writer.join();
    replies
}

fn command(args: &[&str]) -> Vec<u8> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    common::differential::encode(&args)
}

fn gateway(backend: &RedisServer, extra: &str) -> (common::Throome, u16) {
    common::gateway::one_service("redis", "p", &[(backend.port, "primary", 1)], extra)
}

/// 100,000 INCRs and GETs (alternating: no two share a group of replies) written at once
/// behind a slow command: every one answered, in order. Before the fix the proxy filled its in-flight bound while the backend slept, then answered all
/// of those and waited for the client, which had nothing more to send.
#[test]
fn a_100k_pipeline_written_before_reading_is_answered_in_order() {
    let backend = RedisServer::start();
    // Two worker threads: replies are delivered while the session works, so all of those
    // in flight can be in at once.
    let (_gw, listen) = common::gateway::two_workers("p", backend.port);
    for round in 0..3 {
        let key = format!("counter{round}");
        let n = 100_000;
        let mut pipeline = command(&["DEBUG", "SLEEP", "0.3"]);
        let mut pair = command(&["INCR", &key]);
        pair.extend(command(&["GET", &key]));
        pipeline.extend(pair.repeat(n / 2));
        let replies = write_all_then_read(listen, pipeline, n + 1, Duration::from_secs(60));
        assert_eq!(
            replies.len(),
            n + 1,
            "round {round}: replies before the stall"
        );
        assert_eq!(replies[0], b"+OK\r\n");
        for (i, r) in replies[1..].iter().enumerate() {
            let v = i / 2 + 1;
            let want = match i % 2 {
                0 => format!(":{v}\r\n"),
                _ => format!("${}\r\n{v}\r\n", v.to_string().len()),
            };
            assert_eq!(r, want.as_bytes(), "reply {i}");
        }
    }
}

/// Requests and replies far larger than the socket buffers (20,000 GETs of a 2 KB key and a
/// 4 KiB value: 40 MB out, 80 MiB back) while the client is still writing: the proxy must
/// keep reading, or both sides wait for ever.
#[test]
fn large_replies_to_a_client_still_writing_do_not_deadlock() {
    let backend = RedisServer::start();
    let (_gw, listen) = gateway(&backend, "");
    let value = "v".repeat(4096);
    let key = "k".repeat(2000);
    assert_eq!(common::redis_cli(listen, &["SET", &key, &value]), "OK");
    let n = 20_000;
    let pipeline = command(&["GET", &key]).repeat(n);
    let replies = write_all_then_read(listen, pipeline, n, Duration::from_secs(60));
    assert_eq!(replies.len(), n);
    let expected = format!("$4096\r\n{value}\r\n");
    assert!(replies.iter().all(|r| r == expected.as_bytes()));
}

/// A client that does not read while its replies pile up past the limit is closed (counted
/// and logged, as Redis's output buffer limit); other clients carry on.
#[test]
fn a_client_past_its_output_buffer_limit_is_closed_and_counted() {
    let backend = RedisServer::start();
    let (gw, listen) = gateway(&backend, "    client_output_buffer_limit: 1048576\n");
    let value = "v".repeat(64 * 1024);
    assert_eq!(common::redis_cli(listen, &["SET", "big", &value]), "OK");
    let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.write_all(&command(&["GET", "big"]).repeat(200)).unwrap();
    // Never reads: 12.5 MiB of replies cannot all sit in socket buffers and 1 MiB of ours.
    assert!(common::eventually(Duration::from_secs(20), || {
        gw.metrics().lines().any(|l| {
            l.starts_with("throome_errors_total")
                && l.contains("kind=\"output_buffer_limit\"")
                && l.ends_with(" 1")
        })
    }));
    assert!(gw.log().contains("output buffer limits"));
    // Its connection is closed: reading reaches the end after what was sent.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let ended = s.read_to_end(&mut sink);
    assert!(ended.is_ok() || ended.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset));
    assert!(
        sink.len() < 200 * value.len(),
        "got every reply: {}",
        sink.len()
    );
    assert_eq!(common::redis_cli(listen, &["PING"]), "PONG");
}
