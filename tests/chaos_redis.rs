//! Reliability under faults, Redis: a real redis-server crashed, frozen, restarted, reached
//! through `FaultRelay` (latency, cut replies, stalls), a storm of reloads, while load
//! clients (the `redis` crate) write and read keys of their own. Every scenario checks that
//! no acknowledged write is lost, no reply reaches the wrong request, errors come promptly,
//! traffic recovers and the gateway stays bounded. Bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::chaos::{RssSampler, Tally, assert_fds_back, errors_of, fds};
use common::fault_relay::FaultRelay;
use common::gateway::{Options, cluster_of};
use common::{RedisServer, Throome, eventually, free_port};

/// Health checks every half second; a backend is down after one failed check.
const HEALTH: &str = "health: { interval: 0.5, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
/// Errors must come within this, never a hang (the service's request_timeout is 1 s).
const PROMPT: Duration = Duration::from_millis(3000);
/// The gateway's resident memory stays under this through every scenario.
const RSS_BOUND_KIB: u64 = 256 * 1024;

/// What one load client had acknowledged.
struct Acked {
    worker: usize,
    keys: Vec<u64>,
    counter: i64,
}

/// A load client until `stop` (at most a minute): its own connection (opened again after
/// an error), a pipeline per step of INCR of its counter, SET of a key of its own and GET
/// of it back; every reply is checked against what this client asked.
fn worker(port: u16, w: usize, stop: &AtomicBool, tally: &Tally) -> Acked {
    let until = Instant::now() + Duration::from_secs(60);
    let mut acked = Acked {
        worker: w,
        keys: Vec::new(),
        counter: 0,
    };
    let mut con: Option<redis::Connection> = None;
    let mut i = 0u64;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        if con.is_none() {
            con = connect(port);
            if con.is_none() {
                tally.error(started);
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        i += 1;
        let value = format!("v:{w}:{i}");
        let mut pipe = redis::pipe();
        pipe.cmd("INCR").arg(format!("c:{w}"));
        pipe.cmd("SET").arg(format!("k:{w}:{i}")).arg(&value);
        pipe.cmd("GET").arg(format!("k:{w}:{i}"));
        let c = con.as_mut().unwrap();
        match pipe.query::<(i64, String, Option<String>)>(c) {
            Ok((n, ok, got)) => {
                if n <= acked.counter || ok != "OK" || got.as_deref() != Some(&value) {
                    tally.wrong();
                }
                acked.counter = n;
                acked.keys.push(i);
                tally.ok();
            }
            Err(_) => {
                tally.error(started);
                con = None;
            }
        }
    }
    acked
}

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    // A hang shows up as a slow error, past PROMPT.
    con.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    Some(con)
}

/// `n` load clients on one port, running until `finish`.
struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Acked>>,
}

impl Load {
    fn start(port: u16, n: usize) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|w| {
                let (t, s) = (tally.clone(), stop.clone());
                std::thread::spawn(move || worker(port, w, &s, &t))
            })
            .collect();
        Load {
            tally,
            stop,
            threads,
        }
    }

    fn finish(self) -> (Arc<Tally>, Vec<Acked>) {
        self.stop.store(true, Ordering::SeqCst);
        let acked = self
            .threads
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        (self.tally, acked)
    }
}

