//! The Kafka adapter as the core sees it (`crate::protocol`).

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backend::BackendState;
use crate::config::ServiceKind;
use crate::listener::Shared;
use crate::protocol::{BoxFuture, Protocol};
use crate::session::{ClientConn, Session};
use crate::snapshot::{ServiceRuntime, Snapshot};

pub struct Adapter;

impl Protocol for Adapter {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Kafka
    }

    fn serve(&self, session: Session, client: ClientConn) -> BoxFuture<'static, ()> {
        Box::pin(super::serve(session, client))
    }

    fn serve_shared(
        &self,
        arrival: crate::protocol::Arrival,
        client: ClientConn,
    ) -> BoxFuture<'static, ()> {
        Box::pin(super::by_cluster::serve(arrival, client))
    }

    fn check_shared(&self, listen: &crate::config::gateway::SharedListen) -> Result<(), String> {
        super::by_cluster::check(listen)
    }

    fn register_metrics(
        &self,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        Some(std::sync::Arc::new(super::metrics::KafkaMetrics::register(
            registry,
        )))
    }

    fn probe<'a>(
        &'a self,
        service: &'a ServiceRuntime,
        backend: &'a BackendState,
    ) -> BoxFuture<'a, bool> {
        Box::pin(super::probe::api_versions(service, backend))
    }

    /// Broker listeners of services that are gone or changed close.
    fn reloaded(
        &self,
        shared: &Shared,
        snapshot: &Snapshot,
        drain: Duration,
    ) -> Vec<JoinHandle<()>> {
        shared
            .ext
            .get::<super::BrokerPorts>()
            .prune(snapshot, drain)
    }
}
