//! What the chaos suites (`tests/chaos_*.rs`) measure about the gateway while faults run:
//! its resident memory and open file descriptors from /proc, and its error counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Resident set size of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Samples the gateway's RSS every 100 ms on a thread of its own, keeping the peak.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(rss_kib(pid), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak RSS in KiB.
    pub fn peak_kib(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// `throome_errors_total` of `kind`, summed over services.
pub fn errors_of(metrics: &str, kind: &str) -> u64 {
    let label = format!("kind=\"{kind}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("throome_errors_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Asserts the gateway's descriptors come back to `baseline` once clients are gone, with
/// slack for the runtime's own and for the pooled upstream connections each worker (one per
/// core by default) opens on first use and keeps.
pub fn assert_fds_back(pid: u32, baseline: usize) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut now = 0;
    let back = super::eventually(Duration::from_secs(10), || {
        now = fds(pid);
        now <= baseline + 2 + 2 * workers
    });
    assert!(back, "gateway fds {now}, baseline {baseline}");
}

/// A tally of one scenario, shared by its load threads.
#[derive(Default)]
pub struct Tally {
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub misattributed: AtomicU64,
    /// The slowest request that ended in an error, in ms.
    pub slowest_error_ms: AtomicU64,
}

impl Tally {
    pub fn ok(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&self, started: Instant) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_millis() as u64;
        self.slowest_error_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn wrong(&self) {
        self.misattributed.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for the test's output (the figures the README table and notes quote).
    pub fn report(&self, scenario: &str, extra: &str) -> String {
        let line = format!(
            "chaos {scenario}: acked {} errors {} misattributed {} slowest error {} ms {extra}",
            self.acked.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
            self.misattributed.load(Ordering::Relaxed),
            self.slowest_error_ms.load(Ordering::Relaxed),
        );
        eprintln!("{line}");
        line
    }
}

/// A client on its own thread until `stop`: `step(i)` returns whether the reply was the
/// one asked for (Err: an error), counted in `tally`.
pub fn repeat(
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
    mut step: impl FnMut(u64) -> Result<bool, String> + Send + 'static,
) -> JoinHandle<()> {
    let (stop, tally) = (stop.clone(), tally.clone());
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let started = Instant::now();
            match step(i) {
                Ok(true) => tally.ok(),
                Ok(false) => tally.wrong(),
                Err(e) => {
                    eprintln!("step {i}: {e}");
                    tally.error(started);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// One scenario at a time in a test binary: the suites check timings (prompt errors,
/// recovery within two health intervals) that scenarios running side by side on two
/// cores would blur.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `serial` for async tests.
pub async fn serial_async() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
