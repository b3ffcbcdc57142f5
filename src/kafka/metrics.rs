//! Per-API Kafka metrics. Requests and latency per API go to the core
//! `throome_requests{command=<api>}` and `throome_request_duration_seconds` families; this
//! adds the requests that got no answer through the proxy, per API and reason, and, when
//! clients authenticate to the proxy (`auth.users`), requests and bytes per user.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiErrorLabels {
    pub cluster: String,
    pub service: String,
    pub api: &'static str,
    /// `broker_lost` (the upstream connection ended with the request unanswered),
    /// `unmatched` (a response whose correlation id was not the next expected), `rewrite`
    /// (a broker-address response the proxy could not rewrite).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserLabels {
    pub cluster: String,
    pub service: String,
    pub user: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UserBytesLabels {
    pub cluster: String,
    pub service: String,
    pub user: String,
    /// `in` (requests, from the client) or `out` (responses, to it).
    pub direction: &'static str,
}

#[derive(Default)]
pub struct KafkaMetrics {
    pub api_errors: Family<ApiErrorLabels, Counter>,
    pub user_requests: Family<UserLabels, Counter>,
    pub user_bytes: Family<UserBytesLabels, Counter>,
    pub auth_failures: Family<UserLabels, Counter>,
}

/// One authenticated client's counters, looked up once per connection.
pub struct UserCounters {
    pub requests: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

impl UserCounters {
    pub fn of(
        metrics: &KafkaMetrics,
        service: &crate::snapshot::ServiceRuntime,
        user: &str,
    ) -> Self {
        let labels = UserLabels {
            cluster: service.cluster.clone(),
            service: service.name.clone(),
            user: user.to_string(),
        };
        let bytes = |direction| {
            let labels = UserBytesLabels {
                cluster: service.cluster.clone(),
                service: service.name.clone(),
                user: user.to_string(),
                direction,
            };
            metrics.user_bytes.get_or_create(&labels).clone()
        };
        UserCounters {
            requests: metrics.user_requests.get_or_create(&labels).clone(),
            bytes_in: bytes("in"),
            bytes_out: bytes("out"),
        }
    }
}

impl KafkaMetrics {
    /// Counts a failed authentication of `user` (already a bounded label).
    pub fn auth_failed(&self, service: &crate::snapshot::ServiceRuntime, user: String) {
        let labels = UserLabels {
            cluster: service.cluster.clone(),
            service: service.name.clone(),
            user,
        };
        self.auth_failures.get_or_create(&labels).inc();
    }

    /// The families registered by this gateway's metrics (detached ones, which count into
    /// nothing scraped, for a `Metrics` built without the adapter).
    pub fn of(metrics: &crate::metrics::Metrics) -> &KafkaMetrics {
        static DETACHED: std::sync::OnceLock<KafkaMetrics> = std::sync::OnceLock::new();
        metrics
            .adapter::<KafkaMetrics>()
            .unwrap_or_else(|| DETACHED.get_or_init(KafkaMetrics::default))
    }

    pub fn register(registry: &mut Registry) -> KafkaMetrics {
        let m = KafkaMetrics::default();
        registry.register(
            "throome_kafka_api_errors",
            "Kafka requests that got no answer through the proxy, per API and reason",
            m.api_errors.clone(),
        );
        registry.register(
            "throome_kafka_user_requests",
            "Kafka requests per user authenticated at the proxy (SASL requests not counted)",
            m.user_requests.clone(),
        );
        registry.register(
            "throome_kafka_auth_failures",
            "Failed SASL authentications at the proxy, per configured user ((unknown) for others)",
            m.auth_failures.clone(),
        );
        registry.register(
            "throome_kafka_user_bytes",
            "Kafka bytes per user authenticated at the proxy, by direction",
            m.user_bytes.clone(),
        );
        m
    }
}
