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
    pub gateway: std::sync::OnceLock<std::sync::Weak<dyn crate::protocol::Control>>,
    /// What adapters keep for the whole gateway (Kafka's broker listeners).
    pub ext: crate::protocol::Extensions,
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

/// A bound listening socket: for TCP one socket per worker (SO_REUSEPORT when there are
/// several, so the kernel spreads connections over the workers); a Unix-domain socket is
/// one socket every worker accepts on.
pub enum Bound {
    Tcp(Vec<std::net::TcpListener>),
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

/// One worker's share of a bound socket, registered with that worker's event loop when its
/// accept loop starts.
enum WorkerSocket {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

enum Accepting {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Bound {
    fn endpoint(&self) -> Endpoint {
        match self {
            Bound::Tcp(ls) => Endpoint::Tcp(
                ls.first()
                    .and_then(|l| l.local_addr().ok())
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            ),
            Bound::Unix(_, path) => Endpoint::Unix(path.clone()),
        }
    }

    /// The socket for each of `workers` workers.
    fn split(self, workers: usize) -> std::io::Result<Vec<WorkerSocket>> {
        match self {
            Bound::Tcp(ls) => Ok(ls.into_iter().map(WorkerSocket::Tcp).collect()),
            Bound::Unix(l, _) => (0..workers)
                .map(|_| l.try_clone().map(WorkerSocket::Unix))
                .collect(),
        }
    }
}

impl WorkerSocket {
    /// Registers the socket with the event loop of the calling worker.
    fn register(self) -> std::io::Result<Accepting> {
        match self {
            WorkerSocket::Tcp(l) => TcpListener::from_std(l).map(Accepting::Tcp),
            WorkerSocket::Unix(l) => UnixListener::from_std(l).map(Accepting::Unix),
        }
    }
}

impl Accepting {
    async fn accept(&self) -> std::io::Result<(ClientConn, Peer)> {
        match self {
            Accepting::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                Ok((ClientConn::Tcp(s), Peer::Tcp(peer)))
            }
            Accepting::Unix(l) => {
                let (s, _) = l.accept().await?;
                Ok((ClientConn::Unix(s), Peer::Unix))
            }
        }
    }
}

/// Whom a listener's clients are for.
#[derive(Clone)]
enum Route {
    /// One service, which a reload may change.
    Service(Arc<ArcSwap<ServiceKey>>),
    /// A shared listener: the client names its cluster (`crate::by_cluster`).
    Shared(
        crate::config::ServiceKind,
        Arc<crate::config::gateway::SharedListen>,
    ),
}

pub struct Listener {
    pub addr: Endpoint,
    target: Arc<ArcSwap<ServiceKey>>,
    route: Route,
    stop_accepting: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    /// The socket, kept for a hand-over to a new process while this listener accepts.
    handover: Option<crate::handover::Registration>,
}

/// Binds one socket per worker, with SO_REUSEADDR so a restarted gateway can take its ports
/// back at once, and SO_REUSEPORT when there are several workers. A port of 0 is chosen by
/// the first bind and shared by the others.
pub fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let workers = crate::workers::count();
    // The sockets a previous process handed over (`crate::handover`), one per worker.
    if let Some(mut inherited) = crate::handover::take_tcp(addr) {
        if let Some(first) = inherited.first() {
            let first = first.try_clone()?;
            while inherited.len() < workers {
                inherited.push(first.try_clone()?);
            }
            return Ok(Bound::Tcp(inherited));
        }
    }
    let first = bind_one(addr, workers > 1)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_one(addr, true)?);
    }
    Ok(Bound::Tcp(sockets))
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds a Unix-domain socket at `path` with permissions `mode`. A socket file left by a
/// gateway that is gone is replaced; one that a live process answers on, or a file that is
/// not a socket, is an error (as PgBouncer checks its `unix_socket_dir`).
pub fn bind_unix(path: &Path, mode: u32) -> std::io::Result<Bound> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(inherited) = crate::handover::take_unix(path) {
        return Ok(Bound::Unix(inherited, path.to_path_buf()));
    }
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
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(Bound::Unix(listener, path.to_path_buf()))
}

