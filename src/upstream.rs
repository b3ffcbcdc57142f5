//! Opening upstream connections: pick a backend through the router, connect with a timeout,
//! and on failure record it (passive health) and fail over to the next candidate.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;

use crate::backend::{ActiveGuard, BackendState, Transition};
use crate::error::ProxyError;
use crate::snapshot::ServiceRuntime;

/// Connects to a backend of `service`, trying each available one at most once.
pub async fn connect(service: &ServiceRuntime) -> Result<(TcpStream, ActiveGuard), ProxyError> {
    let mut tried = Vec::new();
    let mut last_err = None;
    while let Some(backend) = service.choose(&tried) {
        match connect_one(service, &backend).await {
            Ok(stream) => return Ok((stream, backend.track())),
            Err(e) => {
                tracing::warn!(cluster = %service.cluster, service = %service.name, error = %e, "upstream connect failed");
                let t = backend.record_failure(Instant::now(), service.failure_threshold());
                log_transition(service, &backend, t);
                if let Some(i) = service.index_of(&backend) {
                    tried.push(i);
                }
                last_err = Some(e);
                if tried.len() >= service.backends.len() {
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ProxyError::NoBackend {
        cluster: service.cluster.clone(),
        service: service.name.clone(),
    }))
}

async fn connect_one(
    service: &ServiceRuntime,
    backend: &Arc<BackendState>,
) -> Result<TcpStream, ProxyError> {
    let started = Instant::now();
    let after = service.spec.connect_timeout;
    let addr = (backend.host.as_str(), backend.port);
    let stream = match tokio::time::timeout(after, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => {
            return Err(ProxyError::Connect {
                backend: backend.address(),
                source,
            });
        }
        Err(_) => {
            return Err(ProxyError::ConnectTimeout {
                backend: backend.address(),
                after,
            });
        }
    };
    let now = Instant::now();
    backend.observe_latency(now - started, now);
    let t = backend.record_success(now);
    log_transition(service, backend, t);
    // Latency matters more than packet count for request/response protocols.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Logs a health or circuit change once, where it happened.
pub fn log_transition(service: &ServiceRuntime, backend: &BackendState, t: Transition) {
    let (cluster, svc, addr) = (&service.cluster, &service.name, backend.address());
    match t {
        Transition::None => {}
        Transition::WentDown => {
            tracing::warn!(%cluster, service = %svc, backend = %addr, "backend marked down")
        }
        Transition::WentUp => {
            tracing::info!(%cluster, service = %svc, backend = %addr, "backend marked up")
        }
        Transition::CircuitOpened => {
            tracing::warn!(%cluster, service = %svc, backend = %addr, "circuit opened")
        }
        Transition::CircuitClosed => {
            tracing::info!(%cluster, service = %svc, backend = %addr, "circuit closed")
        }
    }
}
