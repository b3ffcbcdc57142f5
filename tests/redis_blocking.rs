//! Blocking commands and busy backends through a `type: redis` service: a client that
//! leaves while blocked frees the backend at once, blocking commands go out on a connection
//! kept ready, and a server busy with a script stays reachable for SCRIPT KILL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::Write;
use std::time::Duration;

use common::gateway::cluster_of;
use common::redis_cli as cli;
use common::{RedisServer, Throome, eventually, free_port};

fn redis_gateway(backend: u16) -> (Throome, u16) {
    common::gateway::one_service("redis", "r", &[(backend, "primary", 1)], "")
}

#[test]
fn a_client_that_leaves_during_blpop_releases_its_backend_connection() {
    let backend = RedisServer::start();
    let (gw, listen) = redis_gateway(backend.port);
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
        s.write_all(b"*3\r\n$5\r\nBLPOP\r\n$4\r\nnone\r\n$1\r\n0\r\n")
            .unwrap();
        assert!(eventually(Duration::from_secs(10), || cli(
            backend.port,
            &["CLIENT", "LIST"]
        )
        .contains("cmd=blpop")));
    } // the client goes away while its BLPOP 0 waits
    assert!(
        eventually(Duration::from_secs(20), || !cli(
            backend.port,
            &["CLIENT", "LIST"]
        )
        .contains("cmd=blpop")),
        "the backend still holds the abandoned BLPOP"
    );
    assert!(eventually(Duration::from_secs(10), || gw
        .metrics()
        .contains(
            "throome_upstream_connections{cluster=\"r\",service=\"cache\",kind=\"dedicated\"} 0"
        )));
}

/// A client that leaves while blocked frees the backend at once, as Redis frees a blocked
/// client that closes: a value pushed right after it left stays in the list. (The proxy used
/// to keep the abandoned BLPOP for 5 s, and it popped the value for nobody.)
#[test]
fn a_value_pushed_after_a_blocked_client_left_is_not_lost() {
    let backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(backend.port);
    let blocked = || {
        cli(backend.port, &["INFO", "clients"])
            .lines()
            .any(|l| l.trim() == "blocked_clients:1")
    };
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
        s.write_all(b"*3\r\n$5\r\nBLPOP\r\n$4\r\nlost\r\n$1\r\n0\r\n")
            .unwrap();
        assert!(eventually(Duration::from_secs(10), blocked));
    }
    assert!(
        eventually(Duration::from_secs(2), || !blocked()),
        "the backend still blocks for the client that left"
    );
    assert_eq!(cli(listen, &["LPUSH", "lost", "x"]), "1");
    assert_eq!(cli(listen, &["LLEN", "lost"]), "1");
}

/// A server running a long script answers BUSY: it is alive (the health probe keeps it up)
/// and SCRIPT KILL, sent by another client, reaches it at once on a connection of its own
/// instead of waiting behind the script on a shared one.
#[test]
fn script_kill_reaches_a_busy_backend() {
    let backend = RedisServer::start();
    let listen = free_port();
    let yaml = cluster_of(
        "redis",
        "busy",
        "cache",
        listen,
        &[(backend.port, "primary", 1)],
        "",
        "health: { interval: 0.2, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
    );
    let _gw = Throome::start(&[("busy", &yaml)]);
    assert_eq!(
        cli(
            backend.port,
            &["CONFIG", "SET", "busy-reply-threshold", "100"]
        ),
        "OK"
    );
    let looping = std::thread::spawn(move || {
        let mut c = common::redis_con(listen);
        redis::cmd("EVAL")
            .arg("local i = 0 while true do i = i + 1 end")
            .arg(0)
            .query::<()>(&mut c)
            .unwrap_err()
            .to_string()
    });
    assert!(eventually(Duration::from_secs(10), || cli(
        backend.port,
        &["PING"]
    )
    .starts_with("BUSY")));
    // Several health intervals while busy; PING answers as the backend does.
    std::thread::sleep(Duration::from_millis(800));
    assert!(cli(listen, &["PING"]).starts_with("BUSY"));
    assert_eq!(cli(listen, &["SCRIPT", "KILL"]), "OK");
    let err = looping.join().unwrap();
    assert!(err.contains("killed"), "{err}");
    assert_eq!(cli(listen, &["PING"]), "PONG");
}

/// A blocking command goes out on a connection opened before it was sent (a spare kept
/// ready), so no connect delay lets a command another client sent after it reach Redis first.
#[test]
fn blocking_commands_go_out_on_a_connection_kept_ready() {
    let backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(backend.port);
    // The first one opens its connection, and a spare for the next.
    assert_eq!(cli(listen, &["BLPOP", "warm", "0.01"]), "");
    let ids = || -> Vec<(String, String)> {
        cli(backend.port, &["CLIENT", "LIST"])
            .lines()
            .filter_map(|l| {
                let f = |k: &str| {
                    l.split(' ')
                        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                        .map(str::to_string)
                };
                Some((f("id")?, f("cmd")?))
            })
            .collect()
    };
    // redis-cli asking, and the spare, which has run no command yet.
    assert!(eventually(Duration::from_secs(10), || ids()
        .iter()
        .any(|(_, cmd)| cmd == "NULL")));
    let before: Vec<String> = ids().into_iter().map(|(id, _)| id).collect();
    let waiting = std::thread::spawn(move || cli(listen, &["BLPOP", "ready", "0"]));
    assert!(eventually(Duration::from_secs(10), || ids()
        .iter()
        .any(|(_, cmd)| cmd == "blpop")));
    let (blocked, _) = ids().into_iter().find(|(_, cmd)| cmd == "blpop").unwrap();
    assert!(
        before.contains(&blocked),
        "{blocked} opened after the BLPOP: {before:?}"
    );
    assert_eq!(cli(listen, &["RPUSH", "ready", "v"]), "1");
    assert_eq!(waiting.join().unwrap(), "ready\nv");
}
