//! Each routing strategy through a `tcp` service in front of real redis-servers; the backend
//! that answered is read with `CONFIG GET port` through the pass-through.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::tcp_cluster;
use common::{RedisServer, Throome, eventually, free_port, port_of, spread};

fn count(ports: &[u16], p: u16) -> usize {
    ports.iter().filter(|&&x| x == p).count()
}

#[test]
fn round_robin_alternates_between_backends() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let listen = free_port();
    let yaml = tcp_cluster(
        "rr",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "primary", 1)],
        "routing: { strategy: round_robin }\n",
    );
    let _gw = Throome::start(&[("rr", &yaml)]);
    let seen = spread(listen, 8);
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "round robin must alternate: {seen:?}");
    }
    assert_eq!(
        (count(&seen, a.port), count(&seen, b.port)),
        (4, 4),
        "{seen:?}"
    );
}

#[test]
fn weighted_follows_the_weights() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let listen = free_port();
    let yaml = tcp_cluster(
        "w",
        "kv",
        listen,
        &[(a.port, "primary", 3), (b.port, "primary", 1)],
        "routing: { strategy: weighted }\n",
    );
    let _gw = Throome::start(&[("w", &yaml)]);
    let seen = spread(listen, 12);
    assert_eq!(
        (count(&seen, a.port), count(&seen, b.port)),
        (9, 3),
        "{seen:?}"
    );
}

#[test]
fn least_connections_prefers_the_idle_backend() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let listen = free_port();
    let yaml = tcp_cluster(
        "lc",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "primary", 1)],
        "routing: { strategy: least_connections }\n",
    );
    let gw = Throome::start(&[("lc", &yaml)]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    // Hold three connections open: the busy backend keeps getting skipped.
    let mut first = client.get_connection().unwrap();
    let busy = port_of(&mut first).unwrap();
    let idle = if busy == a.port { b.port } else { a.port };
    let mut second = client.get_connection().unwrap();
    assert_eq!(port_of(&mut second).unwrap(), idle);
    let mut third = client.get_connection().unwrap();
    let third_port = port_of(&mut third).unwrap();
    // Now one backend has 2 connections and the other 1: the next goes to the one with 1.
    let lighter = if third_port == busy { idle } else { busy };
    let mut fourth = client.get_connection().unwrap();
    assert_eq!(port_of(&mut fourth).unwrap(), lighter);
    // Close everything on `busy`'s side and the next connection must land there.
    drop((first, second, third, fourth));
    assert!(eventually(Duration::from_secs(10), || {
        gw.backend("lc", "kv", a.port)["active_connections"] == 0
            && gw.backend("lc", "kv", b.port)["active_connections"] == 0
    }));
}

#[test]
fn adaptive_spreads_over_healthy_backends_and_avoids_a_down_one() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let mut c = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster(
        "ad",
        "kv",
        listen,
        &[
            (a.port, "primary", 1),
            (b.port, "primary", 1),
            (c.port, "primary", 1),
        ],
        "routing: { strategy: adaptive }\nhealth: { interval: 0.2, unhealthy_threshold: 1 }\n",
    );
    let gw = Throome::start(&[("ad", &yaml)]);
    c.kill();
    assert!(eventually(Duration::from_secs(10), || gw
        .backend("ad", "kv", c.port)["healthy"]
        == false));
    // Held connections are in-flight load: cost = latency x (active + 1) spreads them. (With
    // nothing in flight, P2C rightly sends everything to the lowest-latency backend.)
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    let mut held = Vec::new();
    let mut seen = Vec::new();
    for _ in 0..30 {
        let mut con = client.get_connection().unwrap();
        seen.push(port_of(&mut con).unwrap());
        held.push(con);
    }
    assert_eq!(count(&seen, c.port), 0, "{seen:?}");
    assert!(
        count(&seen, a.port) > 0 && count(&seen, b.port) > 0,
        "{seen:?}"
    );
}
