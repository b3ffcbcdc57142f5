//! Framing + header parsing over a stream of Produce requests (the hot path: every request
//! goes through it), and a Metadata rewrite (once per client metadata refresh).
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use throome_kafka::{Broker, FrameScanner, RequestHeader, expects_response, rewrite_response};

/// A Produce v9 request with a 1 KiB record batch stand-in.
fn produce(correlation: i32) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 9];
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&[0, 5, b'b', b'e', b'n', b'c', b'h', 0]); // client id, tags
    body.extend_from_slice(&[0, 0xff, 0xff, 0, 0, 0x75, 0x30]); // null txn id, acks -1, timeout
    body.extend_from_slice(&[0u8; 1024]);
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

fn requests(c: &mut Criterion) {
    let input: Vec<u8> = (0..1000).flat_map(produce).collect();
    let mut g = c.benchmark_group("kafka_requests");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("frame_and_header", |b| {
        let scanner = FrameScanner::default();
        b.iter(|| {
            let mut buf = BytesMut::from(&input[..]);
            let mut acked = 0;
            while let Ok(Some(f)) = scanner.next(&mut buf) {
                if let Ok(h) = RequestHeader::parse(&f) {
                    acked += usize::from(expects_response(&h, &f).unwrap_or(false));
                }
            }
            acked
        })
    });
    g.finish();
}

fn metadata(c: &mut Criterion) {
    let path = format!(
        "{}/tests/golden/kafka_python.rep",
        env!("CARGO_MANIFEST_DIR")
    );
    let wire = Bytes::from(std::fs::read(path).unwrap_or_default());
    let mut buf = BytesMut::from(&wire[..]);
    let scanner = FrameScanner::default();
    let frames: Vec<Bytes> = std::iter::from_fn(|| scanner.next(&mut buf).ok().flatten()).collect();
    let Some(meta) = frames.get(1).cloned() else {
        return;
    };
    c.bench_function("kafka_metadata_rewrite", |b| {
        b.iter(|| {
            let mut map = |b: &Broker| ("proxy.local".to_string(), 9000 + b.node_id);
            rewrite_response(3, 12, &meta, &mut map).map(|r| r.frame.len())
        })
    });
}

criterion_group!(benches, requests, metadata);
criterion_main!(benches);
