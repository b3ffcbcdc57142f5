//! `max_server_connections`: a cap on the server connections to one backend across all of
//! a service's pools (every user and database), like PgBouncer's `max_db_connections`. Each
//! open server connection holds a permit until it closes; a new one that finds the cap
//! reached closes an idle connection of another pool on that backend to make room, or waits
//! (within the client's `query_wait_timeout`) for one to become idle or close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::pool::PgPools;

/// How often a client waiting at the cap looks again for an idle connection to close.
const RETRY: Duration = Duration::from_millis(50);

/// A permit for one more server connection to `backend`: `Ok(None)` when the service sets
/// no cap, `Err(())` when none came free before `deadline`.
pub async fn acquire(
    pools: &PgPools,
    limit: Option<usize>,
    backend: usize,
    deadline: Instant,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    let Some(semaphore) = pools.cap(limit, backend) else {
        return Ok(None);
    };
    loop {
        if let Ok(p) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        if pools.close_one_idle(backend) {
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
    backend: usize,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    match pools.cap(limit, backend) {
        None => Ok(None),
        Some(s) => s.try_acquire_owned().map(Some).map_err(|_| ()),
    }
}

/// The semaphores, one per backend index, made on first use.
#[derive(Default)]
pub struct Caps(std::sync::Mutex<Vec<Option<Arc<Semaphore>>>>);

impl Caps {
    pub fn of(&self, limit: usize, backend: usize) -> Option<Arc<Semaphore>> {
        let mut caps = self.0.lock().ok()?;
        if caps.len() <= backend {
            caps.resize(backend + 1, None);
        }
        Some(
            caps[backend]
                .get_or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }
}
