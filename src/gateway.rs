//! The running gateway: the current snapshot, its listeners and health checkers, and reload:
//! parse -> validate -> build (reusing what did not change) -> bind new listeners -> swap ->
//! retarget/stop old listeners -> restart health checks of changed services. An invalid file
//! or a port that cannot be bound leaves everything as it was.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::{self, ConfigErrors, GatewayConfig};
use crate::listener::{self, Endpoint, Listener, ServiceKey, Shared};
use crate::metrics::Metrics;
use crate::snapshot::{ServiceRuntime, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {addr} for service {cluster}/{service}: {source}")]
    Bind {
        addr: Endpoint,
        cluster: String,
        service: String,
        source: std::io::Error,
    },
    #[error("cannot start the shared {kind:?} listener on {addr}: {why}")]
    Shared {
        kind: crate::config::ServiceKind,
        addr: std::net::SocketAddr,
        why: String,
    },
}

/// What a reload changed, by `cluster/service`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: usize,
}

pub struct Gateway {
    pub gateway_file: PathBuf,
    pub config: GatewayConfig,
    pub clusters_dir: PathBuf,
    shared: Arc<Shared>,
    running: Mutex<Running>,
    ready: AtomicBool,
    /// Stops the gateway-wide background tasks (memory trim).
    housekeeping: CancellationToken,
    /// The last reloads, newest last (the status page's history).
    history: std::sync::Mutex<std::collections::VecDeque<ReloadRecord>>,
}

/// One reload as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// Milliseconds since the Unix epoch.
    pub at: u64,
    pub trigger: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ReloadSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reloads kept for the status page.
const HISTORY: usize = 20;

#[derive(Default)]
struct Running {
    listeners: HashMap<Endpoint, Listener>,
    /// The gateway file's `listeners:`, bound once at start-up.
    shared: Vec<Listener>,
    health: HashMap<ServiceKey, (Arc<ServiceRuntime>, CancellationToken)>,
}

impl Gateway {
    /// Loads the clusters and starts serving them. Fails, binding nothing, on any error.
    pub async fn start(
        gateway_file: &Path,
        config: GatewayConfig,
    ) -> Result<Arc<Gateway>, ReloadError> {
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let shared = Arc::new(Shared {
            metrics: Arc::new(Metrics::new(snapshot.clone())),
            snapshot,
            conn_limit: Arc::new(Semaphore::new(config.gateway.max_connections.max(1))),
            gateway: std::sync::OnceLock::new(),
            ext: crate::protocol::Extensions::default(),
        });
        let gw = Arc::new(Gateway {
            gateway_file: gateway_file.to_path_buf(),
            clusters_dir: config::resolve_clusters_dir(gateway_file, &config),
            config,
            shared,
            running: Mutex::new(Running::default()),
            ready: AtomicBool::new(false),
            housekeeping: CancellationToken::new(),
            history: Default::default(),
        });
        let control: Arc<dyn crate::protocol::Control> = gw.clone();
        let _ = gw.shared.gateway.set(Arc::downgrade(&control));
        gw.reload("startup").await?;
        gw.start_shared_listeners().await?;
        gw.ready.store(true, Ordering::Release);
        tokio::spawn(crate::memtrim::run(
            gw.shared.conn_limit.clone(),
            gw.config.gateway.max_connections.max(1),
            gw.housekeeping.clone(),
        ));
        Ok(gw)
    }

