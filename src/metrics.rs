//! Prometheus metrics with `prometheus-client`. Counters and histograms are registered
//! families; per-backend gauges (up, circuit, connections) are read from the live snapshot at
//! scrape time by a collector, so a removed backend disappears from the output instead of
//! lingering with a stale value.

use std::sync::Arc;

use crate::latency::Latency;

use crate::protocol::PoolFamily;
use arc_swap::ArcSwap;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
        ServiceLabels {
            cluster: s.cluster.clone(),
            service: s.name.clone(),
        }
    }
}

/// Per request: for protocols, `command` is the lower-case command (Redis) or API name;
/// for `tcp` services it is `connection`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub cluster: String,
    pub service: String,
    pub command: String,
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
pub struct HttpLabels {
    pub cluster: String,
    pub service: String,
    /// Always `http`: the data API's requests next to the native clients' series.
    pub client: &'static str,
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabels {
    pub worker: usize,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RequestLabels, Latency>,
    pub errors: Family<ErrorLabels, Counter>,
    pub active: Family<ServiceLabels, Gauge>,
    pub bytes_in: Family<ServiceLabels, Counter>,
    pub bytes_out: Family<ServiceLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
    /// Redis Cluster redirects followed inside the proxy (`kind` is `moved` or `ask`).
    pub redirects: Family<ErrorLabels, Counter>,
    /// Open client connections per worker (event loop): how the kernel spread them.
    pub worker_clients: Family<WorkerLabels, Gauge>,
    /// Requests of the HTTP data API (`crate::data`) by route and status.
    pub http: Family<HttpLabels, Counter>,
    /// Each adapter's own families (`Protocol::register_metrics`), by type.
    adapters: std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>,
}

impl Metrics {
    /// An adapter's own families, as its `register_metrics` returned them.
    pub fn adapter<T: std::any::Any>(&self) -> Option<&T> {
        self.adapters
            .get(&std::any::TypeId::of::<T>())?
            .downcast_ref()
    }

    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Latency>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let active = Family::<ServiceLabels, Gauge>::default();
        let bytes_in = Family::<ServiceLabels, Counter>::default();
        let bytes_out = Family::<ServiceLabels, Counter>::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        let redirects = Family::<ErrorLabels, Counter>::default();
        let worker_clients = Family::<WorkerLabels, Gauge>::default();
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "throome_http_requests",
            "Requests of the HTTP data API by route and status",
            http.clone(),
        );
        registry.register(
            "throome_worker_connections",
            "Open client connections per worker event loop (gateway.worker_threads)",
            worker_clients.clone(),
        );
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
        registry.register(
            "throome_active_connections",
            "Open client connections",
            active.clone(),
        );
        registry.register(
            "throome_received_bytes",
            "Bytes read from clients",
            bytes_in.clone(),
        );
        registry.register(
            "throome_sent_bytes",
            "Bytes written to clients",
            bytes_out.clone(),
        );
        registry.register(
            "throome_config_reloads",
            "Configuration reloads by result",
            reloads.clone(),
        );
        registry.register(
            "throome_redirects",
            "Redis Cluster MOVED/ASK redirects followed by the proxy",
            redirects.clone(),
        );
        registry.register_collector(Box::new(BackendCollector { snapshot }));
        let adapters = crate::adapters::all()
            .iter()
            .filter_map(|a| a.register_metrics(&mut registry))
            .map(|m| ((*m).type_id(), m))
            .collect();
        Metrics {
            adapters,
            registry,
            requests,
            duration,
            errors,
            active,
            bytes_in,
            bytes_out,
            reloads,
            redirects,
            worker_clients,
            http,
        }
    }

    pub fn error(&self, s: &ServiceRuntime, kind: &'static str) {
        let labels = ErrorLabels {
            cluster: s.cluster.clone(),
            service: s.name.clone(),
            kind,
        };
        self.errors.get_or_create(&labels).inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// The OpenMetrics text format, what Prometheus asks for first.
    pub fn render_openmetrics(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools that do not
    /// negotiate OpenMetrics (curl, `promtool check metrics`).
    pub fn render_prometheus(&self) -> Result<String, std::fmt::Error> {
        Ok(openmetrics_to_prometheus(&self.render_openmetrics()?))
    }
}

/// The two formats differ, for what we expose, in three ways: OpenMetrics names a counter
/// family without its `_total` suffix in `# HELP`/`# TYPE`, may add `# UNIT`, and ends with
/// `# EOF`. Samples are identical.
/// <https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md#counter>
fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
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
        let upstreams = Family::<ErrorLabels, Gauge>::default();
        let up = Family::<BackendLabels, Gauge>::default();
        let open = Family::<BackendLabels, Gauge>::default();
        let conns = Family::<BackendLabels, Gauge>::default();
        let clients = Family::<ErrorLabels, Gauge>::default();
        let snapshot = self.snapshot.load();
        for s in snapshot.services() {
            for g in crate::adapters::of(s.spec.kind).pool_gauges(s) {
                let family = match g.family {
                    PoolFamily::Upstreams => &upstreams,
                    PoolFamily::Clients => &clients,
                };
                let labels = ErrorLabels {
                    cluster: s.cluster.clone(),
                    service: s.name.clone(),
                    kind: g.kind,
                };
                family.get_or_create(&labels).set(g.value);
            }
            for b in &s.backends {
                let labels = BackendLabels {
                    cluster: s.cluster.clone(),
                    service: s.name.clone(),
                    backend: b.address(),
                };
                up.get_or_create(&labels).set(i64::from(b.is_up()));
                open.get_or_create(&labels)
                    .set(i64::from(b.circuit() != Circuit::Closed));
                conns
                    .get_or_create(&labels)
                    .set(i64::try_from(b.active()).unwrap_or(i64::MAX));
            }
        }
        let families = [
            (
                "throome_backend_up",
                "1 when active health checks pass",
                &up,
            ),
            (
                "throome_backend_circuit_open",
                "1 while the circuit breaker is open or half-open",
                &open,
            ),
            (
                "throome_backend_active_connections",
                "Open upstream connections per backend",
                &conns,
            ),
        ];
        for (name, help, family) in families {
            let m = encoder.encode_descriptor(name, help, None, family.metric_type())?;
            family.encode(m)?;
        }
        let help = "Upstream connections: shared (multiplexed) or dedicated to one client (pinned)";
        let m = encoder.encode_descriptor(
            "throome_upstream_connections",
            help,
            None,
            upstreams.metric_type(),
        )?;
        upstreams.encode(m)?;
        let help = "Pooling clients (postgres): connected, or waiting for a server connection";
        let m =
            encoder.encode_descriptor("throome_pool_clients", help, None, clients.metric_type())?;
        clients.encode(m)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_format_names_counters_by_their_samples() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total 1\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n";
        let classic = openmetrics_to_prometheus(om);
        assert_eq!(
            classic,
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total 1\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let text = "cluster_id: c\nname: n\nservices:\n  s:\n    type: tcp\n    host: 127.0.0.1\n    port: 1\n";
        let loaded = [crate::config::LoadedCluster {
            path: "c.yaml".into(),
            config: crate::config::parse_cluster(text).unwrap(),
        }];
        let snapshot = Snapshot::build(&loaded, false, &Snapshot::default());
        let service = snapshot.service("c", "s").unwrap().clone();
        let metrics = Metrics::new(Arc::new(ArcSwap::from_pointee(snapshot)));
        metrics.reload(true);
        let labels = ServiceLabels::of(&service);
        let request = RequestLabels {
            cluster: "c".into(),
            service: "s".into(),
            command: "get".into(),
        };
        metrics.requests.get_or_create(&request).inc();
        metrics.duration.get_or_create(&request).observe(0.01);
        metrics.active.get_or_create(&labels).inc();
        metrics.error(&service, "connect");
        let text = metrics.render_prometheus().unwrap();
        assert!(text.contains("# TYPE throome_config_reloads_total counter\nthroome_config_reloads_total{result=\"success\"} 1\n"), "{text}");
        assert!(
            text.contains(
                "throome_backend_up{cluster=\"c\",service=\"s\",backend=\"127.0.0.1:1\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("throome_errors_total{cluster=\"c\",service=\"s\",kind=\"connect\"} 1\n"),
            "{text}"
        );
        for name in [
            "throome_requests_total",
            "throome_request_duration_seconds",
            "throome_errors_total",
            "throome_active_connections",
            "throome_backend_up",
            "throome_backend_circuit_open",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} missing in {text}"
            );
        }
    }
}
