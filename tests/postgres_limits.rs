//! Pool limits, PgBouncer's, with tokio-postgres against a real PostgreSQL:
//! `reserve_pool_size`/`reserve_pool_timeout` (a client that waited the timeout for a full
//! pool gets one of the reserve's extra server connections; once those are taken too, the
//! next client waits out `query_wait_timeout` and gets 53300), `max_server_connections`
//! and `max_user_connections` (server connections across pools stay under the cap), and
//! `user_settings` (a user's own pool mode and pool size).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::Postgres;
use std::time::Duration;

use common::pg::{alice_on, connect, pg_gateway, server_count};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_waited_gets_a_reserve_connection() {
    let pg = Postgres::start();
    let extra = "    pool_size: 1\n    reserve_pool_size: 1\n    reserve_pool_timeout: 0.3\n    query_wait_timeout: 1.5\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let a = connect(listen, "alice", "wonderland").await.unwrap();
    a.batch_execute("BEGIN; SELECT 1").await.unwrap();
    // The pool's one server is in a's transaction: b is served from the reserve.
    let b = connect(listen, "alice", "wonderland").await.unwrap();
    b.batch_execute("BEGIN; SELECT 2").await.unwrap();
    assert_eq!(server_count(pg.port).await, 2, "pool_size plus the reserve");
    // Both taken: c waits for query_wait_timeout and is refused.
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let err = c.batch_execute("SELECT 3").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{err:?}");
    // A transaction ends: its server serves the next one.
    a.batch_execute("COMMIT").await.unwrap();
    c.batch_execute("SELECT 4").await.unwrap();
    b.batch_execute("COMMIT").await.unwrap();
}

/// Two server connections at most, by `cap` with `pool_size: 5`: alice holds two servers
/// of database `postgres` in transactions; her client of `template1` (another pool) waits,
/// and gets a server once a transaction ends (an idle one of the first pool is closed for
/// it). PostgreSQL never sees more than two.
async fn a_second_pool_waits_at_the_cap(cap: &str) {
    let pg = Postgres::start();
    let extra = format!("    pool_size: 5\n    {cap}: 2\n");
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], &extra).await;
    let (a1, a2) = (
        alice_on(listen, "postgres").await,
        alice_on(listen, "postgres").await,
    );
    for a in [&a1, &a2] {
        a.batch_execute("BEGIN; SELECT 1").await.unwrap();
    }
    // Its login already needs a server of its own database.
    let waiting = tokio::spawn(async move {
        let b = alice_on(listen, "template1").await;
        let row = b.query_one("SELECT current_database()::text", &[]).await;
        row.map(|r| r.get::<_, String>(0))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "{cap} is reached: b waits");
    a1.batch_execute("COMMIT").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, "template1");
    let servers = server_count(pg.port).await;
    assert!(servers <= 2, "{cap}: {servers} server connections");
    a2.batch_execute("COMMIT").await.unwrap();
}

/// `max_server_connections` (PgBouncer's `max_db_connections`): per backend, across pools.
#[tokio::test(flavor = "multi_thread")]
async fn server_connections_to_a_backend_stay_under_the_cap() {
    a_second_pool_waits_at_the_cap("max_server_connections").await;
}

/// `max_user_connections` (PgBouncer's): per user, across pools.
#[tokio::test(flavor = "multi_thread")]
async fn one_users_servers_stay_under_max_user_connections() {
    a_second_pool_waits_at_the_cap("max_user_connections").await;
}

/// `user_settings` (PgBouncer's `[users]`) over a transaction-mode service with one server
/// per pool: bob's clients get session pooling (an idle bob keeps his server, so a second
/// bob waits it out and gets 53300), carol's login gets a pool of two (two open
/// transactions at once, where alice's second waits); SHOW USERS says so.
#[tokio::test(flavor = "multi_thread")]
async fn user_settings_override_pool_mode_and_size() {
    let pg = Postgres::start();
    let admin = common::pg::direct(pg.port).await;
    admin
        .batch_execute("CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN")
        .await
        .unwrap();
    let extra = "    pool_size: 1\n    query_wait_timeout: 1\n    auth:\n      users: { alice: a, bob: b, carol: c }\n      admin_users: [alice]\n    user_settings:\n      bob: { pool_mode: session }\n      carol: { pool_size: 2 }\n";
    let (_gw, listen) = common::pg::service("us", &[(pg.port, "primary", 1)], extra, "").await;
    let refused = |r: Result<(), tokio_postgres::Error>| {
        let e = r.unwrap_err();
        assert_eq!(e.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e:?}");
    };

    let a1 = connect(listen, "alice", "a").await.unwrap();
    let a2 = connect(listen, "alice", "a").await.unwrap();
    a1.batch_execute("SELECT 1").await.unwrap();
    a2.batch_execute("SELECT 1").await.unwrap();
    a1.batch_execute("BEGIN").await.unwrap();
    refused(a2.batch_execute("SELECT 2").await);
    a1.batch_execute("COMMIT").await.unwrap();

    let c1 = connect(listen, "carol", "c").await.unwrap();
    let c2 = connect(listen, "carol", "c").await.unwrap();
    c1.batch_execute("BEGIN").await.unwrap();
    c2.batch_execute("BEGIN").await.unwrap();
    c1.batch_execute("COMMIT").await.unwrap();
    c2.batch_execute("COMMIT").await.unwrap();

    let b1 = connect(listen, "bob", "b").await.unwrap();
    b1.batch_execute("SELECT 1").await.unwrap();
    // Session mode lends the server at login (its pid is the client's): the second login
    // waits `query_wait_timeout` for the only one and is refused.
    let b2 = connect(listen, "bob", "b").await.map(|_| ());
    refused(b2);
    drop(b1);
    let b3 = connect(listen, "bob", "b").await.unwrap();
    b3.batch_execute("SELECT 1").await.unwrap();

    let url = format!("host=127.0.0.1 port={listen} user=alice password=a dbname=throome");
    let (console, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let users = console.simple_query("SHOW USERS").await.unwrap();
    // (name, pool_size, pool_mode, current_client_connections)
    let rows: Vec<[String; 4]> = users
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                [
                    "name",
                    "pool_size",
                    "pool_mode",
                    "current_client_connections",
                ]
                .map(|c| r.get(c).unwrap_or_default().to_string()),
            ),
            _ => None,
        })
        .collect();
    let row = |cells: [&str; 4]| cells.map(str::to_string);
    assert!(
        rows.contains(&row(["bob", "1", "session", "1"])),
        "{rows:?}"
    );
    assert!(
        rows.contains(&row(["carol", "2", "transaction", "2"])),
        "{rows:?}"
    );
}
