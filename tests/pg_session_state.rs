//! Transaction pooling that keeps each client's session state (`session_state: track`):
//! clients sharing servers with tokio-postgres against a real PostgreSQL. What a client
//! sets stays its own; what cannot be replayed pins it (`max_pinned`, SHOW CLIENTS, SHOW
//! POOLS, metrics); nothing is left for the next client when it leaves, mid-transaction or
//! pinned. The message-by-message comparison with the server itself is in
//! `pg_differential.rs` (`state_settings`, `state_pins`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::Postgres;
use common::pg::{alice_on, direct, pg_gateway};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The first column of each row `sql` returns, as text ("" for NULL).
async fn column(client: &Client, sql: &str) -> Vec<String> {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_string()),
            _ => None,
        })
        .collect()
}

async fn one(client: &Client, sql: &str) -> String {
    column(client, sql).await.join(",")
}

/// Who the client is and its settings, in one row.
const WHO: &str = "SELECT concat_ws(' ', current_user, current_setting('search_path'), \
    current_setting('statement_timeout'), current_setting('work_mem'))";

/// The state a server could carry over from its last client.
const LEFTOVERS: &str = "SELECT concat_ws(' ', \
    (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()), \
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
    (SELECT count(*) FROM pg_listening_channels()), \
    (SELECT count(*) FROM pg_cursors), \
    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql))";

async fn server_with_roles(pg: &Postgres) {
    direct(pg.port)
        .await
        .batch_execute("CREATE ROLE r1; CREATE SCHEMA s1; GRANT USAGE ON SCHEMA s1 TO r1")
        .await
        .unwrap();
}

/// The scenario: A sets a role, a search_path, a timeout and work_mem, makes a
/// temporary table and takes an advisory lock; B, sharing the pool, has none of it, and A
/// keeps all of it across its transactions. After A leaves, pinned, the server it held
/// serves B with nothing of A's left.
#[tokio::test(flavor = "multi_thread")]
async fn a_keeps_its_state_and_b_sees_none_of_it() {
    let pg = Postgres::start();
    server_with_roles(&pg).await;
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], "    pool_size: 2\n").await;
    let a = alice_on(listen, "postgres").await;
    let b = alice_on(listen, "postgres").await;
    let default = one(&b, WHO).await;
    assert_eq!(default, "postgres \"$user\", public 0 4MB");
    a.batch_execute(
        "SET ROLE r1; SET search_path = s1; SET statement_timeout = '123s'; \
         SELECT set_config('work_mem', '64MB', false)",
    )
    .await
    .unwrap();
    a.simple_query("CREATE TEMP TABLE t(x int)").await.unwrap();
    a.simple_query("INSERT INTO t VALUES (7)").await.unwrap();
    a.simple_query("SELECT pg_advisory_lock(7)").await.unwrap();
    for _ in 0..3 {
        assert_eq!(one(&b, WHO).await, default);
        assert_eq!(one(&a, WHO).await, "r1 s1 123s 64MB");
        assert_eq!(one(&a, "SELECT x FROM t").await, "7");
        assert_eq!(one(&b, "SELECT pg_try_advisory_xact_lock(7)").await, "f");
        assert_eq!(one(&b, LEFTOVERS).await, "0 0 0 0 0");
    }
    // A's failed SET and its rolled-back SET leave its state as it was.
    let bad = a.simple_query("SET statement_timeout = 'abc'").await;
    assert_eq!(
        bad.unwrap_err().code(),
        Some(&SqlState::INVALID_PARAMETER_VALUE)
    );
    a.batch_execute("BEGIN; SET work_mem = '1MB'; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(one(&a, WHO).await, "r1 s1 123s 64MB");
    a.simple_query("LISTEN ch").await.unwrap();
    a.simple_query("PREPARE p AS SELECT 1").await.unwrap();
    a.batch_execute("BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT")
        .await
        .unwrap();
    assert_eq!(one(&a, LEFTOVERS).await, "1 1 1 1 1");
    drop(a);
    // Both servers in use at once: whichever held A's session is one of them.
    let c = alice_on(listen, "postgres").await;
    b.simple_query("BEGIN").await.unwrap();
    c.simple_query("BEGIN").await.unwrap();
    for client in [&b, &c] {
        assert_eq!(one(client, WHO).await, default);
        assert_eq!(one(client, LEFTOVERS).await, "0 0 0 0 0");
        assert_eq!(
            one(client, "SELECT pg_try_advisory_xact_lock(7)").await,
            "t"
        );
        client.simple_query("ROLLBACK").await.unwrap();
    }
}

