//! `throome-cli list-clusters` and `status`: tables from the files or from a running gateway.

use serde_json::Value;

use super::table;
use crate::config::LoadedCluster;
use crate::snapshot::Snapshot;

const HEADER: [&str; 6] = ["CLUSTER", "NAME", "SERVICE", "TYPE", "LISTEN", "BACKENDS"];

/// From the cluster files: configured backends with role and weight, then how clients
/// connect to each service (through the gateway file's shared `listeners` and its own).
pub fn from_files(loaded: &[LoadedCluster], shared: &crate::by_cluster::SharedListeners) -> String {
    let snapshot = Snapshot::build(loaded, false, &Snapshot::default());
    let mut rows = Vec::new();
    for c in snapshot.clusters.values() {
        if c.services.is_empty() {
            rows.push(vec![
                c.id.clone(),
                c.config.name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for s in c.services.values() {
            let backends: Vec<String> = s
                .backends
                .iter()
                .map(|b| format!("{} ({}, w{})", b.address(), role(b.role), b.weight))
                .collect();
            rows.push(vec![
                c.id.clone(),
                c.config.name.clone(),
                s.name.clone(),
                s.spec.kind.as_str().into(),
                match (
                    s.spec.listen,
                    shared.contains_key(&s.spec.kind) && s.spec.shared_listener,
                ) {
                    (Some(a), _) => a.to_string(),
                    (None, true) => "(shared listener)".into(),
                    (None, false) => "(not exposed)".into(),
                },
                backends.join(", "),
            ]);
        }
    }
    let mut connect = Vec::new();
    for s in snapshot.services() {
        for uri in crate::by_cluster::connection_strings(s, shared) {
            connect.push(vec![s.key(), uri]);
        }
    }
    let mut out = table::render(&HEADER, &rows);
    if !connect.is_empty() {
        out.push('\n');
        out.push_str(&table::render(&["SERVICE", "CONNECT"], &connect));
    }
    out
}

fn role(r: crate::config::Role) -> &'static str {
    match r {
        crate::config::Role::Primary => "primary",
        crate::config::Role::Replica => "replica",
    }
}

/// From `GET /api/v1/clusters`: adds live health per backend. Returns the table and whether
/// every backend is healthy.
pub fn from_api(clusters: &Value) -> (String, bool) {
    let mut rows = Vec::new();
    let mut connect = Vec::new();
    let mut all_up = true;
    let empty = Vec::new();
    for c in clusters
        .get("clusters")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let id = str_of(c, "id");
        let name = str_of(c, "name");
        for s in c
            .get("services")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            let mut backends = Vec::new();
            for b in s
                .get("backends")
                .and_then(Value::as_array)
                .unwrap_or(&empty)
            {
                let healthy = b.get("healthy").and_then(Value::as_bool).unwrap_or(false);
                let circuit = str_of(b, "circuit");
                let state = match (healthy, circuit.as_str()) {
                    (false, _) => "down".to_string(),
                    (true, "closed") => "up".to_string(),
                    (true, other) => format!("circuit {other}"),
                };
                all_up &= state == "up";
                backends.push(format!("{} {state}", str_of(b, "address")));
            }
            let listen = s
                .get("listen")
                .and_then(Value::as_str)
                .unwrap_or("(not exposed)")
                .to_string();
            rows.push(vec![
                id.clone(),
                name.clone(),
                str_of(s, "name"),
                str_of(s, "type"),
                listen,
                backends.join(", "),
            ]);
            for uri in s.get("connect").and_then(Value::as_array).unwrap_or(&empty) {
                let key = format!("{id}/{}", str_of(s, "name"));
                connect.push(vec![key, uri.as_str().unwrap_or("").to_string()]);
            }
        }
    }
    let mut out = table::render(&HEADER, &rows);
    if !connect.is_empty() {
        out.push('\n');
        out.push_str(&table::render(&["SERVICE", "CONNECT"], &connect));
    }
    (out, all_up)
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}
