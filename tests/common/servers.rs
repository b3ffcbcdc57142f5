//! Real backend servers from Debian packages, on free loopback ports, stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> RedisServer {
        Self::start_with(port, &[])
    }

    /// A Redis Cluster node (not yet joined to a cluster).
    pub fn start_cluster_node() -> RedisServer {
        Self::start_with(
            super::free_cluster_port(),
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"],
        )
    }

    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let extra = extra.iter().map(|s| s.to_string()).collect();
        let mut s = RedisServer {
            port,
            child: None,
            dir,
            extra,
        };
        s.restart();
        s
    }

    /// Starts (again) on the same port, as after a crash and restart.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                // Tests slow a server down on purpose with DEBUG SLEEP.
                "--enable-debug-command",
                "yes",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: run scripts/setup.sh");
        self.child = Some(child);
        let port = self.port;
        assert!(
            eventually(Duration::from_secs(10), || super::port_of_direct(port)
                .is_ok()),
            "redis-server on port {port} did not come up"
        );
    }

    /// The server's process id (to freeze it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server (SIGKILL: a crash, not a polite shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Redis Cluster of `masters` masters with `replicas` replicas each (`redis-cli --cluster
/// create`), all 16384 slots assigned, state ok everywhere and every replica in sync with
/// its master. Which node got which role: ask `role_of`.
pub fn redis_cluster(masters: usize, replicas: usize) -> Vec<RedisServer> {
    let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
        .map(|_| RedisServer::start_cluster_node())
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ready = |n: &RedisServer| {
        let info = super::redis_cli(n.port, &["INFO", "replication"]);
        super::redis_cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            && (info.contains("role:master") || info.contains("master_link_status:up"))
    };
    assert!(eventually(Duration::from_secs(30), || nodes
        .iter()
        .all(ready)));
    // And every node's CLUSTER SLOTS lists every node (replicas are learned by gossip).
    let listed = |n: &RedisServer| {
        let slots = super::redis_cli(n.port, &["CLUSTER", "SLOTS"]);
        let ports: Vec<&str> = slots.lines().collect();
        nodes
            .iter()
            .all(|m| ports.contains(&m.port.to_string().as_str()))
    };
    assert!(eventually(Duration::from_secs(30), || nodes
        .iter()
        .all(listed)));
    nodes
}

/// `master` or `slave`, from `INFO replication`.
pub fn role_of(port: u16) -> String {
    let info = super::redis_cli(port, &["INFO", "replication"]);
    info.lines()
        .find_map(|l| l.trim().strip_prefix("role:"))
        .unwrap_or_default()
        .to_string()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server: `initdb` into a temp dir and `postgres` on a free port, run as the
/// `postgres` user when the tests run as root (PostgreSQL refuses to run as root).
pub struct Postgres {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

pub fn pg_bin(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("THROOME_PG_BIN") {
        return PathBuf::from(dir).join(name);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn as_postgres_user(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    if running_as_root() {
        let (uid, gid) = postgres_ids();
        cmd.uid(uid).gid(gid);
    }
}

/// Hands a file to the user PostgreSQL runs as (when the tests run as root), so the server
/// may read it, e.g. a TLS key, which it also wants readable by that user alone.
pub fn give_to_server_user(path: &std::path::Path) {
    if running_as_root() {
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres user must exist: run scripts/setup.sh")
    };
    (id("-u"), id("-g"))
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(pg_bin("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync"])
            .stdout(Stdio::null());
        as_postgres_user(&mut initdb);
        let status = initdb
            .status()
            .expect("initdb not found: run scripts/setup.sh");
        assert!(status.success(), "initdb failed");
        let mut pg = Postgres {
            port: free_port(),
            child: None,
            dir,
        };
        pg.restart();
        pg
    }

    /// Starts the server (again) on the same data directory and port, as after a crash:
    /// PostgreSQL recovers from its WAL.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port;
        let mut pg = Command::new(pg_bin("postgres"));
        pg.arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_postgres_user(&mut pg);
        self.child = Some(pg.spawn().expect("postgres"));
        let ready = eventually(Duration::from_secs(30), || {
            Command::new(pg_bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        assert!(ready, "postgres on port {port} did not become ready");
    }

    /// The postmaster and every server process: SIGKILL, a crash (no checkpoint, no
    /// goodbye to clients). fsync is off, but the operating system keeps what was written,
    /// so a committed transaction survives, as it would with fsync on a power loss.
    pub fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            self.signal_all("-KILL", c.id());
            let _ = c.wait();
            let port = self.port;
            eventually(Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            });
        }
    }

    /// SIGSTOP (`freeze: true`) or SIGCONT to the postmaster and all its children: a server
    /// that accepts connections and answers nothing.
    pub fn freeze(&self, freeze: bool) {
        let pid = self.child.as_ref().expect("running").id();
        self.signal_all(if freeze { "-STOP" } else { "-CONT" }, pid);
    }

    fn signal_all(&self, sig: &str, pid: u32) {
        let _ = Command::new("pkill")
            .args([sig, "-P", &pid.to_string()])
            .status();
        let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
    }

    /// The directory of the server's Unix-domain socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> String {
        self.dir.path().display().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT: a fast shutdown (disconnects clients, such as pooled proxy
            // connections) that removes shared memory; then reap.
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            if !eventually(Duration::from_secs(10), || {
                matches!(c.try_wait(), Ok(Some(_)))
            }) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
