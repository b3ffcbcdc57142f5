//! SASL through Throome against the real tansu broker with `--authentication` (SCRAM users in
//! its SQLite storage). The proxy passes SaslHandshake v1 and SaslAuthenticate through on
//! every client connection and never authenticates on its own: credentials are checked by
//! the broker. Clients: kafka-python 3, confluent-kafka (librdkafka 2.16) and Debian's kcat,
//! given only the proxy. (kcat's librdkafka 2.0.2 sends a SCRAM nonce strict brokers refuse,
//! librdkafka#4895, so it only plays the client without credentials.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::kafka::{Tansu, api_requests, free_broker_port_base, kafka_cluster, kcat};
use common::{Throome, free_port};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const USERS: &[(&str, &str, &str)] = &[
    ("alice", "wonderland", "scram256"),
    ("bob", "builder", "scram512"),
];

/// A secured broker with topic `vault` and Throome in front of it: (broker, gateway,
/// bootstrap address).
fn secured() -> (Tansu, Throome, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let tansu = Tansu::start_secured(dir.path(), USERS, &["vault"]);
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster("k", "secure", listen, base, &[tansu.port]);
    let gw = Throome::start(&[("k", &yaml)]);
    (tansu, gw, format!("127.0.0.1:{listen}"), dir)
}

#[test]
fn scram_clients_authenticate_on_every_connection() {
    let (_tansu, gw, bootstrap, _dir) = secured();
    for (user, password, mechanism, group) in [
        ("alice", "wonderland", "SCRAM-SHA-256", "g256"),
        ("bob", "builder", "SCRAM-SHA-512", "g512"),
    ] {
        common::run_python_client(
            "kafka_sasl.py",
            &[
                "roundtrip",
                &bootstrap,
                "vault",
                group,
                mechanism,
                user,
                password,
                "50",
            ],
        );
    }
    common::run_python_client(
        "kafka_sasl.py",
        &[
            "rd-roundtrip",
            &bootstrap,
            "vault",
            "rd",
            "SCRAM-SHA-256",
            "alice",
            "wonderland",
            "50",
        ],
    );

    // Every client connection (bootstrap and broker port, for each client) authenticated
    // itself: several handshakes, each followed by SCRAM's two SaslAuthenticate rounds.
    let m = gw.metrics();
    let (handshakes, rounds) = (
        api_requests(&m, "secure", "SaslHandshake"),
        api_requests(&m, "secure", "SaslAuthenticate"),
    );
    assert!(handshakes >= 6, "{m}");
    assert!(rounds >= 2 * handshakes, "{m}");
}

#[test]
fn bad_credentials_fail_that_client_only() {
    let (_tansu, _gw, bootstrap, _dir) = secured();
    // A wrong password and an unknown user are turned down by the broker, while a good
    // client on the same proxy at the same time goes on.
    let good = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let args = [
                "roundtrip",
                &bootstrap,
                "vault",
                "g",
                "SCRAM-SHA-256",
                "alice",
                "wonderland",
                "200",
            ];
            common::run_python_client("kafka_sasl.py", &args);
        })
    };
    for (user, password) in [("alice", "guess"), ("mallory", "wonderland")] {
        common::run_python_client(
            "kafka_sasl.py",
            &["denied", &bootstrap, "SCRAM-SHA-256", user, password],
        );
    }
    good.join().unwrap();

    // Without SASL the broker answers nothing but ApiVersions: the proxy lends no identity.
    let anonymous = kcat(&["-b", &bootstrap, "-L", "-m", "5"], None);
    assert!(
        !anonymous.status.success(),
        "{}",
        String::from_utf8_lossy(&anonymous.stdout)
    );
}

/// One request with a v1 header (client id "raw"), framed.
fn request(key: ApiKey, version: i16, correlation_id: i32, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw")));
    header.encode(&mut buf, 1).unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut frame = (buf.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

/// Reads one response frame; returns its body after the (v0) header's correlation id.
fn response(s: &mut TcpStream, correlation_id: i32) -> Bytes {
    let mut size = [0u8; 4];
    s.read_exact(&mut size).expect("no answer");
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut frame).unwrap();
    assert_eq!(frame[..4], correlation_id.to_be_bytes());
    Bytes::from(frame).slice(4..)
}

#[test]
fn sasl_handshake_v0_is_refused_and_v1_passes() {
    let (_tansu, _gw, bootstrap, _dir) = secured();
    let connect = || {
        let s = TcpStream::connect(&bootstrap).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut s = connect();
    s.write_all(&request(
        ApiKey::ApiVersions,
        0,
        1,
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let mut body = response(&mut s, 1);
    let versions = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    let handshake = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::SaslHandshake as i16)
        .unwrap();
    // Still listed from v0: librdkafka reads that as "the broker has SASL", then uses v1.
    assert_eq!((handshake.min_version, handshake.max_version), (0, 1));

    let hello =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256"));
    // v0 would be followed by bare tokens the proxy cannot follow: refused, error 35.
    s.write_all(&request(ApiKey::SaslHandshake, 0, 2, &hello))
        .unwrap();
    let refused = SaslHandshakeResponse::decode(&mut response(&mut s, 2), 0).unwrap();
    assert_eq!((refused.error_code, refused.mechanisms.len()), (35, 0));

    // v1 goes to the broker, which lists its mechanisms.
    let mut s = connect();
    s.write_all(&request(ApiKey::SaslHandshake, 1, 3, &hello))
        .unwrap();
    let answer = SaslHandshakeResponse::decode(&mut response(&mut s, 3), 1).unwrap();
    assert_eq!(answer.error_code, 0);
    assert!(
        answer
            .mechanisms
            .iter()
            .any(|m| m.as_str() == "SCRAM-SHA-256"),
        "{answer:?}"
    );
}
