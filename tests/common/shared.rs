//! The shared listeners' test set-up: three clusters (`shop`, `blog`, `ops`, and `vault`
//! with a password) over real redis-servers and one PostgreSQL, a gateway with shared Redis
//! and PostgreSQL listeners, and the raw clients the tests talk through.

use std::process::Command;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::gateway::Options;
use super::{Postgres, RedisServer, Throome, free_port};

pub struct Setup {
    pub gw: Throome,
    /// Where `setup_with("unix")` puts the shared listeners' Unix sockets.
    pub sockets: tempfile::TempDir,
    pub redis: u16,
    pub pg: u16,
    /// The `ops` cluster's redis service, on its own port only (`shared_listener: false`).
    pub ops: u16,
    pub _servers: (RedisServer, RedisServer, Postgres),
}

/// Clusters `shop` and `blog`, each a cache (its own redis-server) and a database (one
/// PostgreSQL, databases `shop` and `blog`), and `ops`, kept off the shared listeners.
pub async fn setup() -> Setup {
    setup_with("").await
}

/// `setup` with `tls` (YAML flow mapping such as `{cert: ..., key: ...}`) on both shared
/// listeners when not empty.
pub async fn setup_with(tls: &str) -> Setup {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let pg = Postgres::start();
    let admin = super::pg::direct(pg.port).await;
    for db in ["shop", "blog"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    }
    let cluster = |id: &str, redis: u16, user: &str, pass: &str| {
        format!(
            "cluster_id: {id}\nname: {id}\nservices:\n  cache:\n    type: redis\n    host: 127.0.0.1\n    port: {redis}\n  db:\n    type: postgres\n    host: 127.0.0.1\n    port: {}\n    database: {id}\n    username: postgres\n    auth:\n      users: {{ {user}: {pass} }}\n      admin_users: [{user}]\n",
            pg.port
        )
    };
    let ops = free_port();
    // A cluster whose cache has a password of its own (`auth:` at the proxy).
    let vault = format!(
        "cluster_id: vault\nname: vault\nservices:\n  cache:\n    type: redis\n    host: 127.0.0.1\n    port: {}\n    auth: {{ password: s3cret }}\n",
        a.port
    );
    let ops_yaml = format!(
        "cluster_id: ops\nname: ops\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{ops}\"\n    shared_listener: false\n    host: 127.0.0.1\n    port: {}\n",
        a.port
    );
    let (redis, pgl) = (free_port(), free_port());
    let sockets = tempfile::tempdir().unwrap();
    let opts = Options {
        extra_gateway: match tls {
            "" => format!(
                "listeners:\n  redis: \"127.0.0.1:{redis}\"\n  postgres: \"127.0.0.1:{pgl}\"\n"
            ),
            "unix" => format!(
                "listeners:\n  redis: {{listen: \"127.0.0.1:{redis}\", unix_socket: \"{}/redis.sock\"}}\n  postgres: {{listen: \"127.0.0.1:{pgl}\", unix_socket: \"{}/.s.PGSQL.{pgl}\"}}\n",
                sockets.path().display(),
                sockets.path().display()
            ),
            tls => format!(
                "listeners:\n  redis: {{listen: \"127.0.0.1:{redis}\", tls: {tls}}}\n  postgres: {{listen: \"127.0.0.1:{pgl}\", tls: {tls}}}\n"
            ),
        },
        ..Options::default()
    };
    let (shop, blog) = (
        cluster("shop", a.port, "alice", "wonderland"),
        cluster("blog", b.port, "bob", "builder") + "max_client_conn: 4\n",
    );
    let gw = tokio::task::spawn_blocking(move || {
        Throome::start_with(
            &[
                ("shop", &shop),
                ("blog", &blog),
                ("ops", &ops_yaml),
                ("vault", &vault),
            ],
            opts,
        )
    })
    .await
    .unwrap();
    Setup {
        gw,
        sockets,
        redis,
        pg: pgl,
        ops,
        _servers: (a, b, pg),
    }
}

/// redis-cli's output for `args` on `port`.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

/// The raw replies to `bytes` written at once, read until `lines` lines came.
pub fn raw(port: u16, bytes: &[u8], lines: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    for _ in 0..lines {
        r.read_line(&mut out).unwrap();
    }
    out
}

pub async fn pg_connect(
    port: u16,
    conninfo: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} {conninfo}"), NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

pub async fn current_database(port: u16, conninfo: &str) -> String {
    let c = pg_connect(port, conninfo).await.unwrap();
    c.query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0)
}
