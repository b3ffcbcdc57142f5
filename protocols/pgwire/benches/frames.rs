//! Framing throughput over a pgbench-like stream of extended-protocol messages.
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use throome_pgwire::{FrameScanner, build};

fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..1000 {
        out.extend_from_slice(&build::bind(b"", b"P_1", b"\0\0\0\x01\0\0\0\x041234\0\0"));
        out.extend_from_slice(&build::target(b'D', b'P', b""));
        out.extend_from_slice(&build::message(b'E', b"\0\0\0\0\0"));
        out.extend_from_slice(&build::sync());
        if i % 10 == 0 {
            out.extend_from_slice(&build::query(
                "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            ));
        }
    }
    out
}

fn frames(c: &mut Criterion) {
    let input = stream();
    let mut g = c.benchmark_group("pg_frames");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("scan", |b| {
        let scanner = FrameScanner::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0;
            while let Ok(Some(f)) = scanner.scan(&mut buf) {
                n += usize::from(f.tag());
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
