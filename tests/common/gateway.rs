//! The real `throome` binary on a temp config, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{eventually, free_port};

pub struct Throome {
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub token: Option<String>,
}

pub struct Options {
    pub token: Option<String>,
    pub watch: bool,
    pub extra_gateway: String,
    /// `clusters_dir` instead of the temp dir's `clusters` (the tests of ConfigMap layouts).
    pub clusters_dir: Option<PathBuf>,
    /// `logging.format: json`.
    pub json_logs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            token: None,
            watch: true,
            extra_gateway: String::new(),
            clusters_dir: None,
            json_logs: false,
        }
    }
}

impl Throome {
    /// Starts with one cluster file per `(id, yaml)` and waits for `/ready`.
    pub fn start(clusters: &[(&str, &str)]) -> Throome {
        Self::start_with(clusters, Options::default())
    }

    pub fn start_with(clusters: &[(&str, &str)], opts: Options) -> Throome {
        let t = Self::spawn(clusters, opts);
        let port = t.admin_port;
        assert!(
            eventually(Duration::from_secs(20), || http_get(port, "/ready", None)
                .map(|r| r.0 == 200)
                .unwrap_or(false)),
            "throome did not become ready; log:\n{}",
            t.log()
        );
        t
    }

    /// Spawns without waiting (for tests of start-up failures).
    pub fn spawn(clusters: &[(&str, &str)], opts: Options) -> Throome {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let token = opts
            .token
            .as_ref()
            .map(|t| format!("  admin_token: \"{t}\"\n"))
            .unwrap_or_default();
        let clusters_dir = opts
            .clusters_dir
            .as_ref()
            .map_or("clusters".to_string(), |d| d.display().to_string());
        let format = if opts.json_logs {
            "  format: json\n"
        } else {
            ""
        };
        let gateway = format!(
            "server:\n  host: 127.0.0.1\n  port: {admin_port}\n{token}gateway:\n  clusters_dir: {clusters_dir}\n  watch: {}\n  drain_timeout: 2\n{}logging:\n  level: debug\n{format}",
            opts.watch, opts.extra_gateway
        );
        std::fs::write(dir.path().join("throome.yaml"), gateway).unwrap();
        std::fs::create_dir_all(dir.path().join("clusters")).unwrap();
        let mut t = Throome {
            admin_port,
            dir,
            child: None,
            token: opts.token,
        };
        for (id, yaml) in clusters {
            t.write_cluster(id, yaml);
        }
        let log = std::fs::File::create(t.dir.path().join("throome.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_throome"))
            .arg("--config")
            .arg(t.dir.path().join("throome.yaml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        t.child = Some(child);
        t
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("throome.yaml")
    }

    pub fn cluster_path(&self, id: &str) -> PathBuf {
        self.dir
            .path()
            .join("clusters")
            .join(id)
            .join("config.yaml")
    }

    /// Writes a cluster file atomically (write + rename), as careful tools do.
    pub fn write_cluster(&self, id: &str, yaml: &str) {
        let path = self.cluster_path(id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let tmp = self.dir.path().join(format!(".{id}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("throome.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = http_get(self.admin_port, path, self.token.as_deref()).unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (status, body) =
            http_send(self.admin_port, "POST", path, body, self.token.as_deref()).unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let (status, body) =
            http_send(self.admin_port, "DELETE", path, "", self.token.as_deref()).unwrap();
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    pub fn metrics(&self) -> String {
        http_get(self.admin_port, "/metrics", None).unwrap().1
    }

    /// A backend's state from `GET /api/v1/clusters/{cluster}`.
    pub fn backend(&self, cluster: &str, service: &str, port: u16) -> Value {
        let (_, c) = self.get(&format!("/api/v1/clusters/{cluster}"));
        let services = c["services"].as_array().cloned().unwrap_or_default();
        let s = services
            .iter()
            .find(|s| s["name"] == service)
            .cloned()
            .unwrap_or(Value::Null);
        let backends = s["backends"].as_array().cloned().unwrap_or_default();
        backends
            .into_iter()
            .find(|b| {
                b["address"]
                    .as_str()
                    .is_some_and(|a| a.ends_with(&format!(":{port}")))
            })
            .unwrap_or(Value::Null)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_throome-cli"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("THROOME_ADMIN_TOKEN")
            .output()
            .unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The gateway's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits for the process to exit (bounded), returning its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let mut code = None;
        eventually(limit, || match child.try_wait() {
            Ok(Some(s)) => {
                code = s.code();
                true
            }
            _ => false,
        });
        code
    }
}

impl Drop for Throome {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Result<(u16, String), ureq::Error> {
    let mut req = agent().get(&format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call()?;
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
}

pub fn http_send(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Result<(u16, String), ureq::Error> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let a = agent();
    let mut resp = match (method, token) {
        ("POST", Some(t)) => a
            .post(&url)
            .header("Authorization", &format!("Bearer {t}"))
            .send(body)?,
        ("POST", None) => a.post(&url).send(body)?,
        (_, Some(t)) => a
            .delete(&url)
            .header("Authorization", &format!("Bearer {t}"))
            .call()?,
        (_, None) => a.delete(&url).call()?,
    };
    Ok((resp.status().as_u16(), resp.body_mut().read_to_string()?))
}

/// A `tcp` service on `listen` over `backends` (port, role, weight), plus cluster-level YAML.
pub fn tcp_cluster(
    id: &str,
    service: &str,
    listen: u16,
    backends: &[(u16, &str, u32)],
    extra: &str,
) -> String {
    cluster_of("tcp", id, service, listen, backends, "", extra)
}

/// A service of `kind`, with service-level YAML (`service_extra`, indented four spaces) and
/// cluster-level YAML (`extra`).
pub fn cluster_of(
    kind: &str,
    id: &str,
    service: &str,
    listen: u16,
    backends: &[(u16, &str, u32)],
    service_extra: &str,
    extra: &str,
) -> String {
    let mut s = format!(
        "cluster_id: {id}\nname: {id}\nservices:\n  {service}:\n    type: {kind}\n    listen: \"127.0.0.1:{listen}\"\n{service_extra}    backends:\n"
    );
    for (port, role, weight) in backends {
        s.push_str(&format!(
            "      - {{ host: 127.0.0.1, port: {port}, role: {role}, weight: {weight} }}\n"
        ));
    }
    s.push_str(extra);
    s
}

/// One service of `kind` on a free port over `backends`, started: (gateway, listen port).
pub fn one_service(
    kind: &str,
    id: &str,
    backends: &[(u16, &str, u32)],
    service_extra: &str,
) -> (Throome, u16) {
    let listen = super::free_port();
    let yaml = cluster_of(kind, id, "cache", listen, backends, service_extra, "");
    (Throome::start(&[(id, &yaml)]), listen)
}

/// A redis service over one backend on a gateway with two worker threads: (gateway, listen
/// port).
pub fn two_workers(id: &str, backend: u16) -> (Throome, u16) {
    let listen = super::free_port();
    let yaml = cluster_of(
        "redis",
        id,
        "cache",
        listen,
        &[(backend, "primary", 1)],
        "",
        "",
    );
    let opts = Options {
        extra_gateway: "  worker_threads: 2\n".into(),
        ..Default::default()
    };
    (Throome::start_with(&[(id, &yaml)], opts), listen)
}

/// Three redis-servers and a `sharding: ketama` service over them: (servers, gateway,
/// listen port).
pub fn ketama_trio(id: &str) -> ([super::RedisServer; 3], Throome, u16) {
    let servers = [
        super::RedisServer::start(),
        super::RedisServer::start(),
        super::RedisServer::start(),
    ];
    let backends: Vec<(u16, &str, u32)> = servers.iter().map(|s| (s.port, "primary", 1)).collect();
    let (gw, listen) = one_service("redis", id, &backends, "    sharding: ketama\n");
    (servers, gw, listen)
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
