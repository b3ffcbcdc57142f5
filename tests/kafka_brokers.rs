//! Port per broker with several brokers. tansu with in-memory storage is one broker, so the
//! cluster here is a fault-injection fake: `FaultInjectingMetadataCluster` answers
//! ApiVersions and a Metadata listing three brokers (itself on three ports) and nothing else,
//! and can drop a broker from its answers, pad its Metadata past the size the proxy streams,
//! never answer a Produce (as with acks = 0),
//! or die part way through a big Fetch answer. The client is Debian's kcat.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::kafka::{kafka_cluster, kcat};
use common::{Throome, eventually, free_port};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Three "brokers" (node ids 1, 2, 3), each a listener of this process; every one answers
/// Metadata with the node ids in `listed`.
struct FaultInjectingMetadataCluster {
    ports: Vec<u16>,
    listed: Arc<Mutex<Vec<i32>>>,
    connections: Arc<[AtomicUsize; 3]>,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    /// Metadata answers carry a correlation id the client never used.
    wrong_correlation: AtomicBool,
    /// Metadata answers list this many made-up topics (a big answer the proxy must hold
    /// whole to rewrite).
    padding_topics: AtomicUsize,
    /// A Fetch is answered with the first 200 KiB of a 1 MiB frame, then the connection
    /// closes.
    die_in_fetch: AtomicBool,
}

impl FaultInjectingMetadataCluster {
    fn start() -> Self {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind(("127.0.0.1", free_port())).unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let cluster = FaultInjectingMetadataCluster {
            ports: ports.clone(),
            listed: Arc::new(Mutex::new(vec![1, 2, 3])),
            connections: Arc::new(Default::default()),
            faults: Arc::default(),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            let (listed, conns, ports) = (
                cluster.listed.clone(),
                cluster.connections.clone(),
                ports.clone(),
            );
            let faults = cluster.faults.clone();
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    conns[i].fetch_add(1, Ordering::SeqCst);
                    let (listed, ports, faults) = (listed.clone(), ports.clone(), faults.clone());
                    std::thread::spawn(move || serve(s, &listed, &ports, &faults));
                }
            });
        }
        cluster
    }
}

fn serve(mut s: TcpStream, listed: &Mutex<Vec<i32>>, ports: &[u16], faults: &Faults) {
    loop {
        let mut size = [0u8; 4];
        if s.read_exact(&mut size).is_err() {
            return;
        }
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        if s.read_exact(&mut body).is_err() {
            return;
        }
        let mut buf = Bytes::from(body);
        let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
        let version = i16::from_be_bytes([buf[2], buf[3]]);
        let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
        let mut out = BytesMut::new();
        if key == ApiKey::Fetch && faults.die_in_fetch.load(Ordering::SeqCst) {
            let mut partial = (1i32 << 20).to_be_bytes().to_vec();
            partial.extend_from_slice(&header.correlation_id.to_be_bytes());
            partial.resize(200 * 1024, 0);
            let _ = s.write_all(&partial);
            return;
        }
        if key == ApiKey::Produce {
            continue; // taken as acks = 0: never answered
        }
        let skew = if key == ApiKey::Metadata && faults.wrong_correlation.load(Ordering::SeqCst) {
            1000
        } else {
            0
        };
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id + skew)
            .encode(&mut out, key.response_header_version(version))
            .unwrap();
        match key {
            ApiKey::ApiVersions => {
                let api = |k: ApiKey, max| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_max_version(max)
                };
                ApiVersionsResponse::default()
                    .with_api_keys(vec![api(ApiKey::ApiVersions, 3), api(ApiKey::Metadata, 9)])
                    .encode(&mut out, version.min(3))
                    .unwrap();
            }
            ApiKey::Metadata => {
                let brokers = listed
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|&id| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(id))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(ports[id as usize - 1]))
                    })
                    .collect();
                let topics = (0..faults.padding_topics.load(Ordering::SeqCst))
                    .map(|i| {
                        MetadataResponseTopic::default().with_name(Some(TopicName(
                            StrBytes::from_string(format!(
                                "padding-topic-with-a-longish-name-{i:05}"
                            )),
                        )))
                    })
                    .collect();
                MetadataResponse::default()
                    .with_brokers(brokers)
                    .with_topics(topics)
                    .with_controller_id(BrokerId(1))
                    .encode(&mut out, version)
                    .unwrap();
            }
            _ => return,
        }
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&out);
        if s.write_all(&frame).is_err() {
            return;
        }
    }
}

