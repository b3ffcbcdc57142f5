//! Server connection pools, one per (backend, user, database), each capped at `pool_size`
//! connections in use; a client waits for a free one up to `query_wait_timeout`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::startup::Credential;
use super::upstream::{self, Server, ServerError};
use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;

/// Idle time after which a pooled connection is checked before it is lent.
const CHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Server parameters (ParameterStatus name and value), in the order reported.
mod controls;

pub type Params = Vec<(bytes::Bytes, bytes::Bytes)>;

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct PoolKey {
    pub backend: usize,
    pub user: String,
    pub database: String,
}

pub struct Pool {
    pub key: PoolKey,
    /// Boxed: a server connection moves from the idle list to a lease and back on every
    /// transaction, and a `Server` is a large struct (moving it was 1,000 instructions per
    /// transaction under callgrind).
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Server>>>,
    /// Raised by the console's RECONNECT: connections of an older epoch are closed when
    /// they come back instead of being reused.
    epoch: AtomicU64,
    permits: Arc<Semaphore>,
    size: usize,
    /// `reserve_pool_size` more slots, for clients that waited `reserve_pool_timeout`.
    reserve: Arc<Semaphore>,
    reserve_size: usize,
    pub waiting: AtomicUsize,
    /// Clients holding one of this pool's servers for session state (`max_pinned`).
    pub pinned: AtomicUsize,
    /// When each waiting client started waiting (for SHOW POOLS' `maxwait`).
    waiting_since: Mutex<Vec<Instant>>,
    upkeep: std::sync::atomic::AtomicBool,
    /// The last credential a client of this pool's user logged in with, for the
    /// connections upkeep opens without a client.
    credential: Mutex<Option<Credential>>,
}

impl Pool {
    /// True for the first caller only: who starts this pool's upkeep task.
    pub fn claim_upkeep(&self) -> bool {
        !self.upkeep.swap(true, Ordering::AcqRel)
    }

    pub fn credential(&self) -> Option<Credential> {
        self.credential.lock().ok().and_then(|c| c.clone())
    }

    fn remember(&self, credential: Option<&Credential>) {
        if let (Some(c), Ok(mut slot)) = (credential, self.credential.lock()) {
            *slot = Some(c.clone());
        }
    }

    /// How long the longest-waiting client has waited (PgBouncer's `maxwait`).
    pub fn max_wait(&self) -> std::time::Duration {
        self.waiting_since
            .lock()
            .ok()
            .and_then(|w| w.iter().min().map(Instant::elapsed))
            .unwrap_or_default()
    }

    /// Notes a client waiting since `since` until the guard drops (a timeout or a dropped
    /// client included).
    fn wait_from(&self, since: Instant) -> Waiter<'_> {
        if let Ok(mut w) = self.waiting_since.lock() {
            w.push(since);
        }
        Waiter { pool: self, since }
    }

    /// Server connections this pool may open (`pool_size`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Connections open: lent out plus idle.
    pub fn open_count(&self) -> usize {
        let (in_use, idle, _) = self.counts();
        in_use + idle
    }

    /// Process ids of the idle connections, for SHOW SERVERS.
    pub fn idle_pids(&self) -> Vec<i32> {
        self.idle
            .lock()
            .map(|i| i.iter().map(|s| s.pid).collect())
            .unwrap_or_default()
    }

    pub fn add_idle(&self, mut server: Box<Server>) {
        server.epoch = self.epoch.load(Ordering::Acquire);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(server);
        }
    }

    /// Whether a connection that joined at `epoch` is to close when it comes back.
    pub fn is_stale(&self, epoch: u64) -> bool {
        epoch != self.epoch.load(Ordering::Acquire)
    }

    /// RECONNECT: idle connections close now, lent ones when they come back.
    pub fn reconnect(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Closes idle connections past their idle timeout or lifetime.
    pub fn close_expired(&self, pg: &crate::snapshot::PgSpec) {
        let now = Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|s| {
                now.duration_since(s.idle_since) <= pg.server_idle_timeout
                    && now.duration_since(s.created) <= pg.server_lifetime
            });
        }
    }
    /// (in use, idle, waiting clients), for the admin console and metrics.
    pub fn counts(&self) -> (usize, usize, usize) {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        let in_use = self.size - self.permits.available_permits()
            + (self.reserve_size - self.reserve.available_permits());
        (in_use, idle, self.waiting.load(Ordering::Relaxed))
    }

    /// Waits up to `wait` for a slot: one of `pool_size`, or after `reserve_after` one of
    /// the reserve too (PgBouncer's `reserve_pool_timeout`), whichever frees first.
    async fn wait_for_slot(
        &self,
        wait: std::time::Duration,
        reserve_after: std::time::Duration,
    ) -> Option<OwnedSemaphorePermit> {
        let main = self.permits.clone().acquire_owned();
        tokio::pin!(main);
        if self.reserve_size == 0 || reserve_after >= wait {
            return tokio::time::timeout(wait, main).await.ok()?.ok();
        }
        if let Ok(p) = tokio::time::timeout(reserve_after, &mut main).await {
            return p.ok();
        }
        let reserve = self.reserve.clone().acquire_owned();
        let either = async {
            tokio::select! {
                p = &mut main => p.ok(),
                p = reserve => p.ok(),
            }
        };
        tokio::time::timeout(wait - reserve_after, either)
            .await
            .ok()
            .flatten()
    }
}

