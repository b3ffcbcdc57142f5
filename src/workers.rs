//! Event loops: `gateway.worker_threads` single-threaded tokio runtimes, one OS thread each.
//! Every listener accepts on every worker (one SO_REUSEPORT socket per worker, so the kernel
//! spreads new connections over them), and a connection lives on the worker that accepted it
//! with the upstream connections that worker opened (Redis multiplexed connections, Kafka
//! broker connections): nothing on the request path is shared between workers but the
//! gateway-wide limits (connection permits, PostgreSQL pools). The thread that calls
//! [`start`] runs worker 0 (the admin API, reloads and health checks live there too).
//!
//! Without [`start`] (tests that run a gateway in their own runtime) there is one worker:
//! the caller's runtime.

use std::cell::Cell;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Every worker's handle, worker 0 first; unset when no workers were started.
static HANDLES: OnceLock<Vec<Handle>> = OnceLock::new();

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The worker count for `worker_threads` (0: one per core this process may use, which
/// `available_parallelism` reads from the CPU affinity mask and the cgroup's CPU quota).
pub fn resolve(worker_threads: usize) -> usize {
    match worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Worker 0's runtime, for the calling thread, after starting workers 1..n on threads of
/// their own (named `throome-w<i>` for `top -H` and `perf`). Call once.
pub fn start(n: usize) -> std::io::Result<Runtime> {
    let main = Builder::new_current_thread().enable_all().build()?;
    let mut handles = vec![main.handle().clone()];
    for i in 1..n.max(1) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("throome-w{i}"))
            .spawn(move || {
                let runtime = match Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                INDEX.with(|c| c.set(i));
                let _ = tx.send(Ok(runtime.handle().clone()));
                // Runs the tasks spawned onto this worker until the process exits.
                runtime.block_on(std::future::pending::<()>());
            })?;
        let handle = rx
            .recv()
            .map_err(|_| std::io::Error::other("a worker thread did not start"))??;
        handles.push(handle);
    }
    let _ = HANDLES.set(handles);
    Ok(main)
}

/// How many workers serve connections.
pub fn count() -> usize {
    HANDLES.get().map_or(1, Vec::len)
}

/// The worker running the caller (0 outside worker threads).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// A handle for each worker, worker 0 first; without [`start`], the caller's runtime (so
/// this must then be called from inside one).
pub fn handles() -> Vec<Handle> {
    HANDLES
        .get()
        .cloned()
        .unwrap_or_else(|| vec![Handle::current()])
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_means_one_per_available_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(super::resolve(0), cores);
        assert_eq!(super::resolve(3), 3);
    }
}
