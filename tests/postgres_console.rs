//! The admin console's client and database controls, PgBouncer's: `KILL_CLIENT id`,
//! `KILL db`, `PAUSE db` / `RESUME db` and `SHOW STATE`, against a real PostgreSQL with real
//! clients (psql, tokio-postgres).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::Postgres;
use common::pg::{alice_on, direct, pg_gateway, until_count};
use common::servers::pg_bin;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const ADMIN: &str = "      admin_users: [alice]\n    pool_size: 2\n";

/// The rows of a console command, as (column, value) lookups.
async fn rows(console: &Client, sql: &str) -> Vec<tokio_postgres::SimpleQueryRow> {
    let messages = console.simple_query(sql).await.unwrap();
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// SHOW STATE's value for `key`.
async fn state(console: &Client, key: &str) -> String {
    rows(console, "SHOW STATE")
        .await
        .iter()
        .find(|r| r.get("key") == Some(key))
        .and_then(|r| r.get("value").map(str::to_string))
        .unwrap()
}

/// KILL_CLIENT ends one client: psql, mid-query, is told PostgreSQL's 57P01 message; the
/// query it left running is cancelled on the server (closing the connection alone would
/// leave `pg_sleep` running); another client of the same pool goes on. Unknown and
/// malformed ids are errors.
#[tokio::test(flavor = "multi_thread")]
async fn kill_client_ends_one_client_and_its_query() {
    let pg = Postgres::start();
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], ADMIN).await;
    let bystander = alice_on(listen, "postgres").await;
    bystander.simple_query("SELECT 1").await.unwrap();
    let sleeper = tokio::task::spawn_blocking(move || {
        std::process::Command::new(pg_bin("psql"))
            .args(["-h", "127.0.0.1", "-p", &listen.to_string(), "-U", "alice"])
            .args(["-d", "postgres", "-X", "-c", "SELECT pg_sleep(60)"])
            .env("PGPASSWORD", "wonderland")
            .output()
            .unwrap()
    });
    let console = alice_on(listen, "throome").await;
    let mut id = None;
    for _ in 0..100 {
        let clients = rows(&console, "SHOW CLIENTS").await;
        id = clients
            .iter()
            .find(|r| r.get("state") == Some("active"))
            .and_then(|r| r.get("id").map(str::to_string));
        if id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = id.expect("psql's client shows as active");
    console
        .simple_query(&format!("KILL_CLIENT {id}"))
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), sleeper)
        .await
        .expect("psql ends when killed")
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("terminating connection due to administrator command"),
        "{said}"
    );
    let admin = direct(pg.port).await;
    let running = "SELECT count(*) FROM pg_stat_activity \
                   WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'";
    assert_eq!(until_count(&admin, running, 0).await, 0, "cancelled");
    bystander.simple_query("SELECT 2").await.unwrap();

    let err = console
        .simple_query("KILL_CLIENT 999999")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_OBJECT), "{err:?}");
    let err = console.simple_query("KILL_CLIENT x").await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PARAMETER_VALUE),
        "{err:?}"
    );
}

/// KILL of one database: its clients are disconnected with 57P01 and its server
/// connections closed; it stays paused (a new client logs in, its query waits) until
/// RESUME. A client of another database is untouched throughout. PAUSE and RESUME without
/// a database show in SHOW STATE.
#[tokio::test(flavor = "multi_thread")]
async fn kill_of_a_database_pauses_it_until_resume() {
    let pg = Postgres::start();
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], ADMIN).await;
    let url =
        format!("host=127.0.0.1 port={listen} user=alice password=wonderland dbname=postgres");
    let (victim, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let told = tokio::spawn(conn);
    victim.simple_query("SELECT 1").await.unwrap();
    let other = alice_on(listen, "template1").await;
    other.simple_query("SELECT 1").await.unwrap();
    let console = alice_on(listen, "throome").await;

    console.simple_query("KILL postgres").await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), told)
        .await
        .expect("the killed client's connection ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
    assert!(victim.simple_query("SELECT 1").await.is_err());
    let admin = direct(pg.port).await;
    let of_postgres = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'postgres' \
                       AND datname = 'postgres' AND pid <> pg_backend_pid()";
    assert_eq!(
        until_count(&admin, of_postgres, 0).await,
        0,
        "servers closed"
    );
    other.simple_query("SELECT 2").await.unwrap();
    assert_eq!(state(&console, "paused").await, "no", "only one database");

    let late = alice_on(listen, "postgres").await;
    let query = tokio::spawn(async move { late.simple_query("SELECT 3").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!query.is_finished(), "a killed database is paused");
    other.simple_query("SELECT 4").await.unwrap();
    console.simple_query("RESUME postgres").await.unwrap();
    query.await.unwrap().unwrap();

    console.simple_query("PAUSE").await.unwrap();
    assert_eq!(state(&console, "paused").await, "yes");
    assert_eq!(state(&console, "active").await, "no");
    console.simple_query("RESUME").await.unwrap();
    assert_eq!(state(&console, "paused").await, "no");
    other.simple_query("SELECT 5").await.unwrap();
}

/// WAIT_CLOSE after RECONNECT waits while a client's transaction holds a server of the old
/// epoch, gives up with 57014 after `query_wait_timeout`, and answers once that server has
/// come back (and closed); with nothing to wait for it answers at once.
#[tokio::test(flavor = "multi_thread")]
async fn wait_close_waits_for_servers_still_lent() {
    let pg = Postgres::start();
    let extra = format!("{ADMIN}    query_wait_timeout: 1\n");
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], &extra).await;
    let console = std::sync::Arc::new(alice_on(listen, "throome").await);
    console.simple_query("WAIT_CLOSE").await.unwrap();
    let c = alice_on(listen, "postgres").await;
    c.batch_execute("BEGIN; SELECT 1").await.unwrap();
    console.simple_query("RECONNECT").await.unwrap();

    let err = console.simple_query("WAIT_CLOSE").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    let waiting = console.clone();
    let wait = tokio::spawn(async move { waiting.simple_query("WAIT_CLOSE postgres").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !wait.is_finished(),
        "the transaction still holds its server"
    );
    // Another database's pools have nothing to wait for.
    let other = alice_on(listen, "throome").await;
    other.simple_query("WAIT_CLOSE template1").await.unwrap();
    c.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("answers once the server is back")
        .unwrap()
        .unwrap();
}
