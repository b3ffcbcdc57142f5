//! Per-user PostgreSQL metrics (PgBouncer's SHOW STATS, per user): transactions, queries,
//! time spent waiting for and holding a server connection, bytes each way, authentication
//! failures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use crate::latency::Latency;
use crate::snapshot::ServiceRuntime;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserLabels {
    pub cluster: String,
    pub service: String,
    pub user: String,
}

impl UserLabels {
    pub fn of(service: &ServiceRuntime, user: &str) -> Self {
        UserLabels {
            cluster: service.cluster.clone(),
            service: service.name.clone(),
            user: user.to_string(),
        }
    }
}

/// Labels of `throome_pg_pinned_clients`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PinLabels {
    pub cluster: String,
    pub service: String,
    pub reason: String,
}

#[derive(Default)]
pub struct PgMetrics {
    pub pinned: Family<PinLabels, Gauge>,
    pub transactions: Family<UserLabels, Counter>,
    pub queries: Family<UserLabels, Counter>,
    pub wait: Family<UserLabels, Latency>,
    pub auth_failures: Family<UserLabels, Counter>,
    pub received: Family<UserLabels, Counter>,
    pub sent: Family<UserLabels, Counter>,
    pub server_time: Family<UserLabels, Counter<f64, AtomicU64>>,
    pub query_time: Family<UserLabels, Counter<f64, AtomicU64>>,
}

impl PgMetrics {
    /// The families registered by this gateway's metrics (detached ones, which count into
    /// nothing scraped, for a `Metrics` built without the adapter).
    pub fn of(metrics: &crate::metrics::Metrics) -> &PgMetrics {
        static DETACHED: std::sync::OnceLock<PgMetrics> = std::sync::OnceLock::new();
        metrics
            .adapter::<PgMetrics>()
            .unwrap_or_else(|| DETACHED.get_or_init(PgMetrics::default))
    }

    pub fn register(registry: &mut Registry) -> PgMetrics {
        let m = PgMetrics::default();
        registry.register(
            "throome_pg_pinned_clients",
            "Clients in transaction pooling holding a server for state that cannot be replayed, by the first reason",
            m.pinned.clone(),
        );
        registry.register(
            "throome_pg_transactions",
            "Transactions (server leases in transaction pooling) per user",
            m.transactions.clone(),
        );
        registry.register(
            "throome_pg_queries",
            "Queries (Query and Sync messages) per user",
            m.queries.clone(),
        );
        registry.register(
            "throome_pg_wait_seconds",
            "Time a client waited for a server connection, per user",
            m.wait.clone(),
        );
        registry.register(
            "throome_pg_auth_failures",
            "Failed client authentications per user",
            m.auth_failures.clone(),
        );
        registry.register_with_unit(
            "throome_pg_received",
            "Bytes received from clients per user (PgBouncer's total_received)",
            Unit::Bytes,
            m.received.clone(),
        );
        registry.register_with_unit(
            "throome_pg_sent",
            "Bytes sent to clients per user (PgBouncer's total_sent)",
            Unit::Bytes,
            m.sent.clone(),
        );
        registry.register_with_unit(
            "throome_pg_server_time",
            "Time clients held a server connection, per user (PgBouncer's total_xact_time)",
            Unit::Seconds,
            m.server_time.clone(),
        );
        registry.register_with_unit(
            "throome_pg_query_time",
            "Time servers spent answering clients' queries, per user (PgBouncer's total_query_time)",
            Unit::Seconds,
            m.query_time.clone(),
        );
        m
    }
}

/// One client's handles, looked up once.
#[derive(Default)]
pub struct ClientMetrics {
    pub transactions: Counter,
    pub queries: Counter,
    pub wait: Latency,
    pub received: Counter,
    pub sent: Counter,
    pub server_time: Counter<f64, AtomicU64>,
    pub query_time: Counter<f64, AtomicU64>,
}

impl ClientMetrics {
    /// Handles exported under no label: for a client whose user is not known to be real
    /// yet (a service without `auth`, before a server accepted the user), so names a
    /// client tries make no series.
    pub fn detached() -> Self {
        ClientMetrics::default()
    }

    pub fn of(m: &PgMetrics, labels: &UserLabels) -> Self {
        ClientMetrics {
            transactions: m.transactions.get_or_create(labels).clone(),
            queries: m.queries.get_or_create(labels).clone(),
            wait: m.wait.get_or_create(labels).clone(),
            received: m.received.get_or_create(labels).clone(),
            sent: m.sent.get_or_create(labels).clone(),
            server_time: m.server_time.get_or_create(labels).clone(),
            query_time: m.query_time.get_or_create(labels).clone(),
        }
    }
}
