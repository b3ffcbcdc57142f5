//! CLIENT LIST, CLIENT INFO, CLIENT KILL and INFO's client count answered by the proxy about
//! its own clients (a backend would count the proxy's pooled connections instead), with the
//! redis crate and redis-cli against a real redis-server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::RedisServer;
use common::redis_cli as cli;
use common::redis_con as con;

fn text(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// The `key=value` field `key` of a CLIENT LIST line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_proxy_lists_and_ends_its_own_clients() {
    let backend = RedisServer::start();
    // A cluster id of its own: the registry is per process, as in the gateway.
    let (_gw, listen) =
        common::gateway::one_service("redis", "clients-list", &[(backend.port, "primary", 1)], "");
    let mut a = con(listen);
    let mut b = con(listen);
    let mut c = con(listen);
    assert_eq!(
        text(&mut a, &["CLIENT", "SETNAME", "worker-a"]).unwrap(),
        "OK"
    );
    let a_id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut a).unwrap();

    let list = text(&mut c, &["CLIENT", "LIST"]).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    let a_line = lines
        .iter()
        .find(|l| field(l, "name") == Some("worker-a"))
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(field(a_line, "id"), Some(a_id.to_string().as_str()));
    assert!(
        field(a_line, "addr").unwrap().starts_with("127.0.0.1:"),
        "{a_line}"
    );
    let info = text(&mut a, &["CLIENT", "INFO"]).unwrap();
    // The same client, now with CLIENT INFO as its last command.
    let same = |l: &str| -> Vec<String> {
        l.split_whitespace()
            .filter(|kv| {
                !kv.starts_with("cmd=") && !kv.starts_with("age=") && !kv.starts_with("idle=")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(same(&info), same(a_line));
    let only_a = text(&mut c, &["CLIENT", "LIST", "ID", &a_id.to_string()]).unwrap();
    assert_eq!(only_a.lines().count(), 1, "{only_a}");
    let info = text(&mut c, &["INFO", "server"]).unwrap();
    assert!(info.contains("proxy_connected_clients:3\r\n"), "{info}");
    // Clients of the proxy, as a client expects; the backend's figure under its own name.
    let clients = text(&mut c, &["INFO", "clients"]).unwrap();
    assert!(clients.contains("\r\nconnected_clients:3\r\n"), "{clients}");
    assert!(
        clients.contains("\r\nbackend_connected_clients:"),
        "{clients}"
    );
    assert!(info.contains("sharding:none\r\n"), "{info}");
    // redis-cli, a client of its own, sees four.
    assert_eq!(cli(listen, &["CLIENT", "LIST"]).lines().count(), 4);

    // KILL ID: a's connection is closed; the others go on.
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "ID", &a_id.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(text(&mut a, &["PING"]).is_err(), "a was disconnected");
    // The old form, by address.
    let list = text(&mut c, &["CLIENT", "LIST"]).unwrap();
    let b_id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut b).unwrap();
    let b_addr = list
        .lines()
        .find(|l| field(l, "id") == Some(b_id.to_string().as_str()))
        .and_then(|l| field(l, "addr"))
        .unwrap()
        .to_string();
    assert_eq!(text(&mut c, &["CLIENT", "KILL", &b_addr]).unwrap(), "OK");
    assert!(text(&mut b, &["PING"]).is_err(), "b was disconnected");
    let err = text(&mut c, &["CLIENT", "KILL", &b_addr]).unwrap_err();
    assert!(err.to_string().contains("No such client"), "{err}");
    // A client does not end itself unless it says SKIPME no.
    let c_id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
    let none: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "ID", &c_id.to_string()])
        .query(&mut c)
        .unwrap();
    assert_eq!(none, 0);
    assert_eq!(text(&mut c, &["PING"]).unwrap(), "PONG");
    let err = text(&mut c, &["CLIENT", "KILL", "NOSUCHFILTER", "x"]).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    // LADDR is the address the client connected to, as in Redis.
    let laddr = format!("127.0.0.1:{listen}");
    assert_eq!(
        text(&mut c, &["CLIENT", "KILL", "LADDR", "x"]).unwrap(),
        "0"
    );
    let other = con(listen);
    assert_eq!(
        text(&mut c, &["CLIENT", "KILL", "LADDR", &laddr]).unwrap(),
        "1"
    );
    drop(other);
    assert_eq!(
        text(&mut c, &["CLIENT", "LIST"]).unwrap().lines().count(),
        1
    );
}

