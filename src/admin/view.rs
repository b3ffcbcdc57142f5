//! What the admin API shows of a cluster: its config with secrets redacted (`Secret`
//! serializes as `***`) plus live state per backend.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::config::ClusterConfig;
use crate::listener::Endpoint;
use crate::snapshot::{ClusterRuntime, ServiceRuntime};

#[derive(Serialize)]
pub struct ClusterView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub file: String,
    pub services: Vec<ServiceView<'a>>,
    /// The file as loaded, options it leaves unset omitted (not dozens of `null`s).
    pub config: serde_json::Value,
}

#[derive(Serialize)]
pub struct ServiceView<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unix_socket: Option<String>,
    pub exposed: bool,
    /// How clients connect: the shared listener's URI (the cluster in the user name) and
    /// the service's own (`crate::by_cluster::connection_strings`).
    pub connect: Vec<String>,
    pub strategy: &'static str,
    pub failover_enabled: bool,
    pub health_checks: bool,
    /// Open client connections on this service's listener.
    pub client_connections: usize,
    pub backends: Vec<BackendView>,
}

#[derive(Serialize)]
pub struct BackendView {
    pub address: String,
    pub weight: u32,
    pub role: crate::config::Role,
    /// Active health checks pass.
    pub healthy: bool,
    /// Healthy and the circuit lets traffic through.
    pub available: bool,
    pub circuit: &'static str,
    pub active_connections: usize,
    pub latency_ms: f64,
}

pub fn cluster<'a>(
    c: &'a ClusterRuntime,
    conns: &HashMap<Endpoint, usize>,
    shared: &crate::by_cluster::SharedListeners,
) -> ClusterView<'a> {
    ClusterView {
        id: &c.id,
        name: &c.config.name,
        file: c.path.display().to_string(),
        services: c
            .services
            .values()
            .map(|s| service(s, conns, shared))
            .collect(),
        config: set_options(&c.config),
    }
}

/// The cluster's configuration without its unset options.
fn set_options(config: &ClusterConfig) -> serde_json::Value {
    let mut v = serde_json::to_value(config).unwrap_or_default();
    drop_nulls(&mut v);
    v
}

fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Where a service's clients connect.
fn endpoints(s: &ServiceRuntime) -> Vec<Endpoint> {
    let tcp = s.spec.listen.map(Endpoint::Tcp);
    let unix = s
        .spec
        .unix_socket
        .as_ref()
        .map(|(p, _)| Endpoint::Unix(p.clone()));
    tcp.into_iter().chain(unix).collect()
}

fn service<'a>(
    s: &'a ServiceRuntime,
    conns: &HashMap<Endpoint, usize>,
    shared: &crate::by_cluster::SharedListeners,
) -> ServiceView<'a> {
    let now = Instant::now();
    let cooldown = s.probe_thresholds().cooldown;
    ServiceView {
        name: &s.name,
        kind: s.spec.kind.as_str(),
        listen: s.spec.listen.map(|a| a.to_string()),
        unix_socket: s
            .spec
            .unix_socket
            .as_ref()
            .map(|(p, _)| p.display().to_string()),
        exposed: s.spec.listen.is_some()
            || s.spec.unix_socket.is_some()
            || (s.spec.shared_listener && shared.contains_key(&s.spec.kind)),
        connect: crate::by_cluster::connection_strings(s, shared),
        strategy: s.spec.strategy.as_str(),
        failover_enabled: s.spec.failover,
        health_checks: s.spec.health_enabled,
        client_connections: endpoints(s).iter().filter_map(|e| conns.get(e)).sum(),
        backends: s
            .backends
            .iter()
            .map(|b| BackendView {
                address: b.address(),
                weight: b.weight,
                role: b.role,
                healthy: b.is_up(),
                available: b.is_available(now, cooldown),
                circuit: b.circuit().as_str(),
                active_connections: b.active(),
                latency_ms: b.latency_estimate(now) * 1000.0,
            })
            .collect(),
    }
}
