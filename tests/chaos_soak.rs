//! Soak: mixed load on all three protocols through one gateway (redis-py-like SET/GET with
//! the `redis` crate, tokio-postgres queries in a transaction-mode pool, a confluent-kafka
//! producer and consumer group) for `THROOME_SOAK_SECS` (default 60; the long run is 600),
//! with the gateway's RSS and open descriptors recorded every 10 s: flat after warm-up, no
//! client error, no wrong reply, no acknowledged record lost.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::chaos::{Tally, fds, repeat, rss_kib};
use common::gateway::cluster_of;
use common::kafka::{
    Tansu, chaos_report, free_broker_port_base, kafka_chaos_client, kafka_cluster,
};
use common::{Postgres, RedisServer, Throome, free_port};

fn soak_secs() -> u64 {
    std::env::var("THROOME_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

#[test]
fn mixed_load_on_all_three_protocols_keeps_memory_and_descriptors_flat() {
    let (redis, pg, tansu) = (RedisServer::start(), Postgres::start(), Tansu::start());
    tansu.create_topic("soak", 2);
    let (rp, pp, kp, base) = (
        free_port(),
        free_port(),
        free_port(),
        free_broker_port_base(),
    );
    let redis_yaml = cluster_of(
        "redis",
        "sr",
        "cache",
        rp,
        &[(redis.port, "primary", 1)],
        "",
        "",
    );
    let pg_extra = "    username: postgres\n    pool_size: 4\n";
    let pg_yaml = cluster_of(
        "postgres",
        "sp",
        "db",
        pp,
        &[(pg.port, "primary", 1)],
        pg_extra,
        "",
    );
    let kafka_yaml = kafka_cluster("sk", "events", kp, base, &[tansu.port]);
    let gw = Throome::start(&[("sr", &redis_yaml), ("sp", &pg_yaml), ("sk", &kafka_yaml)]);
    let pid = gw.pid();
    let secs = soak_secs();

    let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
    let mut threads = Vec::new();
    for w in 0..2 {
        let mut con = common::redis_con(rp);
        threads.push(repeat(&stop, &tally, move |i| {
            let (key, value) = (format!("soak:{w}:{}", i % 1000), format!("{w}:{i}"));
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&value)
                .ignore()
                .cmd("GET")
                .arg(&key);
            let (got,): (String,) = pipe.query(&mut con).map_err(|e| e.to_string())?;
            Ok(got == value)
        }));
    }
    for w in 0..2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!("host=127.0.0.1 port={pp} user=postgres dbname=postgres");
        let (client, conn) = runtime
            .block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls))
            .unwrap();
        runtime.spawn(conn);
        threads.push(repeat(&stop, &tally, move |i| {
            let v = format!("{w}:{i}");
            let row = runtime.block_on(client.query_one("SELECT $1::text", &[&v]));
            Ok(row.map_err(|e| e.to_string())?.get::<_, String>(0) == v)
        }));
    }
    // Kafka: the chaos client produces for the whole soak, then consumes and checks.
    let kafka = kafka_chaos_client(kp, "soak", "soak", secs);

    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(10).min(Duration::from_secs(secs)));
        samples.push((started.elapsed().as_secs(), rss_kib(pid), fds(pid)));
    }
    stop.store(true, Ordering::SeqCst);
    threads.into_iter().for_each(|t| t.join().unwrap());
    let report = chaos_report(kafka);

    let line = tally.report(
        "soak",
        &format!("{secs} s, kafka {report}, samples (s, rss KiB, fds) {samples:?}"),
    );
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(n(&tally.errors), 0, "{line}");
    assert_eq!(n(&tally.misattributed), 0, "{line}");
    assert!(n(&tally.acked) > 1000, "{line}");
    assert_eq!(report["lost"], 0, "{line}");
    assert_eq!(report["misattributed"], 0, "{line}");
    assert_eq!(report["failed"], 0, "{line}");
    // Flat after warm-up (the first sample): RSS within a quarter and 8 MiB, descriptors
    // within a few.
    let (_, warm_rss, warm_fds) = samples[0];
    for (t, rss, fd) in &samples[1..] {
        assert!(
            *rss <= warm_rss + warm_rss / 4 + 8 * 1024,
            "rss grew at {t} s: {line}"
        );
        assert!(
            fd.abs_diff(warm_fds) <= 4,
            "descriptors changed at {t} s: {line}"
        );
    }
}
