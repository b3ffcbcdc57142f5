//! The status page (`GET /` of the admin server) in a real browser: headless Chromium
//! driven by playwright-core loads it, sees a backend up, and sees it go down within two
//! health intervals of the backend being killed; the screenshot is kept as
//! `target/artifacts/status_page.png`. Also: the page is one self-contained file (no
//! resource from anywhere else), and the reload history it shows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{http_get, tcp_cluster};
use common::{RedisServer, Throome, free_port};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The cluster's health interval: the page must show a dead backend within two.
const INTERVAL: f64 = 1.0;

#[test]
fn the_page_is_self_contained() {
    let gw = Throome::start(&[]);
    let (status, html) = http_get(gw.admin_port, "/", None).unwrap();
    assert_eq!(status, 200);
    assert!(html.starts_with("<!doctype html>"));
    for outside in ["http://", "https://", "src=\"", "<link"] {
        assert!(
            !html.contains(outside),
            "the page loads something ({outside}) from elsewhere"
        );
    }
}

#[test]
fn reload_history_lists_results_and_errors() {
    let a = RedisServer::start();
    let yaml = tcp_cluster("shop", "kv", free_port(), &[(a.port, "primary", 1)], "");
    let gw = Throome::start(&[("shop", &yaml)]);
    assert_eq!(gw.post("/api/v1/reload", "").0, 200);
    gw.write_cluster(
        "broken",
        "cluster_id: broken\nname: b\nservices: {x: {type: nope}}\n",
    );
    assert_eq!(gw.post("/api/v1/reload", "").0, 422);
    let (_, history) = gw.get("/api/v1/reloads");
    let list = history["reloads"].as_array().unwrap();
    let last = list.last().unwrap();
    assert_eq!(
        (last["trigger"].as_str(), last["ok"].as_bool()),
        (Some("api"), Some(false))
    );
    assert!(last["error"].as_str().unwrap().contains("broken"), "{last}");
    assert!(list.iter().any(|r| r["ok"] == true), "{history}");
}

#[test]
fn a_backend_going_down_shows_in_chromium() {
    let mut a = RedisServer::start();
    let b = RedisServer::start();
    let listen = free_port();
    let health =
        format!("health: {{ interval: {INTERVAL}, timeout: 0.5, unhealthy_threshold: 1 }}\n");
    let yaml = tcp_cluster(
        "shop",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "primary", 1)],
        &health,
    );
    let gw = Throome::start(&[("shop", &yaml)]);
    let artifacts = std::path::Path::new(ROOT).join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status_page.png");
    let _ = std::fs::remove_file(&shot);
    let backend = format!("shop/kv/127.0.0.1:{}", a.port);
    let mut node = Command::new("node")
        .arg(format!("{ROOT}/tests/browser/status_page.mjs"))
        .arg(gw.url() + "/")
        .arg(&backend)
        .arg(&shot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node not found");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let first = lines.next().map(|l| l.unwrap());
    if first.as_deref() != Some("UP") {
        let out = node.wait_with_output().unwrap();
        panic!(
            "the page never showed {backend} up: {first:?} {} (run scripts/setup.sh: chromium, tests/browser)",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    a.kill();
    let killed = Instant::now();
    let second = lines.next().map(|l| l.unwrap());
    let took = killed.elapsed();
    eprintln!("status page: the backend showed down {took:?} after it was killed");
    assert_eq!(
        second.as_deref(),
        Some("DOWN"),
        "{}",
        String::from_utf8_lossy(&node.wait_with_output().unwrap().stderr)
    );
    assert!(
        took < Duration::from_secs_f64(2.0 * INTERVAL + 1.5),
        "shown down after {took:?}"
    );
    assert_eq!(lines.next().map(|l| l.unwrap()).as_deref(), Some("OK"));
    assert!(node.wait().unwrap().success());
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "no screenshot"
    );
}