/// Most parameter spellings remembered per service.
const MAX_SPELLINGS: usize = 1024;

/// A service's pools, kept in its runtime (a changed service starts with fresh pools).
#[derive(Default)]
pub struct PgPools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    pub clients: AtomicUsize,
    /// Databases the console's PAUSE or KILL stopped (`None`: all of them): no server of
    /// theirs is lent until RESUME.
    paused: tokio::sync::watch::Sender<HashSet<Option<String>>>,
    /// The parameters a server reported at login, per (user, database): later clients are
    /// welcomed with them without waiting for a server (PgBouncer does the same).
    welcome: Mutex<HashMap<(String, String), Params>>,
    /// How servers spell the values clients give for reported parameters (`utf-8` is
    /// `UTF8`), learned at logins: a client is shown the server's spelling.
    spelled: Mutex<HashMap<(Bytes, Bytes), Bytes>>,
    /// Totals for the console's SHOW STATS.
    pub totals: super::stats::Totals,
    /// `max_server_connections` per backend.
    caps: super::cap::Caps,
    /// Databases the console's DISABLE closed to new clients (`None`: all of them).
    disabled: Mutex<HashSet<Option<String>>>,
}

impl PgPools {
    pub fn of(service: &ServiceRuntime) -> Arc<PgPools> {
        let any = service
            .ext
            .get_or_init(|| Arc::new(PgPools::default()))
            .clone();
        any.downcast::<PgPools>().unwrap_or_default()
    }

    /// The pool for `key`, made on first use with `pool_size` slots (the service's, or its
    /// login user's) and `reserve_pool_size` reserve slots.
    pub fn pool(&self, key: &PoolKey, service: &ServiceRuntime) -> Arc<Pool> {
        let size = service
            .spec
            .pg
            .pool_size_for(&key.user, service.spec.pool_size);
        let sizes = (size, service.spec.pg.reserve_pool_size);
        let Ok(mut pools) = self.pools.lock() else {
            return Arc::new(new_pool(key, sizes));
        };
        pools
            .entry(key.clone())
            .or_insert_with(|| Arc::new(new_pool(key, sizes)))
            .clone()
    }

    pub fn welcome(&self, user: &str, database: &str) -> Option<Params> {
        let w = self.welcome.lock().ok()?;
        w.get(&(user.to_string(), database.to_string())).cloned()
    }

    /// The server's spelling of `value` for parameter `name`, once learned.
    pub fn spelling(&self, name: &Bytes, value: &Bytes) -> Option<Bytes> {
        let spelled = self.spelled.lock().ok()?;
        spelled.get(&(name.clone(), value.clone())).cloned()
    }

