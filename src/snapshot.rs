//! The running configuration as an immutable snapshot: clusters, their services resolved to
//! runtime form (defaults applied, shorthand expanded) and the live state of each backend.
//! A reload builds a new snapshot from the old one, reusing every service whose resolved spec
//! did not change and every backend state whose address stayed, then swaps it in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{BackendState, ProbeThresholds};
use crate::config::{
    BackendConfig, ClientAuth, ClusterConfig, LoadedCluster, Role, Secret, ServiceKind, Strategy,
};
use crate::router::{self, Candidate, RouterState};

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
    /// Redis request limits.
    pub limits: throome_resp::Limits,
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
    pub query_timeout: Option<Duration>,
    pub stats_period: Duration,
    pub server_idle_timeout: Duration,
    pub server_lifetime: Duration,
    pub read_write_split: bool,
    pub max_prepared_statements: usize,
    /// `auth.hba`, parsed (the configuration check refused any line that does not parse).
    pub hba: Vec<crate::postgres::hba::Rule>,
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
}

impl ServiceRuntime {
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
    }
}

/// Applies defaults and expands the `host`/`port` shorthand.
fn resolve(
    cluster: &ClusterConfig,
    svc: &crate::config::ServiceConfig,
    enable_ai: bool,
) -> ServiceSpec {
    let default_strategy = if enable_ai {
        Strategy::Adaptive
    } else {
        Strategy::RoundRobin
    };
    let over = svc.routing.clone().unwrap_or_default();
    let backends = match (&svc.host, svc.port) {
        (Some(host), port) => {
            vec![BackendConfig {
                host: host.clone(),
                port: port.unwrap_or(0),
                weight: 1,
                role: Role::Primary,
                name: None,
            }]
        }
        _ => svc.backends.clone(),
    };
    let h = &cluster.health;
    let interval = h.interval.0;
    ServiceSpec {
        kind: svc.kind,
        listen: svc.listen.as_ref().map(|l| l.value.0),
        unix_socket: svc.unix_socket.as_ref().map(|p| {
            let mode = crate::config::unix_socket_mode(svc).unwrap_or(0o777);
            (std::path::PathBuf::from(&p.value), mode)
        }),
        strategy: over
            .strategy
            .or(cluster.routing.strategy)
            .unwrap_or(default_strategy),
        failover: over
            .failover_enabled
            .unwrap_or(cluster.routing.failover_enabled),
        backends,
        health_enabled: h.enabled,
        interval,
        probe_timeout: h
            .timeout
            .map(|t| t.0)
            .unwrap_or(Duration::from_secs(2))
            .min(interval),
        thresholds: Thresholds {
            down_after: h.unhealthy_threshold,
            up_after: h.healthy_threshold,
            cooldown: cluster.circuit_breaker.cooldown.0,
        },
        breaker_enabled: cluster.circuit_breaker.enabled,
        failure_threshold: cluster.circuit_breaker.failure_threshold,
        connect_timeout: svc
            .connect_timeout
            .map(|t| t.0)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        username: svc.username.clone(),
        password: svc.password.clone(),
        database: svc.database.clone(),
        pool_size: svc.pool_size.unwrap_or(match svc.kind {
            crate::config::ServiceKind::Postgres => 20,
            _ => 2,
        }),
        pg: pg_spec(svc),
        kafka: kafka_spec(svc),
        server_tls: svc.server_tls.clone(),
        tls: svc.tls.clone(),
        read_from_replicas: svc.read_from_replicas.unwrap_or(false),
        auth: svc.auth.clone(),
        sharding: svc.sharding,
        auto_eject_hosts: svc.auto_eject_hosts.unwrap_or(false),
        request_timeout: svc.request_timeout.map(|t| t.0),
        limits: resp_limits(svc),
        key_hash: svc.hash.unwrap_or_default(),
        hash_tag: match svc.hash_tag.as_deref().map(str::as_bytes) {
            None => Some(*b"{}"),
            Some(&[open, close]) => Some([open, close]),
            Some(_) => None,
        },
    }
}

/// PgBouncer's settings with PgBouncer's defaults.
fn pg_spec(svc: &crate::config::ServiceConfig) -> PgSpec {
    PgSpec {
        pool_mode: svc.pool_mode.unwrap_or_default(),
        max_client_conn: svc.max_client_conn.unwrap_or(10_000),
        min_pool_size: svc.min_pool_size.unwrap_or(0),
        max_server_connections: svc.max_server_connections,
        max_user_connections: svc.max_user_connections,
        query_wait_timeout: svc
            .query_wait_timeout
            .map_or(Duration::from_secs(120), |t| t.0),
        reserve_pool_size: svc.reserve_pool_size.unwrap_or(0),
        reserve_pool_timeout: svc
            .reserve_pool_timeout
            .map_or(Duration::from_secs(5), |t| t.0),
        idle_transaction_timeout: svc.idle_transaction_timeout.map(|t| t.0),
        client_idle_timeout: svc.client_idle_timeout.map(|t| t.0),
        query_timeout: svc.query_timeout.map(|t| t.0),
        stats_period: svc.stats_period.map_or(Duration::from_secs(60), |t| t.0),
        server_idle_timeout: svc
            .server_idle_timeout
            .map_or(Duration::from_secs(600), |t| t.0),
        server_lifetime: svc
            .server_lifetime
            .map_or(Duration::from_secs(3600), |t| t.0),
        read_write_split: svc.read_write_split.unwrap_or(false),
        max_prepared_statements: svc.max_prepared_statements.unwrap_or(1000),
        hba: svc
            .auth
            .iter()
            .flat_map(|a| &a.hba)
            .filter_map(|line| crate::postgres::hba::parse(line).ok())
            .collect(),
    }
}

/// Redis's own request limits (`proto-max-bulk-len`, multibulk count) unless set.
fn resp_limits(svc: &crate::config::ServiceConfig) -> throome_resp::Limits {
    let d = throome_resp::Limits::default();
    let cap = |v: Option<u64>, default: usize| {
        v.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
    };
    throome_resp::Limits {
        max_bulk_len: cap(svc.proto_max_bulk_len, d.max_bulk_len),
        max_args: cap(svc.max_multibulk_length, d.max_args),
        ..d
    }
}

fn kafka_spec(svc: &crate::config::ServiceConfig) -> KafkaSpec {
    let listen = svc.listen.as_ref().map(|l| l.value.0);
    KafkaSpec {
        advertised_host: svc
            .advertised_host
            .clone()
            .unwrap_or_else(|| listen.map_or_else(|| "127.0.0.1".into(), |a| a.ip().to_string())),
        port_base: svc
            .broker_port_base
            .or_else(|| listen.map(|a| a.port().saturating_add(1)))
            .unwrap_or(9093),
        ports: svc.broker_ports.clone(),
        max_frame: svc
            .max_frame_bytes
            .map_or(throome_kafka::DEFAULT_MAX_FRAME, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
        login: match (&svc.sasl_mechanism, &svc.username, &svc.password) {
            (Some(m), Some(user), Some(password)) => Some((*m, user.clone(), password.clone())),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests;
