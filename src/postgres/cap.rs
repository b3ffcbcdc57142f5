//! Caps on server connections across pools: `max_server_connections` per backend (every
//! user and database, like PgBouncer's `max_db_connections`) and `max_user_connections` per
//! user (every backend and database, PgBouncer's). Each open server connection holds a
//! permit of each cap until it closes; a new one that finds a cap reached closes an idle
//! connection of another pool under the same cap to make room, or waits (within the
//! client's `query_wait_timeout`) for one to become idle or close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::PgPools;

/// How often a client waiting at the cap looks again for an idle connection to close.
const RETRY: Duration = Duration::from_millis(50);

/// What a cap counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Scope {
    Backend(usize),
    User(String),
}

impl Scope {
    pub fn covers(&self, key: &super::pool::PoolKey) -> bool {
        match self {
            Scope::Backend(b) => key.backend == *b,
            Scope::User(u) => key.user == *u,
        }
    }
}

/// A permit for one more server connection under `scope`: `Ok(None)` when the service sets
/// no such cap, `Err(())` when none came free before `deadline`.
pub async fn acquire(
    pools: &PgPools,
    limit: Option<usize>,
    scope: &Scope,
    deadline: Instant,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    let Some(semaphore) = pools.cap(limit, scope) else {
        return Ok(None);
    };
    loop {
        if let Ok(p) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        if pools.close_one_idle(scope) {
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(());
        }
        let wait = tokio::time::timeout(left.min(RETRY), semaphore.clone().acquire_owned());
        if let Ok(Ok(p)) = wait.await {
            return Ok(Some(p));
        }
    }
}

/// A permit if one is free now (for `min_pool_size` top-ups, which never evict or wait).
pub fn try_acquire(
    pools: &PgPools,
    limit: Option<usize>,
    scope: &Scope,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    match pools.cap(limit, scope) {
        None => Ok(None),
        Some(s) => s.try_acquire_owned().map(Some).map_err(|_| ()),
    }
}

/// The semaphores, one per scope, made on first use.
#[derive(Default)]
pub struct Caps(std::sync::Mutex<std::collections::HashMap<Scope, Arc<Semaphore>>>);

impl Caps {
    pub fn of(&self, limit: usize, scope: &Scope) -> Option<Arc<Semaphore>> {
        let mut caps = self.0.lock().ok()?;
        Some(
            caps.entry(scope.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }
}
