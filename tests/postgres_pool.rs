//! `type: postgres` pool behaviour with tokio-postgres against real PostgreSQL servers:
//! state isolation between clients sharing servers, lost servers, the statement cap per
//! server, min_pool_size and idle timeouts, a primary that is down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::Postgres;
use common::pg::{
    SERVER_CONNECTIONS, alice_on, connect, direct, pg_gateway, service, show, until_count,
};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn no_state_leaks_between_clients_sharing_one_server() {
    let pg = Postgres::start();
    let port = pg.port;
    let (_gw, listen) = pg_gateway(&[(port, "primary", 1)], "    pool_size: 1\n").await;
    let default_tz = show(&direct(port).await, "TimeZone").await;
    let a = connect(listen, "alice", "wonderland").await.unwrap();
    let b = connect(listen, "alice", "wonderland").await.unwrap();
    a.batch_execute("SET TimeZone = 'Asia/Tokyo'")
        .await
        .unwrap();
    assert_eq!(
        show(&b, "TimeZone").await,
        default_tz,
        "b does not get a's SET"
    );
    assert_eq!(
        show(&a, "TimeZone").await,
        "Asia/Tokyo",
        "a's SET follows it"
    );
    b.batch_execute("CREATE TABLE iso (x int PRIMARY KEY)")
        .await
        .unwrap();
    // A client leaves in the middle of a transaction holding a row lock.
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    c.batch_execute("BEGIN; INSERT INTO iso VALUES (1)")
        .await
        .unwrap();
    drop(c);
    // The only server slot is free again, the transaction rolled back, the lock gone.
    let insert = b.execute("INSERT INTO iso VALUES (1)", &[]);
    let inserted = tokio::time::timeout(Duration::from_secs(10), insert)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inserted, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_mid_transaction_ends_only_that_transaction() {
    let pg = Postgres::start();
    let port = pg.port;
    let (gw, listen) = pg_gateway(&[(port, "primary", 1)], "    pool_size: 2\n").await;
    let victim = connect(listen, "alice", "wonderland").await.unwrap();
    let bystander = connect(listen, "alice", "wonderland").await.unwrap();
    victim.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let admin = direct(port).await;
    let killed = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE state = 'idle in transaction'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.get::<_, i64>(0), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = victim
        .simple_query("SELECT 2")
        .await
        .expect_err("the transaction is gone");
    // The server's own error, as an ERROR: the client's connection goes on.
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err}");
    // The victim's connection is still usable, and the bystander never noticed.
    let row = victim.query_one("SELECT 3", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    let row = bystander.query_one("SELECT 4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 4);
    let metrics = tokio::task::spawn_blocking(move || gw.metrics())
        .await
        .unwrap();
    assert!(metrics.contains("kind=\"backend_io\""), "{metrics}");
}

/// Past the default `max_prepared_statements` (1000) a server is not replaced: it stays the
/// same connection and holds at most 1000 statements.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_at_the_statement_limit_is_kept_and_bounded() {
    let pg = Postgres::start();
    let port = pg.port;
    let (_gw, listen) = pg_gateway(&[(port, "primary", 1)], "    pool_size: 1\n").await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let first = pid(c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    for i in 0..1100 {
        c.prepare(&format!("SELECT {i}")).await.unwrap();
    }
    let same = pid(c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    assert_eq!(same, first, "the server was kept");
    let sql = "SELECT count(*)::int FROM pg_prepared_statements";
    let held = c.query_one(sql, &[]).await.unwrap().get::<_, i32>(0);
    assert_eq!(held, 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn min_pool_size_keeps_servers_open() {
    let pg = Postgres::start();
    let port = pg.port;
    let extra = "    pool_size: 4\n    min_pool_size: 2\n    server_idle_timeout: 600\n";
    let (_gw, listen) = pg_gateway(&[(port, "primary", 1)], extra).await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let admin = direct(port).await;
    let open = until_count(&admin, SERVER_CONNECTIONS, 2).await;
    assert_eq!(open, 2, "topped up to min_pool_size");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_servers_are_closed_after_server_idle_timeout() {
    let pg = Postgres::start();
    let port = pg.port;
    let extra = "    server_idle_timeout: 1\n";
    let (_gw, listen) = pg_gateway(&[(port, "primary", 1)], extra).await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let admin = direct(port).await;
    let server = |row: tokio_postgres::Row| row.get::<_, i64>(0);
    assert_eq!(
        server(admin.query_one(SERVER_CONNECTIONS, &[]).await.unwrap()),
        1
    );
    let open = until_count(&admin, SERVER_CONNECTIONS, 0).await;
    assert_eq!(open, 0, "the idle server was closed");
    // The client itself is unaffected: its next query gets a new server.
    let row = c.query_one("SELECT 5", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_fail_fast_with_08006_when_the_primary_is_down() {
    let primary = Postgres::start();
    let port = primary.port;
    let (_gw, listen) = service(
        "f",
        &[(port, "primary", 1)],
        "    username: postgres\n",
        "routing: { failover_enabled: false }\n",
    )
    .await;
    let c = connect(listen, "alice", "any").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    drop(primary);
    let err = c
        .simple_query("CREATE TABLE t (x int)")
        .await
        .expect_err("no primary");
    // The query may meet the server's own shutdown error (57P01, passed on as the server
    // gave it) if it went out on a pooled connection the shutdown had not yet closed.
    let code = err.code();
    assert!(
        code == Some(&SqlState::CONNECTION_FAILURE) || code == Some(&SqlState::ADMIN_SHUTDOWN),
        "{err}"
    );
    // The client connection stays usable: it keeps getting the same clear error.
    let err = c
        .simple_query("SELECT 1")
        .await
        .expect_err("still no server");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
}

/// A server holds at most `max_prepared_statements`: a client cycling through more statements
/// than that on one server connection gets right answers every time, while the proxy closes
/// the least recently used on the server to prepare the next (PgBouncer >= 1.21).
#[tokio::test(flavor = "multi_thread")]
async fn a_server_keeps_only_its_most_recently_used_statements() {
    let pg = Postgres::start();
    let extra = "    pool_size: 1\n    max_prepared_statements: 2\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let mut statements = Vec::new();
    for i in 0..5 {
        let sql = format!("SELECT {i}::int + $1::int");
        statements.push(c.prepare(&sql).await.unwrap());
    }
    for _ in 0..3 {
        for (i, st) in (0i32..).zip(&statements) {
            let v: i32 = c.query_one(st, &[&10i32]).await.unwrap().get(0);
            assert_eq!(v, i + 10);
        }
    }
    let rows = c
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .unwrap();
    let count = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(count.as_deref(), Some("2"));
}

/// A client with `options` (here `-c search_path=...`, as libpq's PGOPTIONS sends) as a
/// startup parameter.
async fn connect_with_options(
    port: u16,
    options: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("alice")
        .password("wonderland")
        .dbname("postgres")
        .options(options);
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// Startup settings beyond the reported parameters (`options`' `-c` settings, which
/// PgBouncer refuses unless told to ignore them) follow each client onto whichever server
/// it gets, even when clients with different values share one server.
#[tokio::test(flavor = "multi_thread")]
async fn startup_options_follow_each_client_across_a_shared_server() {
    let pg = Postgres::start();
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], "    pool_size: 1\n").await;
    let a = connect_with_options(
        listen,
        "-c search_path=schema_a,public --statement-timeout=1234",
    )
    .await
    .unwrap();
    let b = connect_with_options(listen, "-c search_path=schema_b")
        .await
        .unwrap();
    let plain = connect(listen, "alice", "wonderland").await.unwrap();
    let default_path = show(&direct(pg.port).await, "search_path").await;
    for _ in 0..3 {
        assert_eq!(show(&a, "search_path").await, "schema_a,public");
        assert_eq!(show(&a, "statement_timeout").await, "1234ms");
        assert_eq!(show(&b, "search_path").await, "schema_b");
        // A client without options gets the server's default, not what others set.
        assert_eq!(show(&plain, "search_path").await, default_path);
    }
    // A setting the server does not know fails the login with the server's own error; a
    // switch other than -c, or a replication connection, is refused by the proxy.
    let err = connect_with_options(listen, "-c no_such_setting=1")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_OBJECT), "{err:?}");
    let err = connect_with_options(listen, "-d 5").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::PROTOCOL_VIOLATION), "{err:?}");
}

/// `idle_transaction_timeout` (PgBouncer's): a client that opens a transaction and goes
/// quiet is disconnected with PostgreSQL's 25P03, its transaction rolled back and its
/// server free for others; `client_idle_timeout` closes clients idle between transactions
/// (57P05), while a busy client is never cut.
#[tokio::test(flavor = "multi_thread")]
async fn idle_clients_are_closed_after_their_timeouts() {
    let pg = Postgres::start();
    let extra =
        "    pool_size: 1\n    idle_transaction_timeout: 0.5\n    client_idle_timeout: 1.5\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let setup = connect(listen, "alice", "wonderland").await.unwrap();
    setup
        .batch_execute("CREATE TABLE held (x int PRIMARY KEY)")
        .await
        .unwrap();
    drop(setup);
    let idler = connect(listen, "alice", "wonderland").await.unwrap();
    idler
        .batch_execute("BEGIN; INSERT INTO held VALUES (1)")
        .await
        .unwrap();
    // The only server is held until the timeout frees it and rolls the insert back.
    let other = connect(listen, "alice", "wonderland").await.unwrap();
    let insert = other.execute("INSERT INTO held VALUES (1)", &[]);
    let inserted = tokio::time::timeout(Duration::from_secs(10), insert)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inserted, 1);
    let err = idler.batch_execute("COMMIT").await.err().unwrap();
    assert!(
        err.is_closed() || err.code() == Some(&SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT),
        "{err:?}"
    );
    // Busy for longer than the idle limit, in short steps: never cut.
    for _ in 0..4 {
        other.batch_execute("SELECT pg_sleep(0.5)").await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = other.batch_execute("SELECT 1").await.err().unwrap();
    assert!(err.is_closed(), "{err:?}");
}

/// `query_timeout` (PgBouncer's): a query running longer is cancelled on its server, the
/// client gets PostgreSQL's 57014 and its connection stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn long_queries_are_cancelled_after_query_timeout() {
    let pg = Postgres::start();
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], "    query_timeout: 0.5\n").await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let err = c.batch_execute("SELECT pg_sleep(30)").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
    // Quick queries are untouched, and the connection goes on.
    for _ in 0..3 {
        c.batch_execute("SELECT pg_sleep(0.2)").await.unwrap();
    }
}

