//! TLS to Redis backends (`server_tls`): redis-server 7 listening with TLS (`tls-port`) on a
//! throwaway certificate; clients (the `redis` crate) talk to Throome in clear. The shared
//! pipelined connections, a dedicated one (BLPOP), the raw hand-over of a subscriber and
//! the health probe all reach the server over TLS only.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::tls::ca_and_leaf;
use common::{RedisServer, Throome, free_port};

/// A redis-server with a plain port (for the harness) and a TLS port; (server, TLS port).
fn tls_server(dir: &std::path::Path) -> (RedisServer, u16, String) {
    let (ca, cert, key) = ca_and_leaf(dir);
    let tls_port = free_port().to_string();
    let args = [
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    let server = RedisServer::start_with(free_port(), &args);
    (server, tls_port.parse().unwrap(), ca)
}

fn gateway(tls_port: u16, ca: &str) -> (Throome, u16) {
    let extra = format!("    server_tls: {{ mode: verify-full, ca: \"{ca}\" }}\n");
    common::gateway::one_service("redis", "r", &[(tls_port, "primary", 1)], &extra)
}

use common::redis_con as con;

#[test]
fn every_kind_of_backend_connection_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tls_port, ca) = tls_server(dir.path());
    let (_gw, listen) = gateway(tls_port, &ca);
    let mut c = con(listen);

    let _: () = redis::cmd("SET")
        .arg("sealed")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    let got: String = redis::cmd("GET").arg("sealed").query(&mut c).unwrap();
    assert_eq!(got, "yes");
    let mut pipe = redis::pipe();
    for _ in 0..100 {
        pipe.cmd("INCR").arg("n");
    }
    let counts: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(counts.last(), Some(&100));
    // A blocking command gets a connection of its own.
    let _: () = redis::cmd("RPUSH")
        .arg("q")
        .arg("job")
        .query(&mut c)
        .unwrap();
    let popped: (String, String) = redis::cmd("BLPOP").arg("q").arg(1).query(&mut c).unwrap();
    assert_eq!(popped.1, "job");

    // A subscriber is handed over to a raw TLS connection; a publisher reaches it.
    let mut sub = con(listen);
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("news").unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg("news")
        .arg("hello")
        .query(&mut c)
        .unwrap();
    assert_eq!(receivers, 1);
    pubsub
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let msg: String = pubsub.get_message().unwrap().get_payload().unwrap();
    assert_eq!(msg, "hello");
}

#[test]
fn an_untrusted_server_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, tls_port, _) = tls_server(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (stranger, _, _) = ca_and_leaf(other.path());
    let (_gw, listen) = gateway(tls_port, &stranger);
    let err = redis::cmd("GET")
        .arg("x")
        .query::<Option<String>>(&mut con(listen));
    let err = err.expect_err("no backend can be reached");
    assert!(err.to_string().contains("Throome"), "{err}");
}

/// TLS from clients (`tls`): redis-cli and redis-benchmark with `--tls` verify Throome's
/// certificate; the backend is a plain redis-server.
#[test]
fn redis_cli_and_redis_benchmark_reach_the_proxy_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let server = RedisServer::start();
    let extra = format!("    tls: {{ cert: \"{cert}\", key: \"{key}\" }}\n");
    let (gw, listen) =
        common::gateway::one_service("redis", "r", &[(server.port, "primary", 1)], &extra);
    let port = listen.to_string();
    let tls_cli = |tool: &str, args: &[&str]| {
        common::stdout_of(
            std::process::Command::new(tool)
                .args(["--tls", "--cacert", &ca, "-h", "127.0.0.1", "-p", &port])
                .args(args),
        )
    };
    assert_eq!(tls_cli("redis-cli", &["SET", "k", "over-tls"]), "OK");
    assert_eq!(tls_cli("redis-cli", &["GET", "k"]), "over-tls");
    let bench = tls_cli(
        "redis-benchmark",
        &[
            "-t", "set,get", "-n", "2000", "-c", "4", "-P", "8", "-q", "--csv",
        ],
    );
    assert!(
        bench.contains("\"SET\"") && bench.contains("\"GET\""),
        "{bench}"
    );
    assert_eq!(common::redis_cli(server.port, &["EXISTS", "k"]), "1");

    // A client in clear gets nothing through, and is counted.
    let plain = common::redis_cli(listen, &["PING"]);
    assert_ne!(plain, "PONG");
    assert!(
        gw.metrics().contains("kind=\"client_tls\""),
        "{}",
        gw.metrics()
    );
}
