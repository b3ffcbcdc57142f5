//! Kafka through Throome against the real tansu broker, with real clients (kafka-python 3
//! from the venv, Debian's kcat) that are given nothing but the proxy's address.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::kafka::{TANSU_NODE, Tansu, api_requests, free_broker_port_base, kafka_cluster, kcat};
use common::{Throome, free_port};

fn python() -> String {
    format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"))
}

fn script() -> String {
    format!(
        "{}/tests/clients/kafka_client.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn kafka_python_produces_and_consumes_with_a_group_through_the_proxy() {
    let tansu = Tansu::start();
    tansu.create_topic("orders", 3);
    let (listen, base) = (free_port(), free_broker_port_base());
    // The first bootstrap backend is down: the bootstrap connection fails over.
    let dead = free_port();
    let yaml = kafka_cluster("k", "events", listen, base, &[dead, tansu.port]);
    let gw = Throome::start(&[("k", &yaml)]);
    let broker_port = (base + TANSU_NODE).to_string();
    common::run_python_client(
        "kafka_client.py",
        &[
            "roundtrip",
            &format!("127.0.0.1:{listen}"),
            "orders",
            "billing",
            "300",
            &broker_port,
        ],
    );
    let m = gw.metrics();
    for api in [
        "Produce",
        "Fetch",
        "Metadata",
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "OffsetCommit",
        "OffsetFetch",
        "ApiVersions",
    ] {
        assert!(
            api_requests(&m, "events", api) > 0,
            "no {api} requests counted:\n{m}"
        );
    }
    assert!(m.contains("throome_request_duration_seconds_count{cluster=\"k\",service=\"events\",command=\"Produce\"}"), "{m}");
    common::assert_promtool_accepts(&m);
}

/// Frames of at least `STREAM_MIN` (64 KiB) are passed on as they arrive instead of held
/// whole: 200 KiB records in both directions come back bit for bit and in order, and each
/// exchange is still counted once its last byte went through.
#[test]
fn big_batches_pass_through_intact() {
    let tansu = Tansu::start();
    tansu.create_topic("blobs", 1);
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster("k", "blobs", listen, base, &[tansu.port]);
    let gw = Throome::start(&[("k", &yaml)]);
    let (n, size) = (30u64, 200 * 1024u64);
    common::run_python_client(
        "kafka_client.py",
        &[
            "big",
            &format!("127.0.0.1:{listen}"),
            "blobs",
            &n.to_string(),
            &size.to_string(),
        ],
    );
    let m = gw.metrics();
    assert!(api_requests(&m, "blobs", "Produce") >= 1, "{m}");
    assert!(api_requests(&m, "blobs", "Fetch") >= 1, "{m}");
    let bytes = |name: &str| {
        m.lines()
            .find(|l| l.starts_with(name) && l.contains("service=\"blobs\""))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(bytes("throome_received_bytes_total") >= n * size, "{m}");
    assert!(bytes("throome_sent_bytes_total") >= n * size, "{m}");
}

#[test]
fn admin_client_creates_lists_and_deletes_topics() {
    let tansu = Tansu::start();
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster("k", "admin", listen, base, &[tansu.port]);
    let gw = Throome::start(&[("k", &yaml)]);
    common::run_python_client(
        "kafka_client.py",
        &["admin", &format!("127.0.0.1:{listen}"), "audit"],
    );
    let m = gw.metrics();
    assert!(api_requests(&m, "admin", "CreateTopics") >= 1, "{m}");
    assert!(api_requests(&m, "admin", "DeleteTopics") >= 1, "{m}");
}

#[test]
fn kcat_works_through_the_proxy_though_not_directly() {
    let tansu = Tansu::start();
    tansu.create_topic("logs", 1);
    // Debian's kcat (librdkafka 2.0.2) cannot read tansu's ApiVersions v3 answer...
    let direct = kcat(&["-b", &format!("127.0.0.1:{}", tansu.port), "-L"], None);
    assert!(
        !direct.status.success(),
        "kcat now works directly: the fallback may be unneeded"
    );
    assert!(String::from_utf8_lossy(&direct.stderr).contains("ApiVersionRequest failed"));

    // ...but through Throome it is told UNSUPPORTED_VERSION and retries at v2.
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster("k", "logs", listen, base, &[tansu.port]);
    let _gw = Throome::start(&[("k", &yaml)]);
    let bootstrap = format!("127.0.0.1:{listen}");
    let list = kcat(&["-b", &bootstrap, "-L"], None);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.contains(&format!(
            "broker {TANSU_NODE} at 127.0.0.1:{}",
            base + TANSU_NODE
        )),
        "{text}"
    );
    assert!(
        !text.contains(&format!(":{}", tansu.port)),
        "the real broker leaked: {text}"
    );

    let produced = kcat(
        &["-b", &bootstrap, "-P", "-t", "logs", "-p", "0"],
        Some("one\ntwo\nthree\n"),
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "logs",
            "-p",
            "0",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&consumed.stdout),
        "one\ntwo\nthree\n"
    );
}

#[test]
fn a_producer_carries_on_after_the_broker_restarts() {
    let mut tansu = Tansu::start();
    tansu.create_topic("clicks", 1);
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster("k", "clicks", listen, base, &[tansu.port]);
    let _gw = Throome::start(&[("k", &yaml)]);
    let mut child = Command::new(python())
        .args([
            &script(),
            "survive",
            &format!("127.0.0.1:{listen}"),
            "clicks",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    tansu.kill();
    tansu.restart();
    tansu.create_topic("clicks", 1); // memory storage: the restarted broker is empty
    writeln!(child.stdin.take().unwrap()).unwrap();
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        out.status.success() && rest == ["OK"],
        "{rest:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_services_on_one_broker_do_not_interfere() {
    let tansu = Tansu::start();
    tansu.create_topic("left", 2);
    tansu.create_topic("right", 2);
    let (l1, b1) = (free_port(), free_broker_port_base());
    let (l2, b2) = (free_port(), free_broker_port_base());
    let _gw = Throome::start(&[
        ("one", &kafka_cluster("one", "a", l1, b1, &[tansu.port])),
        ("two", &kafka_cluster("two", "b", l2, b2, &[tansu.port])),
    ]);
    let runs: Vec<_> = [(l1, b1, "left"), (l2, b2, "right")]
        .into_iter()
        .map(|(listen, base, topic)| {
            std::thread::spawn(move || {
                let port = (base + TANSU_NODE).to_string();
                let group = format!("{topic}-group");
                common::run_python_client(
                    "kafka_client.py",
                    &[
                        "roundtrip",
                        &format!("127.0.0.1:{listen}"),
                        topic,
                        &group,
                        "200",
                        &port,
                    ],
                );
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}
