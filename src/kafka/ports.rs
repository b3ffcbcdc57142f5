//! Port per broker: every upstream broker a Kafka service learns of (by node id, from the
//! Metadata, FindCoordinator and DescribeCluster answers passing through) gets a proxy
//! listener on `broker_port_base + node_id` (or its `broker_ports` entry), so the addresses
//! clients are told all lead back through Throome. A broker missing from a full broker list
//! loses its listener; a reload that removes or changes the service closes them all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::listener::{self, Listener, ServiceKey, Shared};
use crate::snapshot::{KafkaSpec, ServiceRuntime, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("node id {0} has no proxy port (broker_port_base + node id is not a port)")]
    NoPort(i32),
    #[error("cannot listen on {addr} for broker {node}: {source}")]
    Bind {
        addr: SocketAddr,
        node: i32,
        source: std::io::Error,
    },
    #[error("service has no listen address")]
    NotExposed,
}

/// An upstream broker address as the cluster advertises it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

struct BrokerPort {
    upstream: Upstream,
    listener: Listener,
}

/// The broker listeners of one service, with the settings they were opened under.
struct ServicePorts {
    spec: KafkaSpec,
    listen: SocketAddr,
    nodes: HashMap<i32, BrokerPort>,
}

#[derive(Default)]
pub struct BrokerPorts {
    services: Mutex<HashMap<ServiceKey, ServicePorts>>,
    /// Brokers reached through the shared listener by name (`crate::kafka::by_cluster`):
    /// their upstream addresses, with no port of their own.
    named: Mutex<HashMap<ServiceKey, HashMap<i32, Upstream>>>,
}

fn key_of(service: &ServiceRuntime) -> ServiceKey {
    ServiceKey {
        cluster: service.cluster.clone(),
        service: service.name.clone(),
    }
}

impl BrokerPorts {
    /// Makes sure `node` has a listener and remembers its upstream address; returns the
    /// address clients must be told.
    pub fn ensure(
        &self,
        shared: &Arc<Shared>,
        service: &ServiceRuntime,
        node: i32,
        upstream: Upstream,
    ) -> Result<(String, u16), PortError> {
        let spec = &service.spec.kafka;
        let listen = service.spec.listen.ok_or(PortError::NotExposed)?;
        let port = spec.port_of(node).ok_or(PortError::NoPort(node))?;
        let advertised = (spec.advertised_host.clone(), port);
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let key = key_of(service);
        let entry = services.entry(key.clone()).or_insert_with(|| ServicePorts {
            spec: spec.clone(),
            listen,
            nodes: HashMap::new(),
        });
        if let Some(existing) = entry.nodes.get_mut(&node) {
            existing.upstream = upstream;
            return Ok(advertised);
        }
        let addr = SocketAddr::new(listen.ip(), port);
        let tcp = listener::bind(addr).map_err(|source| PortError::Bind { addr, node, source })?;
        let listener = Listener::start_for(tcp, key, shared.clone(), Some(node));
        tracing::info!(%addr, node, upstream = %format!("{}:{}", upstream.host, upstream.port), "broker port open");
        entry.nodes.insert(node, BrokerPort { upstream, listener });
        Ok(advertised)
    }

    /// Remembers the upstream address of a broker clients reach by name.
    pub fn remember(&self, service: &ServiceRuntime, node: i32, upstream: Upstream) {
        let mut named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        named
            .entry(key_of(service))
            .or_default()
            .insert(node, upstream);
    }

    /// The upstream address behind a broker port or broker name.
    pub fn upstream(&self, service: &ServiceRuntime, node: i32) -> Option<Upstream> {
        let key = key_of(service);
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = services.get(&key).and_then(|p| p.nodes.get(&node)) {
            return Some(b.upstream.clone());
        }
        drop(services);
        let named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        named.get(&key)?.get(&node).cloned()
    }

    /// Closes the listeners of brokers that are not in a complete broker list.
    pub fn retain(&self, service: &ServiceRuntime, alive: &[i32], drain: Duration) {
        if let Some(nodes) = self
            .named
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&key_of(service))
        {
            nodes.retain(|n, _| alive.contains(n));
        }
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let Some(ports) = services.get_mut(&key_of(service)) else {
            return;
        };
        let gone: Vec<i32> = ports
            .nodes
            .keys()
            .filter(|n| !alive.contains(n))
            .copied()
            .collect();
        for node in gone {
            if let Some(b) = ports.nodes.remove(&node) {
                tracing::info!(addr = %b.listener.addr, node, "broker left the cluster, closing its port");
                b.listener.stop(drain);
            }
        }
    }

    /// After a reload: closes the ports of services that are gone, no longer exposed, or
    /// whose broker mapping changed (the next metadata answer opens the new ones).
    pub fn prune(&self, snapshot: &Snapshot, drain: Duration) -> Vec<JoinHandle<()>> {
        self.named
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| snapshot.service(&key.cluster, &key.service).is_some());
        let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let stale: Vec<ServiceKey> = services
            .iter()
            .filter(|(key, ports)| {
                let now = snapshot.service(&key.cluster, &key.service);
                !now.is_some_and(|s| {
                    s.spec.listen == Some(ports.listen) && s.spec.kafka == ports.spec
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut handles = Vec::new();
        for key in stale {
            if let Some(ports) = services.remove(&key) {
                handles.extend(ports.nodes.into_values().map(|b| b.listener.stop(drain)));
            }
        }
        handles
    }

    /// The open broker ports of a service, by node id (for tests and the admin view).
    pub fn ports_of(&self, service: &ServiceRuntime) -> Vec<(i32, SocketAddr)> {
        let services = self.services.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(i32, SocketAddr)> = services
            .get(&key_of(service))
            .map(|p| {
                p.nodes
                    .iter()
                    .filter_map(|(n, b)| Some((*n, b.listener.tcp_addr()?)))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}
