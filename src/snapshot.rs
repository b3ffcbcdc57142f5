//! The running configuration as an immutable snapshot: clusters, their services resolved to
//! runtime form (defaults applied, shorthand expanded) and the live state of each backend.
//! A reload builds a new snapshot from the old one, reusing every service whose resolved spec
//! did not change and every backend state whose address stayed, then swaps it in.

mod resolve;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{BackendState, ProbeThresholds};
use crate::config::{
    BackendConfig, ClientAuth, ClusterConfig, LoadedCluster, Role, Secret, ServiceKind, Strategy,
};
use crate::router::{self, Candidate, RouterState};
use resolve::resolve;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
pub struct Snapshot {
    pub clusters: BTreeMap<String, Arc<ClusterRuntime>>,
}

pub struct ClusterRuntime {
    pub id: String,
    pub path: PathBuf,
    /// The parsed file, kept for the admin API (secrets serialize as `***`).
    pub config: ClusterConfig,
    pub services: BTreeMap<String, Arc<ServiceRuntime>>,
}

/// Everything about a service that, when changed, makes it a different service at runtime.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub kind: ServiceKind,
    pub listen: Option<std::net::SocketAddr>,
    /// A Unix-domain socket to listen on too, and its permissions.
    pub unix_socket: Option<(std::path::PathBuf, u32)>,
    /// Served on the gateway's shared listener of its protocol.
    pub shared_listener: bool,
    pub strategy: Strategy,
    pub failover: bool,
    pub backends: Vec<BackendConfig>,
    pub health_enabled: bool,
    pub interval: Duration,
    pub probe_timeout: Duration,
    pub thresholds: Thresholds,
    pub breaker_enabled: bool,
    pub failure_threshold: u32,
    pub connect_timeout: Duration,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub database: Option<String>,
    pub pool_size: usize,
    pub read_from_replicas: bool,
    pub auth: Option<ClientAuth>,
    pub sharding: Option<crate::config::Sharding>,
    /// Ketama over the available shards only (twemproxy's `auto_eject_hosts`).
    pub auto_eject_hosts: bool,
    pub hash_tag: Option<[u8; 2]>,
    /// twemproxy's key hash for ketama and modula sharding.
    pub key_hash: crate::config::KeyHash,
    pub request_timeout: Option<Duration>,
    /// Redis and Kafka: a client idle this long is closed (see `ServiceConfig`).
    pub client_idle_timeout: Option<Duration>,
    /// Redis request limits.
    pub limits: throome_resp::Limits,
    /// Redis: reply bytes held for a client that does not read before it is closed.
    pub output_limit: usize,
    pub pg: PgSpec,
    pub kafka: KafkaSpec,
    /// TLS to the backends (postgres, kafka, redis).
    pub server_tls: Option<crate::config::ServerTlsConfig>,
    /// TLS on the service's listener (postgres, kafka, redis).
    pub tls: Option<crate::config::TlsConfig>,
}

/// Kafka broker mapping and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSpec {
    /// What clients are told to connect to for broker ports.
    pub advertised_host: String,
    /// Broker ports are `port_base + node_id` unless `ports` names the node.
    pub port_base: u16,
    pub ports: BTreeMap<i32, u16>,
    pub max_frame: usize,
    /// The proxy's own SASL login to brokers, from `sasl_mechanism`, `username` and
    /// `password`.
    pub login: Option<(crate::config::SaslMechanism, String, crate::config::Secret)>,
}

impl KafkaSpec {
    /// The proxy port for an upstream node id, if it fits in a port number.
    pub fn port_of(&self, node_id: i32) -> Option<u16> {
        if let Some(p) = self.ports.get(&node_id) {
            return Some(*p);
        }
        let port = i64::from(self.port_base) + i64::from(node_id);
        u16::try_from(port).ok().filter(|p| *p != 0 && node_id >= 0)
    }
}