fn count(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The invariants every scenario checks on its tally: nothing misattributed, the fault
/// felt (when `felt`), errors prompt.
fn assert_tally(tally: &Tally, felt: bool, line: &str) {
    assert_eq!(count(&tally.misattributed), 0, "{line}");
    assert_eq!(count(&tally.errors) > 0, felt, "errors: {line}");
    assert!(
        count(&tally.slowest_error_ms) < PROMPT.as_millis() as u64,
        "{line}"
    );
    assert!(count(&tally.acked) > 100, "load ran: {line}");
}

/// Acknowledged steps whose SET is not on `port` with its value, or whose counter is
/// below what its client last saw; and how many steps were checked.
fn count_lost(port: u16, acked: &[Acked]) -> (usize, usize) {
    let mut con = common::redis_con(port);
    let (mut lost, mut checked) = (0, 0);
    for a in acked {
        let n: Option<i64> = redis::cmd("GET")
            .arg(format!("c:{}", a.worker))
            .query(&mut con)
            .unwrap();
        lost += usize::from(n.unwrap_or(0) < a.counter);
        // Pipelined GETs (not MGET: on a Redis Cluster the keys are on different slots).
        for chunk in a.keys.chunks(500) {
            let mut pipe = redis::pipe();
            for i in chunk {
                pipe.cmd("GET").arg(format!("k:{}:{i}", a.worker));
            }
            let got: Vec<Option<String>> = pipe.query(&mut con).unwrap();
            for (i, v) in chunk.iter().zip(got) {
                lost += usize::from(v != Some(format!("v:{}:{i}", a.worker)));
            }
            checked += chunk.len();
        }
    }
    (lost, checked)
}

/// Every acknowledged write is on `backend`: the number checked.
fn assert_nothing_lost(backend: u16, acked: &[Acked]) -> usize {
    let (lost, checked) = count_lost(backend, acked);
    assert_eq!(lost, 0, "acknowledged writes lost out of {checked}");
    checked
}

/// A redis service over `backend` with `request_timeout: 1`.
fn gateway(id: &str, backend: u16, service_extra: &str) -> (Throome, u16) {
    let listen = free_port();
    let extra = format!("    request_timeout: 1\n{service_extra}");
    let yaml = cluster_of(
        "redis",
        id,
        "cache",
        listen,
        &[(backend, "primary", 1)],
        &extra,
        HEALTH,
    );
    (Throome::start(&[(id, &yaml)]), listen)
}

/// A fresh connection's SET through `port` succeeds: how long that took to become true.
fn recovery(port: u16) -> Duration {
    let started = Instant::now();
    let ok = eventually(Duration::from_secs(10), || {
        connect(port).is_some_and(|mut c| {
            redis::cmd("SET")
                .arg("probe")
                .arg(1)
                .query::<String>(&mut c)
                .is_ok()
        })
    });
    assert!(ok, "no recovery within 10 s");
    started.elapsed()
}

#[test]
fn backend_crash_and_restart_mid_load_loses_no_acknowledged_write() {
    let _serial = common::chaos::serial();
    // Every write is on disk before its reply (appendfsync always), as a user who cannot
    // lose writes runs Redis; the crash is SIGKILL.
    let mut redis = RedisServer::start_with(
        free_port(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let (gw, listen) = gateway("crash", redis.port, "");
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let load = Load::start(listen, 4);
    std::thread::sleep(Duration::from_millis(1500));
    redis.kill();
    let port = redis.port;
    let healthy = |want: bool| {
        eventually(Duration::from_secs(3), || {
            gw.backend("crash", "cache", port)["healthy"] == want
        })
    };
    let seen_down = healthy(false);
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let recovered = recovery(listen);
    std::thread::sleep(Duration::from_millis(1000));
    let (tally, acked) = load.finish();
    let peak = rss.peak_kib();

    assert!(seen_down, "the admin API showed the backend down");
    assert!(healthy(true), "and up again");
    let checked = assert_nothing_lost(redis.port, &acked);
    let line = tally.report(
        "redis crash",
        &format!("checked {checked} recovery {recovered:?} peak rss {peak} KiB"),
    );
    assert_tally(&tally, true, &line);
    assert!(
        recovered <= Duration::from_secs(1),
        "two health intervals: {line}"
    );
    assert!(peak < RSS_BOUND_KIB, "{line}");
    let metrics = gw.metrics();
    let told = ["backend_io", "no_backend", "connect"].map(|k| errors_of(&metrics, k));
    assert!(told.iter().sum::<u64>() > 0, "{metrics}");
    assert_fds_back(pid, fd_base);
}

#[test]
fn frozen_backend_gives_prompt_errors_and_no_late_reply_reaches_another_request() {
    let _serial = common::chaos::serial();
    let redis = RedisServer::start();
    let (gw, listen) = gateway("frozen", redis.port, "");
    let load = Load::start(listen, 4);
    std::thread::sleep(Duration::from_millis(1000));
    let pid = redis.pid().to_string();
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &pid])
            .status();
        assert!(status.unwrap().success());
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(2500));
    signal("-CONT");
    let recovered = recovery(listen);
    std::thread::sleep(Duration::from_millis(1000));
    let (tally, acked) = load.finish();
    let checked = assert_nothing_lost(redis.port, &acked);
    let line = tally.report(
        "redis sigstop",
        &format!("checked {checked} recovery {recovered:?}"),
    );
    assert_tally(&tally, true, &line);
    assert!(recovered <= Duration::from_secs(1), "{line}");
    assert!(errors_of(&gw.metrics(), "timeout") > 0, "{}", gw.metrics());
}

