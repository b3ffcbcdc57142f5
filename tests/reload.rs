//! Hot reload (file watch, SIGHUP, API) while a client connection stays open.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::{Options, tcp_cluster};
use common::{RedisServer, Throome, backend_port_via, eventually, free_port, port_of};

const WAIT: Duration = Duration::from_secs(15);

fn open(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn reloads(gw: &Throome, result: &str) -> u64 {
    let needle = format!("throome_config_reloads_total{{result=\"{result}\"}} ");
    gw.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[test]
fn watched_changes_apply_to_new_connections_and_leave_open_ones_alone() {
    let (a, b, c) = (
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    );
    let (listen, listen2) = (free_port(), free_port());
    let v1 = tcp_cluster("app", "kv", listen, &[(a.port, "primary", 1)], "");
    let gw = Throome::start(&[("app", &v1)]);
    let mut held = open(listen);
    assert_eq!(port_of(&mut held).unwrap(), a.port);

    // 1. Add a service: a new listener comes up; the held connection is untouched.
    let v2 = v1.clone()
        + &format!(
            "  extra:\n    type: tcp\n    listen: \"127.0.0.1:{listen2}\"\n    host: 127.0.0.1\n    port: {}\n",
            c.port
        );
    gw.write_cluster("app", &v2);
    assert!(
        eventually(WAIT, || backend_port_via(listen2) == Ok(c.port)),
        "new service never listened:\n{}",
        gw.log()
    );
    assert_eq!(port_of(&mut held).unwrap(), a.port);

    // 2. Change kv's backend: new connections go to b, the held one still talks to a.
    let v3 = v2.replace(
        &format!("port: {}, role", a.port),
        &format!("port: {}, role", b.port),
    );
    gw.write_cluster("app", &v3);
    assert!(
        eventually(WAIT, || backend_port_via(listen) == Ok(b.port)),
        "backend change never applied"
    );
    assert_eq!(
        port_of(&mut held).unwrap(),
        a.port,
        "open connection must stay on its backend"
    );

    // 3. Break the file: rejected with file:line:column, the running config keeps serving.
    let failures = reloads(&gw, "failure");
    gw.write_cluster("app", &v3.replace("type: tcp", "type: tpc"));
    assert!(
        eventually(WAIT, || reloads(&gw, "failure") > failures),
        "broken file was not reported"
    );
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    let msg = body["error"].as_str().unwrap_or_default();
    let file = gw.cluster_path("app").display().to_string();
    assert!(
        msg.starts_with(&format!("{file}:5:11: unknown variant `tpc`")),
        "{msg}"
    );
    assert!(
        gw.log().contains(&format!("{file}:5:11")),
        "log lacks the location"
    );
    assert_eq!(backend_port_via(listen), Ok(b.port));
    assert_eq!(backend_port_via(listen2), Ok(c.port));
    assert_eq!(port_of(&mut held).unwrap(), a.port);

    // 4. Remove the extra service: its listener stops accepting.
    gw.write_cluster(
        "app",
        &tcp_cluster("app", "kv", listen, &[(b.port, "primary", 1)], ""),
    );
    assert!(
        eventually(WAIT, || backend_port_via(listen2).is_err()),
        "removed service still accepts"
    );
    assert_eq!(port_of(&mut held).unwrap(), a.port);
    assert!(reloads(&gw, "success") >= 4);
}

#[test]
fn sighup_and_api_reload_when_watching_is_off() {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let listen = free_port();
    let v1 = tcp_cluster("hup", "kv", listen, &[(a.port, "primary", 1)], "");
    let gw = Throome::start_with(
        &[("hup", &v1)],
        Options {
            watch: false,
            ..Options::default()
        },
    );
    let v2 = v1.replace(&format!("port: {}", a.port), &format!("port: {}", b.port));
    gw.write_cluster("hup", &v2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        backend_port_via(listen),
        Ok(a.port),
        "watch is off: nothing changes on its own"
    );

    gw.signal("-HUP");
    assert!(
        eventually(WAIT, || backend_port_via(listen) == Ok(b.port)),
        "SIGHUP did not reload"
    );

    gw.write_cluster("hup", &v1);
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reload"]["changed"][0], "hup/kv");
    assert_eq!(backend_port_via(listen), Ok(a.port));
}

#[test]
fn a_busy_port_rejects_the_whole_reload() {
    let a = RedisServer::start();
    let listen = free_port();
    let v1 = tcp_cluster("busy", "kv", listen, &[(a.port, "primary", 1)], "");
    let gw = Throome::start_with(
        &[("busy", &v1)],
        Options {
            watch: false,
            ..Options::default()
        },
    );
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let v2 = v1.replace(
        &format!("127.0.0.1:{listen}"),
        &format!("127.0.0.1:{taken}"),
    );
    gw.write_cluster("busy", &v2);
    let (status, body) = gw.post("/api/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("cannot listen on 127.0.0.1:{taken}")),
        "{body}"
    );
    assert_eq!(
        backend_port_via(listen),
        Ok(a.port),
        "old listener must keep serving"
    );
}
