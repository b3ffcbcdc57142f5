//! The console's controls over a service's pools (PgBouncer's PAUSE, RESUME, KILL,
//! DISABLE, ENABLE, RECONNECT), each for one database or for all.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{PgPools, Pool};

impl PgPools {
    /// PAUSE (`true`) or RESUME `database`, or all with `None`. RESUME of all also resumes
    /// each paused database; RESUME of one leaves a PAUSE of all in force.
    pub fn pause(&self, database: Option<&str>, on: bool) {
        self.paused
            .send_modify(|paused| toggle(paused, database, on));
    }

    /// DISABLE (`true`) or ENABLE new clients of `database`, or of all with `None`.
    pub fn disable(&self, database: Option<&str>, on: bool) {
        if let Ok(mut d) = self.disabled.lock() {
            toggle(&mut d, database, on);
        }
    }

    pub fn is_disabled(&self, database: &str) -> bool {
        self.disabled.lock().is_ok_and(|d| stopped(&d, database))
    }

    /// RECONNECT of the pools of `database` (all with `None`).
    pub fn reconnect(&self, database: Option<&str>) {
        for pool in self.all() {
            if database.is_none_or(|db| db == pool.key.database) {
                pool.reconnect();
            }
        }
    }

    /// Whether a PAUSE of all databases is in force.
    pub fn is_paused_all(&self) -> bool {
        self.paused.borrow().contains(&None)
    }

    /// Whether servers of `database` are lent (a PAUSE of all or of it is not in force).
    pub fn is_paused(&self, database: &str) -> bool {
        stopped(&self.paused.borrow(), database)
    }

    /// Waits while the pools are paused, up to `limit`; false if still paused then.
    /// Waits up to `limit` while the console has the pools paused, counted among `pool`'s
    /// waiting clients (PgBouncer shows them as `cl_waiting`). Not paused: no wait, no
    /// subscription.
    pub(super) async fn resumed(&self, pool: &Pool, limit: std::time::Duration) -> bool {
        if self.paused.borrow().is_empty() || !self.is_paused(&pool.key.database) {
            return true;
        }
        let mut rx = self.paused.subscribe();
        pool.waiting.fetch_add(1, Ordering::Relaxed);
        let waiter = pool.wait_from(Instant::now());
        let db = pool.key.database.as_str();
        let resumed = tokio::time::timeout(limit, rx.wait_for(|p| !stopped(p, db))).await;
        drop(waiter);
        pool.waiting.fetch_sub(1, Ordering::Relaxed);
        resumed.is_ok_and(|r| r.is_ok())
    }
}

/// Adds `database` (all with `None`) to a set of paused or disabled ones, or takes it out;
/// taking out all empties the set.
fn toggle(set: &mut HashSet<Option<String>>, database: Option<&str>, on: bool) {
    match (database, on) {
        (db, true) => {
            set.insert(db.map(str::to_string));
        }
        (None, false) => set.clear(),
        (Some(db), false) => {
            set.remove(&Some(db.to_string()));
        }
    }
}

/// Whether `database` is in a set of paused or disabled ones (`None` stands for all).
fn stopped(set: &HashSet<Option<String>>, database: &str) -> bool {
    !set.is_empty() && (set.contains(&None) || set.contains(&Some(database.to_string())))
}