/// Postgres pooling settings (PgBouncer's names and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct PgSpec {
    pub pool_mode: crate::config::PoolMode,
    pub max_client_conn: usize,
    pub min_pool_size: usize,
    pub max_server_connections: Option<usize>,
    pub max_user_connections: Option<usize>,
    pub query_wait_timeout: Duration,
    pub reserve_pool_size: usize,
    pub reserve_pool_timeout: Duration,
    pub idle_transaction_timeout: Option<Duration>,
    pub client_idle_timeout: Option<Duration>,
    /// Startup and authentication must end within this (PgBouncer's `client_login_timeout`).
    pub client_login_timeout: Duration,
    pub query_timeout: Option<Duration>,
    pub stats_period: Duration,
    pub server_idle_timeout: Duration,
    pub server_lifetime: Duration,
    pub read_write_split: bool,
    pub max_prepared_statements: usize,
    /// Run on a session-mode server when its client leaves; empty: nothing.
    pub server_reset_query: String,
    pub session_state: crate::config::SessionState,
    /// None: half of each pool (see `max_pinned_for`).
    pub max_pinned: Option<usize>,
    /// `auth.hba`, parsed (the configuration check refused any line that does not parse).
    pub hba: Vec<crate::postgres::hba::Rule>,
    /// Single users' settings over the service's.
    pub users: BTreeMap<String, crate::config::UserSettings>,
}

impl PgSpec {
    /// How the clients of `user` are pooled.
    pub fn pool_mode_for(&self, user: &str) -> crate::config::PoolMode {
        self.users
            .get(user)
            .and_then(|u| u.pool_mode)
            .unwrap_or(self.pool_mode)
    }

    /// Clients of a pool of `size` servers that may pin one (`max_pinned`).
    pub fn max_pinned_for(&self, size: usize) -> usize {
        self.max_pinned.unwrap_or((size / 2).max(1))
    }

