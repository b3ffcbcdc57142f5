//! Live state of one backend: active-probe health, the passive circuit breaker, open
//! connections and a peak-EWMA of observed latency. Shared (by `Arc`) across config reloads
//! as long as the backend stays in its service, so a reload never forgets that it is down.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::Role;

/// Decay time of the latency average: how long a slow spell is remembered (Linkerd uses 10s).
const EWMA_DECAY: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open,
    HalfOpen,
}

impl Circuit {
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
}

/// What a probe or request outcome changed, so callers can log transitions once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    WentDown,
    WentUp,
    CircuitOpened,
    CircuitClosed,
}

pub struct BackendState {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    pub role: Role,
    epoch: Instant,
    up: AtomicBool,
    probe_failures: AtomicU32,
    probe_successes: AtomicU32,
    circuit: AtomicU8,
    /// When the circuit last opened or went half-open, in ms since `epoch`.
    circuit_since_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    active: AtomicUsize,
    ewma: Mutex<PeakEwma>,
}

impl BackendState {
    pub fn new(host: &str, port: u16, weight: u32, role: Role) -> Self {
        BackendState {
            host: host.to_string(),
            port,
            weight,
            role,
            epoch: Instant::now(),
            up: AtomicBool::new(true),
            probe_failures: AtomicU32::new(0),
            probe_successes: AtomicU32::new(0),
            circuit: AtomicU8::new(0),
            circuit_since_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            active: AtomicUsize::new(0),
            ewma: Mutex::new(PeakEwma::default()),
        }
    }

