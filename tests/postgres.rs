//! `type: postgres` with real clients (tokio-postgres) against real PostgreSQL servers
//! started by the harness: authentication both ways, prepared statements across servers,
//! cancel, read/write split. Pool behaviour is in `postgres_pool.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::Postgres;
use common::pg::{connect, direct, pg_gateway, server_port, service, until_count};
use tokio_postgres::{Client, NoTls, error::SqlState};

#[tokio::test(flavor = "multi_thread")]
async fn scram_login_queries_and_wrong_password() {
    let pg = Postgres::start();
    let port = pg.port;
    let (gw, listen) = pg_gateway(&[(port, "primary", 1)], "").await;
    let client = connect(listen, "alice", "wonderland").await.unwrap();
    let row = client.query_one("SELECT 1 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 2);
    // Extended protocol with the unnamed statement and parameters.
    let row = client
        .query_one("SELECT $1::text || 'x'", &[&"a"])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "ax");
    client
        .batch_execute("CREATE TABLE t (id int primary key, v text)")
        .await
        .unwrap();
    client
        .execute("INSERT INTO t VALUES ($1, $2)", &[&1i32, &"one"])
        .await
        .unwrap();
    let err = connect(listen, "alice", "rabbit").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    let err = connect(listen, "mallory", "x").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    // Per-user metrics: alice's failure and an unknown name's (under one label, so a client
    // trying names cannot make a series per name), alice's queries and transactions.
    let metrics = tokio::task::spawn_blocking(move || gw.metrics())
        .await
        .unwrap();
    let value = |name: &str, user: &str| -> f64 {
        let prefix = format!("{name}{{cluster=\"p\",service=\"db\",user=\"{user}\"}} ");
        let line = metrics.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no {prefix} in {metrics}"));
        line[prefix.len()..].parse().unwrap()
    };
    assert_eq!(value("throome_pg_auth_failures_total", "alice"), 1.0);
    assert_eq!(value("throome_pg_auth_failures_total", "(unknown)"), 1.0);
    assert!(!metrics.contains("mallory"), "{metrics}");
    assert!(value("throome_pg_queries_total", "alice") >= 5.0);
    assert!(value("throome_pg_transactions_total", "alice") >= 4.0);
    assert!(value("throome_pg_wait_seconds_count", "alice") >= 4.0);
    // Time servers spent on alice's queries, within the time she held them.
    let query_time = value("throome_pg_query_time_seconds_total", "alice");
    let held = value("throome_pg_server_time_seconds_total", "alice");
    assert!(
        query_time > 0.0 && query_time <= held,
        "{query_time} {held}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn md5_login_in_session_mode() {
    let pg = Postgres::start();
    let port = pg.port;
    let extra = "    username: postgres\n    pool_mode: session\n    auth:\n      method: md5\n      users: { bob: builder }\n";
    let (_gw, listen) = service("m", &[(port, "primary", 1)], extra, "").await;
    let client = connect(listen, "bob", "builder").await.unwrap();
    let row = client.query_one("SELECT 'md5 ok'", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "md5 ok");
    let err = connect(listen, "bob", "nope").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_from_many_clients_over_a_small_pool() {
    let a = Postgres::start();
    let b = Postgres::start();
    let (pa, pb) = (a.port, b.port);
    let (_gw, listen) = pg_gateway(
        &[(pa, "primary", 1), (pb, "primary", 1)],
        "    pool_size: 2\n",
    )
    .await;
    let mut tasks = Vec::new();
    for c in 0..16i32 {
        tasks.push(tokio::spawn(async move {
            let client = connect(listen, "alice", "wonderland").await.unwrap();
            let add = client.prepare("SELECT $1::int4 + $2::int4").await.unwrap();
            let port = client.prepare("SELECT inet_server_port()").await.unwrap();
            let mut ports = std::collections::BTreeSet::new();
            for i in 0..40i32 {
                let row = client.query_one(&add, &[&c, &i]).await.unwrap();
                assert_eq!(row.get::<_, i32>(0), c + i);
                let row = client.query_one(&port, &[]).await.unwrap();
                ports.insert(row.get::<_, i32>(0));
            }
            ports
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    let expect: std::collections::BTreeSet<i32> = [pa as i32, pb as i32].into();
    assert_eq!(seen, expect, "statements prepared once ran on both servers");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_reaches_the_server_running_the_query() {
    let pg = Postgres::start();
    let port = pg.port;
    let (_gw, listen) = pg_gateway(&[(port, "primary", 1)], "").await;
    let client = connect(listen, "alice", "wonderland").await.unwrap();
    cancel_a_sleep(client, &direct(port).await).await;
}

/// Cancels a `pg_sleep` of `client` once `admin` sees it running (a cancel for a client
/// between queries is ignored) and checks the client gets 57014.
async fn cancel_a_sleep(client: Client, admin: &Client) {
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' \
                   AND state = 'active'";
    assert_eq!(until_count(admin, running, 1).await, 1);
    token.cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
}

/// A backend `host` that starts with `/` is the directory of the server's Unix-domain socket
/// (`.s.PGSQL.<port>`, libpq's rule, as PgBouncer's `host=/var/run/postgresql`): logins,
/// queries and cancel requests all go over it (the health probe shares the login path).
#[tokio::test(flavor = "multi_thread")]
async fn servers_over_a_unix_socket() {
    let pg = Postgres::start();
    let (dir, port) = (pg.socket_dir(), pg.port);
    let listen = common::free_port();
    let yaml = format!(
        "cluster_id: u\nname: u\nservices:\n  db:\n    type: postgres\n    listen: \"127.0.0.1:{listen}\"\n    username: postgres\n    host: \"{dir}\"\n    port: {port}\n    auth:\n      users: {{ alice: wonderland }}\n"
    );
    let _gw = tokio::task::spawn_blocking(move || common::Throome::start(&[("u", &yaml)]))
        .await
        .unwrap();
    let client = connect(listen, "alice", "wonderland").await.unwrap();
    // NULL: the server sees a connection that did not come over TCP.
    let row = client.query_one("SELECT inet_server_port()", &[]).await;
    assert_eq!(row.unwrap().get::<_, Option<i32>>(0), None);
    cancel_a_sleep(client, &direct(port).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_split_sends_plain_reads_to_the_replica() {
    let primary = Postgres::start();
    let mut replica = Some(Postgres::start());
    let (p, r) = (primary.port, replica.as_ref().unwrap().port);
    let (gw, listen) = service(
        "p",
        &[(p, "primary", 1), (r, "replica", 1)],
        "    username: postgres\n    read_write_split: true\n",
        "health: { interval: 0.3, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
    )
    .await;
    let (p, r) = (p as i32, r as i32);
    let c = connect(listen, "alice", "any").await.unwrap();
    assert_eq!(server_port(&c, "SELECT inet_server_port()").await, r);
    // The extended protocol too (tokio-postgres prepares, then binds).
    let row = c.query_one("SELECT inet_server_port()", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), r);
    c.simple_query("CREATE SEQUENCE s").await.unwrap();
    let volatile = "SELECT nextval('s') * 0 + inet_server_port()";
    assert_eq!(server_port(&c, volatile).await, p, "nextval writes");
    c.simple_query("BEGIN READ ONLY").await.unwrap();
    assert_eq!(server_port(&c, "SELECT inet_server_port()").await, r);
    c.simple_query("COMMIT").await.unwrap();
    c.simple_query("BEGIN").await.unwrap();
    assert_eq!(server_port(&c, "SELECT inet_server_port()").await, p);
    c.simple_query("COMMIT").await.unwrap();
    // Replica down: reads go to the primary.
    drop(replica.take());
    let gw = std::sync::Arc::new(gw);
    let down = tokio::task::spawn_blocking({
        let gw = gw.clone();
        move || {
            common::eventually(Duration::from_secs(15), || {
                gw.backend("p", "db", r as u16)["healthy"] == false
            })
        }
    });
    assert!(down.await.unwrap(), "the replica is marked down");
    assert_eq!(server_port(&c, "SELECT inet_server_port()").await, p);
}

/// Session mode: a server goes to the next client only after `server_reset_query` (DISCARD
/// ALL by default), so one client's settings do not reach the next; set empty, they do (as
/// PgBouncer's `server_reset_query = ''`). Whatever the reset drops or keeps, the next
/// client prepares and runs the statement the first one had.
#[tokio::test(flavor = "multi_thread")]
async fn session_mode_resets_a_server_before_its_next_client() {
    let pg = Postgres::start();
    let seen = "SELECT coalesce(current_setting('my.var', true), '')";
    for (reset, leaked) in [
        ("", false),
        ("    server_reset_query: \"\"\n", true),
        ("    server_reset_query: RESET ALL\n", false),
    ] {
        let extra = format!("    pool_mode: session\n    pool_size: 1\n{reset}");
        let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], &extra).await;
        let a = connect(listen, "alice", "wonderland").await.unwrap();
        a.batch_execute("SET my.var = 'from a'").await.unwrap();
        let statement = a.prepare("SELECT 40 + $1::int").await.unwrap();
        assert_eq!(
            a.query_one(&statement, &[&2])
                .await
                .unwrap()
                .get::<_, i32>(0),
            42
        );
        drop((statement, a));
        // The pool's one server, once a has left and it was reset.
        let b = connect(listen, "alice", "wonderland").await.unwrap();
        let value: String = b.query_one(seen, &[]).await.unwrap().get(0);
        assert_eq!(value == "from a", leaked, "{reset:?}: {value:?}");
        // The same statement as a's: the proxy's record of what the server has prepared
        // must have survived the reset exactly.
        let statement = b.prepare("SELECT 40 + $1::int").await.unwrap();
        assert_eq!(
            b.query_one(&statement, &[&1])
                .await
                .unwrap()
                .get::<_, i32>(0),
            41
        );
    }
}

/// Without `auth` the proxy checks no names: per-user series appear only for users a server
/// accepted (a client trying a name that does not exist makes none), and with the service's
/// own `username` every client counts as that user.
#[tokio::test(flavor = "multi_thread")]
async fn unchecked_names_make_no_metric_series() {
    let pg = Postgres::start();
    let (gw, listen) = service("t", &[(pg.port, "primary", 1)], "", "").await;
    let trust = |user: &str| format!("host=127.0.0.1 port={listen} user={user} dbname=postgres");
    let (c, conn) = tokio_postgres::connect(&trust("postgres"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute("SELECT 1").await.unwrap();
    let err = tokio_postgres::connect(&trust("ghost"), NoTls)
        .await
        .err()
        .unwrap();
    assert!(format!("{err:?}").contains("ghost"), "{err:?}");
    let (forced_gw, forced) = service(
        "f",
        &[(pg.port, "primary", 1)],
        "    username: postgres\n",
        "",
    )
    .await;
    let url = format!("host=127.0.0.1 port={forced} user=anyone dbname=postgres");
    let (f, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);
    f.batch_execute("SELECT 1").await.unwrap();

    let metrics = tokio::task::spawn_blocking(move || (gw.metrics(), forced_gw.metrics()))
        .await
        .unwrap();
    for text in [&metrics.0, &metrics.1] {
        assert!(
            !text.contains("ghost") && !text.contains("anyone"),
            "{text}"
        );
    }
    let series = "throome_pg_queries_total{cluster=\"t\",service=\"db\",user=\"postgres\"}";
    assert!(metrics.0.contains(series), "{}", metrics.0);
    let series = "throome_pg_queries_total{cluster=\"f\",service=\"db\",user=\"postgres\"}";
    assert!(metrics.1.contains(series), "{}", metrics.1);
}
