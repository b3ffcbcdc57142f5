//! Bytes real clients and a real server exchanged (captured with
//! `protocols/resp/gen/capture.py`, a plain TCP relay, in front of PostgreSQL 15): psql with
//! `sslmode=prefer` (SSLRequest, simple queries, COPY FROM STDIN), pgbench `-M prepared` and
//! `-M extended` (libpq's extended protocol), tokio-postgres 0.7 (named statement prepared
//! with Describe, then bound; a batch). Every byte must frame, in both directions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use throome_pgwire::{Frame, FrameScanner, Startup, msg, scan_startup};

fn golden(name: &str) -> BytesMut {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    BytesMut::from(&std::fs::read(path).unwrap()[..])
}

/// Splits a client stream into connections: startup packets, then messages up to Terminate.
fn client_connections(mut buf: BytesMut) -> Vec<(Vec<Startup>, Vec<Frame>)> {
    let scanner = FrameScanner::default();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let mut startups = Vec::new();
        loop {
            let s = scan_startup(&mut buf)
                .unwrap()
                .expect("a whole startup packet");
            let done = matches!(s, Startup::Startup { .. });
            startups.push(s);
            if done {
                break;
            }
        }
        let mut frames = Vec::new();
        loop {
            let f = scanner.scan(&mut buf).unwrap().expect("a whole message");
            let end = f.tag() == msg::front::TERMINATE;
            frames.push(f);
            if end {
                break;
            }
        }
        out.push((startups, frames));
    }
    out
}

/// Server streams: an `N` (SSL refused) before a connection's first AuthenticationOk,
/// then whole messages.
fn server_tags(mut buf: BytesMut) -> Vec<u8> {
    let scanner = FrameScanner::default();
    let mut tags = Vec::new();
    while !buf.is_empty() {
        if buf.starts_with(b"NR") {
            let _ = buf.split_to(1);
            tags.push(b'!');
            continue;
        }
        tags.push(
            scanner
                .scan(&mut buf)
                .unwrap()
                .expect("a whole message")
                .tag(),
        );
    }
    tags
}

#[test]
fn psql_simple_queries_and_copy() {
    let conns = client_connections(golden("psql.req"));
    assert_eq!(conns.len(), 1);
    let (startups, frames) = &conns[0];
    let tags: Vec<u8> = frames.iter().map(Frame::tag).collect();
    assert_eq!(
        startups[0],
        Startup::Ssl,
        "sslmode=prefer asks for TLS first"
    );
    assert_eq!(startups[1].param("user"), Some("postgres"));
    assert_eq!(startups[1].param("application_name"), Some("golden"));
    assert_eq!(tags, b"QdcX", "Query, CopyData, CopyDone, Terminate");
    let sql = msg::query(frames[0].body()).unwrap();
    assert_eq!(msg::first_keyword(sql), "SELECT");
    let server = server_tags(golden("psql.rep"));
    assert_eq!(server[0], b'!');
    assert!(
        server.starts_with(b"!R"),
        "{:?}",
        String::from_utf8_lossy(&server)
    );
    assert!(
        server.contains(&b'K') && server.contains(&b'G'),
        "BackendKeyData, CopyIn"
    );
    assert_eq!(server.last(), Some(&b'Z'));
}

#[test]
fn pgbench_extended_protocol_in_both_modes() {
    for (file, named) in [("pgbench_prepared", true), ("pgbench_extended", false)] {
        let conns = client_connections(golden(&format!("{file}.req")));
        let frames: Vec<&Frame> = conns.iter().flat_map(|c| c.1.iter()).collect();
        let tags: Vec<u8> = frames.iter().map(|f| f.tag()).collect();
        for t in [b'P', b'B', b'E', b'S'] {
            assert!(
                tags.contains(&t),
                "{file}: {:?}",
                String::from_utf8_lossy(&tags)
            );
        }
        // Statement names: pgbench names them P_0, P_1... only in prepared mode.
        let mut names = Vec::new();
        for f in frames.iter().filter(|f| f.tag() == b'P') {
            let (name, query, _) = msg::parse(f.body()).expect("a valid Parse");
            assert!(!query.is_empty());
            names.push(name.to_vec());
        }
        for f in frames.iter().filter(|f| f.tag() == b'B') {
            let (_, statement, _) = msg::bind(f.body()).expect("a valid Bind");
            assert_eq!(!statement.is_empty(), named, "{file}");
        }
        assert_eq!(names.iter().any(|n| !n.is_empty()), named, "{file}");
        let server = server_tags(golden(&format!("{file}.rep")));
        assert!(
            server.contains(&b'1') && server.contains(&b'2'),
            "ParseComplete, BindComplete"
        );
    }
}

#[test]
fn tokio_postgres_prepare_bind_and_batch() {
    let conns = client_connections(golden("tokio_postgres.req"));
    assert_eq!(conns.len(), 1);
    let (startups, frames) = &conns[0];
    assert_eq!(startups.len(), 1, "NoTls: no SSLRequest");
    assert_eq!(startups[0].param("client_encoding"), Some("UTF8"));
    assert_eq!(startups[0].param("application_name"), Some("golden"));
    let tags: Vec<u8> = frames.iter().map(Frame::tag).collect();
    let text = String::from_utf8_lossy(&tags).to_string();
    // prepare: Parse + Describe statement + Sync; query: Bind + Execute + Sync; a simple
    // query; Terminate.
    assert_eq!(text, "PDSBESQX");
    let parse = frames.iter().find(|f| f.tag() == b'P').unwrap();
    let (name, query, _) = msg::parse(parse.body()).unwrap();
    assert!(!name.is_empty(), "tokio-postgres names its statements");
    assert_eq!(query, b"SELECT $1::int4 + 1");
    let describe = frames.iter().find(|f| f.tag() == b'D').unwrap();
    assert_eq!(msg::target(describe.body()), Some((b'S', name)));
    let bind = frames.iter().find(|f| f.tag() == b'B').unwrap();
    assert_eq!(msg::bind(bind.body()).map(|b| b.1), Some(name));
    let server = server_tags(golden("tokio_postgres.rep"));
    assert!(
        server.starts_with(b"R"),
        "{:?}",
        String::from_utf8_lossy(&server)
    );
    assert!(
        server.windows(2).any(|w| w == b"1t"),
        "ParseComplete, ParameterDescription"
    );
}
