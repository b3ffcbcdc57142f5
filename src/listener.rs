//! Accept loops. A listener is keyed by its address and points at a (cluster, service) that a
//! reload may change; each connection looks its service up in the current snapshot, so
//! changed backends apply to new connections while open ones are left alone. Stopping a
//! listener closes its socket at once and drains its connections up to a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::session::{self, Session};
use crate::snapshot::Snapshot;

/// What every accept loop shares with the gateway.
pub struct Shared {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub metrics: Arc<Metrics>,
    /// Caps client connections across all listeners (`gateway.max_connections`).
    pub conn_limit: Arc<Semaphore>,
    /// The gateway itself, for adapters that trigger a reload (the Postgres console).
    pub gateway: std::sync::OnceLock<std::sync::Weak<crate::gateway::Gateway>>,
    /// Listeners of Kafka broker ports, opened as brokers are learned from metadata.
    pub kafka_ports: crate::kafka::BrokerPorts,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceKey {
    pub cluster: String,
    pub service: String,
}

pub struct Listener {
    pub addr: SocketAddr,
    target: Arc<ArcSwap<ServiceKey>>,
    stop_accepting: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
}

/// Binds with SO_REUSEADDR so a restarted gateway can take its ports back at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

impl Listener {
    pub fn start(tcp: TcpListener, target: ServiceKey, shared: Arc<Shared>) -> Listener {
        Listener::start_for(tcp, target, shared, None)
    }

    /// A listener whose connections all go to one upstream Kafka broker (`node`).
    pub fn start_for(
        tcp: TcpListener,
        target: ServiceKey,
        shared: Arc<Shared>,
        node: Option<i32>,
    ) -> Listener {
        let addr = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let listener = Listener {
            addr,
            target: Arc::new(ArcSwap::from_pointee(target)),
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        let accept = AcceptLoop {
            tcp,
            target: listener.target.clone(),
            stop: listener.stop_accepting.clone(),
            hard_stop: listener.hard_stop.clone(),
            tracker: listener.tracker.clone(),
            shared,
            node,
        };
        tokio::spawn(accept.run());
        listener
    }

    pub fn target(&self) -> ServiceKey {
        (**self.target.load()).clone()
    }

    pub fn retarget(&self, target: ServiceKey) {
        if *self.target.load_full() != target {
            self.target.store(Arc::new(target));
        }
    }

    /// Open client connections accepted here.
    pub fn connections(&self) -> usize {
        self.tracker.len()
    }

    /// Stops accepting now; open connections get `drain` to finish, then are dropped.
    pub fn stop(self, drain: Duration) -> JoinHandle<()> {
        self.stop_accepting.cancel();
        self.tracker.close();
        tokio::spawn(async move {
            if tokio::time::timeout(drain, self.tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!(addr = %self.addr, open = self.tracker.len(), "drain deadline passed, closing connections");
                self.hard_stop.cancel();
                self.tracker.wait().await;
            }
        })
    }
}

struct AcceptLoop {
    tcp: TcpListener,
    target: Arc<ArcSwap<ServiceKey>>,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    shared: Arc<Shared>,
    node: Option<i32>,
}

impl AcceptLoop {
    async fn run(self) {
        loop {
            let permit = tokio::select! {
                () = self.stop.cancelled() => return,
                p = self.shared.conn_limit.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let (stream, peer) = tokio::select! {
                () = self.stop.cancelled() => return,
                r = self.tcp.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let key = self.target.load();
            let Some(service) = self
                .shared
                .snapshot
                .load()
                .service(&key.cluster, &key.service)
                .cloned()
            else {
                continue;
            };
            let session = Session {
                service,
                metrics: self.shared.metrics.clone(),
                peer,
                hard_stop: self.hard_stop.clone(),
                gateway: self.shared.gateway.get().cloned().unwrap_or_default(),
                shared: self.shared.clone(),
                kafka_node: self.node,
            };
            self.tracker.spawn(async move {
                session::run(session, stream).await;
                drop(permit);
            });
        }
    }
}
