//! PostgreSQL helpers for the integration tests: services through Throome, real clients.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::gateway::cluster_of;
use super::{Throome, free_port};

/// A postgres service `db` in cluster `id`, the gateway started off the async runtime.
pub async fn service(
    id: &str,
    backends: &[(u16, &str, u32)],
    service_extra: &str,
    cluster_extra: &str,
) -> (Throome, u16) {
    let (id, service_extra, cluster_extra) = (
        id.to_string(),
        service_extra.to_string(),
        cluster_extra.to_string(),
    );
    let backends: Vec<(u16, String, u32)> = backends
        .iter()
        .map(|(port, role, weight)| (*port, role.to_string(), *weight))
        .collect();
    tokio::task::spawn_blocking(move || {
        let listen = free_port();
        let backends: Vec<(u16, &str, u32)> = backends
            .iter()
            .map(|(p, r, w)| (*p, r.as_str(), *w))
            .collect();
        let yaml = cluster_of(
            "postgres",
            &id,
            "db",
            listen,
            &backends,
            &service_extra,
            &cluster_extra,
        );
        (Throome::start(&[(id.as_str(), &yaml)]), listen)
    })
    .await
    .unwrap()
}

/// A postgres service over `backends`; clients log in as alice/wonderland (SCRAM unless
/// `service_extra` says otherwise); the proxy logs in to the servers as `postgres`.
pub async fn pg_gateway(backends: &[(u16, &str, u32)], service_extra: &str) -> (Throome, u16) {
    let extra = format!(
        "    username: postgres\n    auth:\n      users: {{ alice: wonderland }}\n{service_extra}"
    );
    service("p", backends, &extra, "").await
}

/// Polls `sql` (a count) on `admin` until it gives `want`, for a few seconds; the last value.
pub async fn until_count(admin: &Client, sql: &str, want: i64) -> i64 {
    let mut got = -1;
    for _ in 0..100 {
        got = admin.query_one(sql, &[]).await.unwrap().get::<_, i64>(0);
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// A client of `database` as alice.
pub async fn alice_on(port: u16, database: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=alice password=wonderland dbname={database}"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

/// How many server connections PostgreSQL on `port` has (not counting the one asking).
pub async fn server_count(port: u16) -> i64 {
    let admin = direct(port).await;
    admin
        .query_one(SERVER_CONNECTIONS, &[])
        .await
        .unwrap()
        .get(0)
}

/// Server connections other than the asking one.
pub const SERVER_CONNECTIONS: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

pub async fn connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user={user} password={password} dbname=postgres"),
        NoTls,
    )
    .await?;
    tokio::spawn(conn);
    Ok(client)
}

/// A direct connection to a server (as the `postgres` superuser, trust).
pub async fn direct(port: u16) -> Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

pub async fn show(client: &Client, name: &str) -> String {
    let rows = client.simple_query(&format!("SHOW {name}")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_string()),
            _ => None,
        })
        .unwrap()
}

pub async fn server_port(client: &Client, sql: &str) -> i32 {
    let rows = client.simple_query(sql).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .unwrap()
}

/// A postgres service (started at once, not in a runtime) over the server on `port`:
/// clients log in as alice/wonderland, the proxy as postgres; `extra` adds indented YAML.
pub fn alice_gateway(port: u16, extra: &str) -> (super::Throome, u16) {
    let listen = super::free_port();
    let extra =
        format!("    username: postgres\n    auth:\n      users: {{ alice: wonderland }}\n{extra}");
    let backends = [(port, "primary", 1)];
    let yaml = super::gateway::cluster_of("postgres", "p", "db", listen, &backends, &extra, "");
    (super::Throome::start(&[("p", &yaml)]), listen)
}

/// The ports of `pool_modes`' services.
pub struct Modes {
    pub gw: super::Throome,
    /// Session mode, pool_size 2.
    pub session: u16,
    /// Transaction mode, pool_size 2, both clients of a script may pin one.
    pub transaction: u16,
    /// Transaction mode with one server for every client: each client's transactions run
    /// on the server the others used last.
    pub shared: u16,
}

/// A gateway with session-mode and transaction-mode services over the server on `port`,
/// logging in to it as each client's own user (trust), as a client directly would.
pub fn pool_modes(port: u16) -> Modes {
    let (session, transaction, shared) =
        (super::free_port(), super::free_port(), super::free_port());
    let yaml = |id: &str, listen: u16, extra: &str| {
        let backends = [(port, "primary", 1)];
        super::gateway::cluster_of("postgres", id, "db", listen, &backends, extra, "")
    };
    let gw = super::Throome::start(&[
        (
            "s",
            &yaml("s", session, "    pool_mode: session\n    pool_size: 2\n"),
        ),
        (
            "t",
            &yaml(
                "t",
                transaction,
                "    pool_mode: transaction\n    pool_size: 2\n    max_pinned: 2\n",
            ),
        ),
        (
            "one",
            &yaml(
                "one",
                shared,
                "    pool_mode: transaction\n    pool_size: 1\n",
            ),
        ),
    ]);
    Modes {
        gw,
        session,
        transaction,
        shared,
    }
}
