//! The deployment files: the Kubernetes manifests against the Kubernetes schemas
//! (kubernetes-validate, strict) and through `kubectl kustomize`, the gateway and cluster
//! files they carry checked by `throome-cli validate` as the pod sees them, the Grafana
//! dashboard's expressions checked by promtool and their metrics found in a real scrape,
//! and the container image built where a Docker daemon runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::path::Path;
use std::process::Command;

use common::data::{WRITER, call, setup};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn validate(files: &[&Path]) -> std::process::Output {
    Command::new(format!("{ROOT}/.venv/bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .args(files)
        .output()
        .expect("kubernetes-validate not found: run scripts/setup.sh")
}

#[test]
fn kubernetes_manifests_validate() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    let core: Vec<_> = ["configmap", "deployment", "service", "pdb"]
        .iter()
        .map(|n| dir.join(format!("{n}.yaml")))
        .collect();
    let refs: Vec<&Path> = core.iter().map(|p| p.as_path()).collect();
    let out = validate(&refs);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does refuse a manifest that is wrong (strict: an unknown field).
    let bad = tempfile::NamedTempFile::new().unwrap();
    let broken = std::fs::read_to_string(dir.join("pdb.yaml"))
        .unwrap()
        .replace("maxUnavailable", "maxUnavailabel");
    std::fs::write(bad.path(), broken).unwrap();
    assert!(
        !validate(&[bad.path()]).status.success(),
        "a misspelt field passed"
    );

    // The kustomization builds, with every resource.
    let built = Command::new("kubectl")
        .args(["kustomize"])
        .arg(&dir)
        .output()
        .expect("kubectl");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let text = String::from_utf8_lossy(&built.stdout);
    for kind in [
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        assert!(
            text.contains(&format!("kind: {kind}")),
            "{kind} missing:\n{text}"
        );
    }

    // The ServiceMonitor scrapes a port the Service has, of pods the Deployment makes.
    let monitor = &yaml_docs("deploy/kubernetes/servicemonitor.yaml")[0];
    let service = &yaml_docs("deploy/kubernetes/service.yaml")[0];
    let deployment = &yaml_docs("deploy/kubernetes/deployment.yaml")[0];
    let port = &monitor["spec"]["endpoints"][0]["port"];
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| &p["name"] == port)
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    );
    assert_eq!(&service["spec"]["selector"], labels);
    let probes = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(probes["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(probes["livenessProbe"]["httpGet"]["path"], "/health");
}

/// The ConfigMaps' files, laid out as the Deployment mounts them, pass `throome-cli validate`.
#[test]
fn configmap_files_are_valid_gateway_and_cluster_files() {
    let docs = yaml_docs("deploy/kubernetes/configmap.yaml");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/throome.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, docs[0]["data"]["throome.yaml"].as_str().unwrap()).unwrap();
    let deployment = &yaml_docs("deploy/kubernetes/deployment.yaml")[0];
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let items =
        volumes.iter().find(|v| v["name"] == "clusters").unwrap()["configMap"]["items"].clone();
    let mut files = vec![config.clone()];
    for item in items.as_array().unwrap() {
        let path = dir
            .path()
            .join("clusters")
            .join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            docs[1]["data"][item["key"].as_str().unwrap()]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        files.push(path);
    }
    files.push(Path::new(ROOT).join("deploy/throome.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_throome-cli"))
        .arg("validate")
        .args(&files)
        .env("THROOME_ADMIN_TOKEN", "t")
        .env("SHOP_PG_PASSWORD", "p")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches("ok ").count(), files.len(), "{text}");
}

/// Every metric the dashboard's expressions use is in a real scrape, and promtool parses
/// every expression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_uses_real_metrics() {
    let d = setup().await;
    let p = d.gw.admin_port;
    // Traffic of every kind: native Redis, SQL and records over HTTP, an error, a reload.
    let mut native = common::redis_con(d.ports.0);
    let _: String = redis::cmd("PING").query(&mut native).unwrap();
    assert_eq!(
        call(
            p,
            "POST",
            "/api/v1/clusters/app/sql",
            Some(WRITER),
            Some(r#"{"query":"select 1"}"#)
        )
        .0,
        200
    );
    assert_eq!(
        call(
            p,
            "POST",
            "/api/v1/clusters/app/topics/events/records",
            Some(WRITER),
            Some(r#"{"value":"x"}"#)
        )
        .0,
        200
    );
    // An error: a service whose backend is gone refuses its client.
    let (dead, listen) = (common::free_port(), common::free_port());
    d.gw.write_cluster(
        "dead",
        &common::gateway::tcp_cluster("dead", "kv", listen, &[(dead, "primary", 1)], ""),
    );
    assert_eq!(d.gw.post("/api/v1/reload", "").0, 200);
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", listen)) {
        use std::io::Read;
        let _ = s.read(&mut [0u8; 1]);
    }
    // Bytes both ways through a pass-through to the cache's server.
    let through = common::free_port();
    d.gw.write_cluster(
        "relay",
        &common::gateway::tcp_cluster("relay", "kv", through, &[(d.redis.port, "primary", 1)], ""),
    );
    assert_eq!(d.gw.post("/api/v1/reload", "").0, 200);
    let mut relay = common::redis_con(through);
    let _: String = redis::cmd("PING").query(&mut relay).unwrap();
    drop(relay);
    let scrape = d.gw.metrics();

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/deploy/grafana/throome.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            exprs.push(
                q.trim_start_matches("label_values(")
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert!(exprs.len() >= 12);
    let mut metrics: Vec<String> = Vec::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(at) = rest.find("throome_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            metrics.push(name);
        }
    }
    metrics.sort();
    metrics.dedup();
    for m in &metrics {
        assert!(
            scrape
                .lines()
                .any(|l| l.starts_with(&format!("{m}{{")) || l.starts_with(&format!("{m} "))),
            "the dashboard uses {m}, which the gateway does not export:\n{scrape}"
        );
    }
    // promtool parses each expression (Grafana's variables given values).
    let rules: Vec<String> = exprs
        .iter()
        .filter(|e| e.contains('('))
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$cluster", ".*")
                .replace("$service", ".*");
            format!(
                "      - record: dashboard:expr{i}\n        expr: '{}'\n",
                e.replace('\'', "''")
            )
        })
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "groups:\n  - name: dashboard\n    rules:\n{}",
            rules.concat()
        ),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(file.path())
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `docker build` where a daemon runs; elsewhere the test says it skipped the build.
#[test]
fn container_image() {
    let dockerfile = std::fs::read_to_string(format!("{ROOT}/Dockerfile")).unwrap();
    assert_eq!(
        dockerfile
            .lines()
            .filter(|l| l.starts_with("FROM "))
            .count(),
        2,
        "multi-stage"
    );
    assert!(dockerfile.contains("USER nonroot"));
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"ready\""));
    assert!(dockerfile.contains("VOLUME [\"/etc/throome/clusters\"]"));
    let daemon = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !daemon {
        eprintln!("container_image: no Docker daemon here, the image build was skipped");
        return;
    }
    let out = Command::new("docker")
        .args(["build", "-t", "throome:test", ROOT])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
