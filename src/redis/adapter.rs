//! The Redis adapter as the core sees it (`crate::protocol`).

use crate::backend::BackendState;
use crate::config::ServiceKind;
use crate::protocol::{BoxFuture, PoolFamily, PoolGauge, Protocol};
use crate::session::{ClientConn, Session};
use crate::snapshot::ServiceRuntime;

pub struct Adapter;

impl Protocol for Adapter {
    fn kind(&self) -> ServiceKind {
        ServiceKind::Redis
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

    fn probe<'a>(
        &'a self,
        service: &'a ServiceRuntime,
        backend: &'a BackendState,
    ) -> BoxFuture<'a, bool> {
        Box::pin(super::probe::ping(service, backend))
    }

    /// Shared (multiplexed) and dedicated upstream connections; nothing before the
    /// service's first client made its pools.
    fn pool_gauges(&self, service: &ServiceRuntime) -> Vec<PoolGauge> {
        let Some(pools) = service
            .ext
            .get()
            .and_then(|any| any.clone().downcast::<super::pool::Pools>().ok())
        else {
            return Vec::new();
        };
        let (shared, dedicated) = pools.counts();
        vec![
            PoolGauge {
                family: PoolFamily::Upstreams,
                kind: "shared",
                value: i64::try_from(shared).unwrap_or(i64::MAX),
            },
            PoolGauge {
                family: PoolFamily::Upstreams,
                kind: "dedicated",
                value: dedicated,
            },
        ]
    }
}
