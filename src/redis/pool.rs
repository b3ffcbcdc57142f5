//! Shared upstream connections per backend: `pool_size` pipelined connections per backend and
//! protocol version (RESP2 and RESP3 clients need connections speaking their version). A
//! client session always uses the same slot, so its own requests stay in order on one
//! connection. Dead connections are replaced on next use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cluster::{self, SlotMap};
use super::ring::Ring;
use super::upstream::{self, Login, Upstream, UpstreamError};
use crate::backend::BackendState;
use crate::config::Sharding;
use crate::snapshot::ServiceRuntime;
use crate::upstream::log_transition;

type ConnKey = (String, bool, usize, Option<Arc<Login>>);

#[derive(Default)]
pub struct Pools {
    /// (backend address, resp3, slot, a client's own login) -> connection
    conns: Mutex<HashMap<ConnKey, Upstream>>,
    /// With `sharding: ketama`, the ring over the service's backends (in config order).
    pub ring: Option<Ring>,
    /// With `sharding: cluster`, the slot map and when it was last read.
    slots: Mutex<Option<(Arc<SlotMap>, Instant)>>,
    /// Cluster nodes learned from the slot map that are not configured backends.
    discovered: Mutex<HashMap<(String, u16), Arc<BackendState>>>,
    /// Open connections dedicated to one client (transactions, blocking commands, raw
    /// hand-overs), counted by `Dedicated` guards.
    dedicated: Arc<std::sync::atomic::AtomicI64>,
    /// Clients connected, against `max_client_conn`.
    clients: Arc<std::sync::atomic::AtomicUsize>,
    /// CLIENT PAUSE of this service's clients.
    pub pause: super::pause::Pause,
    /// Connections ready for the next client that needs one of its own.
    pub spares: super::spares::Spares,
}

/// Counts one connected client while it lives.
pub struct ClientSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Counts one dedicated upstream connection while it lives.
pub struct Dedicated(Arc<std::sync::atomic::AtomicI64>);