#[test]
fn latency_cut_replies_and_stalls_between_proxy_and_backend() {
    let _serial = common::chaos::serial();
    let redis = RedisServer::start();
    let relay = FaultRelay::start(redis.port);
    let (gw, listen) = gateway("relay", relay.port, "");
    let load = Load::start(listen, 4);
    std::thread::sleep(Duration::from_millis(500));
    relay.set_latency(20);
    std::thread::sleep(Duration::from_millis(1000));
    relay.set_latency(0);
    for _ in 0..5 {
        relay.cut_next_reply();
        assert!(eventually(Duration::from_secs(3), || relay.cut_done()));
        std::thread::sleep(Duration::from_millis(200));
    }
    // The cuts may have opened the circuit: the stall is for a backend in use.
    let usable = || {
        let b = gw.backend("relay", "cache", relay.port);
        b["healthy"] == true && b["circuit"] == "closed"
    };
    assert!(eventually(Duration::from_secs(5), usable));
    // Longer than request_timeout: the replies come late, to requests already answered.
    relay.stall(true);
    std::thread::sleep(Duration::from_millis(2500));
    relay.stall(false);
    let recovered = recovery(listen);
    std::thread::sleep(Duration::from_millis(1000));
    let (tally, acked) = load.finish();
    let checked = assert_nothing_lost(redis.port, &acked);
    let line = tally.report(
        "redis relay",
        &format!("checked {checked} recovery {recovered:?}"),
    );
    assert_tally(&tally, true, &line);
    assert!(recovered <= Duration::from_secs(1), "{line}");
    let metrics = gw.metrics();
    assert!(errors_of(&metrics, "timeout") > 0, "{metrics}");
    // A cut reply is a lost connection for the clients on it, or a failed health probe
    // (the backend is down for a moment).
    let cut = errors_of(&metrics, "backend_io") + errors_of(&metrics, "no_backend");
    assert!(cut > 0, "{metrics}");
}

/// The storm's cluster file `n`: the loaded service changes its backends and timeout
/// every time; a second service comes and goes.
fn storm_file(n: usize, listen: u16, a: u16, b: u16, extra: u16) -> String {
    let mut backends = vec![(a, "primary", 1)];
    if n % 2 == 1 {
        backends.push((b, "replica", 1));
    }
    let timeout = format!("    request_timeout: {}\n", 1 + n % 3);
    let s = cluster_of(
        "redis", "storm", "cache", listen, &backends, &timeout, HEALTH,
    );
    if n % 4 >= 2 {
        return s;
    }
    let service = format!(
        "services:\n  extra:\n    type: redis\n    listen: \"127.0.0.1:{extra}\"\n    backends:\n      - {{ host: 127.0.0.1, port: {b}, role: primary }}\n"
    );
    s.replacen("services:\n", &service, 1)
}

#[test]
fn a_hundred_reloads_under_load_break_no_client() {
    let _serial = common::chaos::serial();
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let (listen, extra) = (free_port(), free_port());
    let file = |n| storm_file(n, listen, a.port, b.port, extra);
    let opts = Options {
        watch: false,
        ..Options::default()
    };
    let gw = Throome::start_with(&[("storm", &file(0))], opts);
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let load = Load::start(listen, 4);
    let (mut applied, mut refused) = (0, 0);
    for n in 1..=100 {
        if n % 10 == 0 {
            gw.write_cluster("storm", "cluster_id: storm\nservices: [\n");
            let (status, body) = gw.post("/api/v1/reload", "");
            assert_ne!(status, 200, "a broken file is refused: {body}");
            refused += 1;
            continue;
        }
        gw.write_cluster("storm", &file(n));
        let (status, body) = gw.post("/api/v1/reload", "");
        assert_eq!(status, 200, "reload {n}: {body}");
        applied += 1;
        // The extra service is there exactly when the file says so.
        let up = common::port_of_direct(extra).is_ok();
        assert_eq!(up, n % 4 < 2, "reload {n}: extra service");
    }
    let (tally, acked) = load.finish();
    let peak = rss.peak_kib();
    let checked = assert_nothing_lost(a.port, &acked);
    let line = tally.report(
        "redis reload storm",
        &format!("reloads {applied} refused {refused} checked {checked} peak rss {peak} KiB"),
    );
    assert_tally(&tally, false, &line);
    assert!(peak < RSS_BOUND_KIB, "{line}");
    assert_fds_back(pid, fd_base);
}

