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
    assert_eq!(info.trim_end(), *a_line);
    let only_a = text(&mut c, &["CLIENT", "LIST", "ID", &a_id.to_string()]).unwrap();
    assert_eq!(only_a.lines().count(), 1, "{only_a}");
    let info = text(&mut c, &["INFO", "server"]).unwrap();
    assert!(info.contains("proxy_connected_clients:3\r\n"), "{info}");
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
    let err = text(&mut c, &["CLIENT", "KILL", "LADDR", "x"]).unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    assert_eq!(
        text(&mut c, &["CLIENT", "LIST"]).unwrap().lines().count(),
        1
    );
}
