//! Per-user PostgreSQL metrics (PgBouncer's SHOW STATS, per user): transactions, queries,
//! time spent waiting for a server connection, authentication failures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

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

#[derive(Default)]
pub struct PgMetrics {
    pub transactions: Family<UserLabels, Counter>,
    pub queries: Family<UserLabels, Counter>,
    pub wait: Family<UserLabels, Latency>,
    pub auth_failures: Family<UserLabels, Counter>,
}

impl PgMetrics {
    pub fn register(registry: &mut Registry) -> PgMetrics {
        let m = PgMetrics::default();
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
        m
    }
}

/// One client's handles, looked up once.
pub struct ClientMetrics {
    pub transactions: Counter,
    pub queries: Counter,
    pub wait: Latency,
}

impl ClientMetrics {
    pub fn of(m: &PgMetrics, labels: &UserLabels) -> Self {
        ClientMetrics {
            transactions: m.transactions.get_or_create(labels).clone(),
            queries: m.queries.get_or_create(labels).clone(),
            wait: m.wait.get_or_create(labels).clone(),
        }
    }
}
