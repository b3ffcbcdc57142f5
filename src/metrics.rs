//! Prometheus metrics with `prometheus-client`. Counters and histograms are registered
//! families; per-backend gauges (up, circuit, connections) are read from the live snapshot at
//! scrape time by a collector, so a removed backend disappears from the output instead of
//! lingering with a stale value.

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::backend::Circuit;
use crate::snapshot::{ServiceRuntime, Snapshot};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub cluster: String,
    pub service: String,
}

impl ServiceLabels {
    pub fn of(s: &ServiceRuntime) -> Self {
        ServiceLabels { cluster: s.cluster.clone(), service: s.name.clone() }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub cluster: String,
    pub service: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub cluster: String,
    pub service: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<ServiceLabels, Counter>,
    pub duration: Family<ServiceLabels, Histogram, fn() -> Histogram>,
    pub errors: Family<ErrorLabels, Counter>,
    pub active: Family<ServiceLabels, Gauge>,
    pub bytes_in: Family<ServiceLabels, Counter>,
    pub bytes_out: Family<ServiceLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
}

fn duration_histogram() -> Histogram {
    // 100us .. ~105s
    Histogram::new(exponential_buckets(0.0001, 4.0, 11))
}

impl Metrics {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<ServiceLabels, Counter>::default();
        let duration = Family::<ServiceLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        let active = Family::<ServiceLabels, Gauge>::default();
        let bytes_in = Family::<ServiceLabels, Counter>::default();
        let bytes_out = Family::<ServiceLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "throome_requests",
            "Requests handled (for tcp services: client connections)",
            requests.clone(),
        );
        registry.register(
            "throome_request_duration_seconds",
            "Request latency (for tcp services: connection lifetime)",
            duration.clone(),
        );
        registry.register("throome_errors", "Errors by kind", errors.clone());
        registry.register("throome_active_connections", "Open client connections", active.clone());
        registry.register("throome_received_bytes", "Bytes read from clients", bytes_in.clone());
        registry.register("throome_sent_bytes", "Bytes written to clients", bytes_out.clone());
        registry.register(
            "throome_config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        registry.register_collector(Box::new(BackendCollector { snapshot }));
        Metrics { registry, requests, duration, errors, active, bytes_in, bytes_out, reloads }
    }

    pub fn error(&self, s: &ServiceRuntime, kind: &'static str) {
        let labels = ErrorLabels { cluster: s.cluster.clone(), service: s.name.clone(), kind };
        self.errors.get_or_create(&labels).inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

struct BackendCollector {
    snapshot: Arc<ArcSwap<Snapshot>>,
}

impl std::fmt::Debug for BackendCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendCollector")
    }
}

impl prometheus_client::collector::Collector for BackendCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let up = Family::<BackendLabels, Gauge>::default();
        let open = Family::<BackendLabels, Gauge>::default();
        let conns = Family::<BackendLabels, Gauge>::default();
        let snapshot = self.snapshot.load();
        for s in snapshot.services() {
            for b in &s.backends {
                let labels = BackendLabels {
                    cluster: s.cluster.clone(),
                    service: s.name.clone(),
                    backend: b.address(),
                };
                up.get_or_create(&labels).set(i64::from(b.is_up()));
                open.get_or_create(&labels).set(i64::from(b.circuit() != Circuit::Closed));
                conns.get_or_create(&labels).set(i64::try_from(b.active()).unwrap_or(i64::MAX));
            }
        }
        let families = [
            ("throome_backend_up", "1 when active health checks pass", &up),
            ("throome_backend_circuit_open", "1 while the circuit breaker is open or half-open", &open),
            ("throome_backend_active_connections", "Open upstream connections per backend", &conns),
        ];
        for (name, help, family) in families {
            let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(m)?;
        }
        Ok(())
    }
}
