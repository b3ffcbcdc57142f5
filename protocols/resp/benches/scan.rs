//! Our request scanner and reply framer against redis-protocol's decoder on the same
//! pipelined input (1000 SETs with 32-byte values; 1000 bulk replies). Throughput in bytes/s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use throome_resp::{Limits, ReplyLimits, ReplyScanner, RequestScanner};

fn pipeline() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..1000 {
        let key = format!("key:{i:06}");
        out.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$32\r\n", key.len()).as_bytes(),
        );
        out.extend_from_slice(&[b'v'; 32]);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn replies() -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        out.extend_from_slice(b"$32\r\n");
        out.extend_from_slice(&[b'v'; 32]);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bench_requests(c: &mut Criterion) {
    let input = pipeline();
    let mut g = c.benchmark_group("requests");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("throome_resp", |b| {
        b.iter(|| {
            let mut s = RequestScanner::new(Limits::default());
            let mut buf = BytesMut::from(&input[..]);
            let mut keys = 0usize;
            while let Some(r) = s.scan(&mut buf).unwrap() {
                keys += r.arg(1).map_or(0, <[u8]>::len);
            }
            black_box(keys)
        })
    });
    g.bench_function("redis_protocol", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0usize;
            while let Some((frame, _, _)) =
                redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).unwrap()
            {
                n += usize::from(matches!(
                    frame,
                    redis_protocol::resp2::types::BytesFrame::Array(_)
                ));
            }
            black_box(n)
        })
    });
    g.finish();
}

fn bench_replies(c: &mut Criterion) {
    let input = replies();
    let mut g = c.benchmark_group("replies");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("throome_resp", |b| {
        b.iter(|| {
            let mut s = ReplyScanner::new(ReplyLimits::default());
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0usize;
            while let Some(r) = s.scan(&mut buf).unwrap() {
                n += r.frame().len();
            }
            black_box(n)
        })
    });
    g.bench_function("redis_protocol", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut n = 0usize;
            while let Some((_, len, _)) =
                redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).unwrap()
            {
                n += len;
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_requests, bench_replies);
criterion_main!(benches);