    /// A session for a request of the HTTP data API on `service`, served as a native
    /// client's would be (`crate::data`); a retired service ends it as it ends its clients.
    pub fn internal_session(
        &self,
        service: Arc<crate::snapshot::ServiceRuntime>,
    ) -> crate::session::Session {
        crate::session::Session {
            hard_stop: service.retired.child_token(),
            service,
            metrics: self.shared.metrics.clone(),
            peer: crate::session::Peer::Internal,
            gateway: self.shared.gateway.get().cloned(),
            shared: self.shared.clone(),
            node: None,
            via: None,
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Binds the gateway file's shared `listeners:`, one per protocol.
    async fn start_shared_listeners(&self) -> Result<(), ReloadError> {
        let mut running = self.running.lock().await;
        for (kind, l) in &self.config.listeners {
            let fail = |why: String| ReloadError::Shared {
                kind: *kind,
                addr: l.addr(),
                why,
            };
            crate::adapters::of(*kind).check_shared(l).map_err(fail)?;
            if let Some(tls) = l.tls() {
                crate::tls::cached_acceptor(tls).map_err(|e| fail(e.to_string()))?;
            }
            let mut sockets = vec![listener::bind(l.addr()).map_err(|e| fail(e.to_string()))?];
            if let Some(path) = l.unix_socket() {
                sockets.push(listener::bind_unix(path, 0o777).map_err(|e| fail(e.to_string()))?);
            }
            let config = Arc::new(l.clone());
            for socket in sockets {
                let l = Listener::start_shared(socket, *kind, config.clone(), self.shared.clone());
                tracing::info!(addr = %l.addr, protocol = ?kind, "listening for every cluster");
                running.shared.push(l);
            }
        }
        Ok(())
    }

    /// Open client connections per listen address and socket.
    pub async fn connections(&self) -> HashMap<Endpoint, usize> {
        let running = self.running.lock().await;
        running
            .listeners
            .values()
            .chain(&running.shared)
            .map(|l| (l.addr.clone(), l.connections()))
            .collect()
    }

    /// Re-reads `clusters_dir` and applies it. Reloads run one at a time.
    pub async fn reload(&self, trigger: &str) -> Result<ReloadSummary, ReloadError> {
        let mut running = self.running.lock().await;
        let result = self.apply(&mut running).await;
        self.shared.metrics.reload(result.is_ok());
        self.remember(trigger, &result);
        match &result {
            Ok(s) => {
                tracing::info!(trigger, added = ?s.added, removed = ?s.removed, changed = ?s.changed, "configuration loaded")
            }
            Err(e) => tracing::error!(
                trigger,
                "configuration rejected, keeping the running one:\n{e}"
            ),
        }
        result
    }

    fn remember(&self, trigger: &str, result: &Result<ReloadSummary, ReloadError>) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let record = ReloadRecord {
            at,
            trigger: trigger.to_string(),
            ok: result.is_ok(),
            summary: result.as_ref().ok().cloned(),
            error: result.as_ref().err().map(|e| e.to_string()),
        };
        if let Ok(mut h) = self.history.lock() {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(record);
        }
    }

    /// The last reloads, oldest first.
    pub fn reload_history(&self) -> Vec<ReloadRecord> {
        self.history
            .lock()
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default()
    }

    async fn apply(&self, running: &mut Running) -> Result<ReloadSummary, ReloadError> {
        let loaded = config::load_clusters(&self.clusters_dir)?;
        let old = self.shared.snapshot.load_full();
        let new = Snapshot::build(&loaded, self.config.gateway.enable_ai, &old);

        // Every listen address and socket the new snapshot wants, and for which service.
        let mut wanted: HashMap<Endpoint, ServiceKey> = HashMap::new();
        let mut modes: HashMap<Endpoint, u32> = HashMap::new();
        for s in new.services() {
            let key = ServiceKey {
                cluster: s.cluster.clone(),
                service: s.name.clone(),
            };
            if let Some(addr) = s.spec.listen {
                wanted.insert(Endpoint::Tcp(addr), key.clone());
            }
            if let Some((path, mode)) = &s.spec.unix_socket {
                let endpoint = Endpoint::Unix(path.clone());
                modes.insert(endpoint.clone(), *mode);
                wanted.insert(endpoint, key);
            }
        }
        // Bind what is new before changing anything, so a busy port rejects the whole reload.
        let mut bound = Vec::new();
        for (addr, key) in &wanted {
            if running.listeners.contains_key(addr) {
                continue;
            }
            // With several workers the sockets have SO_REUSEPORT, and a second bind of the
            // address would split its clients with the shared listener instead of failing.
            if let Endpoint::Tcp(a) = addr
                && self
                    .config
                    .listeners
                    .values()
                    .any(|l| l.addr().port() == a.port() && l.addr().port() != 0)
            {
                return Err(ReloadError::Bind {
                    addr: addr.clone(),
                    cluster: key.cluster.clone(),
                    service: key.service.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "the port of one of the gateway's shared `listeners`",
                    ),
                });
            }
            let socket = match addr {
                Endpoint::Tcp(a) => listener::bind(*a),
                Endpoint::Unix(path) => {
                    listener::bind_unix(path, modes.get(addr).copied().unwrap_or(0o777))
                }
            };
            let socket = socket.map_err(|source| ReloadError::Bind {
                addr: addr.clone(),
                cluster: key.cluster.clone(),
                service: key.service.clone(),
                source,
            })?;
            bound.push((socket, key.clone()));
        }

        let summary = summarize(&old, &new);
        let new = Arc::new(new);
        self.shared.snapshot.store(new.clone());
        let removed = old
            .services()
            .filter(|s| new.service(&s.cluster, &s.name).is_none());
        retire_after(
            removed.cloned().collect(),
            self.config.gateway.drain_timeout.0,
        );

        for (socket, key) in bound {
            let l = Listener::start(socket, key, self.shared.clone());
            tracing::info!(addr = %l.addr, cluster = %l.target().cluster, service = %l.target().service, "listening");
            running.listeners.insert(l.addr.clone(), l);
        }
        let drain = self.config.gateway.drain_timeout.0;
        let stale: Vec<Endpoint> = running
            .listeners
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .cloned()
            .collect();
        for addr in stale {
            if let Some(l) = running.listeners.remove(&addr) {
                tracing::info!(%addr, open = l.connections(), "stopped listening, draining");
                l.stop(drain);
            }
        }
        for (addr, key) in wanted {
            if let Some(l) = running.listeners.get(&addr) {
                l.retarget(key);
            }
            // A socket kept across the reload takes its (perhaps changed) permissions.
            if let (Endpoint::Unix(path), Some(mode)) = (&addr, modes.get(&addr)) {
                use std::os::unix::fs::PermissionsExt;
                let perms = std::fs::Permissions::from_mode(*mode);
                if let Err(e) = std::fs::set_permissions(path, perms) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot set unix_socket_mode");
                }
            }
        }
        self.restart_health_checks(running, &new);
        for adapter in crate::adapters::all() {
            adapter.reloaded(&self.shared, &new, drain);
        }
        Ok(summary)
    }

    /// Keeps the checker of every service whose runtime was reused; restarts the others.
    fn restart_health_checks(&self, running: &mut Running, new: &Snapshot) {
        let mut next = HashMap::new();
        for s in new.services() {
            let key = ServiceKey {
                cluster: s.cluster.clone(),
                service: s.name.clone(),
            };
            let entry = match running.health.remove(&key) {
                Some((rt, stop)) if Arc::ptr_eq(&rt, s) => (rt, stop),
                other => {
                    if let Some((_, stop)) = other {
                        stop.cancel();
                    }
                    let stop = CancellationToken::new();
                    tokio::spawn(crate::health::run(s.clone(), stop.clone()));
                    (s.clone(), stop)
                }
            };
            next.insert(key, entry);
        }
        for (_, (_, stop)) in running.health.drain() {
            stop.cancel();
        }
        running.health = next;
    }

    /// Stops accepting everywhere and waits for connections up to the drain timeout.
    pub async fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        self.housekeeping.cancel();
        let mut running = self.running.lock().await;
        let drain = self.config.gateway.drain_timeout.0;
        let shared = std::mem::take(&mut running.shared);
        retire_after(self.snapshot().services().cloned().collect(), drain);
        let handles: Vec<_> = running
            .listeners
            .drain()
            .map(|(_, l)| l)
            .chain(shared)
            .map(|l| l.stop(drain))
            .collect();
        for (_, (_, stop)) in running.health.drain() {
            stop.cancel();
        }
        let mut handles = handles;
        for adapter in crate::adapters::all() {
            handles.extend(adapter.reloaded(&self.shared, &Snapshot::default(), drain));
        }
        for h in handles {
            let _ = h.await;
        }
    }
}

/// Closes the shared listeners' clients of `services` once `drain` has passed.
fn retire_after(services: Vec<Arc<ServiceRuntime>>, drain: std::time::Duration) {
    if services.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(drain).await;
        for s in services {
            s.retired.cancel();
        }
    });
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.housekeeping.cancel();
    }
}

fn summarize(old: &Snapshot, new: &Snapshot) -> ReloadSummary {
    let keys = |s: &Snapshot| -> BTreeSet<String> { s.services().map(|s| s.key()).collect() };
    let (old_keys, new_keys) = (keys(old), keys(new));
    let mut summary = ReloadSummary {
        added: new_keys.difference(&old_keys).cloned().collect(),
        removed: old_keys.difference(&new_keys).cloned().collect(),
        ..ReloadSummary::default()
    };
    for s in new.services() {
        if let Some(o) = old.service(&s.cluster, &s.name) {
            if Arc::ptr_eq(o, s) {
                summary.unchanged += 1;
            } else {
                summary.changed.push(s.key());
            }
        }
    }
    summary
}

impl crate::protocol::Control for Gateway {
    fn reload<'a>(
        &'a self,
        trigger: &'a str,
    ) -> crate::protocol::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            Gateway::reload(self, trigger)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}
