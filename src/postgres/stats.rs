//! What the admin console's SHOW STATS reports, PgBouncer's way
//! (<https://www.pgbouncer.org/usage.html#show-stats>): totals since the service started and
//! averages over the last finished `stats_period`.
//!
//! Each client tallies in plain fields and adds its tally to the service's atomics between
//! transactions, so the hot path pays no shared-memory traffic per query.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One client's counts not yet added to the service's totals.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub struct Tally {
    pub xacts: u64,
    pub queries: u64,
    /// Bytes from the client.
    pub received: u64,
    /// Bytes to the client.
    pub sent: u64,
    /// Microseconds the client held a server.
    pub xact_us: u64,
    /// Microseconds servers spent answering it (a query sent to its ReadyForQuery).
    pub query_us: u64,
    /// Microseconds it waited for a server.
    pub wait_us: u64,
}

const FIELDS: usize = 7;

impl Tally {
    fn to_array(self) -> [u64; FIELDS] {
        [
            self.xacts,
            self.queries,
            self.received,
            self.sent,
            self.xact_us,
            self.query_us,
            self.wait_us,
        ]
    }

    fn from_array(a: [u64; FIELDS]) -> Tally {
        let [xacts, queries, received, sent, xact_us, query_us, wait_us] = a;
        Tally {
            xacts,
            queries,
            received,
            sent,
            xact_us,
            query_us,
            wait_us,
        }
    }
}

/// A service's totals, and the two samples its averages are taken between.
pub struct Totals {
    sums: [AtomicU64; FIELDS],
    /// (the sample before, the last sample): the last finished period lies between them.
    samples: Mutex<(Option<Sample>, Sample)>,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    tally: Tally,
}

impl Default for Totals {
    fn default() -> Self {
        let start = Sample {
            at: Instant::now(),
            tally: Tally::default(),
        };
        Totals {
            sums: Default::default(),
            samples: Mutex::new((None, start)),
        }
    }
}

impl Totals {
    /// Adds one client's tally.
    pub fn add(&self, tally: Tally) {
        for (sum, n) in self.sums.iter().zip(tally.to_array()) {
            if n > 0 {
                sum.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Everything since the service started.
    pub fn read(&self) -> Tally {
        Tally::from_array(self.sums.each_ref().map(|s| s.load(Ordering::Relaxed)))
    }

    /// PgBouncer's `avg_*` columns over the last finished period of at least `period`:
    /// counts and bytes per second, times per transaction and per query (µs), wait time
    /// per second. Periods are cut when asked (a new sample once the last is `period` old),
    /// so a console polled less often than `period` averages over the time between polls.
    /// All zero until the first period has passed.
    pub fn averages(&self, period: Duration) -> Tally {
        let now = self.read();
        let Ok(mut samples) = self.samples.lock() else {
            return Tally::default();
        };
        let (before, last) = &mut *samples;
        if last.at.elapsed() >= period {
            *before = Some(*last);
            *last = Sample {
                at: Instant::now(),
                tally: now,
            };
        }
        match before {
            Some(before) => average(before, last),
            None => Tally::default(),
        }
    }
}

/// PgBouncer's averages between two samples (its `stats.c`: rates per second, durations
/// per transaction or query).
fn average(from: &Sample, to: &Sample) -> Tally {
    let d = Tally::from_array(std::array::from_fn(|i| {
        to.tally.to_array()[i].saturating_sub(from.tally.to_array()[i])
    }));
    let secs = to.at.duration_since(from.at).as_secs_f64().max(1e-6);
    let per_sec = |n: u64| (n as f64 / secs) as u64;
    let per = |n: u64, count: u64| n.checked_div(count).unwrap_or(0);
    Tally {
        xacts: per_sec(d.xacts),
        queries: per_sec(d.queries),
        received: per_sec(d.received),
        sent: per_sec(d.sent),
        xact_us: per(d.xact_us, d.xacts),
        query_us: per(d.query_us, d.queries),
        wait_us: per_sec(d.wait_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_are_rates_and_means_over_the_period() {
        let from = Sample {
            at: Instant::now(),
            tally: Tally::default(),
        };
        let to = Sample {
            at: from.at + Duration::from_secs(2),
            tally: Tally {
                xacts: 10,
                queries: 20,
                received: 4000,
                sent: 8000,
                xact_us: 500,
                query_us: 300,
                wait_us: 60,
            },
        };
        let avg = average(&from, &to);
        assert_eq!(
            avg,
            Tally {
                xacts: 5,
                queries: 10,
                received: 2000,
                sent: 4000,
                xact_us: 50,
                query_us: 15,
                wait_us: 30,
            }
        );
    }

    #[test]
    fn no_average_before_a_period_has_passed_then_one() {
        let totals = Totals::default();
        totals.add(Tally {
            xacts: 3,
            xact_us: 30,
            ..Tally::default()
        });
        assert_eq!(totals.averages(Duration::from_secs(3600)), Tally::default());
        let avg = totals.averages(Duration::ZERO);
        assert_eq!(avg.xact_us, 10);
        assert!(avg.xacts > 0);
        assert_eq!(totals.read().xacts, 3);
    }
}
