//! The data API's OpenAPI document against the real routes: every documented operation is
//! served (a request without a token gets the API's own 401, not the fallback's 404 or a
//! 405), and schemathesis (from PyPI) fuzzes the whole document against a running gateway
//! with real backends: no 5xx, every status and body as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;

use common::data::{READER, call_text, setup};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_matches_the_routes() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let (status, text) = call_text(p, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(throome::data::OPENAPI).unwrap()
    );
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 7, "{paths:?}");
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "app")
            .replace("{key}", "k")
            .replace("{topic}", "events")
            .replace("{partition}", "0");
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let (status, body) = call_text(p, &method.to_uppercase(), &concrete, None, Some("[]"));
            if path.ends_with("openapi.json") {
                assert_eq!(status, 200);
                continue;
            }
            assert_eq!(status, 401, "{method} {path}: {body}");
            assert!(body.contains("\"unauthorized\""), "{method} {path}: {body}");
        }
    }
    assert_eq!(operations, 11);
    // And a path that is not documented is not served.
    let (status, _) = call_text(p, "POST", "/api/v1/clusters/app/nosuch", None, Some("[]"));
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let d = setup().await;
    let url = format!("http://127.0.0.1:{}", d.gw.admin_port);
    let st = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/schemathesis");
    // A read-only token: the fuzzer's random commands and SQL cannot change the servers.
    // The cluster and topic that exist, so requests reach the backends.
    let config = d.gw.dir.path().join("schemathesis.toml");
    let toml = r#"
[parameters]
"path.id" = "app"
"path.topic" = "events"

[[operations]]
include-path-regex = "/(redis|cache)"
parameters = { "query.service" = "cache" }

[[operations]]
include-path-regex = "/sql"
parameters = { "query.service" = "db" }

[[operations]]
include-path-regex = "/topics/"
parameters = { "query.service" = "queue" }
"#;
    std::fs::write(&config, toml).unwrap();
    let out = Command::new("timeout")
        .args(["300", st, "--config-file"])
        .arg(&config)
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(["--url", &url])
        .args(["--header", &format!("Authorization: Bearer {READER}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "40", "--workers", "1", "--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("schemathesis not found: run scripts/setup.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
}
