//! Cost of one routing decision per strategy (the router runs once per connection for `tcp`
//! and will run once per request for the protocol adapters), and of parsing a cluster file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use throome::config::Strategy;
use throome::router::{Candidate, RouterState, pick};

fn candidates(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            index: i,
            weight: 1 + (i as u32 % 3),
            active: i % 5,
            latency: 0.001 * (i as f64 + 1.0),
        })
        .collect()
}

fn bench_pick(c: &mut Criterion) {
    let cands = candidates(8);
    for strategy in [
        Strategy::RoundRobin,
        Strategy::Weighted,
        Strategy::LeastConnections,
        Strategy::Adaptive,
    ] {
        let mut state = RouterState::new(cands.len(), 7);
        c.bench_function(&format!("pick/{}/8", strategy.as_str()), |b| {
            b.iter(|| pick(strategy, black_box(&cands), &mut state))
        });
    }
}

fn bench_parse(c: &mut Criterion) {
    let text = include_str!("../clusters/example/config.yaml");
    c.bench_function("parse_cluster/example", |b| {
        b.iter(|| throome::config::parse_cluster(black_box(text)).unwrap())
    });
}

criterion_group!(benches, bench_pick, bench_parse);
criterion_main!(benches);
