//! Golden bytes from real peers: Debian's kcat (librdkafka 2.0.2) and kafka-python 3.0.12
//! against the tansu broker (recorded with protocols/resp/gen/capture.py), and tansu's answers
//! to FindCoordinator v0/v3/v4 and DescribeCluster v0 requests (recorded by hand-built
//! requests, see tests/golden/README).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
};
use kafka_protocol::protocol::Decodable;
use throome_kafka::{
    Broker, FrameScanner, RequestHeader, clamp_api_versions, client_software,
    needs_api_versions_fallback, rewrite_response,
};

fn frames(name: &str) -> Vec<Bytes> {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut buf = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut out = Vec::new();
    while let Some(f) = FrameScanner::default().next(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty(), "{name}: {} trailing bytes", buf.len());
    out
}

/// (api_key, api_version) of each request frame.
fn apis(reqs: &[Bytes]) -> Vec<(i16, i16)> {
    reqs.iter()
        .map(|f| {
            let h = RequestHeader::parse(f).unwrap();
            (h.api_key, h.api_version)
        })
        .collect()
}

fn to_proxy(b: &Broker) -> (String, i32) {
    ("proxy.local".to_string(), 20_000 + b.node_id)
}

/// Decodes a response body at `version` after a header of `header_len` bytes (the
/// correlation id, plus one byte of empty tags in flexible versions).
fn body<T: Decodable>(frame: &[u8], header_len: usize, version: i16) -> T {
    let mut rest = Bytes::copy_from_slice(&frame[4 + header_len..]);
    T::decode(&mut rest, version).unwrap()
}

#[test]
fn kcat_asks_for_api_versions_v3_and_gets_the_fallback() {
    let reqs = frames("kcat.req");
    assert_eq!(reqs.len(), 4, "kcat retried its ApiVersions request");
    for f in &reqs {
        let h = RequestHeader::parse(f).unwrap();
        assert_eq!((h.api_key, h.api_version), (18, 3));
        assert_eq!(h.client_id.as_deref(), Some(&b"rdkafka"[..]));
        assert_eq!(
            client_software(&h, f),
            Some(("librdkafka".into(), "2.0.2".into()))
        );
        assert!(needs_api_versions_fallback(&h, f));
    }
}

#[test]
fn kafka_python_bootstrap_exchange() {
    let reqs = frames("kafka_python.req");
    let keys = apis(&reqs);
    assert_eq!(keys, [(18, 4), (3, 12)]);
    assert!(!needs_api_versions_fallback(
        &RequestHeader::parse(&reqs[0]).unwrap(),
        &reqs[0]
    ));

    let reps = frames("kafka_python.rep");
    // tansu offers Metadata up to a version the proxy decodes: nothing to clamp.
    assert_eq!(clamp_api_versions(4, &reps[0]).unwrap(), None);
    let original: MetadataResponse = body(&reps[1], 5, 12);
    let rewritten = rewrite_response(3, 12, &reps[1], &mut to_proxy).unwrap();
    assert!(rewritten.complete);
    assert_eq!(
        rewritten.brokers,
        [Broker {
            node_id: 111,
            host: "127.0.0.1".into(),
            port: 19092
        }]
    );
    let got: MetadataResponse = body(&rewritten.frame, 5, 12);
    let mut expected = original;
    for b in &mut expected.brokers {
        b.host = "proxy.local".to_string().into();
        b.port = 20_111;
    }
    assert_eq!(got, expected);
    let size = i32::from_be_bytes(rewritten.frame[..4].try_into().unwrap());
    assert_eq!(size as usize, rewritten.frame.len() - 4);
}

#[test]
fn tansu_api_versions_reply_is_clamped_only_when_needed() {
    let rep = &frames("kcat.rep")[0];
    assert_eq!(clamp_api_versions(3, rep).unwrap(), None);
    // The same reply advertising Metadata v99 is clamped to what the proxy decodes, in place.
    let mut bumped = rep.to_vec();
    let at = find_api_entry(&bumped, 3).unwrap();
    bumped[at + 4..at + 6].copy_from_slice(&99i16.to_be_bytes());
    let clamped = clamp_api_versions(3, &bumped).unwrap().unwrap();
    assert_eq!(clamped.len(), bumped.len());
    assert_eq!(i16::from_be_bytes([clamped[at + 4], clamped[at + 5]]), 13);
}

/// Offset of `api_key`'s entry in a flexible ApiVersions response.
fn find_api_entry(frame: &[u8], api_key: i16) -> Option<usize> {
    let count = frame[10] as usize - 1;
    (0..count)
        .map(|i| 11 + i * 7)
        .find(|&at| i16::from_be_bytes([frame[at], frame[at + 1]]) == api_key)
}

#[test]
fn find_coordinator_and_describe_cluster_point_at_the_proxy() {
    let reps = frames("tansu_coordinator.rep");
    let reqs = frames("tansu_coordinator.req");
    let versions = apis(&reqs);
    assert_eq!(versions, [(10, 0), (10, 3), (10, 4), (60, 0)]);

    let v0 = rewrite_response(10, 0, &reps[0], &mut to_proxy).unwrap();
    let r: FindCoordinatorResponse = body(&v0.frame, 4, 0);
    assert_eq!(
        (r.host.as_str(), r.port, *r.node_id),
        ("proxy.local", 20_111, 111)
    );
    assert!(!v0.complete);

    let v3 = rewrite_response(10, 3, &reps[1], &mut to_proxy).unwrap();
    let r: FindCoordinatorResponse = body(&v3.frame, 5, 3);
    assert_eq!((r.host.as_str(), r.port), ("proxy.local", 20_111));

    let v4 = rewrite_response(10, 4, &reps[2], &mut to_proxy).unwrap();
    let r: FindCoordinatorResponse = body(&v4.frame, 5, 4);
    let keys: Vec<(&str, &str, i32)> = r
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.host.as_str(), c.port))
        .collect();
    assert_eq!(
        keys,
        [("g1", "proxy.local", 20_111), ("g2", "proxy.local", 20_111)]
    );

    let dc = rewrite_response(60, 0, &reps[3], &mut to_proxy).unwrap();
    assert!(dc.complete);
    let r: DescribeClusterResponse = body(&dc.frame, 5, 0);
    assert_eq!(r.cluster_id.as_str(), "tansu_cluster");
    assert_eq!(
        (r.brokers[0].host.as_str(), r.brokers[0].port),
        ("proxy.local", 20_111)
    );
}

#[test]
fn other_versions_and_apis_are_refused_not_guessed() {
    let reps = frames("tansu_coordinator.rep");
    assert!(rewrite_response(10, 7, &reps[0], &mut to_proxy).is_err());
    assert!(rewrite_response(0, 3, &reps[0], &mut to_proxy).is_err());
    // A truncated body fails cleanly.
    assert!(rewrite_response(10, 0, &reps[0][..12], &mut to_proxy).is_err());
}
