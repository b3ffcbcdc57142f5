//! Shared harness for integration tests: real backends and the real `throome` binary.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub mod chaos;
pub mod data;
pub mod differential;
pub mod fault_relay;
pub mod gateway;
pub mod hostile;
pub mod kafka;
pub mod pg;
pub mod pg_diff;
pub mod servers;
pub mod shared;
pub mod tls;

use std::time::{Duration, Instant};

pub use gateway::Throome;
pub use servers::{Postgres, RedisServer};

/// A free TCP port on 127.0.0.1, below Linux's ephemeral range (32768-60999) so that
/// outgoing connections of parallel tests cannot take it between pick and use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (base.wrapping_add(n.wrapping_mul(13)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

/// A port for a Redis Cluster node: it also binds its bus port (port + 10000), which must be
/// free and below the ephemeral range too, so the node port comes from 20000-22767.
pub fn free_cluster_port() -> u16 {
    for _ in 0..2000 {
        let port = free_port();
        if port < 22_700 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free cluster port pair");
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
/// Used to wait for asynchronous effects (health checks, reloads), never to time code.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which backend answered: `CONFIG GET port` on a new connection through `port`.
pub fn backend_port_via(port: u16) -> Result<u16, String> {
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    port_of(&mut con)
}

pub fn port_of(con: &mut redis::Connection) -> Result<u16, String> {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("port")
        .query(con)
        .map_err(|e| e.to_string())?;
    reply
        .get(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected reply {reply:?}"))
}

/// The backend ports `n` successive new connections through `port` reached.
pub fn spread(port: u16, n: usize) -> Vec<u16> {
    (0..n).map(|_| backend_port_via(port).unwrap()).collect()
}

/// `CONFIG GET port` on a direct connection: is this redis-server up?
pub fn port_of_direct(port: u16) -> Result<u16, String> {
    backend_port_via(port)
}

/// `promtool check metrics` (Debian `prometheus`) must accept the exposition text.
pub fn assert_promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: run scripts/setup.sh (Debian package `prometheus`)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `redis-cli -p PORT ARGS...`, its standard output trimmed.
/// A `redis` crate connection to 127.0.0.1:`port`.
pub fn redis_con(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Runs `cmd`, asserts it succeeded (its stderr otherwise) and gives its trimmed stdout.
pub fn stdout_of(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `tests/clients/<script>` with the venv's Python (scripts/setup.sh makes it) and
/// asserts it succeeded and printed `OK`.
pub fn run_python_client(script: &str, args: &[&str]) {
    run_python_client_with(script, args, &[]);
}

/// `run_python_client` with extra environment variables.
pub fn run_python_client_with(script: &str, args: &[&str], env: &[(&str, &str)]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/.venv/bin/python");
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run scripts/setup.sh"
    );
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/tests/clients/{script}"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "{stdout}{stderr}"
    );
}
