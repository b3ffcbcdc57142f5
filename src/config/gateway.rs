//! The gateway file, `config/throome.yaml`. Keeps the seed's shape: `server`, `gateway`,
//! `monitoring`, `logging`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cluster::ServiceKind;
use super::security::TlsConfig;
use super::types::{ListenAddr, Seconds, Secret};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub gateway: GatewaySection,
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Listeners every cluster shares, one per protocol (`redis`, `postgres`): the client
    /// names its cluster in its login (`crate::by_cluster`). Read at start-up only; which
    /// clusters they admit follows reloads.
    #[serde(default)]
    pub listeners: std::collections::BTreeMap<ServiceKind, SharedListen>,
}

/// A shared listener: an address, or an address with TLS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SharedListen {
    Addr(ListenAddr),
    Full {
        listen: ListenAddr,
        #[serde(default)]
        tls: Option<TlsConfig>,
        /// Kafka: the domain of the names brokers are advertised under,
        /// `<cluster>.broker-<node>.<sni_domain>` (clients bootstrap from
        /// `<cluster>.bootstrap.<sni_domain>`); a wildcard DNS record for it points at the
        /// gateway.
        #[serde(default)]
        sni_domain: Option<String>,
        /// Also listen on this Unix-domain socket (mode 0777: clients still log in; for
        /// psql name it `<dir>/.s.PGSQL.<port>`).
        #[serde(default)]
        unix_socket: Option<PathBuf>,
    },
}

impl SharedListen {
    pub fn addr(&self) -> std::net::SocketAddr {
        match self {
            SharedListen::Addr(a) | SharedListen::Full { listen: a, .. } => a.0,
        }
    }

    pub fn tls(&self) -> Option<&TlsConfig> {
        match self {
            SharedListen::Addr(_) => None,
            SharedListen::Full { tls, .. } => tls.as_ref(),
        }
    }

    pub fn unix_socket(&self) -> Option<&std::path::Path> {
        match self {
            SharedListen::Addr(_) => None,
            SharedListen::Full { unix_socket, .. } => unix_socket.as_deref(),
        }
    }

    pub fn sni_domain(&self) -> Option<&str> {
        match self {
            SharedListen::Addr(_) => None,
            SharedListen::Full { sni_domain, .. } => sni_domain.as_deref(),
        }
    }
}

/// The admin HTTP API (metrics, health, cluster management).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// When set, every `/api/` call needs `Authorization: Bearer <token>`. Without it the admin
    /// API refuses to bind a non-loopback address.
    pub admin_token: Option<Secret>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: default_host(),
            port: default_port(),
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Relative paths are resolved against the directory of the gateway file.
    #[serde(default = "default_clusters_dir")]
    pub clusters_dir: PathBuf,
    /// Makes `adaptive` the default routing strategy.
    #[serde(default)]
    pub enable_ai: bool,
    /// Reload automatically when a file under `clusters_dir` changes.
    #[serde(default = "yes")]
    pub watch: bool,
    /// How long removed services and a stopping gateway wait for open connections.
    #[serde(default = "default_drain")]
    pub drain_timeout: Seconds,
    /// Client connections accepted at once across all listeners; more wait in the backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Event loops serving connections (`crate::workers`): 0 (the default) runs one per core
    /// the process may use (cgroup-aware), N runs N, 1 runs one as twemproxy does. Read at
    /// start-up only.
    #[serde(default)]
    pub worker_threads: usize,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            clusters_dir: default_clusters_dir(),
            enable_ai: false,
            watch: true,
            drain_timeout: default_drain(),
            max_connections: default_max_connections(),
            worker_threads: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            enabled: true,
            metrics_path: default_metrics_path(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A `tracing` filter such as `info` or `throome=debug`; `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
    /// `text` (default), or `json`: one JSON object per line, for log shippers.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_level(),
            format: LogFormat::Text,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    9000
}
fn default_clusters_dir() -> PathBuf {
    PathBuf::from("../clusters")
}
fn default_drain() -> Seconds {
    Seconds::from_secs(30)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_level() -> String {
    "info".into()
}
