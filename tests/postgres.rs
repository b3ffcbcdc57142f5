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
    // Per-user metrics: failures for both names, alice's queries and transactions.
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
    assert_eq!(value("throome_pg_auth_failures_total", "mallory"), 1.0);
    assert!(value("throome_pg_queries_total", "alice") >= 5.0);
    assert!(value("throome_pg_transactions_total", "alice") >= 4.0);
    assert!(value("throome_pg_wait_seconds_count", "alice") >= 4.0);
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
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    // Cancel once the server runs it (a cancel for a client between queries is ignored).
    let admin = direct(port).await;
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' \
                   AND state = 'active'";
    assert_eq!(until_count(&admin, running, 1).await, 1);
    token.cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
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

/// Makes the server ask for passwords: `scram_user` (SCRAM-SHA-256), `md5_user` (md5) and
/// `clear_user` (cleartext),
/// through pg_hba.conf rules in front of the harness's `trust` default.
async fn require_passwords(admin: &Client) {
    admin
        .batch_execute(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw'; \
             CREATE ROLE clear_user LOGIN PASSWORD 'clear-pw'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';",
        )
        .await
        .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let old = std::fs::read_to_string(&hba).unwrap();
    let rules =
        "host all scram_user 127.0.0.1/32 scram-sha-256\nhost all md5_user 127.0.0.1/32 md5\n";
    std::fs::write(&hba, format!("{rules}{old}")).unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_logs_in_to_servers_with_scram_and_md5() {
    let pg = Postgres::start();
    let port = pg.port;
    require_passwords(&direct(port).await).await;
    for (user, password) in [
        ("scram_user", "scram-pw"),
        ("md5_user", "md5-pw"),
        ("clear_user", "clear-pw"),
    ] {
        let extra = format!(
            "    username: {user}\n    password: {password}\n    database: postgres\n    auth:\n      users: {{ alice: wonderland }}\n"
        );
        let (gw, listen) = service("b", &[(port, "primary", 1)], &extra, "").await;
        let c = connect(listen, "alice", "wonderland").await.unwrap();
        let who: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
        drop(gw);
    }
    // A wrong backend password: the client gets the server's own 28P01.
    let extra = "    username: scram_user\n    password: wrong\n    database: postgres\n    auth:\n      users: { alice: wonderland }\n";
    let (_gw, listen) = service("w", &[(port, "primary", 1)], extra, "").await;
    let err = connect(listen, "alice", "wonderland").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// With neither `username` nor `password` in the service, clients log in to servers as
/// themselves: with their password from `auth.users`, or, where that entry is the server's
/// own SCRAM verifier (`pg_authid.rolpassword`), with the key the client's SCRAM proof
/// revealed: no password is stored in the configuration.
#[tokio::test(flavor = "multi_thread")]
async fn clients_log_in_to_servers_as_themselves() {
    let pg = Postgres::start();
    let port = pg.port;
    let admin = direct(port).await;
    require_passwords(&admin).await;
    let sql = "SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'";
    let verifier: String = admin.query_one(sql, &[]).await.unwrap().get(0);
    let users = |scram: &str| {
        format!(
            "    auth:\n      users:\n        scram_user: \"{scram}\"\n        md5_user: md5-pw\n"
        )
    };
    let (_gw, listen) = service("s", &[(port, "primary", 1)], &users(&verifier), "").await;
    for (user, password) in [("scram_user", "scram-pw"), ("md5_user", "md5-pw")] {
        let c = connect(listen, user, password).await.unwrap();
        let sql = "SELECT current_user::text";
        let who: String = c.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(who, user);
    }
    let err = connect(listen, "scram_user", "nope").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");

    // The same password under another salt is another secret: the client passes the proxy,
    // but its key does not open the server, and it is told so.
    let other = postgres_protocol::password::scram_sha_256(b"scram-pw");
    let (_gw2, listen) = service("o", &[(port, "primary", 1)], &users(&other), "").await;
    let err = connect(listen, "scram_user", "scram-pw")
        .await
        .err()
        .unwrap();
    let text = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        text.as_deref().is_some_and(|t| t.contains("differs")),
        "{err:?}"
    );
}

/// Users missing from `auth.users` are looked up with the service's auth query (PgBouncer's
/// `auth_query`): their SCRAM verifier checks the client, and the key its proof reveals logs
/// in to servers as that user.
#[tokio::test(flavor = "multi_thread")]
async fn users_are_looked_up_with_the_auth_query() {
    let pg = Postgres::start();
    let port = pg.port;
    require_passwords(&direct(port).await).await;
    let with = |sql: &str| {
        format!(
            "    auth:\n      query:\n        sql: \"{sql} WHERE rolname = $1\"\n        user: postgres\n"
        )
    };
    let extra = with("SELECT rolpassword FROM pg_authid");
    let (_gw, listen) = service("q", &[(port, "primary", 1)], &extra, "").await;
    let c = connect(listen, "scram_user", "scram-pw").await.unwrap();
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "scram_user");
    // A wrong password, no such role, and a role whose secret is an md5 hash (not a
    // verifier): all the same 28P01.
    for (user, password) in [
        ("scram_user", "nope"),
        ("nobody", "scram-pw"),
        ("md5_user", "md5-pw"),
    ] {
        let err = connect(listen, user, password).await.err().unwrap();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {err}"
        );
    }

    // A query that fails: the client is told the lookup failed, not that its password was
    // wrong.
    let extra = with("SELECT no_such_column FROM pg_authid");
    let (_gw2, listen) = service("f", &[(port, "primary", 1)], &extra, "").await;
    let err = connect(listen, "scram_user", "scram-pw")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err:?}");
}
