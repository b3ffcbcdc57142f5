//! Hostile clients against each protocol while a well-behaved client works: connections
//! that never send, slowloris, a client that never reads its replies, 10,000 connections
//! churned, oversized frames and garbage. Each is cut off by a configured limit with a log
//! line and a counter; the well-behaved client sees no error and no wrong reply; the
//! gateway's descriptors come back to their baseline. Real servers, bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::chaos::{RssSampler, Tally, assert_fds_back, errors_of, fds, repeat};
use common::gateway::one_service;
use common::hostile::{churn, never_send, send_until_closed, slowloris};
use common::{Postgres, RedisServer};

/// Every limit below is one second; a client must be cut off within this.
const CUT_OFF: Duration = Duration::from_millis(2500);
const RSS_BOUND_KIB: u64 = 256 * 1024;

fn assert_good(tally: &Tally, line: &str) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(n(&tally.errors), 0, "{line}");
    assert_eq!(n(&tally.misattributed), 0, "{line}");
    assert!(n(&tally.acked) > 20, "{line}");
}

#[test]
fn hostile_redis_clients_are_cut_off_and_others_do_not_notice() {
    let _serial = common::chaos::serial();
    let redis = RedisServer::start();
    let limits = "    client_idle_timeout: 1\n    client_output_buffer_limit: 1048576\n    proto_max_bulk_len: 1048576\n";
    let (gw, port) = one_service("redis", "hr", &[(redis.port, "primary", 1)], limits);
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let mut con = common::redis_con(port);
    let good = repeat(&stop, &tally, move |i| {
        let v = format!("good:{i}");
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg("good")
            .arg(&v)
            .ignore()
            .cmd("GET")
            .arg("good");
        let (got,): (String,) = pipe.query(&mut con).map_err(|e| e.to_string())?;
        Ok(got == v)
    });

    let silent = never_send(port, 20);
    let big_bulk = format!("*2\r\n$4\r\nECHO\r\n$100\r\n{}", "x".repeat(100));
    let (trickled, _) = slowloris(port, big_bulk.as_bytes(), Duration::from_millis(200));
    let unread = never_reads(port);
    let (oversized, closed) = send_until_closed(port, b"*2\r\n$4\r\nECHO\r\n$2000000\r\n");
    assert!(
        closed && oversized.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&oversized)
    );
    let (garbage, closed) = send_until_closed(port, b"*1\r\n+x\r\n");
    assert!(
        closed && garbage.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&garbage)
    );
    let churned = churn(port, 10_000, b"PING\r\n");

    stop.store(true, Ordering::SeqCst);
    good.join().unwrap();
    let peak = rss.peak_kib();
    let line = tally.report(
        "redis hostile",
        &format!("silent {silent:?} slowloris {trickled:?} unread {unread:?} churn 10000 in {churned:?} peak rss {peak} KiB"),
    );
    assert_good(&tally, &line);
    assert!(silent < CUT_OFF && trickled < CUT_OFF, "{line}");
    assert!(peak < RSS_BOUND_KIB, "{line}");
    let metrics = gw.metrics();
    assert!(
        errors_of(&metrics, "client_idle_timeout") >= 21,
        "{metrics}"
    );
    assert!(errors_of(&metrics, "output_buffer_limit") >= 1, "{metrics}");
    assert!(errors_of(&metrics, "client_protocol") >= 1, "{metrics}");
    let log = gw.log();
    assert!(
        log.contains("client closed after client_idle_timeout"),
        "{log}"
    );
    assert!(log.contains("output buffer limits"), "{log}");
    assert_fds_back(pid, fd_base);
}

/// A client that pipelines GETs of a 100 KiB value and never reads: closed once its unread
/// replies pass `client_output_buffer_limit`. How long writing went on.
fn never_reads(port: u16) -> Duration {
    let value = "v".repeat(100 * 1024);
    let mut con = common::redis_con(port);
    redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query::<()>(&mut con)
        .unwrap();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let gets = "GET big\r\n".repeat(100);
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(gets.as_bytes()).is_err() {
            return started.elapsed();
        }
    }
    panic!("a client that never reads was never cut off");
}

