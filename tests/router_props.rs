//! Properties of the router over arbitrary candidate sets.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use proptest::prelude::*;
use throome::config::Strategy as Routing;
use throome::router::{Candidate, RouterState, pick};

fn strategy() -> impl Strategy<Value = Routing> {
    prop_oneof![
        Just(Routing::RoundRobin),
        Just(Routing::Weighted),
        Just(Routing::LeastConnections),
        Just(Routing::Adaptive)
    ]
}

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    prop::collection::vec((1u32..100, 0usize..50, 0.0f64..1.0), 1..12).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (weight, active, latency))| Candidate {
                index: i * 2,
                weight,
                active,
                latency,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn always_picks_one_of_the_candidates(s in strategy(), c in candidates(), seed in any::<u64>()) {
        let mut state = RouterState::new(0, seed);
        for _ in 0..20 {
            let i = pick(s, &c, &mut state).unwrap();
            prop_assert!(c.iter().any(|x| x.index == i));
        }
    }

    #[test]
    fn weighted_gives_each_its_exact_share_per_cycle(c in candidates()) {
        let total: u32 = c.iter().map(|x| x.weight).sum();
        let mut state = RouterState::new(0, 1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..total {
            *counts.entry(pick(Routing::Weighted, &c, &mut state).unwrap()).or_insert(0u32) += 1;
        }
        for x in &c {
            prop_assert_eq!(counts.get(&x.index).copied().unwrap_or(0), x.weight);
        }
    }

    #[test]
    fn round_robin_visits_every_candidate_once_per_cycle(c in candidates(), seed in any::<u64>()) {
        let mut state = RouterState::new(0, seed);
        let mut seen: Vec<usize> = (0..c.len()).map(|_| pick(Routing::RoundRobin, &c, &mut state).unwrap()).collect();
        seen.sort_unstable();
        let mut all: Vec<usize> = c.iter().map(|x| x.index).collect();
        all.sort_unstable();
        prop_assert_eq!(seen, all);
    }
}
