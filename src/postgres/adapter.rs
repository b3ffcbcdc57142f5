//! The PostgreSQL adapter as the core sees it (`crate::protocol`).

use crate::backend::BackendState;
use crate::config::ServiceKind;
use crate::protocol::{BoxFuture, PoolFamily, PoolGauge, Protocol};
use crate::session::{ClientConn, Session};
use crate::snapshot::ServiceRuntime;

pub struct Adapter;

impl Protocol for Adapter {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Postgres
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

    fn check_shared(&self, _listen: &crate::config::gateway::SharedListen) -> Result<(), String> {
        Ok(())
    }

    fn register_metrics(
        &self,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        Some(std::sync::Arc::new(super::metrics::PgMetrics::register(
            registry,
        )))
    }

    fn probe<'a>(
        &'a self,
        service: &'a ServiceRuntime,
        backend: &'a BackendState,
    ) -> BoxFuture<'a, bool> {
        Box::pin(super::probe::select_one(service, backend))
    }

    /// Server connections in use and idle, clients connected and waiting, over all the
    /// service's pools.
    fn pool_gauges(&self, service: &ServiceRuntime) -> Vec<PoolGauge> {
        let Some(pg) = service
            .ext
            .get()
            .and_then(|any| any.clone().downcast::<super::pool::PgPools>().ok())
        else {
            return Vec::new();
        };
        let (mut in_use, mut idle, mut waiting) = (0, 0, 0);
        for pool in pg.all() {
            let (u, i, w) = pool.counts();
            (in_use, idle, waiting) = (in_use + u, idle + i, waiting + w);
        }
        let connected = pg.clients.load(std::sync::atomic::Ordering::Relaxed);
        let gauge = |family, kind, n: usize| PoolGauge {
            family,
            kind,
            value: i64::try_from(n).unwrap_or(i64::MAX),
        };
        vec![
            gauge(PoolFamily::Upstreams, "in_use", in_use),
            gauge(PoolFamily::Upstreams, "idle", idle),
            gauge(PoolFamily::Clients, "connected", connected),
            gauge(PoolFamily::Clients, "waiting", waiting),
        ]
    }
}
