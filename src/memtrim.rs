//! Gives the heap that departed clients freed back to the operating system.
//!
//! glibc's malloc keeps freed memory in its arenas and only returns the top of a heap, so
//! after 10,000 clients close the gateway's RSS stayed where it peaked (193 MiB in issue 21)
//! while twemproxy's and PgBouncer's came back. `malloc_trim(0)` walks every arena and
//! `madvise(MADV_DONTNEED)`s the whole free pages inside it
//! (<https://man7.org/linux/man-pages/man3/malloc_trim.3.html>). It locks each arena while it
//! walks it, so it runs on a blocking thread and only after many clients have gone. The
//! buffers the workers keep for the next busy connections (`crate::bufpool`, up to 2 MiB
//! each) are freed first: they were sized for the crowd that just left.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// How often the open connection count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Fewer departures than this are not worth a trim: at ~5 KiB a client, 256 clients hold
/// about a megabyte, which malloc reuses for the next ones anyway.
const MIN_DEPARTED: usize = 256;

/// Decides when to trim from the number of open client connections.
#[derive(Debug, Default)]
pub struct Trigger {
    peak: usize,
}

impl Trigger {
    /// Takes the current count; true when enough clients left since the last peak that the
    /// memory they held should go back. The peak restarts from here after a trim.
    pub fn observe(&mut self, open: usize) -> bool {
        self.peak = self.peak.max(open);
        let departed = self.peak - open;
        if departed >= MIN_DEPARTED.max(self.peak / 4) {
            self.peak = open;
            return true;
        }
        false
    }
}

/// Watches `limit` (whose permits are the free connection slots out of `max`) until `stop`.
pub async fn run(limit: Arc<Semaphore>, max: usize, stop: CancellationToken) {
    let mut trigger = Trigger::default();
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let open = max.saturating_sub(limit.available_permits());
        if trigger.observe(open) {
            // Each worker's free list is its own (thread-local), so each empties its own.
            for worker in crate::workers::handles() {
                let _ = worker.spawn(async { crate::bufpool::release() }).await;
            }
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

/// Removes `key` from a registry of clients and shrinks the map once it is a quarter full:
/// a `HashMap` keeps the capacity of its largest crowd (16,384 slots of ~170 bytes after
/// 10,000 Redis clients), so without this the registries alone kept megabytes. Halving at a
/// quarter keeps removal amortized O(1).
pub fn remove_and_shrink<K: std::hash::Hash + Eq, V>(
    map: &mut std::collections::HashMap<K, V>,
    key: &K,
) {
    map.remove(key);
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and is safe to call from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released, "returned freed heap to the system");
}

/// Other allocators (musl's, jemalloc's) return memory on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::Trigger;

    #[test]
    fn trims_once_after_many_clients_leave_and_not_on_small_churn() {
        let mut t = Trigger::default();
        assert!(!t.observe(10_000));
        assert!(!t.observe(9_900), "100 departures are churn");
        assert!(!t.observe(8_000), "a fifth of the peak is not enough");
        assert!(t.observe(7_400), "a quarter of the peak left");
        assert!(!t.observe(7_400), "the peak restarts after a trim");
        assert!(!t.observe(7_200));
        assert!(t.observe(5_000));
    }

    #[test]
    fn registries_shrink_when_their_crowd_leaves() {
        let mut map: std::collections::HashMap<u64, [u8; 64]> =
            (0..10_000).map(|i| (i, [0; 64])).collect();
        let full = map.capacity();
        for i in 0..9_990 {
            super::remove_and_shrink(&mut map, &i);
        }
        assert_eq!(map.len(), 10);
        assert!(
            map.capacity() <= 64,
            "{} of {full} slots kept",
            map.capacity()
        );
    }

    #[test]
    fn small_gateways_trim_after_256_departures() {
        let mut t = Trigger::default();
        assert!(!t.observe(300));
        assert!(!t.observe(100));
        assert!(t.observe(44));
    }
}
