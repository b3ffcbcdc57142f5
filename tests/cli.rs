//! `throome-cli` against files and against a running gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::gateway::tcp_cluster;
use common::{RedisServer, Throome, eventually, free_port};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn create_cluster_writes_a_valid_file_and_refuses_to_overwrite() {
    let gw = Throome::start(&[]);
    let out = gw.cli(&["create-cluster", "--name", "Orders EU"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "orders-eu");
    let file = gw.cluster_path("orders-eu");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("# Replace `{}` above with your services"),
        "template comments kept"
    );
    // The watching gateway picks it up.
    assert!(eventually(Duration::from_secs(10), || gw
        .get("/api/v1/clusters/orders-eu")
        .0
        == 200));

    let again = gw.cli(&["create-cluster", "--name", "Orders EU"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let with_id = gw.cli(&["create-cluster", "--name", "Whatever", "--id", "custom_1"]);
    assert_eq!(stdout(&with_id).trim(), "custom_1");
}

#[test]
fn validate_reports_file_line_column_and_exit_codes() {
    let gw = Throome::start(&[]);
    let ok = gw.cli(&["validate"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(stdout(&ok).contains("(gateway)"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "cluster_id: x\nname: y\nservices:\n  s:\n    type: tcp\n    host: h\n    port: 99999\n",
    )
    .unwrap();
    let out = gw.cli(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("{}:7:11: ", bad.display())),
        "{err}"
    );

    let shipped = std::process::Command::new(env!("CARGO_BIN_EXE_throome-cli"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("validate")
        .output()
        .unwrap();
    assert!(
        shipped.status.success(),
        "shipped config must validate: {}",
        stderr(&shipped)
    );
    assert!(
        stdout(&shipped).contains("(1 clusters)"),
        "{}",
        stdout(&shipped)
    );
}

#[test]
fn list_reload_and_status_against_a_running_gateway() {
    let a = RedisServer::start();
    let mut b = RedisServer::start();
    let listen = free_port();
    let yaml = tcp_cluster(
        "lst",
        "kv",
        listen,
        &[(a.port, "primary", 1), (b.port, "replica", 2)],
        "health: { interval: 0.3, unhealthy_threshold: 1 }\n",
    );
    let gw = Throome::start(&[("lst", &yaml)]);

    let files = gw.cli(&["list-clusters"]);
    let table = stdout(&files);
    assert!(table.starts_with("CLUSTER"), "{table}");
    assert!(table.contains(&format!("127.0.0.1:{listen}")), "{table}");
    assert!(
        table.contains(&format!("127.0.0.1:{} (replica, w2)", b.port)),
        "{table}"
    );

    let live = gw.cli(&["list-clusters", "--gateway", &gw.url()]);
    assert!(
        stdout(&live).contains(&format!("127.0.0.1:{} up", a.port)),
        "{}",
        stdout(&live)
    );
    let status = gw.cli(&["status", "--gateway", &gw.url()]);
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    assert!(stdout(&status).starts_with("gateway: ready"));

    b.kill();
    assert!(eventually(Duration::from_secs(10), || gw
        .cli(&["status", "--gateway", &gw.url()])
        .status
        .code()
        == Some(1)));
    let live = gw.cli(&["list-clusters", "--gateway", &gw.url()]);
    assert!(
        stdout(&live).contains(&format!("127.0.0.1:{} down", b.port)),
        "{}",
        stdout(&live)
    );

    let reload = gw.cli(&["reload", "--gateway", &gw.url()]);
    assert!(reload.status.success(), "{}", stderr(&reload));
    assert!(
        stdout(&reload).starts_with("reloaded:"),
        "{}",
        stdout(&reload)
    );

    let unreachable = gw.cli(&[
        "status",
        "--gateway",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(unreachable.status.code(), Some(3));
}

#[test]
fn commands_answer_help() {
    for cmd in [
        "create-cluster",
        "list-clusters",
        "validate",
        "reload",
        "status",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_throome-cli"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd} --help");
        assert!(stdout(&out).contains("Usage: throome-cli"), "{cmd}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_throome"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(stdout(&out).contains("--port"));
}

#[test]
fn create_cluster_without_a_gateway_file_writes_to_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let cli = env!("CARGO_BIN_EXE_throome-cli");
    let out = std::process::Command::new(cli)
        .args(["create-cluster", "--name", "app"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "app");
    assert!(dir.path().join("clusters/app/config.yaml").is_file());
    // A --config that is missing stays an error, and writes nothing.
    let out = std::process::Command::new(cli)
        .args(["--config", "nope.yaml", "create-cluster", "--name", "other"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.yaml"), "{}", stderr(&out));
    assert!(!dir.path().join("clusters/other").exists());
}

#[test]
fn ready_answers_for_a_container_healthcheck() {
    let gw = Throome::start(&[]);
    let cli = env!("CARGO_BIN_EXE_throome-cli");
    let ready = std::process::Command::new(cli)
        .args(["ready", "--gateway", &gw.url()])
        .output()
        .unwrap();
    assert_eq!(ready.status.code(), Some(0), "{}", stderr(&ready));
    let gone = format!("http://127.0.0.1:{}", free_port());
    let down = std::process::Command::new(cli)
        .args(["ready", "--gateway", &gone])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3), "{}", stderr(&down));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let opts = common::gateway::Options {
        json_logs: true,
        ..Default::default()
    };
    let gw = Throome::start_with(&[], opts);
    let log = gw.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
