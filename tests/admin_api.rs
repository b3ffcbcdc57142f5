//! The admin HTTP API: auth, cluster CRUD, redaction, metrics format, exposure rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::{Options, http_get, tcp_cluster};
use common::{RedisServer, Throome, backend_port_via, eventually, free_port};

#[test]
fn token_guards_the_api_but_not_health_or_metrics() {
    let a = RedisServer::start();
    let yaml = tcp_cluster("t", "kv", free_port(), &[(a.port, "primary", 1)], "");
    let gw = Throome::start_with(
        &[("t", &yaml)],
        Options {
            token: Some("s3cret-token".into()),
            ..Options::default()
        },
    );
    let port = gw.admin_port;
    assert_eq!(http_get(port, "/api/v1/clusters", None).unwrap().0, 401);
    assert_eq!(
        http_get(port, "/api/v1/clusters", Some("wrong")).unwrap().0,
        401
    );
    let (status, body) = http_get(port, "/api/v1/clusters", Some("s3cret-token")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("s3cret-token"));
    assert_eq!(http_get(port, "/health", None).unwrap().0, 200);
    assert_eq!(http_get(port, "/ready", None).unwrap().0, 200);
    assert_eq!(http_get(port, "/metrics", None).unwrap().0, 200);
    let (status, body) = http_get(port, "/nope", None).unwrap();
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"no such endpoint"}"#)
    );
    let (status, _) = common::gateway::http_send(port, "POST", "/api/v1/reload", "", None).unwrap();
    assert_eq!(status, 401);
}

#[test]
fn refuses_a_public_admin_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("clusters")).unwrap();
    let path = dir.path().join("public.yaml");
    let cfg = format!(
        "server:\n  host: 0.0.0.0\n  port: {}\ngateway:\n  clusters_dir: clusters\n",
        free_port()
    );
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_throome"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve the admin API on non-loopback address 0.0.0.0"),
        "{stderr}"
    );
}

#[test]
fn clusters_can_be_created_shown_and_deleted() {
    let a = RedisServer::start();
    let gw = Throome::start(&[]);
    let listen = free_port();
    let yaml = tcp_cluster("made", "kv", listen, &[(a.port, "primary", 1)], "").replace(
        "    type: tcp\n",
        "    type: tcp\n    username: app\n    password: hunter2-secret\n",
    );
    let (status, body) = gw.post("/api/v1/clusters", &yaml);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["cluster"]["id"], "made");
    assert_eq!(
        backend_port_via(listen),
        Ok(a.port),
        "created cluster must serve at once"
    );
    assert!(gw.cluster_path("made").is_file());

    let (status, shown) = gw.get("/api/v1/clusters/made");
    assert_eq!(status, 200);
    let kv = &shown["services"][0];
    assert_eq!(kv["exposed"], true);
    assert_eq!(kv["backends"][0]["healthy"], true);
    assert_eq!(kv["backends"][0]["circuit"], "closed");
    assert_eq!(shown["config"]["services"]["kv"]["password"], "***");
    // Options the file leaves unset are left out, not listed as dozens of nulls.
    let config = shown["config"].to_string();
    assert!(!config.contains("null"), "{config}");
    assert!(shown["config"]["services"]["kv"].get("pool_size").is_none());
    assert!(
        !shown.to_string().contains("hunter2-secret"),
        "secret leaked: {shown}"
    );
    assert!(
        !gw.log().contains("hunter2-secret"),
        "secret leaked to the log"
    );

    let (status, body) = gw.post("/api/v1/clusters", &yaml);
    assert_eq!(status, 409, "{body}");

    let (status, body) = gw.post(
        "/api/v1/clusters",
        "cluster_id: bad\nname: x\nservices:\n  s:\n    type: tcp\n    porst: 1\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("request body:6:5: unknown field `porst`"),
        "{body}"
    );

    let json = format!(
        r#"{{"cluster_id":"j","name":"J","services":{{"s":{{"type":"tcp","host":"127.0.0.1","port":{}}}}}}}"#,
        a.port
    );
    let (status, body) = gw.post("/api/v1/clusters", &json);
    assert_eq!(status, 201, "{body}");

    let (status, _) = gw.delete("/api/v1/clusters/made");
    assert_eq!(status, 200);
    assert_eq!(gw.get("/api/v1/clusters/made").0, 404);
    assert!(!gw.cluster_path("made").exists());
    assert!(
        eventually(Duration::from_secs(10), || backend_port_via(listen)
            .is_err()),
        "deleted cluster still listens"
    );
    assert_eq!(gw.delete("/api/v1/clusters/made").0, 404);
}

#[test]
fn metrics_pass_promtool_and_count_traffic() {
    let a = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster("m", "kv", listen, &[(a.port, "primary", 1)], "");
    let gw = Throome::start(&[("m", &yaml)]);
    for _ in 0..3 {
        backend_port_via(listen).unwrap();
    }
    // A connection's duration is recorded when the gateway side has finished closing it.
    let done = "throome_request_duration_seconds_count{cluster=\"m\",service=\"kv\",command=\"connection\"} 3";
    assert!(
        eventually(Duration::from_secs(10), || gw.metrics().contains(done)),
        "{}",
        gw.metrics()
    );
    let text = gw.metrics();
    assert!(
        text.contains(
            "throome_requests_total{cluster=\"m\",service=\"kv\",command=\"connection\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.contains("throome_received_bytes_total{cluster=\"m\",service=\"kv\"}"),
        "{text}"
    );
    assert!(
        text.contains("throome_config_reloads_total{result=\"success\"} 1"),
        "{text}"
    );

    common::assert_promtool_accepts(&text);
}
