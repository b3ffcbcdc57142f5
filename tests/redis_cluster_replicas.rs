//! `sharding: cluster` with `read_from_replicas: true` over a real Redis Cluster of three
//! masters with a replica each: read-only commands go to the replicas (after READONLY),
//! writes to the masters, and reads fall back to a master whose replica is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::servers::{redis_cluster, role_of};
use common::{RedisServer, Throome, eventually, redis_cli as cli, redis_con as con};

fn gateway(seed: u16) -> (Throome, u16) {
    let backends = [(seed, "primary", 1)];
    let extra = "    sharding: cluster\n    read_from_replicas: true\n";
    common::gateway::one_service("redis", "rc", &backends, extra)
}

/// `cmdstat_<command>` calls on a node since its last CONFIG RESETSTAT.
fn calls(port: u16, command: &str) -> u64 {
    let stats = cli(port, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// (masters, replicas) of the cluster, by port.
fn roles(nodes: &[RedisServer]) -> (Vec<u16>, Vec<u16>) {
    nodes
        .iter()
        .map(|n| n.port)
        .partition(|&p| role_of(p) == "master")
}

/// Writes `n` keys through Throome and waits until every replica holds its master's share.
fn written(c: &mut redis::Connection, n: usize, replicas: &[u16]) {
    for i in 0..n {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query(c)
            .unwrap();
    }
    let replicated = eventually(Duration::from_secs(10), || {
        let held: usize = replicas
            .iter()
            .map(|&p| cli(p, &["DBSIZE"]).parse::<usize>().unwrap())
            .sum();
        held == n
    });
    assert!(replicated, "the replicas did not catch up");
}

#[test]
fn reads_go_to_replicas_and_writes_to_masters() {
    let nodes = redis_cluster(3, 1);
    let (masters, replicas) = roles(&nodes);
    assert_eq!((masters.len(), replicas.len()), (3, 3));
    let (_gw, listen) = gateway(masters[0]);
    let mut c = con(listen);
    written(&mut c, 200, &replicas);
    for &p in &nodes.iter().map(|n| n.port).collect::<Vec<_>>() {
        cli(p, &["CONFIG", "RESETSTAT"]);
    }
    for i in 0..200 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, i as i64);
    }
    let keys: Vec<String> = (0..30).map(|i| format!("key:{i}")).collect();
    let values: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    assert_eq!(values, (0..30).collect::<Vec<i64>>());
    let on = |ports: &[u16], command: &str| ports.iter().map(|&p| calls(p, command)).sum::<u64>();
    assert_eq!(on(&replicas, "get"), 200, "every GET on a replica");
    assert_eq!(on(&masters, "get"), 0, "no GET on a master");
    assert!(on(&replicas, "mget") >= 3, "MGET's parts on the replicas");
    assert_eq!(on(&masters, "mget"), 0);
    // A write still goes to the key's master (a replica would answer MOVED).
    let _: () = redis::cmd("SET")
        .arg("key:0")
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(on(&masters, "set"), 1);
}

#[test]
fn a_dead_replica_sends_reads_to_its_master() {
    let mut nodes = redis_cluster(3, 1);
    let (masters, replicas) = roles(&nodes);
    let (_gw, listen) = gateway(masters[0]);
    let mut c = con(listen);
    written(&mut c, 100, &replicas);
    let keys: Vec<String> = (0..30).map(|i| format!("key:{i}")).collect();
    // Connections to every replica are open (the MGET's parts went to all three).
    let _: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    // Reads in flight on every replica when they die: the replicas are made to sleep, a GET
    // and an MGET (split over the three slot owners, so over the replicas) go out, then the
    // replicas are killed. Both are answered by the masters.
    let sleepers: Vec<_> = replicas
        .iter()
        .map(|&p| std::thread::spawn(move || cli(p, &["DEBUG", "SLEEP", "3"])))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let in_flight = std::thread::spawn(move || {
        let got: (i64, Vec<i64>) = redis::pipe()
            .cmd("GET")
            .arg("key:7")
            .cmd("MGET")
            .arg(&keys)
            .query(&mut c)
            .unwrap();
        (got, c)
    });
    std::thread::sleep(Duration::from_millis(300));
    for n in nodes.iter_mut().filter(|n| replicas.contains(&n.port)) {
        n.kill();
    }
    let ((one, many), mut c) = in_flight.join().unwrap();
    assert_eq!((one, many), (7, (0..30).collect::<Vec<i64>>()));
    for s in sleepers {
        let _ = s.join();
    }
    // Later reads go to the masters straight away.
    for i in 0..100 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, i as i64);
    }
    let on_masters: u64 = masters.iter().map(|&p| calls(p, "get")).sum();
    assert_eq!(on_masters, 101);
}