    pub fn address(&self) -> String {
        if self.host.starts_with('/') && self.port == 0 {
            self.host.clone()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Health as the active probes see it.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn circuit(&self) -> Circuit {
        match self.circuit.load(Ordering::Acquire) {
            0 => Circuit::Closed,
            1 => Circuit::Open,
            _ => Circuit::HalfOpen,
        }
    }

    fn set_circuit(&self, c: Circuit, now: Instant) {
        let code = match c {
            Circuit::Closed => 0,
            Circuit::Open => 1,
            Circuit::HalfOpen => 2,
        };
        self.circuit_since_ms.store(self.ms(now), Ordering::Release);
        self.circuit.store(code, Ordering::Release);
    }

    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn circuit_age(&self, now: Instant) -> Duration {
        let since = self.circuit_since_ms.load(Ordering::Acquire);
        Duration::from_millis(self.ms(now).saturating_sub(since))
    }

    /// Whether new traffic may be sent here: the backend is up and its circuit is closed, or
    /// open long enough that one trial is due (a half-open trial that never reported back is
    /// retried after another cool-down).
    pub fn is_available(&self, now: Instant, cooldown: Duration) -> bool {
        self.is_up()
            && match self.circuit() {
                Circuit::Closed => true,
                Circuit::Open | Circuit::HalfOpen => self.circuit_age(now) >= cooldown,
            }
    }

    /// Called when traffic is actually sent: an open circuit past its cool-down becomes
    /// half-open, so this attempt is the single trial.
    pub fn begin_attempt(&self, now: Instant) {
        if self.circuit() != Circuit::Closed {
            self.set_circuit(Circuit::HalfOpen, now);
        }
    }

    /// A request (or connect) succeeded.
    pub fn record_success(&self, now: Instant) -> Transition {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if self.circuit() != Circuit::Closed {
            self.set_circuit(Circuit::Closed, now);
            return Transition::CircuitClosed;
        }
        Transition::None
    }

    /// A connect or I/O failure. Opens the circuit at `threshold` consecutive failures, or at
    /// once when this was the half-open trial.
    pub fn record_failure(&self, now: Instant, threshold: u32) -> Transition {
        let n = self
            .consecutive_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        match self.circuit() {
            Circuit::HalfOpen => {
                self.set_circuit(Circuit::Open, now);
                Transition::CircuitOpened
            }
            Circuit::Closed if n >= threshold => {
                self.set_circuit(Circuit::Open, now);
                Transition::CircuitOpened
            }
            _ => Transition::None,
        }
    }

    /// An active probe's result. Marks the backend down after `down_after` consecutive failures
    /// and up after `up_after` consecutive successes. A good probe also decides an open
    /// circuit whose cool-down has passed.
    pub fn record_probe(&self, ok: bool, now: Instant, cfg: ProbeThresholds) -> Transition {
        if ok {
            self.probe_failures.store(0, Ordering::Relaxed);
            let n = self
                .probe_successes
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if !self.is_up() && n >= cfg.up_after {
                self.up.store(true, Ordering::Relaxed);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.set_circuit(Circuit::Closed, now);
                return Transition::WentUp;
            }
            if self.circuit() != Circuit::Closed && self.circuit_age(now) >= cfg.cooldown {
                return self.record_success(now);
            }
        } else {
            self.probe_successes.store(0, Ordering::Relaxed);
            let n = self
                .probe_failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if self.is_up() && n >= cfg.down_after {
                self.up.store(false, Ordering::Relaxed);
                return Transition::WentDown;
            }
            if self.circuit() == Circuit::HalfOpen {
                self.set_circuit(Circuit::Open, now);
            }
        }
        Transition::None
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts one open connection (or in-flight request) until the guard drops.
    pub fn track(self: &std::sync::Arc<Self>) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(self.clone())
    }

    pub fn observe_latency(&self, rtt: Duration, now: Instant) {
        if let Ok(mut e) = self.ewma.lock() {
            e.observe(rtt, now);
        }
    }

    /// Current latency estimate in seconds, decayed toward zero while nothing is observed so a
    /// backend that was slow once is eventually tried again (as Finagle's PeakEwma does).
    pub fn latency_estimate(&self, now: Instant) -> f64 {
        self.ewma.lock().map(|e| e.estimate(now)).unwrap_or(0.0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct ProbeThresholds {
    pub down_after: u32,
    pub up_after: u32,
    pub cooldown: Duration,
}

pub struct ActiveGuard(std::sync::Arc<BackendState>);

impl ActiveGuard {
    pub fn backend(&self) -> &std::sync::Arc<BackendState> {
        &self.0
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Peak-sensitive EWMA: jumps up to a slower sample at once, decays down gradually.
#[derive(Default)]
struct PeakEwma {
    cost: f64,
    stamp: Option<Instant>,
}

impl PeakEwma {
    fn decay(&self, now: Instant) -> f64 {
        match self.stamp {
            Some(t) => {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                (-dt / EWMA_DECAY.as_secs_f64()).exp()
            }
            None => 0.0,
        }
    }

    fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_secs_f64();
        if rtt > self.cost {
            self.cost = rtt;
        } else {
            let w = self.decay(now);
            self.cost = self.cost * w + rtt * (1.0 - w);
        }
        self.stamp = Some(now);
    }

    fn estimate(&self, now: Instant) -> f64 {
        self.cost * self.decay(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ProbeThresholds = ProbeThresholds {
        down_after: 2,
        up_after: 2,
        cooldown: Duration::from_secs(1),
    };

    fn b() -> BackendState {
        BackendState::new("127.0.0.1", 1, 1, Role::Primary)
    }

    #[test]
    fn probes_mark_down_and_up_with_thresholds() {
        let b = b();
        let now = Instant::now();
        assert_eq!(b.record_probe(false, now, T), Transition::None);
        assert_eq!(b.record_probe(false, now, T), Transition::WentDown);
        assert!(!b.is_available(now, T.cooldown));
        assert_eq!(b.record_probe(true, now, T), Transition::None);
        assert_eq!(b.record_probe(true, now, T), Transition::WentUp);
        assert!(b.is_available(now, T.cooldown));
    }

    #[test]
    fn circuit_opens_then_one_trial_decides() {
        let b = b();
        let t0 = Instant::now();
        assert_eq!(b.record_failure(t0, 3), Transition::None);
        assert_eq!(b.record_failure(t0, 3), Transition::None);
        assert_eq!(b.record_failure(t0, 3), Transition::CircuitOpened);
        assert!(!b.is_available(t0, T.cooldown));
        let t1 = t0 + T.cooldown;
        assert!(b.is_available(t1, T.cooldown));
        b.begin_attempt(t1);
        assert_eq!(b.circuit(), Circuit::HalfOpen);
        assert!(!b.is_available(t1, T.cooldown), "only one trial at a time");
        // The trial fails: open again for another cool-down.
        assert_eq!(b.record_failure(t1, 3), Transition::CircuitOpened);
        let t2 = t1 + T.cooldown;
        b.begin_attempt(t2);
        assert_eq!(b.record_success(t2), Transition::CircuitClosed);
        assert!(b.is_available(t2, T.cooldown));
    }

    #[test]
    fn good_probe_closes_circuit_after_cooldown_only() {
        let b = b();
        let t0 = Instant::now();
        b.record_failure(t0, 1);
        assert_eq!(b.record_probe(true, t0, T), Transition::None);
        assert_eq!(b.circuit(), Circuit::Open);
        assert_eq!(
            b.record_probe(true, t0 + T.cooldown, T),
            Transition::CircuitClosed
        );
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays() {
        let b = b();
        let t0 = Instant::now();
        b.observe_latency(Duration::from_millis(1), t0);
        b.observe_latency(Duration::from_millis(100), t0);
        assert!((b.latency_estimate(t0) - 0.1).abs() < 1e-9);
        let later = b.latency_estimate(t0 + Duration::from_secs(10));
        assert!(later < 0.05 && later > 0.0, "{later}");
    }
}