#[test]
fn primary_killed_fails_over_to_its_replica_and_back() {
    let _serial = common::chaos::serial();
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut primary = RedisServer::start_with(free_port(), &aof);
    let replicaof = primary.port.to_string();
    let replica = RedisServer::start_with(free_port(), &["--replicaof", "127.0.0.1", &replicaof]);
    let synced = || {
        common::redis_cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
    };
    assert!(
        eventually(Duration::from_secs(10), synced),
        "the replica never synced"
    );
    let listen = free_port();
    let backends = [(primary.port, "primary", 1), (replica.port, "replica", 1)];
    let routing = format!("routing: {{ failover_enabled: true }}\n{HEALTH}");
    let extra = "    request_timeout: 1\n";
    let yaml = cluster_of("redis", "fo", "cache", listen, &backends, extra, &routing);
    let gw = Throome::start(&[("fo", &yaml)]);
    let load = Load::start(listen, 4);
    std::thread::sleep(Duration::from_millis(1500));
    primary.kill();
    // Reads fail over to the replica: a key written before is served (replicated).
    let read = || {
        connect(listen).is_some_and(|mut c| {
            redis::cmd("GET").arg("k:0:1").query::<String>(&mut c).ok() == Some("v:0:1".into())
        })
    };
    let failed_over = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), read),
        "no read served by the replica"
    );
    let to_replica = failed_over.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    primary.restart();
    let back = recovery(listen);
    std::thread::sleep(Duration::from_millis(1000));
    let (tally, acked) = load.finish();
    let checked = assert_nothing_lost(primary.port, &acked);
    let line = tally.report(
        "redis failover",
        &format!(
            "checked {checked} reads on the replica after {to_replica:?} writes back after {back:?}"
        ),
    );
    assert_tally(&tally, true, &line);
    assert!(to_replica <= Duration::from_secs(1), "{line}");
    assert!(back <= Duration::from_secs(1), "{line}");
    assert_eq!(gw.backend("fo", "cache", primary.port)["healthy"], true);
}

#[test]
fn cluster_master_killed_under_load_fails_over_without_wrong_replies() {
    let _serial = common::chaos::serial();
    let mut nodes = common::servers::redis_cluster(3, 1);
    let seed = nodes[0].port;
    let listen = free_port();
    let extra = "    sharding: cluster\n    request_timeout: 1\n";
    let yaml = cluster_of(
        "redis",
        "rcc",
        "cache",
        listen,
        &[(seed, "primary", 1)],
        extra,
        HEALTH,
    );
    let gw = Throome::start(&[("rcc", &yaml)]);
    let load = Load::start(listen, 4);
    std::thread::sleep(Duration::from_millis(1500));
    // A master other than the seed.
    let victim = (1..nodes.len())
        .find(|&i| common::servers::role_of(nodes[i].port) == "master")
        .unwrap();
    nodes[victim].kill();
    let killed = Instant::now();
    // Writes to its slots fail until its replica is promoted (cluster-node-timeout 5 s).
    let all_slots_write = || {
        connect(listen).is_some_and(|mut c| {
            (0..50).all(|i| {
                redis::cmd("SET")
                    .arg(format!("probe:{i}"))
                    .arg(i)
                    .query::<String>(&mut c)
                    .is_ok()
            })
        })
    };
    assert!(
        eventually(Duration::from_secs(30), all_slots_write),
        "no failover"
    );
    let failed_over = killed.elapsed();
    std::thread::sleep(Duration::from_millis(1000));
    let (tally, acked) = load.finish();
    // Redis Cluster replicates asynchronously: a write acknowledged just before the kill
    // may be missing on the promoted replica (a property of Redis, reported, not asserted).
    let (lost, checked) = count_lost(listen, &acked);
    let line = tally.report(
        "redis cluster failover",
        &format!(
            "checked {checked} lost by async replication {lost} writes back after {failed_over:?}"
        ),
    );
    assert_tally(&tally, true, &line);
    drop(gw);
}
