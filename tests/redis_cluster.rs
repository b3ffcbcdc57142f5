//! `sharding: cluster` over a real three-master Redis Cluster: Throome knows one seed node,
//! reads the slot map, and follows MOVED/ASK itself, including while `redis-cli --cluster
//! reshard` moves slots under a running client.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{RedisServer, Throome};

use common::redis_cli as cli;

/// Three masters, all 16384 slots assigned, state ok everywhere.
fn cluster() -> Vec<RedisServer> {
    common::servers::redis_cluster(3, 0)
}

/// Moves `slots` slots from the first master to the second with `redis-cli --cluster reshard`.
fn reshard(nodes: &[RedisServer], slots: u32) {
    let from = cli(nodes[0].port, &["CLUSTER", "MYID"]);
    let to = cli(nodes[1].port, &["CLUSTER", "MYID"]);
    let out = Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", nodes[0].port),
        ])
        .args([
            "--cluster-from",
            &from,
            "--cluster-to",
            &to,
            "--cluster-slots",
            &slots.to_string(),
            "--cluster-yes",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn gateway(seed: u16) -> (Throome, u16) {
    let backends = [(seed, "primary", 1)];
    common::gateway::one_service("redis", "rc", &backends, "    sharding: cluster\n")
}

use common::redis_con as con;

#[test]
fn one_seed_is_enough_and_multi_key_commands_follow_slots() {
    let nodes = cluster();
    let (_gw, listen) = gateway(nodes[0].port);
    let mut c = con(listen);
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query(&mut c)
            .unwrap();
    }
    for i in 0..200 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query(&mut c)
            .unwrap();
        assert_eq!(v, i);
    }
    for n in &nodes {
        let size: i64 = cli(n.port, &["DBSIZE"]).parse().unwrap();
        assert!(size > 20, "every master holds part of the keys: {size}");
    }
    let keys: Vec<String> = (0..30).map(|i| format!("key:{i}")).collect();
    let values: Vec<i64> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
    assert_eq!(values, (0..30).collect::<Vec<i64>>());
    let total: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(total, 200);
    let err = redis::cmd("RENAME")
        .arg("key:1")
        .arg("key:2")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let _: () = redis::cmd("SADD")
        .arg("{u}:a")
        .arg("x")
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("SUNIONSTORE")
        .arg("{u}:b")
        .arg("{u}:a")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn resharding_under_a_running_client_shows_it_no_error() {
    let nodes = cluster();
    let (gw, listen) = gateway(nodes[0].port);
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = con(listen);
            let (mut ops, mut errors) = (0u64, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let key = format!("live:{}", i % 500);
                if let Err(e) = redis::cmd("SET").arg(&key).arg(i).query::<()>(&mut c) {
                    errors.push(e.to_string());
                }
                match redis::cmd("GET").arg(&key).query::<u64>(&mut c) {
                    Ok(v) if v == i => {}
                    other => errors.push(format!("GET {key}: {other:?}")),
                }
                // A multi-key read across slots: split per slot, redirects followed per part.
                if i > 0 {
                    let previous = format!("live:{}", (i - 1) % 500);
                    match redis::cmd("MGET")
                        .arg(&key)
                        .arg(&previous)
                        .query::<Vec<u64>>(&mut c)
                    {
                        Ok(v) if v == [i, i - 1] => {}
                        other => errors.push(format!("MGET {key} {previous}: {other:?}")),
                    }
                }
                ops += 3;
                i += 1;
            }
            (ops, errors)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before = cli(nodes[1].port, &["CLUSTER", "COUNTKEYSINSLOT", "0"]);
    reshard(&nodes, 1500);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (ops, errors) = client.join().unwrap();
    assert!(ops > 100, "the client ran during the reshard: {ops}");
    assert!(
        errors.is_empty(),
        "{} client-visible errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    // Slot 0 moved from the first master to the second.
    let slots = cli(nodes[1].port, &["CLUSTER", "SLOTS"]);
    assert!(
        slots.contains(&nodes[1].port.to_string()),
        "{slots} {before}"
    );
    let node1_keys: i64 = cli(nodes[1].port, &["DBSIZE"]).parse().unwrap();
    assert!(node1_keys > 0);
    // The client saw no error because Throome followed the redirects itself.
    let moved = gw
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "throome_redirects_total{cluster=\"rc\",service=\"cache\",kind=\"moved\"} ",
            )
            .map(str::to_string)
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        moved > 0,
        "no MOVED redirect was followed:\n{}",
        gw.metrics()
    );
    eprintln!(
        "redirects followed: {:?}",
        gw.metrics()
            .lines()
            .filter(|l| l.starts_with("throome_redirects_total"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_split_command_follows_a_redirect_for_its_part() {
    let nodes = cluster();
    let (gw, listen) = gateway(nodes[0].port);
    let mut c = con(listen);
    let slot = |k: &String| throome::redis::cluster::slot(k.as_bytes());
    // `moving` lives in the first slots of the first master, which the reshard moves;
    // `staying` lives on the last master.
    let moving = (0..)
        .map(|i| format!("m{i}"))
        .find(|k| slot(k) < 1000)
        .unwrap();
    let staying = (0..)
        .map(|i| format!("s{i}"))
        .find(|k| slot(k) > 11000)
        .unwrap();
    let _: () = redis::cmd("SET").arg(&moving).arg(1).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&staying)
        .arg(2)
        .query(&mut c)
        .unwrap();

    // Move the slots while nobody talks through Throome: its slot map is now stale.
    reshard(&nodes, 1500);
    assert_eq!(
        cli(nodes[1].port, &["EXISTS", &moving]),
        "1",
        "the key moved with its slot"
    );

    // The MGET is split per slot; the moved part gets MOVED and is sent again by Throome.
    let values: Vec<i64> = redis::cmd("MGET")
        .arg(&moving)
        .arg(&staying)
        .query(&mut c)
        .unwrap();
    assert_eq!(values, [1, 2]);
    assert!(
        gw.metrics().contains("kind=\"moved\"} 1"),
        "{}",
        gw.metrics()
    );
}

/// A slot half way through a migration (`CLUSTER SETSLOT` MIGRATING/IMPORTING, one of two
/// keys moved with `MIGRATE`): the cluster answers an MGET of both keys with TRYAGAIN.
/// Throome sends it again, a little later, until the migration is done; a migration that
/// stalls leaves the client with the cluster's TRYAGAIN after a bounded wait.
#[test]
fn a_command_split_by_a_migration_waits_for_it() {
    let nodes = cluster();
    let (gw, listen) = gateway(nodes[0].port);
    let mut c = con(listen);
    // A hash tag whose slot the first master owns.
    let tag = (0..)
        .map(|i| format!("{{t{i}}}"))
        .find(|t| throome::redis::cluster::slot(t.as_bytes()) < 1000)
        .unwrap();
    let (a, b) = (format!("{tag}a"), format!("{tag}b"));
    let _: () = redis::cmd("MSET")
        .arg(&a)
        .arg(1)
        .arg(&b)
        .arg(2)
        .query(&mut c)
        .unwrap();
    let slot = throome::redis::cluster::slot(tag.as_bytes()).to_string();
    let id = |port: u16| cli(port, &["CLUSTER", "MYID"]);
    let (src, dst) = (nodes[0].port, nodes[1].port);
    let (src_id, dst_id) = (id(src), id(dst));
    assert_eq!(
        cli(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]),
        "OK"
    );
    assert_eq!(
        cli(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]),
        "OK"
    );
    let migrate = move |key: &str| {
        let port = dst.to_string();
        let args = ["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS", key];
        assert_eq!(cli(src, &args), "OK");
    };
    migrate(&a);
    assert!(cli(src, &["MGET", &a, &b]).contains("TRYAGAIN"));

    // Stalled: after its retries the client gets the cluster's answer, and nothing else.
    let stalled: redis::RedisResult<Vec<i64>> = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c);
    let err = stalled.expect_err("the keys are split between two nodes");
    assert_eq!(err.code(), Some("TRYAGAIN"), "{err}");

    // Finished while the client waits: it gets the values.
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let last = b.clone();
    // The slot's new owner is announced to the source first, as an operator by hand might
    // (redis-cli tells the destination first): until the destination hears it too, the two
    // send the request back and forth with MOVED, which Throome rides out.
    let finisher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        migrate(&last);
        for port in ports {
            assert_eq!(
                cli(port, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]),
                "OK"
            );
        }
    });
    let values: Vec<i64> = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).unwrap();
    finisher.join().unwrap();
    assert_eq!(values, [1, 2]);
    let m = gw.metrics();
    assert!(m.contains("kind=\"tryagain\"}"), "{m}");
}
