//! `gateway.worker_threads`: N event loops, each accepting on its own SO_REUSEPORT socket
//! with its own upstream connections, while PostgreSQL pool limits hold for the whole
//! gateway. Real redis-server and PostgreSQL, real clients (the `redis` crate,
//! tokio-postgres); the gateway's own metrics say which worker served a connection.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::gateway::{Options, cluster_of};
use common::pg::{SERVER_CONNECTIONS, direct};
use common::{Postgres, RedisServer, Throome, free_port};

/// `throome_worker_connections` of each worker, from a scrape.
fn per_worker(metrics: &str) -> Vec<(String, i64)> {
    metrics
        .lines()
        .filter(|l| l.starts_with("throome_worker_connections{"))
        .filter_map(|l| {
            let worker = l.split('"').nth(1)?.to_string();
            Some((worker, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect()
}

/// A gateway with `worker_threads: 2` and one service of `kind` over `port`.
fn two_worker_gateway(kind: &str, port: u16, extra: &str) -> (Throome, u16) {
    let listen = free_port();
    let yaml = cluster_of(kind, "w", "svc", listen, &[(port, "primary", 1)], extra, "");
    let opts = Options {
        extra_gateway: "  worker_threads: 2\n".into(),
        ..Default::default()
    };
    (Throome::start_with(&[("w", &yaml)], opts), listen)
}

#[test]
fn redis_clients_spread_over_workers_each_with_its_own_upstream_connection() {
    let redis = RedisServer::start();
    let (gw, listen) = two_worker_gateway("redis", redis.port, "    pool_size: 1\n");
    // 64 connections from distinct source ports: the kernel hashes each to one of the two
    // sockets; all 64 on one would be a 2^-63 chance.
    let mut clients: Vec<redis::Connection> = (0..64).map(|_| common::redis_con(listen)).collect();
    for (i, con) in clients.iter_mut().enumerate() {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .exec(con)
            .unwrap();
        let got: usize = redis::cmd("GET").arg(format!("k{i}")).query(con).unwrap();
        assert_eq!(got, i);
    }
    let spread = per_worker(&gw.metrics());
    assert_eq!(spread.len(), 2, "{spread:?}");
    assert!(spread.iter().all(|(_, n)| *n > 0), "{spread:?}");
    assert_eq!(spread.iter().map(|(_, n)| n).sum::<i64>(), 64, "{spread:?}");
    // pool_size 1 per worker: two shared connections in all, one opened by each worker.
    let shared = gw
        .metrics()
        .lines()
        .find(|l| l.starts_with("throome_upstream_connections{") && l.contains("shared"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok());
    assert_eq!(shared, Some(2));
    drop(clients);
    let closed = common::eventually(Duration::from_secs(5), || {
        per_worker(&gw.metrics()).iter().all(|(_, n)| *n == 0)
    });
    assert!(closed, "{:?}", per_worker(&gw.metrics()));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_pool_size_holds_for_the_whole_gateway() {
    let pg = Postgres::start();
    let port = pg.port;
    let (gw, listen) = tokio::task::spawn_blocking(move || {
        two_worker_gateway(
            "postgres",
            port,
            "    username: postgres\n    pool_size: 2\n",
        )
    })
    .await
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..24 {
        let (client, conn) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={listen} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        clients.push(Arc::new(client));
    }
    let spread = per_worker(&gw.metrics());
    assert!(
        spread.len() == 2 && spread.iter().all(|(_, n)| *n > 0),
        "{spread:?}"
    );
    // Every client in a transaction at once, while the server is asked how many
    // connections it has: never more than the pool's two (PgBouncer's so_reuseport mode
    // would allow two per process).
    let admin = direct(port).await;
    let most = Arc::new(AtomicI64::new(0));
    let sampler = {
        let most = most.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                let n: i64 = admin
                    .query_one(SERVER_CONNECTIONS, &[])
                    .await
                    .unwrap()
                    .get(0);
                most.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let mut load = Vec::new();
    for client in &clients {
        let client = client.clone();
        load.push(tokio::spawn(async move {
            for _ in 0..3 {
                let row = client
                    .query_one("SELECT pg_sleep(0.02)::text, 1", &[])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(1), 1);
            }
        }));
    }
    for l in load {
        l.await.unwrap();
    }
    sampler.await.unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!((1..=2).contains(&most), "server connections at most {most}");
}