/// A client that leaves in the middle of a transaction in which it changed its role and
/// settings: the server is closed (PostgreSQL rolls the transaction back), and the next
/// client of the one-server pool gets a server as the login made it.
#[tokio::test(flavor = "multi_thread")]
async fn leaving_mid_transaction_leaves_nothing() {
    let pg = Postgres::start();
    server_with_roles(&pg).await;
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], "    pool_size: 1\n").await;
    let a = alice_on(listen, "postgres").await;
    a.batch_execute("SET work_mem = '2MB'").await.unwrap();
    a.batch_execute("BEGIN; SET ROLE r1; SET search_path = s1; SELECT pg_advisory_lock(1)")
        .await
        .unwrap();
    drop(a);
    let b = alice_on(listen, "postgres").await;
    assert_eq!(one(&b, WHO).await, "postgres \"$user\", public 0 4MB");
    assert_eq!(one(&b, LEFTOVERS).await, "0 0 0 0 0");
}

/// `max_pinned`: with one client pinned (by a temporary table) another's LISTEN gets
/// SQLSTATE 53300 naming the reason, in a transaction block too, which then fails as it
/// would on any error; unpinned, it may LISTEN. SHOW CLIENTS, SHOW POOLS and the metrics
/// tell who is pinned and why.
#[tokio::test(flavor = "multi_thread")]
async fn max_pinned_refuses_new_pins_with_53300_and_shows_who_is_pinned() {
    let pg = Postgres::start();
    let extra = "      admin_users: [alice]\n    pool_size: 2\n    max_pinned: 1\n";
    let (gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let a = alice_on(listen, "postgres").await;
    let b = alice_on(listen, "postgres").await;
    let console = alice_on(listen, "throome").await;
    a.simple_query("CREATE TEMP TABLE t(x int)").await.unwrap();
    let refused = b.simple_query("LISTEN ch").await.unwrap_err();
    let db = refused.as_db_error().unwrap();
    assert_eq!(db.code(), &SqlState::TOO_MANY_CONNECTIONS);
    assert!(db.message().contains("LISTEN would pin"), "{db:?}");
    assert!(db.message().contains("max_pinned (1)"), "{db:?}");
    b.simple_query("BEGIN").await.unwrap();
    let in_block = b
        .simple_query("SELECT pg_advisory_lock(3)")
        .await
        .unwrap_err();
    assert_eq!(in_block.code(), Some(&SqlState::TOO_MANY_CONNECTIONS));
    let aborted = b.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(aborted.code(), Some(&SqlState::IN_FAILED_SQL_TRANSACTION));
    b.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(one(&b, "SELECT 1").await, "1", "b is served meanwhile");

    let clients = console.simple_query("SHOW CLIENTS").await.unwrap();
    let pinned: Vec<String> = clients
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get("pinned").map(str::to_string),
            _ => None,
        })
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(pinned, ["temporary table"]);
    let pools = console.simple_query("SHOW POOLS").await.unwrap();
    let counts: Vec<String> = pools
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get("pinned").map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(counts, ["1"]);
    let metrics = gw.metrics();
    assert!(
        metrics.contains(
            "throome_pg_pinned_clients{cluster=\"p\",service=\"db\",reason=\"temporary table\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("kind=\"max_pinned\"} 2"), "{metrics}");

    a.simple_query("DROP TABLE t").await.unwrap();
    b.simple_query("LISTEN ch").await.unwrap();
    let metrics = gw.metrics();
    assert!(
        metrics.contains("reason=\"temporary table\"} 0")
            && metrics.contains("reason=\"LISTEN\"} 1"),
        "{metrics}"
    );
    b.simple_query("UNLISTEN *").await.unwrap();
    assert!(gw.metrics().contains("reason=\"LISTEN\"} 0"));
}

/// `session_state: discard` is PgBouncer's transaction pooling: nothing is read back,
/// nobody is pinned, and the next client on the server finds what the last one left.
#[tokio::test(flavor = "multi_thread")]
async fn discard_keeps_pgbouncers_behaviour() {
    let pg = Postgres::start();
    let extra = "    pool_size: 1\n    session_state: discard\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let a = alice_on(listen, "postgres").await;
    let b = alice_on(listen, "postgres").await;
    a.simple_query("CREATE TEMP TABLE t(x int)").await.unwrap();
    let served = tokio::time::timeout(Duration::from_secs(5), one(&b, LEFTOVERS)).await;
    assert_eq!(served.unwrap(), "1 0 0 0 0", "b shares a's server");
}
