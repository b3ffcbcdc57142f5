//! One accepted client connection, handed to the adapter of its service's protocol
//! (`crate::adapters`).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, ServiceLabels};
use crate::snapshot::ServiceRuntime;

/// A client connection as accepted.
pub enum ClientConn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// Who connected: a TCP peer, or a local process on a Unix-domain socket.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    Tcp(SocketAddr),
    Unix,
    /// A request of the gateway's HTTP data API (`crate::data`), served by the same session
    /// code as a native client; the API checked its token, so it is logged in already.
    Internal,
}

impl Peer {
    /// The address as PgBouncer's SHOW CLIENTS gives it (`unix` for a socket).
    pub fn host(&self) -> String {
        match self {
            Peer::Tcp(a) => a.ip().to_string(),
            Peer::Unix => "unix".into(),
            Peer::Internal => "http".into(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Peer::Tcp(a) => a.port(),
            Peer::Unix | Peer::Internal => 0,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix"),
            Peer::Internal => f.write_str("http"),
        }
    }
}

pub struct Session {
    pub service: Arc<ServiceRuntime>,
    pub metrics: Arc<Metrics>,
    pub peer: Peer,
    /// Cancelled when a drain deadline passes: the adapter drops the connection.
    pub hard_stop: CancellationToken,
    /// The gateway, for a reload asked for in-protocol (the Postgres console's RELOAD);
    /// `None` while it starts.
    pub gateway: Option<std::sync::Weak<dyn crate::protocol::Control>>,
    /// Everything the listeners share (Kafka opens broker listeners through it).
    pub shared: Arc<crate::listener::Shared>,
    /// The upstream node this connection's listener stands for (Kafka broker ports); `None`
    /// on a service's own `listen` address.
    pub node: Option<i32>,
    /// The shared listener the client came in on (`crate::by_cluster`); `None` on a
    /// service's own.
    pub via: Option<Arc<crate::config::gateway::SharedListen>>,
}

pub async fn run(session: Session, client: ClientConn) {
    let _counted = Counted::new(&session);
    if let ClientConn::Tcp(tcp) = &client {
        let _ = tcp.set_nodelay(true);
    }
    // Boxed by the adapter, so a connection's task is the size of its own protocol's
    // session, not the largest of them (memory per idle connection).
    crate::adapters::of(session.service.spec.kind)
        .serve(session, client)
        .await;
}

/// Counts a client in `throome_active_connections` of its service and in its worker's
/// gauge while it lives; adapters serving a shared listener's client make one once the
/// client named its service.
pub struct Counted {
    service: prometheus_client::metrics::gauge::Gauge,
    worker: prometheus_client::metrics::gauge::Gauge,
}

impl Counted {
    pub fn new(session: &Session) -> Counted {
        let labels = ServiceLabels::of(&session.service);
        let service = session.metrics.active.get_or_create(&labels).clone();
        service.inc();
        let worker = crate::metrics::WorkerLabels {
            worker: crate::workers::index(),
        };
        let worker = session
            .metrics
            .worker_clients
            .get_or_create(&worker)
            .clone();
        worker.inc();
        tracing::debug!(cluster = %labels.cluster, service = %labels.service, peer = %session.peer, "client connected");
        Counted { service, worker }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.service.dec();
        self.worker.dec();
    }
}
