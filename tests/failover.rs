//! Health checks, circuit breaking and failover with real redis-servers that are killed and
//! restarted under a running gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::tcp_cluster;
use common::{RedisServer, Throome, backend_port_via, eventually, free_port, spread};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn killed_backend_is_marked_down_avoided_and_rejoins_after_restart() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster(
        "hc",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "primary", 1)],
        "health: { interval: 0.3, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
    );
    let gw = Throome::start(&[("hc", &yaml)]);
    assert_eq!(gw.backend("hc", "kv", b.port)["healthy"], true);

    b.kill();
    assert!(
        eventually(WAIT, || gw.backend("hc", "kv", b.port)["healthy"] == false),
        "API never showed the backend down"
    );
    let down = format!(
        "throome_backend_up{{cluster=\"hc\",service=\"kv\",backend=\"127.0.0.1:{}\"}} 0",
        b.port
    );
    assert!(
        gw.metrics().contains(&down),
        "metrics do not show it down:\n{}",
        gw.metrics()
    );
    assert!(
        spread(listen, 10).iter().all(|&p| p == a.port),
        "traffic still reaches the dead backend"
    );

    b.restart();
    assert!(
        eventually(WAIT, || gw.backend("hc", "kv", b.port)["healthy"] == true),
        "backend never rejoined"
    );
    let seen = spread(listen, 6);
    assert!(seen.contains(&b.port) && seen.contains(&a.port), "{seen:?}");
}

#[test]
fn replica_takes_over_while_the_primary_is_down() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster(
        "fo",
        "kv",
        listen,
        &[(primary.port, "primary", 1), (replica.port, "replica", 1)],
        "routing: { failover_enabled: true }\nhealth: { interval: 0.3, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
    );
    let gw = Throome::start(&[("fo", &yaml)]);
    assert!(
        spread(listen, 4).iter().all(|&p| p == primary.port),
        "replicas serve only on failover"
    );

    primary.kill();
    // Even before the probe notices, a failed connect fails over at once.
    assert_eq!(backend_port_via(listen).unwrap(), replica.port);
    assert!(eventually(
        WAIT,
        || gw.backend("fo", "kv", primary.port)["healthy"] == false
    ));
    assert!(spread(listen, 4).iter().all(|&p| p == replica.port));

    primary.restart();
    assert!(
        eventually(WAIT, || backend_port_via(listen) == Ok(primary.port)),
        "primary never took traffic back"
    );
}

#[test]
fn without_failover_a_dead_primary_means_a_refused_client_not_a_hang() {
    let mut primary = RedisServer::start();
    let replica = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster(
        "nofo",
        "kv",
        listen,
        &[(primary.port, "primary", 1), (replica.port, "replica", 1)],
        "routing: { failover_enabled: false }\nhealth: { interval: 0.3, unhealthy_threshold: 1 }\n",
    );
    let gw = Throome::start(&[("nofo", &yaml)]);
    primary.kill();
    assert!(eventually(WAIT, || gw.backend("nofo", "kv", primary.port)
        ["healthy"]
        == false));
    let err =
        backend_port_via(listen).expect_err("no healthy backend: the client must get an error");
    assert!(!err.is_empty());
    let metrics = gw.metrics();
    assert!(
        metrics
            .contains("throome_errors_total{cluster=\"nofo\",service=\"kv\",kind=\"no_backend\"}"),
        "{metrics}"
    );
}

#[test]
fn circuit_opens_on_connect_failures_and_one_trial_closes_it() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    let listen = free_port();
    // No active checks: only passive failures move the circuit.
    let yaml = tcp_cluster(
        "cb",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "primary", 1)],
        "health: { enabled: false }\ncircuit_breaker: { failure_threshold: 2, cooldown: 0.5 }\n",
    );
    let gw = Throome::start(&[("cb", &yaml)]);
    b.kill();
    // Clients never notice: each failed connect to b fails over to a.
    let seen = spread(listen, 6);
    assert!(seen.iter().all(|&p| p == a.port), "{seen:?}");
    assert_eq!(gw.backend("cb", "kv", b.port)["circuit"], "open");
    let open = format!(
        "throome_backend_circuit_open{{cluster=\"cb\",service=\"kv\",backend=\"127.0.0.1:{}\"}} 1",
        b.port
    );
    assert!(gw.metrics().contains(&open));

    b.restart();
    // After the cool-down the next pick of b is the trial; it succeeds and closes the circuit.
    assert!(eventually(WAIT, || {
        let _ = spread(listen, 2);
        gw.backend("cb", "kv", b.port)["circuit"] == "closed"
    }));
    assert!(spread(listen, 4).contains(&b.port));
}