    /// Remembers that a server shows `value` of `name` as `shown` (a bounded number of
    /// spellings; past that, clients with new ones are welcomed by a server).
    pub fn learn_spelling(&self, name: Bytes, value: Bytes, shown: Bytes) {
        if let Ok(mut spelled) = self.spelled.lock()
            && spelled.len() < MAX_SPELLINGS
        {
            spelled.insert((name, value), shown);
        }
    }

    fn remember_welcome(&self, user: &str, database: &str, server: &Server) {
        if let Ok(mut w) = self.welcome.lock() {
            w.entry((user.to_string(), database.to_string()))
                .or_insert_with(|| server.params.clone());
        }
    }

    /// The cap on `backend`'s server connections, when the service sets one.
    pub fn cap(&self, limit: Option<usize>, scope: &super::cap::Scope) -> Option<Arc<Semaphore>> {
        self.caps.of(limit?, scope)
    }

    /// Closes the longest-idle connection under `scope` of any pool; false if none is idle.
    pub fn close_one_idle(&self, scope: &super::cap::Scope) -> bool {
        for pool in self.all() {
            if !scope.covers(&pool.key) {
                continue;
            }
            let closed = pool
                .idle
                .lock()
                .ok()
                .and_then(|mut idle| (!idle.is_empty()).then(|| idle.remove(0)));
            if closed.is_some() {
                return true;
            }
        }
        false
    }

    pub fn all(&self) -> Vec<Arc<Pool>> {
        self.pools
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn new_pool(key: &PoolKey, (size, reserve_size): (usize, usize)) -> Pool {
    Pool {
        key: key.clone(),
        idle: Mutex::new(Vec::new()),
        epoch: AtomicU64::new(0),
        permits: Arc::new(Semaphore::new(size)),
        size,
        reserve: Arc::new(Semaphore::new(reserve_size)),
        reserve_size,
        waiting: AtomicUsize::new(0),
        pinned: AtomicUsize::new(0),
        waiting_since: Mutex::new(Vec::new()),
        upkeep: std::sync::atomic::AtomicBool::new(false),
        credential: Mutex::new(None),
    }
}

struct Waiter<'a> {
    pool: &'a Pool,
    since: Instant,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Ok(mut w) = self.pool.waiting_since.lock()
            && let Some(i) = w.iter().position(|t| *t == self.since)
        {
            w.swap_remove(i);
        }
    }
}

/// A server connection lent to one client; its permit frees the slot when dropped.
pub struct Lease {
    pub server: Box<Server>,
    _permit: OwnedSemaphorePermit,
    pool: Arc<Pool>,
    /// When it was lent (a clock reading the lease took anyway).
    since: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("no server connection became free within query_wait_timeout ({0:?})")]
    WaitTimeout(std::time::Duration),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Takes an idle connection of the pool or opens one, waiting for a free slot first.