/// A PostgreSQL StartupMessage for `user` on database postgres.
fn startup(user: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for s in ["user", user, "database", "postgres"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    m.extend_from_slice(&body);
    m
}

/// Logs in on a raw socket (trust) and reads to the first ReadyForQuery.
fn logged_in(port: u16) -> std::net::TcpStream {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&startup("postgres")).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[b'Z', 0, 0, 0, 5, b'I']) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed during login");
        got.extend_from_slice(&buf[..n]);
    }
    s
}

#[test]
fn hostile_postgres_clients_are_cut_off_and_others_do_not_notice() {
    let _serial = common::chaos::serial();
    let pg = Postgres::start();
    let limits =
        "    username: postgres\n    client_login_timeout: 1\n    client_idle_timeout: 1\n";
    let (gw, port) = one_service("postgres", "hp", &[(pg.port, "primary", 1)], limits);
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let (client, conn) = runtime
        .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
        .unwrap();
    runtime.spawn(conn);
    let good = repeat(&stop, &tally, move |i| {
        let v = format!("good:{i}");
        let row = runtime
            .block_on(client.query_one("SELECT $1::text", &[&v]))
            .map_err(|e| e.to_string())?;
        Ok(row.get::<_, String>(0) == v)
    });

    // Before login: login timeout (PostgreSQL's authentication_timeout words).
    let silent = never_send(port, 10);
    let mut long_startup = 1000i32.to_be_bytes().to_vec();
    long_startup.extend_from_slice(&[b'x'; 996]);
    let (trickled, said) = slowloris(port, &long_startup, Duration::from_millis(200));
    assert!(
        String::from_utf8_lossy(&said).contains("canceling authentication due to timeout"),
        "{said:?}"
    );
    // After login: a Query trickled is idle time, not activity.
    let mut query = vec![b'Q'];
    query.extend_from_slice(&1000i32.to_be_bytes());
    query.extend_from_slice(&[b' '; 996]);
    let mut s = logged_in(port);
    let started = Instant::now();
    for b in &query {
        if s.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(6) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (said, closed) = common::hostile::until_closed(&mut s);
    let mid_session = started.elapsed();
    assert!(
        closed && String::from_utf8_lossy(&said).contains("57P05"),
        "{said:?}"
    );
    // An oversized message and garbage instead of a startup packet.
    let mut s = logged_in(port);
    s.write_all(&[b'Q', 0x7f, 0xff, 0xff, 0xff]).unwrap();
    let (said, closed) = common::hostile::until_closed(&mut s);
    assert!(
        closed && String::from_utf8_lossy(&said).contains("08P01"),
        "{said:?}"
    );
    let (said, closed) = send_until_closed(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(closed && said.first() == Some(&b'E'), "{said:?}");
    // Every tenth asks for TLS (the proxy answers 'N' without TLS set up).
    let churned = churn(port, 2_000, &[0, 0, 0, 8, 4, 210, 22, 47]);

    stop.store(true, Ordering::SeqCst);
    good.join().unwrap();
    let peak = rss.peak_kib();
    let line = tally.report(
        "postgres hostile",
        &format!("silent {silent:?} slowloris {trickled:?} mid-session {mid_session:?} churn 2000 in {churned:?} peak rss {peak} KiB"),
    );
    assert_good(&tally, &line);
    assert!(silent < CUT_OFF && trickled < CUT_OFF, "{line}");
    assert!(mid_session < CUT_OFF, "{line}");
    assert!(peak < RSS_BOUND_KIB, "{line}");
    let metrics = gw.metrics();
    assert!(errors_of(&metrics, "login_timeout") >= 11, "{metrics}");
    assert!(errors_of(&metrics, "client_idle_timeout") >= 1, "{metrics}");
    let log = gw.log();
    assert!(
        log.contains("no login within client_login_timeout"),
        "{log}"
    );
    assert!(log.contains("client closed for idling"), "{log}");
    assert_fds_back(pid, fd_base);
}
