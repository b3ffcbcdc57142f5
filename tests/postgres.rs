//! `type: postgres` with real clients (tokio-postgres, psql, pgbench) against real PostgreSQL
//! servers started by the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::cluster_of;
use common::{Postgres, Throome, free_port};
use tokio_postgres::{Client, NoTls, error::SqlState};

/// A postgres service over `backends`; clients log in as alice/wonderland (SCRAM unless
/// `service_extra` says otherwise); the proxy logs in to the servers as `postgres`.
fn pg_gateway(backends: &[(u16, &str, u32)], service_extra: &str) -> (Throome, u16) {
    let listen = free_port();
    let extra = format!(
        "    username: postgres\n    auth:\n      users: {{ alice: wonderland }}\n{service_extra}"
    );
    let yaml = cluster_of("postgres", "p", "db", listen, backends, &extra, "");
    (Throome::start(&[("p", &yaml)]), listen)
}

async fn connect(port: u16, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} password={password} dbname=postgres"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread")]
async fn scram_login_queries_and_wrong_password() {
    let pg = Postgres::start();
    let port = pg.port;
    let (gw, listen) = tokio::task::spawn_blocking(move || pg_gateway(&[(port, "primary", 1)], ""))
        .await
        .unwrap();
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
    let listen = free_port();
    let yaml = cluster_of(
        "postgres",
        "m",
        "db",
        listen,
        &[(port, "primary", 1)],
        "    username: postgres\n    pool_mode: session\n    auth:\n      method: md5\n      users: { bob: builder }\n",
        "",
    );
    let _gw2 = tokio::task::spawn_blocking(move || Throome::start(&[("m", &yaml)]))
        .await
        .unwrap();
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
    let (_gw, listen) = tokio::task::spawn_blocking(move || {
        pg_gateway(
            &[(pa, "primary", 1), (pb, "primary", 1)],
            "    pool_size: 2\n",
        )
    })
    .await
    .unwrap();
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
    let (_gw, listen) =
        tokio::task::spawn_blocking(move || pg_gateway(&[(port, "primary", 1)], ""))
            .await
            .unwrap();
    let client = connect(listen, "alice", "wonderland").await.unwrap();
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    // Cancel once the server runs it (a cancel for a client between queries is ignored).
    let admin = direct(port).await;
    let running = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' \
                   AND state = 'active'";
    for _ in 0..100 {
        if admin
            .query_one(running, &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel_query(NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
}

/// A direct connection to a server (as the `postgres` superuser, trust).
async fn direct(port: u16) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

async fn show(client: &Client, name: &str) -> String {
    let rows = client.simple_query(&format!("SHOW {name}")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_string()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_state_leaks_between_clients_sharing_one_server() {
    let pg = Postgres::start();
    let port = pg.port;
    let (_gw, listen) = tokio::task::spawn_blocking(move || {
        pg_gateway(&[(port, "primary", 1)], "    pool_size: 1\n")
    })
    .await
    .unwrap();
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
    let (gw, listen) = tokio::task::spawn_blocking(move || {
        pg_gateway(&[(port, "primary", 1)], "    pool_size: 2\n")
    })
    .await
    .unwrap();
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
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
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

async fn server_port(client: &Client, sql: &str) -> i32 {
    let rows = client.simple_query(sql).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn read_write_split_sends_plain_reads_to_the_replica() {
    let primary = Postgres::start();
    let mut replica = Some(Postgres::start());
    let (p, r) = (primary.port, replica.as_ref().unwrap().port);
    let (gw, listen) = tokio::task::spawn_blocking(move || {
        let listen = free_port();
        let yaml = cluster_of(
            "postgres",
            "p",
            "db",
            listen,
            &[(p, "primary", 1), (r, "replica", 1)],
            "    username: postgres\n    read_write_split: true\n",
            "health: { interval: 0.3, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
        );
        (Throome::start(&[("p", &yaml)]), listen)
    })
    .await
    .unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_server_holding_too_many_statements_is_replaced() {
    let pg = Postgres::start();
    let port = pg.port;
    let (_gw, listen) = tokio::task::spawn_blocking(move || {
        pg_gateway(&[(port, "primary", 1)], "    pool_size: 1\n")
    })
    .await
    .unwrap();
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let pid = |row: tokio_postgres::Row| row.get::<_, i32>(0);
    let first = pid(c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    for i in 0..999 {
        c.prepare(&format!("SELECT {i}")).await.unwrap();
    }
    // 999 and pg_backend_pid's own: 1000 kept, still reused.
    let same = pid(c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    assert_eq!(same, first);
    c.prepare("SELECT 'one too many'").await.unwrap();
    let next = pid(c.query_one("SELECT pg_backend_pid()", &[]).await.unwrap());
    assert_ne!(
        next, first,
        "the server with 1002 statements was closed, not reused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn min_pool_size_keeps_servers_open() {
    let pg = Postgres::start();
    let port = pg.port;
    let extra = "    pool_size: 4\n    min_pool_size: 2\n    server_idle_timeout: 600\n";
    let (_gw, listen) =
        tokio::task::spawn_blocking(move || pg_gateway(&[(port, "primary", 1)], extra))
            .await
            .unwrap();
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let admin = direct(port).await;
    let count = "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    let mut open = 0;
    for _ in 0..100 {
        open = admin.query_one(count, &[]).await.unwrap().get::<_, i64>(0);
        if open == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 2, "topped up to min_pool_size");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_servers_are_closed_after_server_idle_timeout() {
    let pg = Postgres::start();
    let port = pg.port;
    let extra = "    server_idle_timeout: 1\n";
    let (_gw, listen) =
        tokio::task::spawn_blocking(move || pg_gateway(&[(port, "primary", 1)], extra))
            .await
            .unwrap();
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let admin = direct(port).await;
    let count = "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";
    assert_eq!(
        admin.query_one(count, &[]).await.unwrap().get::<_, i64>(0),
        1
    );
    let mut open = 1;
    for _ in 0..100 {
        open = admin.query_one(count, &[]).await.unwrap().get::<_, i64>(0);
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "the idle server was closed");
    // The client itself is unaffected: its next query gets a new server.
    let row = c.query_one("SELECT 5", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);
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
        let (gw, listen) = tokio::task::spawn_blocking(move || {
            let listen = free_port();
            let yaml = cluster_of(
                "postgres",
                "b",
                "db",
                listen,
                &[(port, "primary", 1)],
                &extra,
                "",
            );
            (Throome::start(&[("b", &yaml)]), listen)
        })
        .await
        .unwrap();
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
    let (_gw, listen) = tokio::task::spawn_blocking(move || {
        let listen = free_port();
        let yaml = cluster_of(
            "postgres",
            "w",
            "db",
            listen,
            &[(port, "primary", 1)],
            extra,
            "",
        );
        (Throome::start(&[("w", &yaml)]), listen)
    })
    .await
    .unwrap();
    let err = connect(listen, "alice", "wonderland").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_fail_fast_with_08006_when_the_primary_is_down() {
    let primary = Postgres::start();
    let port = primary.port;
    let (_gw, listen) = tokio::task::spawn_blocking(move || {
        let listen = free_port();
        let yaml = cluster_of(
            "postgres",
            "f",
            "db",
            listen,
            &[(port, "primary", 1)],
            "    username: postgres\n",
            "routing: { failover_enabled: false }\n",
        );
        (Throome::start(&[("f", &yaml)]), listen)
    })
    .await
    .unwrap();
    let c = connect(listen, "alice", "any").await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    drop(primary);
    let err = c
        .simple_query("CREATE TABLE t (x int)")
        .await
        .expect_err("no primary");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
    // The client connection stays usable: it keeps getting the same clear error.
    let err = c
        .simple_query("SELECT 1")
        .await
        .expect_err("still no server");
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err}");
}
