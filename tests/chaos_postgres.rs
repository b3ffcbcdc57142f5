//! Reliability under faults, PostgreSQL: a real server crashed (SIGKILL of every process)
//! and restarted, frozen (SIGSTOP) past `query_timeout`, and reached through `FaultRelay`
//! (latency, replies cut, stalls), while tokio-postgres clients insert rows with unique ids
//! in transactions through a transaction-mode pool. Checked: every committed id is in the
//! table and no id of a transaction that failed before its COMMIT; every reply carries the
//! value its own request sent; errors are ErrorResponses with a SQLSTATE, promptly; traffic
//! recovers. Bounded in count and time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Postgres;
use common::chaos::{RssSampler, Tally, assert_fds_back, errors_of, fds};
use common::fault_relay::FaultRelay;
use common::pg::{direct, service};
use tokio_postgres::{Client, NoTls};

const HEALTH: &str = "health: { interval: 0.5, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
/// A request that fails must fail within this (query_timeout is 1 s, the cancel another).
const PROMPT: Duration = Duration::from_secs(4);
/// Anything slower is a hang.
const HANG: Duration = Duration::from_secs(15);
const RSS_BOUND_KIB: u64 = 256 * 1024;

/// What one client knows about its transactions.
#[derive(Default)]
struct Ids {
    /// COMMIT acknowledged: must be in the table.
    committed: Vec<i64>,
    /// Failed before COMMIT was sent: must not be.
    aborted: Vec<i64>,
    /// Errors that were not ErrorResponses (a closed connection, a hang).
    not_native: u64,
}

/// One transaction: two rows with ids `id` and `id + 1`, each INSERT's RETURNING checked
/// against the id this client sent. Ok(true) committed; Ok(false) a wrong reply.
async fn transaction(c: &Client, id: i64) -> Result<bool, (bool, tokio_postgres::Error)> {
    let before = |e| (false, e);
    c.batch_execute("BEGIN").await.map_err(before)?;
    for k in [id, id + 1] {
        let row = c
            .query_one("INSERT INTO chaos(id) VALUES ($1) RETURNING id", &[&k])
            .await
            .map_err(before)?;
        if row.get::<_, i64>(0) != k {
            let _ = c.batch_execute("ROLLBACK").await;
            return Ok(false);
        }
    }
    c.batch_execute("COMMIT").await.map_err(|e| (true, e))?;
    Ok(true)
}

/// A load client until `stop`: transactions on its own connection (a new one when the
/// connection is gone), each bounded by `HANG`.
async fn worker(port: u16, w: i64, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> Ids {
    let mut ids = Ids::default();
    let mut client: Option<Client> = None;
    let mut i = 0i64;
    let until = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        let started = Instant::now();
        let Some(c) = client.as_ref().filter(|c| !c.is_closed()) else {
            client = connect(port).await;
            if client.is_none() {
                tally.error(started);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        i += 2;
        let id = w * 10_000_000 + i;
        match tokio::time::timeout(HANG, transaction(c, id)).await {
            Ok(Ok(true)) => {
                ids.committed.push(id);
                tally.ok();
            }
            Ok(Ok(false)) => tally.wrong(),
            Ok(Err((commit_sent, e))) => {
                tally.error(started);
                if e.as_db_error().is_none() {
                    ids.not_native += 1;
                    eprintln!("worker {w}: not an ErrorResponse: {e:?}");
                }
                if !commit_sent {
                    ids.aborted.push(id);
                }
                // After an error the transaction block (if any) is ended first.
                let _ = c.batch_execute("ROLLBACK").await;
            }
            Err(_) => {
                tally.error(started);
                ids.not_native += 1;
                client = None;
            }
        }
    }
    ids
}

async fn connect(port: u16) -> Option<Client> {
    let url = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5");
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.ok()?;
    tokio::spawn(conn);
    Some(client)
}

struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Ids>>,
}

impl Load {
    fn start(port: u16, n: i64) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (1..=n)
            .map(|w| tokio::spawn(worker(port, w, stop.clone(), tally.clone())))
            .collect();
        Load { tally, stop, tasks }
    }

    async fn finish(self) -> (Arc<Tally>, Vec<Ids>) {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for t in self.tasks {
            all.push(t.await.unwrap());
        }
        (self.tally, all)
    }
}

/// Every committed id (both rows) is in the table; no id of a transaction that failed
/// before its COMMIT is. The number of committed transactions.
async fn assert_nothing_lost(pg_port: u16, all: &[Ids]) -> usize {
    let admin = direct(pg_port).await;
    let rows = admin.query("SELECT id FROM chaos", &[]).await.unwrap();
    let present: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let mut committed = 0;
    for ids in all {
        for id in &ids.committed {
            assert!(
                present.contains(id) && present.contains(&(id + 1)),
                "committed {id} lost"
            );
        }
        for id in &ids.aborted {
            assert!(!present.contains(id), "aborted {id} is in the table");
        }
        committed += ids.committed.len();
    }
    committed
}

