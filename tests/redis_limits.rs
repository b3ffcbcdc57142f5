//! Limits a client cannot push past, as Redis enforces them: request sizes
//! (`proto-max-bulk-len`, multibulk length) and connected clients (`maxclients`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::RedisServer;
use common::redis_cli as cli;

#[test]
fn request_limits_are_enforced_with_a_protocol_error_then_close() {
    let backend = RedisServer::start();
    let (_gw, listen) = common::gateway::one_service(
        "redis",
        "r",
        &[(backend.port, "primary", 1)],
        "    proto_max_bulk_len: 1024\n    max_multibulk_length: 8\n",
    );
    let big = "x".repeat(2000);
    for (request, message) in [
        (
            format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{big}\r\n", big.len()),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            "*9\r\n".to_string(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, message);
    }
    // Within the limits all is well.
    assert_eq!(cli(listen, &["SET", "k", &"y".repeat(1000)]), "OK");
}

/// `max_client_conn: 2`: a third client gets Redis's own "max number of clients reached" and
/// is closed; once one of the two leaves, a new client is served.
#[test]
fn clients_past_max_client_conn_are_refused() {
    let backend = RedisServer::start();
    let (gw, listen) = common::gateway::one_service(
        "redis",
        "r",
        &[(backend.port, "primary", 1)],
        "    max_client_conn: 2\n",
    );
    let mut first = common::redis_con(listen);
    let mut second = common::redis_con(listen);
    for c in [&mut first, &mut second] {
        let pong: String = redis::cmd("PING").query(c).unwrap();
        assert_eq!(pong, "PONG");
    }
    let mut third = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = String::new();
    third.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "-ERR max number of clients reached\r\n");
    assert!(gw.metrics().contains("kind=\"max_client_conn\""));
    drop(first);
    let served = common::eventually(Duration::from_secs(5), || cli(listen, &["PING"]) == "PONG");
    assert!(served, "a slot freed by a leaving client is used again");
}