impl Drop for Dedicated {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How old a slot map may get before it is read again (redirects also refresh it).
const SLOT_MAP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

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
        let hashed = matches!(
            service.spec.sharding,
            Some(Sharding::Ketama | Sharding::Modula)
        );
        let ring = hashed.then(|| Ring::new(service));
        Pools {
            conns: Mutex::default(),
            ring,
            slots: Mutex::default(),
            discovered: Mutex::default(),
            dedicated: Arc::default(),
            clients: Arc::default(),
            pause: super::pause::Pause::default(),
            spares: super::spares::Spares::default(),
        }
    }

    /// A slot for one more client, `None` past `limit` (Redis's `maxclients`, twemproxy's
    /// `client_connections`).
    /// Clients connected to the service now.
    pub fn client_count(&self) -> usize {
        self.clients.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn client_slot(&self, limit: usize) -> Option<ClientSlot> {
        let slot = ClientSlot(self.clients.clone());
        let before = self
            .clients
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (before < limit).then_some(slot)
    }

    /// Counts a connection dedicated to one client until the guard drops.
    pub fn dedicated(&self) -> Dedicated {
        self.dedicated
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Dedicated(self.dedicated.clone())
    }

    /// (shared connections open, dedicated connections open), for the metrics.
    pub fn counts(&self) -> (usize, i64) {
        let shared = self
            .conns
            .lock()
            .map(|c| c.values().filter(|u| !u.is_closed()).count())
            .unwrap_or(0);
        (
            shared,
            self.dedicated
                .load(std::sync::atomic::Ordering::Relaxed)
                .max(0),
        )
    }

    /// The cluster's slot map, read on first use and again when older than ten seconds.
    pub async fn slot_map(&self, service: &ServiceRuntime) -> Result<Arc<SlotMap>, UpstreamError> {
        let current = self.slots.lock().ok().and_then(|g| g.clone());
        match current {
            Some((map, at)) if at.elapsed() < SLOT_MAP_MAX_AGE => Ok(map),
            stale => match self.refresh(service).await {
                Ok(map) => Ok(map),
                // A stale map beats none while the cluster is unreachable for a moment.
                Err(e) => stale.map(|(m, _)| m).ok_or(e),
            },
        }
    }

    /// Reads `CLUSTER SLOTS` from the known masters, then the configured seeds.
    pub async fn refresh(&self, service: &ServiceRuntime) -> Result<Arc<SlotMap>, UpstreamError> {
        let mut seeds: Vec<(String, u16)> = self
            .slots
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|(m, _)| m.nodes.clone()))
            .unwrap_or_default();
        seeds.extend(service.backends.iter().map(|b| (b.host.clone(), b.port)));
        let map = Arc::new(cluster::fetch(service, &seeds).await?);
        if let Ok(mut g) = self.slots.lock() {
            *g = Some((map.clone(), Instant::now()));
        }
        Ok(map)
    }

    /// Applies a MOVED redirect at once, and makes the next request read the whole map
    /// again: a moved slot rarely moves alone.
    pub fn moved(&self, slot: usize, host: &str, port: u16) {
        if let Ok(mut g) = self.slots.lock()
            && let Some((map, at)) = g.as_mut()
        {
            Arc::make_mut(map).moved(slot, host, port);
            *at = Instant::now().checked_sub(SLOT_MAP_MAX_AGE).unwrap_or(*at);
        }
    }

    /// The state of a cluster node: a configured backend, or one learned from the map.
    pub fn node(&self, service: &ServiceRuntime, host: &str, port: u16) -> Arc<BackendState> {
        if let Some(b) = service
            .backends
            .iter()
            .find(|b| b.host == host && b.port == port)
        {
            return b.clone();
        }
        let fresh = || {
            Arc::new(BackendState::new(
                host,
                port,
                1,
                crate::config::Role::Primary,
            ))
        };
        match self.discovered.lock() {
            Ok(mut d) => d
                .entry((host.to_string(), port))
                .or_insert_with(fresh)
                .clone(),
            Err(_) => fresh(),
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
        self.get_as(service, backend, resp3, slot, None).await
    }

    /// [`get`](Self::get) among the connections logged in as a client's `login`: clients of
    /// one login share them as others share the service's.
    pub async fn get_as(
        &self,
        service: &ServiceRuntime,
        backend: &Arc<BackendState>,
        resp3: bool,
        slot: usize,
        login: Option<&Arc<Login>>,
    ) -> Result<Upstream, UpstreamError> {
        // Each worker has its own `pool_size` connections: a connection's tasks run on the
        // worker that opened it, next to the clients that use it.
        let pool = service.spec.pool_size.max(1);
        let key = (
            backend.address(),
            resp3,
            crate::workers::index() * pool + slot % pool,
            login.cloned(),
        );
        if let Ok(conns) = self.conns.lock()
            && let Some(c) = conns.get(&key)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        // Boxed: connecting is rare, and inline it would size every client's task.
        let conn = Box::pin(connect(service, backend, resp3, login.map(|l| &**l))).await?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(key, conn.clone());
        }
        Ok(conn)
    }
}

/// Opens and starts one shared connection to `backend`.
pub async fn connect(
    service: &ServiceRuntime,
    backend: &Arc<BackendState>,
    resp3: bool,
    login: Option<&Login>,
) -> Result<Upstream, UpstreamError> {
    let stream = open_recorded(service, backend, resp3, login).await?;
    let (b, threshold) = (backend.clone(), service.failure_threshold());
    Ok(upstream::spawn(stream, move || {
        b.record_failure(Instant::now(), threshold);
    }))
}

/// A connection of its own to one shard or cluster node (a sharded service's subscriber).
pub async fn open_to(
    service: &ServiceRuntime,
    backend: &Arc<BackendState>,
    resp3: bool,
    login: Option<&Login>,
) -> Result<upstream::RedisStream, UpstreamError> {
    open_recorded(service, backend, resp3, login).await
}

