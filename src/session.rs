//! One accepted client connection, handed to the adapter of its service's protocol. This is
//! the only place that knows which adapters exist: a new protocol adds one arm here and one
//! in `health::probe`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::config::ServiceKind;
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
}

impl Peer {
    /// The address as PgBouncer's SHOW CLIENTS gives it (`unix` for a socket).
    pub fn host(&self) -> String {
        match self {
            Peer::Tcp(a) => a.ip().to_string(),
            Peer::Unix => "unix".into(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            Peer::Tcp(a) => a.port(),
            Peer::Unix => 0,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => a.fmt(f),
            Peer::Unix => f.write_str("unix"),
        }
    }
}

pub struct Session {
    pub service: Arc<ServiceRuntime>,
    pub metrics: Arc<Metrics>,
    pub peer: Peer,
    /// Cancelled when a drain deadline passes: the adapter drops the connection.
    pub hard_stop: CancellationToken,
    /// The gateway, for a reload asked for in-protocol (the Postgres console's RELOAD).
    pub gateway: std::sync::Weak<crate::gateway::Gateway>,
    /// Everything the listeners share (Kafka opens broker listeners through it).
    pub shared: Arc<crate::listener::Shared>,
    /// Kafka: the upstream broker this connection's listener stands for; `None` on the
    /// bootstrap (`listen`) address.
    pub kafka_node: Option<i32>,
}

pub async fn run(session: Session, client: ClientConn) {
    let labels = ServiceLabels::of(&session.service);
    let gauge = session.metrics.active.get_or_create(&labels).clone();
    gauge.inc();
    let worker = crate::metrics::WorkerLabels {
        worker: crate::workers::index(),
    };
    let on_worker = session
        .metrics
        .worker_clients
        .get_or_create(&worker)
        .clone();
    on_worker.inc();
    if let ClientConn::Tcp(tcp) = &client {
        let _ = tcp.set_nodelay(true);
    }
    tracing::debug!(cluster = %labels.cluster, service = %labels.service, peer = %session.peer, "client connected");
    // Boxed, so a connection's task is the size of its own protocol's session, not the
    // largest of the four (memory per idle connection).
    match session.service.spec.kind {
        ServiceKind::Tcp => Box::pin(crate::tcp::serve(session, client)).await,
        ServiceKind::Redis => Box::pin(crate::redis::serve(session, client)).await,
        ServiceKind::Postgres => Box::pin(crate::postgres::serve(session, client)).await,
        ServiceKind::Kafka => Box::pin(crate::kafka::serve(session, client)).await,
    }
    gauge.dec();
    on_worker.dec();
}

#[cfg(test)]
mod tests {
    fn future_size<A, B, F>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connection's task is allocated at this size for its whole life, idle or not
    /// (`benches/idle_connections.sh`): rare paths are boxed where they are taken, and
    /// `run` boxes the one protocol a connection speaks (the Redis loop is boxed per stream
    /// type and guarded in `redis::session`). Bounds for the debug build the tests run on
    /// (release futures are a little smaller).
    #[test]
    fn connection_tasks_stay_small() {
        let sizes = [
            ("run", future_size(super::run), 512),
            ("tcp", future_size(crate::tcp::serve), 1_536),
            ("redis", future_size(crate::redis::serve), 2_048),
            ("postgres", future_size(crate::postgres::serve), 4_096),
            ("kafka", future_size(crate::kafka::serve), 3_072),
        ];
        for (name, size, bound) in sizes {
            assert!(
                size <= bound,
                "{name}'s connection future is {size} bytes (bound {bound})"
            );
        }
    }
}