fn assert_tally(tally: &Tally, all: &[Ids], line: &str) {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(n(&tally.misattributed), 0, "{line}");
    assert!(n(&tally.errors) > 0, "the fault was felt: {line}");
    assert!(
        n(&tally.slowest_error_ms) < PROMPT.as_millis() as u64,
        "{line}"
    );
    assert!(n(&tally.acked) > 50, "load ran: {line}");
    let not_native: u64 = all.iter().map(|i| i.not_native).sum();
    assert_eq!(not_native, 0, "every error an ErrorResponse: {line}");
}

/// A transaction-mode service over `backend` (trust: the proxy logs in as postgres), with
/// `query_timeout: 1`.
async fn gateway(id: &str, backend: u16) -> (common::Throome, u16) {
    let extra = "    username: postgres\n    pool_size: 8\n    query_timeout: 1\n    query_wait_timeout: 2\n    connect_timeout: 1\n";
    service(id, &[(backend, "primary", 1)], extra, HEALTH).await
}

/// How long until a new client's transaction goes through.
async fn recovery(port: u16) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Some(c) = connect(port).await
            && c.simple_query("SELECT 1").await.is_ok()
        {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no recovery within 10 s");
}

async fn table(pg_port: u16) {
    let admin = direct(pg_port).await;
    admin
        .batch_execute("CREATE TABLE chaos(id bigint PRIMARY KEY)")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_crash_and_restart_mid_load_loses_no_committed_row() {
    let _serial = common::chaos::serial_async().await;
    let mut pg = Postgres::start();
    table(pg.port).await;
    let (gw, port) = gateway("crash", pg.port).await;
    let (pid, fd_base) = (gw.pid(), fds(gw.pid()));
    let rss = RssSampler::start(pid);
    let load = Load::start(port, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.crash();
        std::thread::sleep(Duration::from_millis(1000));
        pg.restart();
        pg
    })
    .await
    .unwrap();
    let recovered = recovery(port).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (tally, all) = load.finish().await;
    let peak = rss.peak_kib();
    let committed = assert_nothing_lost(pg.port, &all).await;
    let line = tally.report(
        "postgres crash",
        &format!("committed {committed} recovery {recovered:?} peak rss {peak} KiB"),
    );
    assert_tally(&tally, &all, &line);
    assert!(
        recovered <= Duration::from_secs(1),
        "two health intervals: {line}"
    );
    assert!(peak < RSS_BOUND_KIB, "{line}");
    assert!(
        errors_of(&gw.metrics(), "backend_io") > 0,
        "{}",
        gw.metrics()
    );
    drop(all);
    // The pool keeps up to pool_size server connections open.
    tokio::task::spawn_blocking(move || assert_fds_back(pid, fd_base + 8))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn frozen_server_past_query_timeout_is_given_up_and_nothing_is_misattributed() {
    let _serial = common::chaos::serial_async().await;
    let pg = Postgres::start();
    table(pg.port).await;
    let (gw, port) = gateway("frozen", pg.port).await;
    let load = Load::start(port, 4);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg.freeze(true);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    pg.freeze(false);
    let recovered = recovery(port).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (tally, all) = load.finish().await;
    let committed = assert_nothing_lost(pg.port, &all).await;
    let line = tally.report(
        "postgres sigstop",
        &format!("committed {committed} recovery {recovered:?}"),
    );
    assert_tally(&tally, &all, &line);
    assert!(recovered <= Duration::from_secs(1), "{line}");
    assert!(
        errors_of(&gw.metrics(), "query_timeout") > 0,
        "{}",
        gw.metrics()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_cut_replies_and_stalls_between_proxy_and_server() {
    let _serial = common::chaos::serial_async().await;
    let pg = Postgres::start();
    table(pg.port).await;
    let relay = FaultRelay::start(pg.port);
    let (gw, port) = gateway("relay", relay.port).await;
    let load = Load::start(port, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.set_latency(20);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    relay.set_latency(0);
    for _ in 0..5 {
        relay.cut_next_reply();
        while !relay.cut_done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A cut may have hit a health probe: the stall is for a backend in use.
    let usable = |gw: &common::Throome| {
        let b = gw.backend("relay", "db", relay.port);
        b["healthy"] == true && b["circuit"] == "closed"
    };
    for _ in 0..100 {
        if usable(&gw) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(usable(&gw));
    relay.stall(true);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    relay.stall(false);
    let recovered = recovery(port).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (tally, all) = load.finish().await;
    let committed = assert_nothing_lost(pg.port, &all).await;
    let line = tally.report(
        "postgres relay",
        &format!("committed {committed} recovery {recovered:?}"),
    );
    assert_tally(&tally, &all, &line);
    assert!(recovered <= Duration::from_secs(1), "{line}");
    let metrics = gw.metrics();
    assert!(errors_of(&metrics, "backend_io") > 0, "{metrics}");
    assert!(errors_of(&metrics, "query_timeout") > 0, "{metrics}");
}

/// The server of a client with two batches outstanding (a query and a COMMIT pipelined
/// behind it) is terminated: both get the error. The COMMIT once got a bare ReadyForQuery,
/// which drivers take for success: a commit acknowledged that never happened.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_server_fails_every_pipelined_batch() {
    let _serial = common::chaos::serial_async().await;
    let pg = Postgres::start();
    table(pg.port).await;
    let (_gw, port) = gateway("pipelined", pg.port).await;
    let c = connect(port).await.unwrap();
    c.batch_execute("BEGIN; INSERT INTO chaos VALUES (1)")
        .await
        .unwrap();
    let admin = direct(pg.port).await;
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'";
        admin.batch_execute(sql).await.unwrap();
    };
    let (sleep, commit, ()) = tokio::join!(
        c.batch_execute("SELECT pg_sleep(5)"),
        c.batch_execute("COMMIT"),
        kill
    );
    let code = |r: Result<(), tokio_postgres::Error>| r.unwrap_err().code().cloned();
    assert_eq!(
        code(sleep),
        Some(tokio_postgres::error::SqlState::ADMIN_SHUTDOWN)
    );
    assert_eq!(
        code(commit),
        Some(tokio_postgres::error::SqlState::ADMIN_SHUTDOWN)
    );
    let n: i64 = admin
        .query_one("SELECT count(*) FROM chaos", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing was committed");
    // The client goes on, on another server.
    c.batch_execute("SELECT 1").await.unwrap();
}

/// A login through `port` gets as far as the server's first answer (trust: AuthenticationOk).
fn logs_in(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut startup = 196_608i32.to_be_bytes().to_vec();
    startup.extend_from_slice(b"user\0postgres\0\0");
    let mut packet = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&startup);
    let mut first = [0u8; 1];
    s.write_all(&packet).is_ok() && s.read_exact(&mut first).is_ok() && first[0] == b'R'
}

/// The storm's cluster file `n`: the loaded service's pool size and timeouts change every
/// time; a second service comes and goes.
fn storm_file(n: usize, listen: u16, backend: u16, extra: u16) -> String {
    let service = format!(
        "    username: postgres\n    pool_size: {}\n    query_timeout: {}\n    query_wait_timeout: 5\n",
        4 + n % 5,
        1 + n % 3
    );
    let s = common::gateway::cluster_of(
        "postgres",
        "storm",
        "db",
        listen,
        &[(backend, "primary", 1)],
        &service,
        HEALTH,
    );
    if n % 4 >= 2 {
        return s;
    }
    let other = format!(
        "services:\n  other:\n    type: postgres\n    username: postgres\n    listen: \"127.0.0.1:{extra}\"\n    backends:\n      - {{ host: 127.0.0.1, port: {backend}, role: primary }}\n"
    );
    s.replacen("services:\n", &other, 1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_reloads_under_load_break_no_transaction() {
    let _serial = common::chaos::serial_async().await;
    let pg = Postgres::start();
    table(pg.port).await;
    let (listen, extra) = (common::free_port(), common::free_port());
    let backend = pg.port;
    let gw = tokio::task::spawn_blocking(move || {
        let opts = common::gateway::Options {
            watch: false,
            ..Default::default()
        };
        common::Throome::start_with(&[("storm", &storm_file(0, listen, backend, extra))], opts)
    })
    .await
    .unwrap();
    let load = Load::start(listen, 4);
    let gw = tokio::task::spawn_blocking(move || {
        for n in 1..=100 {
            let broken = n % 10 == 0;
            let file = if broken {
                "cluster_id: storm\nservices: [\n".to_string()
            } else {
                storm_file(n, listen, backend, extra)
            };
            gw.write_cluster("storm", &file);
            let (status, body) = gw.post("/api/v1/reload", "");
            assert_eq!(status == 200, !broken, "reload {n}: {body}");
            if !broken {
                // A removed service's listener closes once the reload is through.
                let want = n % 4 < 2;
                let seen = common::eventually(Duration::from_secs(3), || logs_in(extra) == want);
                assert!(seen, "reload {n}: the other service should be up: {want}");
            }
        }
        gw
    })
    .await
    .unwrap();
    let (tally, all) = load.finish().await;
    let committed = assert_nothing_lost(pg.port, &all).await;
    let line = tally.report("postgres reload storm", &format!("committed {committed}"));
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(n(&tally.misattributed), 0, "{line}");
    assert_eq!(
        n(&tally.errors),
        0,
        "reloads must not break transactions: {line}"
    );
    assert!(committed > 50, "{line}");
    drop(gw);
}
