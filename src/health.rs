//! Active health checks: every `health.interval`, probe each backend of a service concurrently
//! and feed the result to its state (up/down thresholds, circuit decision, latency).

use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;
use crate::upstream::log_transition;

/// Runs until `stop` is cancelled. Spawned once per service runtime.
pub async fn run(service: Arc<ServiceRuntime>, stop: CancellationToken) {
    if !service.spec.health_enabled {
        return;
    }
    let mut ticker = tokio::time::interval(service.spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut probes = JoinSet::new();
        for backend in &service.backends {
            let (svc, backend) = (service.clone(), backend.clone());
            probes.spawn(async move {
                let started = Instant::now();
                let ok = probe(&svc, &backend).await;
                let now = Instant::now();
                if ok {
                    backend.observe_latency(now - started, now);
                }
                let t = backend.record_probe(ok, now, svc.probe_thresholds());
                log_transition(&svc, &backend, t);
            });
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = async { while probes.join_next().await.is_some() {} } => {}
        }
    }
}

/// One probe within the service's probe timeout. Each protocol adapter brings its own check
/// (PING for Redis, `SELECT 1` for PostgreSQL, ApiVersions for Kafka); for tcp a connect.
async fn probe(service: &ServiceRuntime, backend: &BackendState) -> bool {
    let check = crate::adapters::of(service.spec.kind).probe(service, backend);
    tokio::time::timeout(service.spec.probe_timeout, check)
        .await
        .unwrap_or(false)
}
