//! Shared upstream connections per backend: `pool_size` pipelined connections per backend and
//! protocol version (RESP2 and RESP3 clients need connections speaking their version). A
//! client session always uses the same slot, so its own requests stay in order on one
//! connection. Dead connections are replaced on next use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::shard::{Continuum, server_name};
use super::upstream::{self, Upstream, UpstreamError};
use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;
use crate::upstream::log_transition;

#[derive(Default)]
pub struct Pools {
    /// (backend address, resp3, slot) -> connection
    conns: Mutex<HashMap<(String, bool, usize), Upstream>>,
    /// With `sharding: ketama`, the ring over the service's backends (in config order).
    pub ring: Option<Arc<Continuum>>,
}

impl Pools {
    /// The adapter's state for `service`, created on first use.
    pub fn of(service: &ServiceRuntime) -> Arc<Pools> {
        let any = service
            .ext
            .get_or_init(|| Arc::new(Pools::new(service)))
            .clone();
        any.downcast::<Pools>().unwrap_or_default()
    }

    fn new(service: &ServiceRuntime) -> Pools {
        let ring = service.spec.sharding.map(|_| {
            let servers: Vec<(String, u32)> = service
                .backends
                .iter()
                .map(|b| (server_name(&b.host, b.port), b.weight))
                .collect();
            Arc::new(Continuum::new(&servers))
        });
        Pools {
            conns: Mutex::default(),
            ring,
        }
    }

    /// The shared connection for `slot` to `backend`, opening it if needed.
    pub async fn get(
        &self,
        service: &ServiceRuntime,
        backend: &Arc<BackendState>,
        resp3: bool,
        slot: usize,
    ) -> Result<Upstream, UpstreamError> {
        let key = (
            backend.address(),
            resp3,
            slot % service.spec.pool_size.max(1),
        );
        if let Ok(conns) = self.conns.lock()
            && let Some(c) = conns.get(&key)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let conn = connect(service, backend, resp3).await?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(key, conn.clone());
        }
        Ok(conn)
    }
}

/// Opens and starts one connection to `backend`, recording the outcome in its health.
pub async fn connect(
    service: &ServiceRuntime,
    backend: &Arc<BackendState>,
    resp3: bool,
) -> Result<Upstream, UpstreamError> {
    let started = Instant::now();
    match upstream::open(service, (&backend.host, backend.port), resp3).await {
        Ok(stream) => {
            let now = Instant::now();
            backend.observe_latency(now - started, now);
            log_transition(service, backend, backend.record_success(now));
            let (b, threshold) = (backend.clone(), service.failure_threshold());
            Ok(upstream::spawn(stream, move || {
                b.record_failure(Instant::now(), threshold);
            }))
        }
        Err(e) => {
            let t = backend.record_failure(Instant::now(), service.failure_threshold());
            log_transition(service, backend, t);
            Err(e)
        }
    }
}

/// Picks a backend and gets a shared connection to it, failing over to the next candidate
/// when a connect fails.
pub async fn route(
    pools: &Pools,
    service: &ServiceRuntime,
    read: bool,
    resp3: bool,
    slot: usize,
) -> Result<(Arc<BackendState>, Upstream), UpstreamError> {
    let prefer_replicas = read;
    let mut tried = Vec::new();
    let mut last = None;
    while let Some(backend) = service.choose_tiered(prefer_replicas, &tried) {
        match pools.get(service, &backend, resp3, slot).await {
            Ok(c) => return Ok((backend, c)),
            Err(e) => {
                last = Some(e);
                match service.index_of(&backend) {
                    Some(i) => tried.push(i),
                    None => break,
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        UpstreamError::NoBackend(format!("{}/{}", service.cluster, service.name))
    }))
}

/// A connection of its own for one client (transactions, blocking commands, and the raw
/// hand-over for subscriptions): the primary tier, with failover.
pub async fn open_dedicated(
    service: &ServiceRuntime,
    resp3: bool,
) -> Result<tokio::net::TcpStream, UpstreamError> {
    let mut tried = Vec::new();
    let mut last = None;
    while let Some(backend) = service.choose(&tried) {
        let started = Instant::now();
        match upstream::open(service, (&backend.host, backend.port), resp3).await {
            Ok(stream) => {
                let now = Instant::now();
                backend.observe_latency(now - started, now);
                log_transition(service, &backend, backend.record_success(now));
                return Ok(stream);
            }
            Err(e) => {
                log_transition(
                    service,
                    &backend,
                    backend.record_failure(Instant::now(), service.failure_threshold()),
                );
                last = Some(e);
                match service.index_of(&backend) {
                    Some(i) => tried.push(i),
                    None => break,
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        UpstreamError::NoBackend(format!("{}/{}", service.cluster, service.name))
    }))
}
