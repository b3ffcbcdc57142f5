//! `scripts/demo.sh` as a newcomer runs it: it starts redis-server, PostgreSQL, tansu and
//! a gateway, prints how to connect, and those very commands work (redis-cli, psql, kcat);
//! Ctrl-C (SIGINT) stops every process and removes its temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::pg_bin;
use common::{eventually, free_port};

fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in:\n{text}"));
    text[at + marker.len()..].split_whitespace().next().unwrap()
}

#[test]
fn demo_starts_everything_and_ctrl_c_stops_it() {
    let admin = free_port();
    let mut demo = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("THROOME_BIN", env!("CARGO_BIN_EXE_throome"))
        .env("DEMO_ADMIN_PORT", admin.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let started = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.starts_with("demo: ready") {
            break;
        }
    }
    if !text.contains("demo: ready") {
        let _ = demo.kill();
        let out = demo.wait_with_output().unwrap();
        panic!(
            "the demo did not start:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(90));
    let dir = after(&text, "logs and data in ")
        .trim_end_matches(')')
        .to_string();

    // The printed commands, as printed.
    let redis = after(&text, "redis-cli -p ");
    let pong = Command::new("redis-cli")
        .args(["-p", redis, "ping"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&pong.stdout).trim(), "PONG");
    let uri = after(&text, "psql ").trim_matches('"');
    let psql = Command::new(pg_bin("psql"))
        .args([uri, "-Atc", "select 40 + 2"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&psql.stdout).trim(),
        "42",
        "{}",
        String::from_utf8_lossy(&psql.stderr)
    );
    let bootstrap = after(&text, "kcat -b ");
    let list = common::kafka::kcat(&["-b", bootstrap, "-L"], None);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("topic \"events\""), "{listing}");
    assert!(text.contains(&format!("http://127.0.0.1:{admin}/")));

    // Ctrl-C: everything stops, the temp dir goes.
    Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    let stopped = eventually(Duration::from_secs(30), || {
        demo.try_wait().unwrap().is_some()
    });
    assert!(stopped, "the demo did not stop on SIGINT");
    let redis_port: u16 = redis.parse().unwrap();
    for port in [redis_port, admin] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open"
        );
    }
    assert!(!std::path::Path::new(&dir).exists(), "{dir} left behind");
    let left = Command::new("pgrep").args(["-f", &dir]).output().unwrap();
    assert!(
        left.stdout.is_empty(),
        "still running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