/// Opens a connection to `backend`, feeding the outcome to its health and latency.
async fn open_recorded(
    service: &ServiceRuntime,
    backend: &Arc<BackendState>,
    resp3: bool,
    login: Option<&Login>,
) -> Result<upstream::RedisStream, UpstreamError> {
    let started = Instant::now();
    match upstream::open_as(service, (&backend.host, backend.port), resp3, login).await {
        Ok(stream) => {
            let now = Instant::now();
            backend.observe_latency(now - started, now);
            log_transition(service, backend, backend.record_success(now));
            Ok(stream)
        }
        // A client's login the backend refuses says nothing about the backend's health.
        Err(e @ UpstreamError::Handshake(_)) if login.is_some() => Err(e),
        Err(e) => {
            log_transition(
                service,
                backend,
                backend.record_failure(Instant::now(), service.failure_threshold()),
            );
            Err(e)
        }
    }
}

/// Walks the backends the router picks for one request, skipping those already tried.
#[derive(Default)]
struct Failover {
    tried: Vec<usize>,
    last: Option<UpstreamError>,
}

impl Failover {
    fn next(&self, service: &ServiceRuntime, prefer_replicas: bool) -> Option<Arc<BackendState>> {
        service.choose_tiered(prefer_replicas, &self.tried)
    }

    /// Records a failed attempt; false when the backend cannot be excluded (give up).
    fn failed(
        &mut self,
        service: &ServiceRuntime,
        backend: &Arc<BackendState>,
        e: UpstreamError,
    ) -> bool {
        self.last = Some(e);
        match service.index_of(backend) {
            Some(i) => {
                self.tried.push(i);
                true
            }
            None => false,
        }
    }

    fn error(self, service: &ServiceRuntime) -> UpstreamError {
        self.last
            .unwrap_or_else(|| UpstreamError::NoBackend(service.key()))
    }
}

/// Picks a backend and gets a shared connection to it, failing over to the next candidate
/// when a connect fails.
pub async fn route(
    pools: &Pools,
    service: &ServiceRuntime,
    read: bool,
    (resp3, login): (bool, Option<&Arc<Login>>),
    slot: usize,
) -> Result<(Arc<BackendState>, Upstream), UpstreamError> {
    let mut f = Failover::default();
    while let Some(backend) = f.next(service, read) {
        match pools.get_as(service, &backend, resp3, slot, login).await {
            Ok(c) => return Ok((backend, c)),
            Err(e) => {
                if !f.failed(service, &backend, e) {
                    break;
                }
            }
        }
    }
    Err(f.error(service))
}

/// A connection of its own for one client (transactions, blocking commands, and the raw
/// hand-over for subscriptions): a spare kept ready when there is one (the stock is then
/// refilled), else opened now.
pub async fn open_dedicated(
    pools: &Arc<Pools>,
    service: &Arc<ServiceRuntime>,
    resp3: bool,
    login: Option<&Login>,
) -> Result<(Arc<BackendState>, upstream::RedisStream), UpstreamError> {
    if login.is_some() {
        return open_dedicated_as(service, resp3, login).await;
    }
    let spare = pools.spares.take(service, resp3);
    super::spares::Spares::refill(pools, service, resp3);
    match spare {
        Some(ready) => Ok(ready),
        None => open_dedicated_as(service, resp3, None).await,
    }
}

/// A new connection of the service's own for a spare.
pub async fn open_dedicated_fresh(
    service: &ServiceRuntime,
    resp3: bool,
) -> Result<(Arc<BackendState>, upstream::RedisStream), UpstreamError> {
    open_dedicated_as(service, resp3, None).await
}

/// Opens a connection to the primary tier, with failover, logged in as `login` or the
/// service.
async fn open_dedicated_as(
    service: &ServiceRuntime,
    resp3: bool,
    login: Option<&Login>,
) -> Result<(Arc<BackendState>, upstream::RedisStream), UpstreamError> {
    let mut f = Failover::default();
    while let Some(backend) = f.next(service, false) {
        match open_recorded(service, &backend, resp3, login).await {
            Ok(s) => return Ok((backend, s)),
            // The client's login is refused: no other backend is tried with it.
            Err(e @ UpstreamError::Handshake(_)) if login.is_some() => return Err(e),
            Err(e) => {
                if !f.failed(service, &backend, e) {
                    break;
                }
            }
        }
    }
    Err(f.error(service))
}
