//! The tansu Kafka broker (built by scripts/setup.sh with `cargo install tansu`) on a free
//! loopback port with in-memory storage, and the client tools the Kafka tests use.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

/// tansu's broker answers as node 111 (it has no node id option).
pub const TANSU_NODE: u16 = 111;

pub fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("THROOME_TANSU") {
        return PathBuf::from(p);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let cargo_bin = home.join("bin/tansu");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        PathBuf::from("tansu")
    }
}

pub struct Tansu {
    pub port: u16,
    child: Option<Child>,
    storage: String,
    /// Where a SQLite store lives (tansu takes its path relative to the working directory).
    dir: Option<PathBuf>,
    authentication: bool,
    /// The port it tells clients to use, when something else (a TLS terminator) fronts it.
    advertised: Option<u16>,
}

impl Tansu {
    pub fn start() -> Tansu {
        Tansu::start_with(None)
    }

    /// A broker whose metadata names `advertised` (on 127.0.0.1) as its address.
    pub fn start_advertising(advertised: u16) -> Tansu {
        Tansu::start_with(Some(advertised))
    }

    /// A broker keeping its data in a SQLite file in `dir`, so a restart keeps what it
    /// acknowledged.
    pub fn start_persistent(dir: &std::path::Path) -> Tansu {
        let mut t = Tansu::stopped_on_sqlite(dir);
        t.restart();
        t
    }

    fn start_with(advertised: Option<u16>) -> Tansu {
        let mut t = Tansu {
            port: free_port(),
            child: None,
            storage: "memory://tansu/".into(),
            dir: None,
            authentication: false,
            advertised,
        };
        t.restart();
        t
    }

    /// Not started yet: storage in a SQLite file in `dir`.
    fn stopped_on_sqlite(dir: &std::path::Path) -> Tansu {
        Tansu {
            port: free_port(),
            child: None,
            storage: "sqlite://tansu.db".into(),
            dir: Some(dir.to_path_buf()),
            authentication: false,
            advertised: None,
        }
    }

    /// A broker that requires SASL (`--authentication`), keeping its data in a SQLite file
    /// in `dir`. A secured broker lets no unauthenticated client create users or topics, so
    /// an open broker over the same file makes the SCRAM `users` (name, password,
    /// `scram256` or `scram512`) and `topics` first.
    pub fn start_secured(
        dir: &std::path::Path,
        users: &[(&str, &str, &str)],
        topics: &[&str],
    ) -> Tansu {
        let mut t = Tansu::stopped_on_sqlite(dir);
        t.restart();
        for (name, password, mechanism) in users {
            t.tansu(&["user", "create", "--mechanism", mechanism, name, password]);
        }
        for topic in topics {
            t.create_topic(topic, 1);
        }
        t.kill();
        t.authentication = true;
        t.restart();
        t
    }

    /// Starts (again) on the same port; memory storage starts empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised.unwrap_or(self.port));
        let mut command = Command::new(tansu_bin());
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        let child = command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", &self.storage])
            .args(self.authentication.then_some("--authentication"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu not found: run scripts/setup.sh");
        self.child = Some(child);
        let port = self.port;
        assert!(
            eventually(Duration::from_secs(20), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "tansu on port {port} did not come up"
        );
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `tansu topic create` (tansu does not create topics on first use).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.tansu(&[
            "topic",
            "create",
            "--partitions",
            &partitions.to_string(),
            name,
        ]);
    }

    /// Runs a `tansu` admin subcommand against this broker; it must succeed.
    fn tansu(&self, args: &[&str]) {
        let (command, rest) = args.split_at(2);
        let out = Command::new(tansu_bin())
            .args(command)
            .arg("--broker")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(rest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tansu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A proxy broker-port base whose port for tansu's node id is free.
pub fn free_broker_port_base() -> u16 {
    free_port() - TANSU_NODE
}

/// Runs Debian's kcat with a 20 s metadata/socket budget.
pub fn kcat(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .args(["30", "kcat", "-m", "20"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat not found: run scripts/setup.sh");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// A `type: kafka` service on `listen` with broker ports from `base`, bootstrapping from
/// `brokers` (in order), health probed every second.
pub fn kafka_cluster(id: &str, service: &str, listen: u16, base: u16, brokers: &[u16]) -> String {
    let extra = format!("    broker_port_base: {base}\n");
    let backends: Vec<(u16, &str, u32)> = brokers.iter().map(|p| (*p, "primary", 1)).collect();
    super::gateway::cluster_of(
        "kafka",
        id,
        service,
        listen,
        &backends,
        &extra,
        "health: { interval: 1, unhealthy_threshold: 1 }\n",
    )
}

/// The value of one `throome_requests_total` series for an API of service `svc`.
pub fn api_requests(metrics: &str, svc: &str, api: &str) -> u64 {
    let needle = format!("service=\"{svc}\",command=\"{api}\"}}");
    metrics
        .lines()
        .find(|l| l.starts_with("throome_requests_total") && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Starts `tests/clients/kafka_chaos.py` (confluent-kafka): it produces to `topic` for
/// `secs`, then consumes it with group `group`; read its report with `chaos_report`.
pub fn kafka_chaos_client(listen: u16, topic: &str, group: &str, secs: u64) -> Child {
    let root = env!("CARGO_MANIFEST_DIR");
    Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/tests/clients/kafka_chaos.py"))
        .args([
            &format!("127.0.0.1:{listen}"),
            topic,
            group,
            &secs.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python: run scripts/setup.sh")
}

/// The JSON report `kafka_chaos.py` printed (acked, lost, misattributed, failed,
/// slowest_failure_ms), once it ended successfully.
pub fn chaos_report(client: Child) -> serde_json::Value {
    let out = client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}
