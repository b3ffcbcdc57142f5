//! The gateway binary itself: the shipped default config, `--port`, a TCP service in front of
//! a real PostgreSQL with a real driver, and a graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::{http_get, tcp_cluster};
use common::{Postgres, Throome, eventually, free_port};

#[test]
fn starts_on_the_shipped_config_with_a_port_override() {
    let admin = free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_throome"))
        .current_dir(root)
        .args(["--port", &admin.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = eventually(Duration::from_secs(20), || {
        http_get(admin, "/ready", None)
            .map(|r| r.0 == 200)
            .unwrap_or(false)
    });
    let clusters = http_get(admin, "/api/v1/clusters", None)
        .map(|r| r.1)
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "gateway on the shipped config never became ready");
    assert!(clusters.contains("\"id\":\"example\""), "{clusters}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_pass_through_to_postgres_with_tokio_postgres() {
    let pg = Postgres::start();
    let listen = free_port();
    let yaml = tcp_cluster("pg", "db", listen, &[(pg.port, "primary", 1)], "");
    let gw = tokio::task::spawn_blocking(move || Throome::start(&[("pg", &yaml)]))
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={listen} user=postgres dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect through throome");
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT 40 + $1::int4", &[&2i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    let port: String = client.query_one("SHOW port", &[]).await.unwrap().get(0);
    assert_eq!(port, pg.port.to_string());
    drop(client);
    drop(gw);
}

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let redis = common::RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster("d", "kv", listen, &[(redis.port, "primary", 1)], "");
    let mut gw = Throome::start(&[("d", &yaml)]);
    let mut held = redis::Client::open(format!("redis://127.0.0.1:{listen}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(common::port_of(&mut held).unwrap(), redis.port);
    gw.signal("-TERM");
    // New connections are refused at once; the held one is closed by the 2 s drain deadline.
    assert!(eventually(Duration::from_secs(5), || {
        common::backend_port_via(listen).is_err()
    }));
    assert_eq!(
        gw.wait_exit(Duration::from_secs(15)),
        Some(0),
        "log:\n{}",
        gw.log()
    );
    assert!(
        common::port_of(&mut held).is_err(),
        "the drained connection must be closed"
    );
}
