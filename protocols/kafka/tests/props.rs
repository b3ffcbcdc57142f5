//! Properties: framing gives the same frames however the input is split; the rewriters
//! never panic on arbitrary bytes; a Metadata response of any version and any broker list,
//! encoded by `kafka-protocol`, comes back with only the broker addresses changed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use proptest::prelude::*;
use throome_kafka::{
    Broker, FrameScanner, FrameSplitter, KafkaError, Piece, STREAM_MIN, clamp_api_versions,
    rewrite_response,
};

fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

proptest! {
    #[test]
    fn framing_ignores_how_reads_split(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort();
        let scanner = FrameScanner::new(1024);
        let (mut buf, mut got, mut from) = (BytesMut::new(), Vec::new(), 0);
        for p in points {
            buf.extend_from_slice(&wire[from..p]);
            from = p;
            while let Some(f) = scanner.next(&mut buf).unwrap() {
                got.push(f[4..].to_vec());
            }
        }
        prop_assert_eq!(got, bodies);
    }

    #[test]
    fn cut_through_keeps_every_byte_in_order(
        sizes in prop::collection::vec(prop::sample::select(vec![0usize, 7, 900, STREAM_MIN, STREAM_MIN * 3 + 5]), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        pass in prop::collection::vec(any::<bool>(), 6),
    ) {
        let bodies: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| vec![i as u8; *n]).collect();
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort();
        let mut s = FrameSplitter::new(FrameScanner::new(1 << 20));
        let (mut buf, mut out, mut wholes, mut from, mut bigs) = (BytesMut::new(), Vec::new(), 0, 0, 0);
        for p in points {
            buf.extend_from_slice(&wire[from..p]);
            from = p;
            while let Some(piece) = s.next(&mut buf).unwrap() {
                match piece {
                    Piece::Whole(f) => { wholes += 1; out.extend_from_slice(&f) }
                    Piece::Rest(b) => out.extend_from_slice(&b),
                    Piece::Big { total } => {
                        prop_assert!(total >= STREAM_MIN && buf.len() < total);
                        bigs += 1;
                        if pass[bigs % pass.len()] {
                            out.extend_from_slice(&s.pass(&mut buf, total));
                        } else {
                            s.hold(&mut buf, total);
                        }
                    }
                }
            }
        }
        prop_assert!(!s.passing());
        prop_assert!(wholes <= bodies.len());
        prop_assert_eq!(out, wire);
    }

    #[test]
    fn oversized_frames_fail_on_the_header(size in 1025i32..i32::MAX) {
        let mut buf = BytesMut::from(&size.to_be_bytes()[..]);
        prop_assert!(
            matches!(FrameScanner::new(1024).next(&mut buf), Err(KafkaError::TooLarge { .. })),
            "accepted a frame over the limit"
        );
    }

    #[test]
    fn rewriters_never_panic(
        api in prop::sample::select(vec![3i16, 10, 60, 18]),
        version in -1i16..16,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let frame = framed(&body);
        let mut map = |b: &Broker| ("p".to_string(), b.port);
        let _ = rewrite_response(api, version, &frame, &mut map);
        let _ = clamp_api_versions(version, &frame);
    }

    #[test]
    fn metadata_rewrite_changes_only_addresses(
        version in 0i16..=13,
        brokers in prop::collection::vec((0i32..5000, "[a-z0-9.]{1,20}", 1i32..65536), 0..6),
        topics in prop::collection::vec("[a-z]{1,12}", 0..4),
    ) {
        let mut response = MetadataResponse::default();
        response.brokers = brokers
            .iter()
            .map(|(id, host, port)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(*id))
                    .with_host(StrBytes::from_string(host.clone()))
                    .with_port(*port)
            })
            .collect();
        response.topics = topics
            .iter()
            .map(|t| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
            })
            .collect();
        let header_version = MetadataResponse::header_version(version);
        let mut buf = BytesMut::new();
        ResponseHeader::default().with_correlation_id(7).encode(&mut buf, header_version).unwrap();
        response.encode(&mut buf, version).unwrap();
        let frame = framed(&buf);

        let mut map = |b: &Broker| (format!("proxy-{}", b.node_id), 30_000 + b.node_id % 1000);
        let out = rewrite_response(3, version, &frame, &mut map).unwrap();
        let mut rest = Bytes::copy_from_slice(&out.frame[4..]);
        let header = ResponseHeader::decode(&mut rest, header_version).unwrap();
        prop_assert_eq!(header.correlation_id, 7);
        let got = MetadataResponse::decode(&mut rest, version).unwrap();
        let mut expected = response;
        for b in &mut expected.brokers {
            b.host = StrBytes::from_string(format!("proxy-{}", b.node_id.0));
            b.port = 30_000 + b.node_id.0 % 1000;
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(out.brokers.len(), brokers.len());
    }
}
