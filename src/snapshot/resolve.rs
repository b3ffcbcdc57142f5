//! A service's configuration resolved to its runtime spec: every default applied (PgBouncer's
//! for Postgres pooling, Redis's own request limits, Kafka's broker ports), the `host`/`port`
//! shorthand expanded to one primary backend.

use std::time::Duration;

use super::{DEFAULT_CONNECT_TIMEOUT, KafkaSpec, PgSpec, ServiceSpec, Thresholds};
use crate::config::{BackendConfig, ClusterConfig, Role, Strategy};

/// Applies defaults and expands the `host`/`port` shorthand.
pub(super) fn resolve(
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
        shared_listener: svc.shared_listener.unwrap_or(true),
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
        client_idle_timeout: match (svc.client_idle_timeout, svc.kind) {
            (Some(t), _) => Some(t.0),
            (None, crate::config::ServiceKind::Kafka) => Some(Duration::from_secs(600)),
            (None, _) => None,
        },
        limits: resp_limits(svc),
        output_limit: svc
            .client_output_buffer_limit
            .map_or(DEFAULT_OUTPUT_LIMIT, |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            }),
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
        client_login_timeout: svc
            .client_login_timeout
            .map_or(Duration::from_secs(60), |t| t.0),
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
        users: svc.user_settings.clone(),
        server_reset_query: svc
            .server_reset_query
            .clone()
            .unwrap_or_else(|| "DISCARD ALL".into()),
        session_state: svc.session_state.unwrap_or_default(),
        max_pinned: svc.max_pinned,
        hba: svc
            .auth
            .iter()
            .flat_map(|a| &a.hba)
            .filter_map(|line| crate::postgres::hba::parse(line).ok())
            .collect(),
    }
}

/// Reply bytes a Redis client may leave unread (Redis itself has no limit for normal
/// clients; a proxy holding many clients needs one).
const DEFAULT_OUTPUT_LIMIT: usize = 1 << 30;

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