/// A broker-port base with base+1..=base+3 free.
fn free_base() -> u16 {
    (0..200)
        .map(|_| free_port())
        .find(|&b| (1..=3).all(|i| TcpListener::bind(("127.0.0.1", b + i)).is_ok()))
        .unwrap()
}

/// Throome with service `service` of cluster `k` in front of the fake (its first broker as
/// bootstrap); returns the gateway, the bootstrap port and the broker port base.
fn proxy(fake: &FaultInjectingMetadataCluster, service: &str) -> (Throome, u16, u16) {
    let (listen, base) = (free_port(), free_base());
    let yaml = kafka_cluster("k", service, listen, base, &[fake.ports[0]]);
    (Throome::start(&[("k", &yaml)]), listen, base)
}

/// A raw client: connects to `listen` and writes each request framed (size prefix added).
fn send_raw(listen: u16, requests: &[&[u8]]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for request in requests {
        s.write_all(&(request.len() as i32).to_be_bytes()).unwrap();
        s.write_all(request).unwrap();
    }
    s
}

fn list(bootstrap: &str) -> String {
    let out = kcat(&["-b", bootstrap, "-L"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn every_broker_gets_a_proxy_port_and_loses_it_when_it_leaves() {
    let fake = FaultInjectingMetadataCluster::start();
    let (_gw, listen, base) = proxy(&fake, "multi");

    let text = list(&format!("127.0.0.1:{listen}"));
    assert!(text.contains(" 3 brokers:"), "{text}");
    for node in 1..=3 {
        assert!(
            text.contains(&format!("broker {node} at 127.0.0.1:{}", base + node)),
            "{text}"
        );
    }
    for real in &fake.ports {
        assert!(
            !text.contains(&format!(":{real}")),
            "a real broker address leaked: {text}"
        );
    }

    // Broker 2's proxy port leads to broker 2.
    let before = fake.connections[1].load(Ordering::SeqCst);
    list(&format!("127.0.0.1:{}", base + 2));
    assert!(
        fake.connections[1].load(Ordering::SeqCst) > before,
        "node 2 got no connection"
    );

    // Broker 3 leaves: the next metadata answer retires its port.
    *fake.listed.lock().unwrap() = vec![1, 2];
    let text = list(&format!("127.0.0.1:{listen}"));
    assert!(text.contains(" 2 brokers:"), "{text}");
    assert!(
        eventually(Duration::from_secs(5), || TcpStream::connect((
            "127.0.0.1",
            base + 3
        ))
        .is_err()),
        "the departed broker's port still accepts connections"
    );
    assert!(TcpStream::connect(("127.0.0.1", base + 1)).is_ok());
}

#[test]
fn an_oversized_or_garbled_frame_closes_only_that_connection() {
    let fake = FaultInjectingMetadataCluster::start();
    let (listen, base) = (free_port(), free_base());
    let extra = "    max_frame_bytes: 65536\n";
    let yaml = kafka_cluster("k", "guarded", listen, base, &[fake.ports[0]]).replace(
        "    broker_port_base:",
        &format!("{extra}    broker_port_base:"),
    );
    let gw = Throome::start(&[("k", &yaml)]);
    let bootstrap = format!("127.0.0.1:{listen}");
    let bystander = TcpStream::connect(("127.0.0.1", listen)).unwrap();

    for bad in [
        (1i32 << 20).to_be_bytes().to_vec(), // 1 MiB declared, over the 64 KiB limit
        (-5i32).to_be_bytes().to_vec(),      // negative size
        vec![0, 0, 0, 2, 0, 3],              // too short for a request header
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&bad).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(
            s.read(&mut byte).unwrap_or(0),
            0,
            "connection left open after {bad:?}"
        );
    }
    // Other clients are unaffected.
    assert!(list(&bootstrap).contains(" 3 brokers:"));
    let mut bystander = bystander;
    bystander
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        bystander.read(&mut byte).is_err(),
        "the bystander was closed"
    );
    let m = gw.metrics();
    assert!(m.contains("kind=\"client_protocol\""), "{m}");
}

#[test]
fn a_response_to_no_request_closes_that_connection() {
    let fake = FaultInjectingMetadataCluster::start();
    let (gw, listen, _) = proxy(&fake, "strict");
    fake.faults.wrong_correlation.store(true, Ordering::SeqCst);
    // Metadata v1 for no topics, correlation id 7, client id "t".
    let request = [0, 3, 0, 1, 0, 0, 0, 7, 0, 1, b't', 0, 0, 0, 0];
    let mut s = send_raw(listen, &[&request]);
    let mut byte = [0u8; 1];
    assert_eq!(
        s.read(&mut byte).unwrap_or(0),
        0,
        "an unmatched response was passed on"
    );
    let m = gw.metrics();
    assert!(
        m.contains("throome_kafka_api_errors_total{cluster=\"k\",service=\"strict\",api=\"Metadata\",kind=\"unmatched\"} 1"),
        "{m}"
    );
}

/// A Metadata answer over the size the proxy streams (64 KiB) is held whole and rewritten:
/// kcat still sees every topic and only proxy ports.
#[test]
fn a_big_metadata_answer_is_held_whole_and_rewritten() {
    let fake = FaultInjectingMetadataCluster::start();
    fake.faults.padding_topics.store(3000, Ordering::SeqCst);
    let (_gw, listen, base) = proxy(&fake, "big");
    let text = list(&format!("127.0.0.1:{listen}"));
    assert!(text.contains(" 3 brokers:"), "{text}");
    assert!(text.contains(" 3000 topics:"), "{text}");
    let ports: Vec<u16> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("broker "))
        .filter_map(|l| l.split(':').nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let proxy: Vec<u16> = (1..=3).map(|i| base + i).collect();
    assert_eq!(ports.len(), 3, "{text}");
    assert!(
        ports.iter().all(|p| proxy.contains(p)),
        "{ports:?} vs {proxy:?}\n{text}"
    );
}

/// A broker that dies part way through a big answer the proxy was passing on as it came:
/// the client got the bytes that came and then the connection closes (as if the broker had
/// died in front of it), and the exchange counts as lost.
#[test]
fn a_broker_dying_inside_a_big_answer_closes_that_connection() {
    let fake = FaultInjectingMetadataCluster::start();
    fake.faults.die_in_fetch.store(true, Ordering::SeqCst);
    let (gw, listen, _) = proxy(&fake, "cut");
    // Fetch v4 (header v1), correlation id 9, client id "t"; the fake reads no body.
    let request = [0, 1, 0, 4, 0, 0, 0, 9, 0, 1, b't'];
    let mut s = send_raw(listen, &[&request]);
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the connection was not closed");
    assert_eq!(
        got.len(),
        200 * 1024,
        "not every byte the broker sent came through"
    );
    assert_eq!(got[..4], (1i32 << 20).to_be_bytes());
    assert_eq!(got[4..8], 9i32.to_be_bytes());
    let m = gw.metrics();
    assert!(
        m.contains("throome_kafka_api_errors_total{cluster=\"k\",service=\"cut\",api=\"Fetch\",kind=\"broker_lost\"} 1"),
        "{m}"
    );
}

/// A big Produce with `acks = 0` is streamed like any other, and the proxy expects no answer
/// to it: the Metadata answer right behind it reaches the client. (tansu itself drops some
/// big acks = 0 batches even when a client talks to it directly, so this uses the fake,
/// which never answers a Produce.)
#[test]
fn a_big_produce_without_acks_expects_no_answer() {
    let fake = FaultInjectingMetadataCluster::start();
    let (gw, listen, _) = proxy(&fake, "quiet");
    // Produce v3 (header v1), correlation id 5, client id "t"; transactional_id null, acks 0,
    // then 100 KiB the fake does not read.
    let mut produce = vec![0, 0, 0, 3, 0, 0, 0, 5, 0, 1, b't', 0xff, 0xff, 0, 0];
    produce.resize(100 * 1024, 7);
    // Metadata v1 for no topics, correlation id 6.
    let metadata = [0, 3, 0, 1, 0, 0, 0, 6, 0, 1, b't', 0, 0, 0, 0];
    let mut s = send_raw(listen, &[&produce, &metadata]);
    let mut head = [0u8; 8];
    s.read_exact(&mut head).expect("no Metadata answer");
    assert_eq!(head[4..8], 6i32.to_be_bytes(), "answer to another request");
    let m = gw.metrics();
    assert!(
        m.contains("throome_requests_total{cluster=\"k\",service=\"quiet\",command=\"Produce\"} 1"),
        "{m}"
    );
}
