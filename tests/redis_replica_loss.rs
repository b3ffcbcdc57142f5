//! `read_from_replicas` over a primary and a replica (no sharding): reads in flight on the
//! replica when it dies are sent to the primary once and answered from there, so the client
//! sees no error (a pipeline of reads, the redis crate against real redis-servers).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::one_service;
use common::{RedisServer, redis_cli as cli, redis_con as con};

#[test]
fn reads_in_flight_on_a_lost_replica_are_answered_by_the_primary() {
    let primary = RedisServer::start();
    let mut replica = RedisServer::start();
    // Both hold the same keys, as a replica would.
    for server in [primary.port, replica.port] {
        for i in 0..20 {
            assert_eq!(
                cli(server, &["SET", &format!("key:{i}"), &i.to_string()]),
                "OK"
            );
        }
    }
    let backends = [(primary.port, "primary", 1), (replica.port, "replica", 1)];
    let (gw, listen) = one_service("redis", "rl", &backends, "    read_from_replicas: true\n");
    let mut c = con(listen);
    let v: i64 = redis::cmd("GET").arg("key:3").query(&mut c).unwrap();
    assert_eq!(v, 3);
    let asked = |port| cli(port, &["INFO", "commandstats"]).contains("cmdstat_get:calls=1,");
    assert!(asked(replica.port), "the read went to the replica");

    // The replica sleeps, a pipeline of GETs waits on it, and it dies.
    let port = replica.port;
    let sleeper = std::thread::spawn(move || cli(port, &["DEBUG", "SLEEP", "3"]));
    std::thread::sleep(Duration::from_millis(200));
    let in_flight = std::thread::spawn(move || {
        let mut pipe = redis::pipe();
        for i in 0..20 {
            pipe.cmd("GET").arg(format!("key:{i}"));
        }
        let got: Vec<i64> = pipe.query(&mut c).unwrap();
        got
    });
    std::thread::sleep(Duration::from_millis(300));
    replica.kill();
    assert_eq!(in_flight.join().unwrap(), (0..20).collect::<Vec<i64>>());
    let _ = sleeper.join();
    assert!(
        cli(primary.port, &["INFO", "commandstats"]).contains("cmdstat_get:calls=20,"),
        "the primary answered the twenty"
    );
    let metrics = gw.metrics();
    assert!(
        metrics.contains("kind=\"replica_lost\"} 1"),
        "counted as one replica_lost redirect: {metrics}"
    );
}