/// Console RECONNECT (PgBouncer's): the pool's server connections close as they come back
/// and new ones serve. DISABLE refuses new clients of a database with PostgreSQL's 55000
/// while connected ones go on; ENABLE lets them in again.
#[tokio::test(flavor = "multi_thread")]
async fn reconnect_and_disable_from_the_console() {
    let pg = Postgres::start();
    let extra = "      admin_users: [alice]\n    pool_size: 1\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let pid = "SELECT pg_backend_pid()";
    let before: i32 = c.query_one(pid, &[]).await.unwrap().get(0);
    let console = alice_on(listen, "throome").await;
    console.simple_query("RECONNECT").await.unwrap();
    let after: i32 = c.query_one(pid, &[]).await.unwrap().get(0);
    assert_ne!(before, after, "a new server connection after RECONNECT");
    // A server lent out during RECONNECT finishes its transaction, then closes.
    c.batch_execute("BEGIN").await.unwrap();
    let lent: i32 = c.query_one(pid, &[]).await.unwrap().get(0);
    console.simple_query("RECONNECT postgres").await.unwrap();
    assert_eq!(c.query_one(pid, &[]).await.unwrap().get::<_, i32>(0), lent);
    c.batch_execute("COMMIT").await.unwrap();
    let after: i32 = c.query_one(pid, &[]).await.unwrap().get(0);
    assert_ne!(after, lent, "closed when it came back");

    console.simple_query("DISABLE postgres").await.unwrap();
    let err = connect(listen, "alice", "wonderland").await.err().unwrap();
    assert_eq!(
        err.code(),
        Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
        "{err:?}"
    );
    assert_eq!(c.query_one(pid, &[]).await.unwrap().get::<_, i32>(0), after);
    console.simple_query("ENABLE postgres").await.unwrap();
    let d = connect(listen, "alice", "wonderland").await.unwrap();

    // A client waiting for the pool's one server shows in SHOW POOLS, with how long.
    c.batch_execute("BEGIN").await.unwrap();
    let waiting = tokio::spawn(async move { d.batch_execute("SELECT 1").await });
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let pools = console.simple_query("SHOW POOLS").await.unwrap();
    let row = pools
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .unwrap();
    assert_eq!(row.get("cl_waiting"), Some("1"));
    let max_wait: u64 = row.get("maxwait").unwrap().parse().unwrap();
    assert!(max_wait >= 1, "waited over a second: {max_wait}");
    c.batch_execute("COMMIT").await.unwrap();
    waiting.await.unwrap().unwrap();
}
