//! Per-API Kafka metrics. Requests and latency per API go to the core
//! `throome_requests{command=<api>}` and `throome_request_duration_seconds` families; this
//! adds the requests that got no answer through the proxy, per API and reason.

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

#[derive(Default)]
pub struct KafkaMetrics {
    pub api_errors: Family<ApiErrorLabels, Counter>,
}

impl KafkaMetrics {
    pub fn register(registry: &mut Registry) -> KafkaMetrics {
        let m = KafkaMetrics::default();
        registry.register(
            "throome_kafka_api_errors",
            "Kafka requests that got no answer through the proxy, per API and reason",
            m.api_errors.clone(),
        );
        m
    }
}