impl Listener {
    pub fn start(socket: Bound, target: ServiceKey, shared: Arc<Shared>) -> Listener {
        Listener::start_for(socket, target, shared, None)
    }

    /// The gateway's shared listener for the services of `kind`.
    pub fn start_shared(
        socket: Bound,
        kind: crate::config::ServiceKind,
        listen: Arc<crate::config::gateway::SharedListen>,
        shared: Arc<Shared>,
    ) -> Listener {
        let none = ServiceKey {
            cluster: String::new(),
            service: String::new(),
        };
        Listener::spawn(
            socket,
            none,
            Some(Route::Shared(kind, listen)),
            shared,
            None,
        )
    }

    /// A listener whose connections all go to one upstream node (a Kafka broker port).
    pub fn start_for(
        socket: Bound,
        target: ServiceKey,
        shared: Arc<Shared>,
        node: Option<i32>,
    ) -> Listener {
        Listener::spawn(socket, target, None, shared, node)
    }

    fn spawn(
        socket: Bound,
        target: ServiceKey,
        route: Option<Route>,
        shared: Arc<Shared>,
        node: Option<i32>,
    ) -> Listener {
        let addr = socket.endpoint();
        let target = Arc::new(ArcSwap::from_pointee(target));
        let handover = match &socket {
            Bound::Tcp(ls) => crate::handover::register_tcp(ls),
            Bound::Unix(l, _) => crate::handover::register_unix(l),
        };
        let listener = Listener {
            addr,
            route: route.unwrap_or_else(|| Route::Service(target.clone())),
            target,
            stop_accepting: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            handover: Some(handover),
        };
        let handles = crate::workers::handles();
        let sockets = match socket.split(handles.len()) {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::error!(addr = %listener.addr, error = %e, "cannot share the socket with the workers");
                Vec::new()
            }
        };
        for (socket, worker) in sockets.into_iter().zip(handles) {
            let accept = AcceptLoop {
                route: listener.route.clone(),
                stop: listener.stop_accepting.clone(),
                hard_stop: listener.hard_stop.clone(),
                tracker: listener.tracker.clone(),
                shared: shared.clone(),
                node,
            };
            worker.spawn(async move {
                match socket.register() {
                    Ok(socket) => accept.run(socket).await,
                    Err(e) => tracing::error!(error = %e, "cannot register a listening socket"),
                }
            });
        }
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
    pub fn stop(mut self, drain: Duration) -> JoinHandle<()> {
        self.stop_accepting.cancel();
        // No longer passed on to a new process: nobody here accepts on it.
        self.handover = None;
        // The path is free at once for whoever binds it next (the old socket dies with its
        // accept loop), unless a new process took the socket over and listens there.
        if let Endpoint::Unix(path) = &self.addr
            && !crate::handover::handed_over()
        {
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
    route: Route,
    stop: CancellationToken,
    hard_stop: CancellationToken,
    tracker: TaskTracker,
    shared: Arc<Shared>,
    node: Option<i32>,
}

impl AcceptLoop {
    async fn run(self, socket: Accepting) {
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
                r = socket.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let key = match &self.route {
                Route::Service(key) => key.load(),
                Route::Shared(kind, listen) => {
                    if let ClientConn::Tcp(tcp) = &stream {
                        let _ = tcp.set_nodelay(true);
                    }
                    let arrival = crate::protocol::Arrival {
                        peer,
                        shared: self.shared.clone(),
                        listen: listen.clone(),
                    };
                    let serve = crate::adapters::of(*kind).serve_shared(arrival, stream);
                    self.tracker.spawn(async move {
                        serve.await;
                        drop(permit);
                    });
                    continue;
                }
            };
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
                gateway: self.shared.gateway.get().cloned(),
                shared: self.shared.clone(),
                node: self.node,
                via: None,
            };
            self.tracker.spawn(async move {
                session::run(session, stream).await;
                drop(permit);
            });
        }
    }
}
