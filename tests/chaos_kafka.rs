//! Reliability under faults, Kafka: the tansu broker (SQLite storage) killed with SIGKILL
//! and restarted while a confluent-kafka producer (acks=all) sends unique payloads through
//! Throome; afterwards a consumer group reads the topic. Every acknowledged record is
//! consumed, at the offset its acknowledgement named; failures are reported to the client
//! within its timeout; the gateway recovers and stays bounded. Hostile Kafka clients
//! (silent, slowloris, oversized and garbage frames) are cut off while kcat works.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::chaos::{RssSampler, assert_fds_back, errors_of, fds};
use common::hostile::{never_send, send_until_closed, slowloris};
use common::kafka::{
    Tansu, chaos_report, free_broker_port_base, kafka_chaos_client, kafka_cluster, kcat,
};
use common::{Throome, eventually, free_port};

/// `kcat -L` through the proxy lists `topic`.
fn lists(listen: u16, topic: &str) -> bool {
    let out = kcat(
        &["-b", &format!("127.0.0.1:{listen}"), "-L", "-t", topic],
        None,
    );
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains(&format!("topic \"{topic}\""))
}

/// An ApiVersions v0 round trip through the proxy on a new connection.
fn api_versions(listen: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", listen)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // api_key 18, version 0, correlation id 7, null client id.
    let request = frame(10, &[0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff]);
    let mut head = [0u8; 8];
    s.write_all(&request).is_ok() && s.read_exact(&mut head).is_ok() && head[4..8] == [0, 0, 0, 7]
}

/// The chaos client's invariants: records went through, none acknowledged was lost or
/// found at another offset, and failures were reported within librdkafka's
/// message.timeout.ms (10 s).
fn assert_delivered(report: &serde_json::Value, line: &str) {
    assert!(report["acked"].as_u64().unwrap() > 100, "{line}");
    assert_eq!(report["lost"], 0, "{line}");
    assert_eq!(report["misattributed"], 0, "{line}");
    let slowest = report["slowest_failure_ms"].as_u64().unwrap();
    assert!(slowest <= 11_000, "{line}");
}

fn gateway(id: &str, broker: u16, service_extra: &str) -> (Throome, u16) {
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster(id, "events", listen, base, &[broker]);
    let yaml = yaml.replace(
        "    backends:\n",
        &format!("{service_extra}    backends:\n"),
    );
    (Throome::start(&[(id, &yaml)]), listen)
}

#[test]
fn broker_crash_and_restart_loses_no_acknowledged_record() {
    let _serial = common::chaos::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut tansu = Tansu::start_persistent(dir.path());
    tansu.create_topic("orders", 3);
    let (gw, listen) = gateway("kc", tansu.port, "");
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let client = kafka_chaos_client(listen, "orders", "chaos", 6);
    std::thread::sleep(Duration::from_millis(2000));
    tansu.kill();
    std::thread::sleep(Duration::from_millis(1000));
    tansu.restart();
    let restarted = Instant::now();
    assert!(eventually(Duration::from_secs(15), || api_versions(listen)));
    let recovered = restarted.elapsed();
    let report = chaos_report(client);
    let peak = rss.peak_kib();
    let line = format!("chaos kafka crash: {report} recovery {recovered:?} peak rss {peak} KiB");
    eprintln!("{line}");
    assert_delivered(&report, &line);
    assert!(peak < 256 * 1024, "{line}");
    // Health checks every second, two good ones to be up again.
    assert!(recovered <= Duration::from_millis(2500), "{line}");
    assert!(lists(listen, "orders"));
    let metrics = gw.metrics();
    assert!(
        errors_of(&metrics, "backend_io") + errors_of(&metrics, "connect") > 0,
        "{metrics}"
    );
    assert_fds_back(pid, fd_base);
}

/// A Kafka request frame: size, then `body`.
fn frame(size: i32, body: &[u8]) -> Vec<u8> {
    let mut f = size.to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn hostile_kafka_clients_are_cut_off_and_kcat_does_not_notice() {
    let _serial = common::chaos::serial();
    let tansu = Tansu::start();
    tansu.create_topic("logs", 1);
    let limits = "    client_idle_timeout: 1\n    max_frame_bytes: 1048576\n";
    let (gw, listen) = gateway("kh", tansu.port, limits);
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    assert!(lists(listen, "logs"));
    let kcat_ok = std::thread::spawn(move || (0..5).all(|_| lists(listen, "logs")));

    let silent = never_send(listen, 10);
    let (trickled, _) = slowloris(listen, &frame(1000, &[0; 996]), Duration::from_millis(200));
    let (_, closed) = send_until_closed(listen, &frame(0x7fff_ffff, &[0, 18, 0, 0]));
    assert!(closed, "an oversized frame closes the connection");
    let (_, closed) = send_until_closed(listen, &frame(-5, b"garbage"));
    assert!(closed, "a negative size closes the connection");

    assert!(kcat_ok.join().unwrap(), "kcat worked throughout");
    let line = format!("chaos kafka hostile: silent {silent:?} slowloris {trickled:?}");
    eprintln!("{line}");
    assert!(
        silent < Duration::from_millis(2500) && trickled < Duration::from_millis(2500),
        "{line}"
    );
    let metrics = gw.metrics();
    assert!(
        errors_of(&metrics, "client_idle_timeout") >= 11,
        "{metrics}"
    );
    assert!(errors_of(&metrics, "client_protocol") >= 2, "{metrics}");
    assert!(gw.log().contains("client closed after client_idle_timeout"));
    assert_fds_back(pid, fd_base);
}

#[test]
fn latency_cut_replies_and_stalls_between_proxy_and_broker() {
    let _serial = common::chaos::serial();
    // The broker advertises the relay, so every proxy connection to it goes through the
    // faults.
    let relay_port = free_port();
    let tansu = Tansu::start_advertising(relay_port);
    tansu.create_topic("flaky", 2);
    let relay = common::fault_relay::FaultRelay::start_on(relay_port, tansu.port);
    let (gw, listen) = gateway("kr", relay.port, "");
    let client = kafka_chaos_client(listen, "flaky", "chaos", 7);
    std::thread::sleep(Duration::from_millis(1000));
    relay.set_latency(20);
    std::thread::sleep(Duration::from_millis(1000));
    relay.set_latency(0);
    for _ in 0..3 {
        relay.cut_next_reply();
        assert!(eventually(Duration::from_secs(5), || relay.cut_done()));
        std::thread::sleep(Duration::from_millis(300));
    }
    relay.stall(true);
    std::thread::sleep(Duration::from_millis(2000));
    relay.stall(false);
    let report = chaos_report(client);
    let line = format!("chaos kafka relay: {report}");
    eprintln!("{line}");
    assert_delivered(&report, &line);
    assert!(lists(listen, "flaky"));
    let metrics = gw.metrics();
    assert!(
        errors_of(&metrics, "backend_io") > 0,
        "the cuts were seen: {metrics}"
    );
}
