//! One accepted client connection, handed to the adapter of its service's protocol. This is
//! the only place that knows which adapters exist: a new protocol adds one arm here and one
//! in `health::probe`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::ServiceKind;
use crate::metrics::{Metrics, ServiceLabels};
use crate::snapshot::ServiceRuntime;

pub struct Session {
    pub service: Arc<ServiceRuntime>,
    pub metrics: Arc<Metrics>,
    pub peer: SocketAddr,
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

pub async fn run(session: Session, client: TcpStream) {
    let labels = ServiceLabels::of(&session.service);
    let gauge = session.metrics.active.get_or_create(&labels).clone();
    gauge.inc();
    let _ = client.set_nodelay(true);
    tracing::debug!(cluster = %labels.cluster, service = %labels.service, peer = %session.peer, "client connected");
    match session.service.spec.kind {
        ServiceKind::Tcp => crate::tcp::serve(session, client).await,
        ServiceKind::Redis => crate::redis::serve(session, client).await,
        ServiceKind::Postgres => crate::postgres::serve(session, client).await,
        ServiceKind::Kafka => crate::kafka::serve(session, client).await,
    }
    gauge.dec();
}