    /// Server connections a pool of the login `user` may open (`default`: the service's).
    pub fn pool_size_for(&self, user: &str, default: usize) -> usize {
        self.users
            .get(user)
            .and_then(|u| u.pool_size)
            .unwrap_or(default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub down_after: u32,
    pub up_after: u32,
    pub cooldown: Duration,
}

pub struct ServiceRuntime {
    pub cluster: String,
    pub name: String,
    pub spec: ServiceSpec,
    pub backends: Vec<Arc<BackendState>>,
    router: Mutex<RouterState>,
    /// State a protocol adapter keeps per service runtime (e.g. Redis upstream pools). A
    /// changed service gets a new runtime and so fresh state; the old one goes with the last
    /// session that holds it.
    pub ext: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    /// Cancelled once the service is gone (a reload removed it, after `drain_timeout`, or
    /// the gateway stopped): its clients on a shared listener are closed then, as a removed
    /// service's own listener closes its clients.
    pub retired: tokio_util::sync::CancellationToken,
}

impl ServiceRuntime {
    /// `cluster/service`: how logs, errors and the client registries name the service.
    pub fn key(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }

    pub fn probe_thresholds(&self) -> ProbeThresholds {
        let t = self.spec.thresholds;
        ProbeThresholds {
            down_after: t.down_after,
            up_after: t.up_after,
            cooldown: t.cooldown,
        }
    }

    /// Failures that open a backend's circuit (effectively never when the breaker is off).
    pub fn failure_threshold(&self) -> u32 {
        if self.spec.breaker_enabled {
            self.spec.failure_threshold
        } else {
            u32::MAX
        }
    }

    /// Picks a backend for new traffic, skipping `exclude` (backends already tried for this
    /// request). Primaries first; replicas when every primary is unavailable and failover is
    /// on, or when the service has no primary at all.
    pub fn choose(&self, exclude: &[usize]) -> Option<Arc<BackendState>> {
        self.choose_tiered(false, exclude)
    }

    /// Like `choose`, but with `prefer_replicas` (reads with `read_from_replicas`) replicas
    /// come first and primaries are the fallback.
    pub fn choose_tiered(
        &self,
        prefer_replicas: bool,
        exclude: &[usize],
    ) -> Option<Arc<BackendState>> {
        let now = Instant::now();
        let cooldown = self.spec.thresholds.cooldown;
        let tier = |role: Role| -> Vec<Candidate> {
            self.backends
                .iter()
                .enumerate()
                .filter(|(i, b)| {
                    b.role == role && !exclude.contains(i) && b.is_available(now, cooldown)
                })
                .map(|(index, b)| Candidate {
                    index,
                    weight: b.weight,
                    active: b.active(),
                    latency: b.latency_estimate(now),
                })
                .collect()
        };
        let has_primary = self.backends.iter().any(|b| b.role == Role::Primary);
        let mut candidates = if prefer_replicas {
            tier(Role::Replica)
        } else {
            tier(Role::Primary)
        };
        if candidates.is_empty() {
            if prefer_replicas {
                candidates = tier(Role::Primary);
            } else if self.spec.failover || !has_primary {
                candidates = tier(Role::Replica);
            }
        }
        let index = {
            let mut state = self.router.lock().ok()?;
            router::pick(self.spec.strategy, &candidates, &mut state)?
        };
        let backend = self.backends.get(index)?.clone();
        backend.begin_attempt(now);
        Some(backend)
    }

    pub fn index_of(&self, backend: &Arc<BackendState>) -> Option<usize> {
        self.backends.iter().position(|b| Arc::ptr_eq(b, backend))
    }
}

impl Snapshot {
    pub fn service(&self, cluster: &str, service: &str) -> Option<&Arc<ServiceRuntime>> {
        self.clusters.get(cluster)?.services.get(service)
    }

    pub fn services(&self) -> impl Iterator<Item = &Arc<ServiceRuntime>> {
        self.clusters.values().flat_map(|c| c.services.values())
    }

    /// Builds the next snapshot, reusing what did not change from `previous`.
    pub fn build(loaded: &[LoadedCluster], enable_ai: bool, previous: &Snapshot) -> Snapshot {
        let mut clusters = BTreeMap::new();
        for lc in loaded {
            let id = lc.config.cluster_id.value.clone();
            let mut services = BTreeMap::new();
            for (name, svc) in &lc.config.services {
                let spec = resolve(&lc.config, &svc.value, enable_ai);
                let old = previous.service(&id, name);
                let runtime = match old {
                    Some(old) if old.spec == spec => old.clone(),
                    _ => Arc::new(new_runtime(&id, name, spec, old)),
                };
                services.insert(name.clone(), runtime);
            }
            let cluster = ClusterRuntime {
                id: id.clone(),
                path: lc.path.clone(),
                config: lc.config.clone(),
                services,
            };
            clusters.insert(id, Arc::new(cluster));
        }
        Snapshot { clusters }
    }
}

fn new_runtime(
    cluster: &str,
    name: &str,
    spec: ServiceSpec,
    old: Option<&Arc<ServiceRuntime>>,
) -> ServiceRuntime {
    let backends: Vec<Arc<BackendState>> = spec
        .backends
        .iter()
        .map(|b| {
            let reused = old.and_then(|o| {
                o.backends.iter().find(|s| {
                    s.host == b.host && s.port == b.port && s.weight == b.weight && s.role == b.role
                })
            });
            reused
                .cloned()
                .unwrap_or_else(|| Arc::new(BackendState::new(&b.host, b.port, b.weight, b.role)))
        })
        .collect();
    let seed = name.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    ServiceRuntime {
        cluster: cluster.to_string(),
        name: name.to_string(),
        router: Mutex::new(RouterState::new(backends.len(), seed)),
        backends,
        spec,
        ext: std::sync::OnceLock::new(),
        retired: tokio_util::sync::CancellationToken::new(),
    }
}

#[cfg(test)]
mod tests;