/// CLIENT INFO and CLIENT LIST give every field redis-server gives, in its order, with the
/// proxy's own values (redis-py's `client_info()` read fields the proxy did not give):
/// idle time, the last command with its subcommand, and MULTI's queued count.
#[test]
fn client_info_has_every_field_redis_gives() {
    let backend = RedisServer::start();
    let (_gw, listen) =
        common::gateway::one_service("redis", "clients-info", &[(backend.port, "primary", 1)], "");
    let keys = |line: &str| -> Vec<String> {
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
            .collect()
    };
    let direct = text(&mut con(backend.port), &["CLIENT", "INFO"]).unwrap();
    let mut a = con(listen);
    let proxied = text(&mut a, &["CLIENT", "INFO"]).unwrap();
    assert_eq!(keys(&proxied), keys(&direct), "{proxied}");
    assert_eq!(field(&proxied, "cmd"), Some("client|info"));
    assert_eq!(field(&proxied, "multi"), Some("-1"));
    assert_eq!(field(&proxied, "flags"), Some("N"));
    let laddr = format!("127.0.0.1:{listen}");
    assert_eq!(field(&proxied, "laddr"), Some(laddr.as_str()));
    assert!(field(&proxied, "fd").unwrap().parse::<i32>().unwrap() > 0);

    // Another client's view: the last command and the transaction being queued.
    let mut b = con(listen);
    let b_id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut b).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut b).unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut b).unwrap();
    let _: () = redis::cmd("INCR").arg("n").query(&mut b).unwrap();
    let id = b_id.to_string();
    let listed = text(&mut a, &["CLIENT", "LIST", "ID", &id]).unwrap();
    assert_eq!(keys(&listed), keys(&direct), "{listed}");
    assert_eq!(field(&listed, "multi"), Some("2"), "{listed}");
    assert_eq!(field(&listed, "flags"), Some("x"));
    assert_eq!(field(&listed, "cmd"), Some("incr"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let listed = text(&mut a, &["CLIENT", "LIST", "ID", &id]).unwrap();
    assert!(
        field(&listed, "idle").unwrap().parse::<u64>().unwrap() >= 1,
        "{listed}"
    );
    let _: () = redis::cmd("DISCARD").query(&mut b).unwrap();
}

/// CLIENT UNBLOCK with the id the proxy gave a blocked client ends its blocking command at
/// the backend, as Redis does: a timeout's reply, or `-UNBLOCKED` with ERROR.
#[test]
fn client_unblock_takes_the_proxy_id() {
    let backend = RedisServer::start();
    let (_gw, listen) = common::gateway::one_service(
        "redis",
        "clients-unblock",
        &[(backend.port, "primary", 1)],
        "",
    );
    let blocked = || {
        cli(backend.port, &["INFO", "clients"])
            .lines()
            .any(|l| l.trim() == "blocked_clients:1")
    };
    let mut b = con(listen);
    for (reason, expect) in [
        (None, "nil"),
        (Some("TIMEOUT"), "nil"),
        (Some("ERROR"), "client unblocked via CLIENT UNBLOCK"),
    ] {
        let mut a = con(listen);
        let a_id: u64 = redis::cmd("CLIENT").arg("ID").query(&mut a).unwrap();
        let waiting = std::thread::spawn(move || {
            let popped: redis::RedisResult<Option<(String, String)>> =
                redis::cmd("BLPOP").arg("never").arg(0).query(&mut a);
            match popped {
                Ok(None) => "nil".to_string(),
                Ok(Some(v)) => format!("{v:?}"),
                Err(e) => e.to_string(),
            }
        });
        assert!(common::eventually(
            std::time::Duration::from_secs(10),
            blocked
        ));
        let mut args = vec!["CLIENT", "UNBLOCK"];
        let id = a_id.to_string();
        args.push(&id);
        args.extend(reason);
        assert_eq!(text(&mut b, &args).unwrap(), "1");
        let got = waiting.join().unwrap();
        assert!(got.contains(expect), "{reason:?}: {got}");
        assert_eq!(got.contains("UNBLOCKED"), reason == Some("ERROR"), "{got}");
        // Nothing is blocked now; nothing was popped for nobody.
        assert_eq!(text(&mut b, &["CLIENT", "UNBLOCK", &id]).unwrap(), "0");
    }
    let err = text(&mut b, &["CLIENT", "UNBLOCK", "1", "LATER"]).unwrap_err();
    assert!(
        err.to_string()
            .contains("reason should be TIMEOUT or ERROR"),
        "{err}"
    );
    let err = text(&mut b, &["CLIENT", "UNBLOCK", "x"]).unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    assert_eq!(text(&mut b, &["RPUSH", "never", "v"]).unwrap(), "1");
}

/// CLIENT PAUSE holds the service's clients at the proxy, as Redis holds its own: WRITE
/// holds writes only, ALL every command, until CLIENT UNPAUSE or the timeout.
#[test]
fn client_pause_holds_writes_until_unpause() {
    let backend = RedisServer::start();
    let (_gw, listen) = common::gateway::one_service(
        "redis",
        "clients-pause",
        &[(backend.port, "primary", 1)],
        "",
    );
    let mut a = con(listen);
    assert_eq!(
        text(&mut a, &["CLIENT", "PAUSE", "100000", "WRITE"]).unwrap(),
        "OK"
    );
    let writer = std::thread::spawn(move || text(&mut con(listen), &["SET", "held", "v"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !writer.is_finished(),
        "a write ran during CLIENT PAUSE WRITE"
    );
    assert_eq!(cli(backend.port, &["EXISTS", "held"]), "0");
    // Reads are not held.
    assert_eq!(text(&mut con(listen), &["ECHO", "read"]).unwrap(), "read");
    assert_eq!(text(&mut con(listen), &["EXISTS", "held"]).unwrap(), "0");
    assert_eq!(text(&mut a, &["CLIENT", "UNPAUSE"]).unwrap(), "OK");
    assert_eq!(writer.join().unwrap().unwrap(), "OK");
    assert_eq!(cli(backend.port, &["GET", "held"]), "v");
    // ALL holds reads too, until the timeout.
    assert_eq!(
        text(&mut a, &["CLIENT", "PAUSE", "400", "ALL"]).unwrap(),
        "OK"
    );
    let reader = std::thread::spawn(move || text(&mut con(listen), &["GET", "held"]));
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert!(!reader.is_finished(), "a read ran during CLIENT PAUSE ALL");
    assert_eq!(reader.join().unwrap().unwrap(), "v");
}

/// CLIENT TRACKING ON REDIRECT takes the proxy's id of a client subscribed to
/// `__redis__:invalidate` (RESP2 client-side caching): that client gets the invalidations.
#[test]
fn tracking_redirects_to_a_proxy_id() {
    use std::io::{Read, Write};
    let backend = RedisServer::start();
    let (_gw, listen) = common::gateway::one_service(
        "redis",
        "clients-track",
        &[(backend.port, "primary", 1)],
        "",
    );
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    };
    let read_until = |s: &mut std::net::TcpStream, want: &str| {
        let mut got = String::new();
        let mut chunk = [0u8; 1024];
        while !got.contains(want) {
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed before {want:?}: {got:?}");
            got.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
        got
    };
    let mut a = connect();
    a.write_all(b"CLIENT ID\r\n").unwrap();
    let id = read_until(&mut a, "\r\n");
    let id = id.trim().trim_start_matches(':').to_string();
    a.write_all(b"SUBSCRIBE __redis__:invalidate\r\n").unwrap();
    read_until(&mut a, ":1\r\n");
    let mut b = connect();
    b.write_all(format!("CLIENT TRACKING ON REDIRECT {id}\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_until(&mut b, "\r\n"), "+OK\r\n");
    b.write_all(b"GET cached\r\n").unwrap();
    assert_eq!(read_until(&mut b, "\r\n"), "$-1\r\n");
    assert_eq!(cli(listen, &["SET", "cached", "v"]), "OK");
    let invalidation = read_until(&mut a, "cached\r\n");
    assert!(invalidation.contains("invalidate"), "{invalidation}");
    // A proxy id of a client without a connection of its own: the backend's own error.
    let mut c = connect();
    c.write_all(b"CLIENT TRACKING ON REDIRECT 999999\r\n")
        .unwrap();
    assert!(read_until(&mut c, "\r\n").contains("does not exist"));
}