/// Also returns how long the client waited (0 when a slot and an idle server were at hand:
/// the common case reads no clock).
pub async fn lease(
    service: &ServiceRuntime,
    pools: &PgPools,
    pool: &Arc<Pool>,
    backend: Arc<BackendState>,
    credential: Option<&Credential>,
) -> Result<(Lease, f64), LeaseError> {
    let mut slow: Option<Instant> = None;
    let (user, database) = (pool.key.user.as_str(), pool.key.database.as_str());
    let pool = pool.clone();
    let wait = service.spec.pg.query_wait_timeout;
    if !pools.resumed(&pool, wait).await {
        return Err(LeaseError::WaitTimeout(wait));
    }
    let permit = match pool.permits.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            let since = Instant::now();
            slow = Some(since);
            pool.waiting.fetch_add(1, Ordering::Relaxed);
            let _waiter = pool.wait_from(since);
            let reserve_after = service.spec.pg.reserve_pool_timeout;
            let permit = pool.wait_for_slot(wait, reserve_after).await;
            pool.waiting.fetch_sub(1, Ordering::Relaxed);
            permit.ok_or(LeaseError::WaitTimeout(wait))?
        }
    };
    let waited = |slow: Option<Instant>| slow.map_or(0.0, |t| t.elapsed().as_secs_f64());
    if let Some((server, now)) = take_idle(service, &pool) {
        let lease = Lease {
            server,
            _permit: permit,
            pool,
            since: now,
        };
        return Ok((lease, waited(slow)));
    }
    let now = Instant::now();
    let slow = slow.or(Some(now));
    pool.remember(credential);
    let pg = &service.spec.pg;
    let user_scope = super::cap::Scope::User(pool.key.user.clone());
    let user_cap = super::cap::acquire(pools, pg.max_user_connections, &user_scope, now + wait)
        .await
        .map_err(|()| LeaseError::WaitTimeout(wait))?;
    let scope = super::cap::Scope::Backend(pool.key.backend);
    let cap = super::cap::acquire(pools, pg.max_server_connections, &scope, now + wait)
        .await
        .map_err(|()| LeaseError::WaitTimeout(wait))?;
    // Boxed: opening a server connection is rare next to leasing an idle one, and inline
    // it would be moved and sized into every transaction's lease.
    match Box::pin(upstream::connect(
        service,
        backend.clone(),
        user,
        database,
        credential,
    ))
    .await
    {
        Ok(mut server) => {
            server.cap = cap;
            server.user_cap = user_cap;
            server.epoch = pool.epoch.load(Ordering::Acquire);
            backend.record_success(now);
            pools.remember_welcome(user, database, &server);
            let lease = Lease {
                server: Box::new(server),
                _permit: permit,
                pool,
                since: now,
            };
            Ok((lease, waited(slow)))
        }
        Err(e) => {
            if matches!(e, ServerError::Connect(..) | ServerError::Wire(_)) {
                backend.record_failure(now, service.failure_threshold());
            }
            Err(e.into())
        }
    }
}

/// The newest idle connection that is still open and within its lifetime, and the time
/// it was taken.
fn take_idle(service: &ServiceRuntime, pool: &Pool) -> Option<(Box<Server>, Instant)> {
    let now = Instant::now();
    let pg = &service.spec.pg;
    let mut idle = pool.idle.lock().ok()?;
    // The most recently used idle connection of this worker's own, else any worker's (the
    // pool is one for the whole gateway; a connection of another worker still works, its
    // readiness just comes through that worker's event loop).
    let me = crate::workers::index();
    while let Some(i) = idle
        .iter()
        .rposition(|s| s.worker == me)
        .or_else(|| idle.len().checked_sub(1))
    {
        let server = idle.remove(i);
        let expired = now.duration_since(server.created) > pg.server_lifetime
            || now.duration_since(server.idle_since) > pg.server_idle_timeout;
        // A connection used a moment ago is taken as open (PgBouncer's server_check_delay);
        // one idle longer is checked for a close by the server.
        let recent = now.duration_since(server.idle_since) < CHECK_AFTER;
        if !expired && (recent || is_open(&server)) {
            return Some((server, now));
        }
    }
    None
}

/// An idle connection the server closed (restart, `pg_terminate_backend`, idle timeout)
/// reads as end-of-stream or has unread bytes; either way it is not reused.
fn is_open(server: &Server) -> bool {
    let mut probe = [0u8; 1];
    matches!(
        server.wire.stream.try_read(&mut probe),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    ) && server.wire.buf.is_empty()
}

impl Lease {
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// Gives the connection back for reuse (only when it is idle and in a clean state).
    /// Returns how long the client held it (PgBouncer's `xact_time` in transaction mode).
    pub fn release(self) -> std::time::Duration {
        let Lease {
            mut server,
            pool,
            since,
            ..
        } = self;
        server.idle_since = Instant::now();
        let held = server.idle_since.duration_since(since);
        if server.epoch != pool.epoch.load(Ordering::Acquire) {
            return held;
        }
        if let Ok(mut idle) = pool.idle.lock() {
            idle.push(server);
        }
        held
    }
}
