//! Accept loops, on TCP addresses and Unix-domain sockets. A listener is keyed by its
//! endpoint and points at a (cluster, service) that a reload may change; each connection looks its service up in the current snapshot, so
//! changed backends apply to new connections while open ones are left alone. Stopping a
//! listener closes its socket at once and drains its connections up to a deadline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::session::{self, ClientConn, Peer, Session};
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

/// Where a listener accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => a.fmt(f),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listening socket.
pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Bound {
    fn endpoint(&self) -> Endpoint {
        match self {
            Bound::Tcp(l) => Endpoint::Tcp(
                l.local_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            ),
            Bound::Unix(_, path) => Endpoint::Unix(path.clone()),
        }
    }

    async fn accept(&self) -> std::io::Result<(ClientConn, Peer)> {
        match self {
            Bound::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((ClientConn::Tcp(s), Peer::Tcp(peer)))
            }
            Bound::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((ClientConn::Unix(s), Peer::Unix))
            }
        }
    }
}

pub struct Listener {
    pub addr: Endpoint,
    target: Arc<ArcSwap<ServiceKey>>,
    stop_accepting: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
}

/// Binds with SO_REUSEADDR so a restarted gateway can take its ports back at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into()).map(Bound::Tcp)
}

/// Binds a Unix-domain socket at `path` with permissions `mode`. A socket file left by a
/// gateway that is gone is replaced; one that a live process answers on, or a file that is
/// not a socket, is an error (as PgBouncer checks its `unix_socket_dir`).
pub fn bind_unix(path: &Path, mode: u32) -> std::io::Result<Bound> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

impl Listener {
    pub fn start(socket: Bound, target: ServiceKey, shared: Arc<Shared>) -> Listener {
        Listener::start_for(socket, target, shared, None)
    }

    /// A listener whose connections all go to one upstream Kafka broker (`node`).
    pub fn start_for(
        socket: Bound,
        target: ServiceKey,
        shared: Arc<Shared>,
        node: Option<i32>,
    ) -> Listener {
        let addr = socket.endpoint();
        let listener = Listener {
            addr,
            target: Arc::new(ArcSwap::from_pointee(target)),
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        };
        let accept = AcceptLoop {
            socket,
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

    /// The TCP address, for a TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.addr {
            Endpoint::Tcp(a) => Some(*a),
            Endpoint::Unix(_) => None,
        }
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
        // The path is free at once for whoever binds it next (the old socket dies with its
        // accept loop).
        if let Endpoint::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
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
    socket: Bound,
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
                r = self.socket.accept() => match r {
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
