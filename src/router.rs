//! Backend selection as a pure function: given the eligible candidates (already filtered for
//! health, circuit and role) and the strategy's own small state, pick one. No clocks, no I/O,
//! no randomness of its own, so every strategy is table-tested for its distribution.

use crate::config::Strategy;

/// What the router knows of one eligible backend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Index of the backend in its service's backend list.
    pub index: usize,
    pub weight: u32,
    /// Open connections or in-flight requests right now.
    pub active: usize,
    /// Peak-EWMA latency estimate in seconds.
    pub latency: f64,
}

/// The per-service state strategies carry between picks.
#[derive(Debug, Clone)]
pub struct RouterState {
    rr: usize,
    /// Smooth weighted round-robin current weights, by backend index.
    current: Vec<i64>,
    rng: u64,
}

impl RouterState {
    pub fn new(backends: usize, seed: u64) -> Self {
        RouterState {
            rr: 0,
            current: vec![0; backends],
            rng: seed | 1,
        }
    }

    /// xorshift64*: cheap and good enough to pick two distinct candidates.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn next_rr(&mut self, len: usize) -> usize {
        let i = self.rr % len;
        self.rr = self.rr.wrapping_add(1);
        i
    }
}

/// Picks a backend index from `candidates`, or `None` when there is none.
pub fn pick(
    strategy: Strategy,
    candidates: &[Candidate],
    state: &mut RouterState,
) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0].index),
        len => Some(match strategy {
            Strategy::RoundRobin => candidates[state.next_rr(len)].index,
            Strategy::Weighted => smooth_weighted(candidates, state),
            Strategy::LeastConnections => least_connections(candidates, state),
            Strategy::Adaptive => power_of_two_choices(candidates, state),
        }),
    }
}

/// Nginx's smooth weighted round-robin: weights 5,1,1 give a,a,b,a,c,a,a — spread out, not
/// bursts. Only eligible backends take part, so a down backend's share goes to the others.
fn smooth_weighted(candidates: &[Candidate], state: &mut RouterState) -> usize {
    let mut total: i64 = 0;
    let mut best = candidates[0].index;
    let mut best_weight = i64::MIN;
    for c in candidates {
        if state.current.len() <= c.index {
            state.current.resize(c.index + 1, 0);
        }
        let w = i64::from(c.weight);
        state.current[c.index] += w;
        total += w;
        if state.current[c.index] > best_weight {
            best_weight = state.current[c.index];
            best = c.index;
        }
    }
    state.current[best] -= total;
    best
}

/// Fewest active connections; ties rotate so equal backends share the load.
fn least_connections(candidates: &[Candidate], state: &mut RouterState) -> usize {
    let start = state.next_rr(candidates.len());
    let mut best = candidates[start];
    for offset in 1..candidates.len() {
        let c = candidates[(start + offset) % candidates.len()];
        if c.active < best.active {
            best = c;
        }
    }
    best.index
}

/// Power of two choices over peak-EWMA cost (latency x (in-flight + 1)), as Finagle and
/// Linkerd balance: two random candidates, the cheaper one wins.
fn power_of_two_choices(candidates: &[Candidate], state: &mut RouterState) -> usize {
    let len = candidates.len() as u64;
    let a = (state.next_random() % len) as usize;
    let mut b = (state.next_random() % (len - 1)) as usize;
    if b >= a {
        b += 1;
    }
    let cost = |c: &Candidate| c.latency * (c.active as f64 + 1.0);
    let (ca, cb) = (&candidates[a], &candidates[b]);
    if cost(cb) < cost(ca) {
        cb.index
    } else {
        ca.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(weights: &[u32]) -> Vec<Candidate> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| Candidate {
                index,
                weight,
                active: 0,
                latency: 0.0,
            })
            .collect()
    }

    fn counts(strategy: Strategy, c: &[Candidate], n: usize) -> Vec<usize> {
        let mut state = RouterState::new(c.len(), 42);
        let mut counts = vec![0; c.iter().map(|c| c.index + 1).max().unwrap_or(0)];
        for _ in 0..n {
            counts[pick(strategy, c, &mut state).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn no_candidates_means_no_backend() {
        let mut s = RouterState::new(0, 1);
        for strategy in [
            Strategy::RoundRobin,
            Strategy::Weighted,
            Strategy::LeastConnections,
            Strategy::Adaptive,
        ] {
            assert_eq!(pick(strategy, &[], &mut s), None);
        }
    }

    #[test]
    fn round_robin_alternates() {
        let c = cands(&[1, 1, 1]);
        let mut s = RouterState::new(3, 7);
        let seq: Vec<usize> = (0..6)
            .map(|_| pick(Strategy::RoundRobin, &c, &mut s).unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn weighted_is_smooth_and_follows_weights() {
        let c = cands(&[5, 1, 1]);
        let mut s = RouterState::new(3, 7);
        let seq: Vec<usize> = (0..7)
            .map(|_| pick(Strategy::Weighted, &c, &mut s).unwrap())
            .collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(
            counts(Strategy::Weighted, &cands(&[3, 1]), 4000),
            [3000, 1000]
        );
    }

    #[test]
    fn weighted_skips_ineligible_backends() {
        // Backend 1 is down: only 0 and 2 are candidates, in the ratio of their weights.
        let c = vec![
            Candidate {
                index: 0,
                weight: 2,
                active: 0,
                latency: 0.0,
            },
            Candidate {
                index: 2,
                weight: 1,
                active: 0,
                latency: 0.0,
            },
        ];
        assert_eq!(counts(Strategy::Weighted, &c, 300), [200, 0, 100]);
    }

    #[test]
    fn least_connections_picks_the_idlest() {
        let mut c = cands(&[1, 1, 1]);
        c[0].active = 5;
        c[1].active = 1;
        c[2].active = 3;
        assert_eq!(counts(Strategy::LeastConnections, &c, 10), [0, 10, 0]);
        // Ties share the load.
        let tie = cands(&[1, 1]);
        assert_eq!(counts(Strategy::LeastConnections, &tie, 10), [5, 5]);
    }

    #[test]
    fn adaptive_moves_traffic_away_from_a_slow_backend() {
        let mut c = cands(&[1, 1, 1]);
        c[0].latency = 0.001;
        c[1].latency = 0.001;
        c[2].latency = 0.200;
        let n = counts(Strategy::Adaptive, &c, 3000);
        // P2C: the slow one wins only when drawn against itself, which cannot happen: zero.
        assert_eq!(n[2], 0, "{n:?}");
        assert!(n[0] > 1000 && n[1] > 1000, "{n:?}");
    }

    #[test]
    fn adaptive_weighs_in_flight_requests() {
        let mut c = cands(&[1, 1]);
        c[0].latency = 0.010;
        c[0].active = 50;
        c[1].latency = 0.020;
        assert_eq!(counts(Strategy::Adaptive, &c, 100), [0, 100]);
    }
}
