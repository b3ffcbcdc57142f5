//! Services listening on Unix-domain sockets (`unix_socket`, PgBouncer's `unix_socket_dir`,
//! twemproxy's `listen: /path`): psql and redis-cli connect over them (redis, postgres and
//! the tcp pass-through); reloads add and remove them and change their mode; a socket file
//! left by a gateway that died is taken over, a live one or a plain file is not.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::gateway::Options;
use common::servers::pg_bin;
use common::{Postgres, RedisServer, Throome, eventually, free_port};

/// `redis-cli -s path args...`; its trimmed output, or the error text.
fn redis_cli_at(path: &Path, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-s")
        .arg(path)
        .args(args)
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text + String::from_utf8_lossy(&out.stderr).trim()
}

/// A redis service reachable only on `socket`.
fn redis_on_socket(backend: u16, socket: &Path, extra: &str) -> String {
    format!(
        "cluster_id: ux\nname: ux\nservices:\n  cache:\n    type: redis\n    unix_socket: \"{}\"\n{extra}    host: 127.0.0.1\n    port: {backend}\n",
        socket.display()
    )
}

#[test]
fn psql_and_redis_cli_over_unix_sockets() {
    let pg = Postgres::start();
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // psql -h DIR -p PORT looks for DIR/.s.PGSQL.PORT.
    let pg_socket = dir.path().join(format!(".s.PGSQL.{port}"));
    let redis_socket = dir.path().join("redis.sock");
    let yaml = format!(
        "cluster_id: ux\nname: ux\nservices:\n  db:\n    type: postgres\n    unix_socket: \"{}\"\n    username: postgres\n    host: 127.0.0.1\n    port: {}\n    auth:\n      admin_users: [alice]\n      users: {{ alice: wonderland }}\n      hba: [\"local all all scram-sha-256\", \"host all all all reject\"]\n{}",
        pg_socket.display(),
        pg.port,
        redis_on_socket(
            redis.port,
            &redis_socket,
            "    unix_socket_mode: \"0770\"\n"
        )
        .split_once("services:\n")
        .unwrap()
        .1
    );
    let gw = Throome::start(&[("ux", &yaml)]);

    let psql = |db: &str, sql: &str| {
        common::stdout_of(
            Command::new(pg_bin("psql"))
                .args([
                    "-h",
                    &dir.path().display().to_string(),
                    "-p",
                    &port.to_string(),
                ])
                .args(["-U", "alice", "-d", db, "-X", "-At", "-c", sql])
                .env("PGPASSWORD", "wonderland")
                .env("PGCONNECT_TIMEOUT", "10"),
        )
    };
    // (over the socket, the `local` rule of `auth.hba` is the one that matches)
    assert_eq!(psql("postgres", "SELECT 40 + 2"), "42");
    // The console lists a connected client (an idle psql reading its stdin) as PgBouncer
    // lists a socket client.
    let mut idle = Command::new(pg_bin("psql"))
        .args([
            "-h",
            &dir.path().display().to_string(),
            "-p",
            &port.to_string(),
        ])
        .args(["-U", "alice", "-d", "postgres", "-X"])
        .env("PGPASSWORD", "wonderland")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut clients = String::new();
    let listed = eventually(Duration::from_secs(10), || {
        clients = psql("throome", "SHOW CLIENTS");
        clients.contains("|unix|")
    });
    let _ = idle.kill();
    let _ = idle.wait();
    assert!(listed, "{clients}");

    assert_eq!(
        redis_cli_at(&redis_socket, &["SET", "k", "over-unix"]),
        "OK"
    );
    assert_eq!(redis_cli_at(&redis_socket, &["GET", "k"]), "over-unix");
    let mode = std::fs::metadata(&redis_socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o770);
    let mode = std::fs::metadata(&pg_socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o777, "PostgreSQL's and PgBouncer's default");

    let (_, cluster) = gw.get("/api/v1/clusters/ux");
    let services = cluster["services"].as_array().unwrap();
    let cache = services.iter().find(|s| s["name"] == "cache").unwrap();
    assert_eq!(cache["unix_socket"], redis_socket.display().to_string());
    assert_eq!(cache["exposed"], true);
}

#[test]
fn reloads_add_and_remove_sockets_and_only_stale_files_are_replaced() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("cache.sock");
    let yaml = redis_on_socket(redis.port, &socket, "");

    // A gateway that dies leaves its socket file; the next one takes the path over.
    let first = Throome::start(&[("ux", &yaml)]);
    assert_eq!(redis_cli_at(&socket, &["PING"]), "PONG");
    drop(first);
    assert!(socket.exists(), "SIGKILL leaves the file");
    let opts = Options {
        watch: false,
        ..Options::default()
    };
    let gw = Throome::start_with(&[("ux", &yaml)], opts);
    assert_eq!(redis_cli_at(&socket, &["PING"]), "PONG");

    // A path held by a live listener, or a file that is not a socket, refuses the reload and
    // the running socket stays.
    let busy = dir.path().join("busy.sock");
    let _squatter = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "keep me").unwrap();
    for (path, why) in [
        (&busy, "another process is listening"),
        (&plain, "not a socket"),
    ] {
        gw.write_cluster("ux", &redis_on_socket(redis.port, path, ""));
        let (status, body) = gw.post("/api/v1/reload", "");
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(why),
            "{body}"
        );
        assert_eq!(redis_cli_at(&socket, &["PING"]), "PONG");
    }
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "keep me");

    // Moved to TCP: the socket file goes at once, the new address serves.
    let listen = free_port();
    let tcp = format!(
        "cluster_id: ux\nname: ux\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{listen}\"\n    host: 127.0.0.1\n    port: {}\n",
        redis.port
    );
    gw.write_cluster("ux", &tcp);
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    assert!(!socket.exists());
    assert_eq!(common::redis_cli(listen, &["PING"]), "PONG");

    // And back: the socket appears again.
    gw.write_cluster("ux", &yaml);
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    assert!(eventually(Duration::from_secs(5), || redis_cli_at(
        &socket,
        &["PING"]
    ) == "PONG"));
    // A changed mode applies to the socket in place.
    gw.write_cluster(
        "ux",
        &redis_on_socket(redis.port, &socket, "    unix_socket_mode: \"0700\"\n"),
    );
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// `type: tcp` (the L4 pass-through) on a Unix socket: bytes go through as they are.
#[test]
fn a_tcp_service_passes_bytes_through_from_a_unix_socket() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("l4.sock");
    let yaml = redis_on_socket(redis.port, &socket, "").replace("type: redis", "type: tcp");
    let _gw = Throome::start(&[("ux", &yaml)]);
    assert_eq!(redis_cli_at(&socket, &["SET", "l4", "through"]), "OK");
    assert_eq!(common::redis_cli(redis.port, &["GET", "l4"]), "through");
}
