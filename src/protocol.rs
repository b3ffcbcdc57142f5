//! What a protocol adapter gives the core, and what the core gives it. Each adapter (`tcp`,
//! `redis`, `postgres`, `kafka`) implements [`Protocol`]; `adapters.rs` lists them, and the
//! core (listeners, sessions, health checks, metrics, reload) reaches a protocol only through
//! that list. Adding a protocol is one crate in `protocols/`, one adapter directory in
//! `src/`, and one line in `adapters.rs`.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backend::BackendState;
use crate::config::ServiceKind;
use crate::listener::Shared;
use crate::session::{ClientConn, Session};
use crate::snapshot::{ServiceRuntime, Snapshot};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A gauge an adapter reports for one service's pools.
pub struct PoolGauge {
    pub family: PoolFamily,
    /// The `kind` label (`shared`, `dedicated`, `in_use`, `idle`, `connected`, `waiting`).
    pub kind: &'static str,
    pub value: i64,
}

/// The metric family a [`PoolGauge`] belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PoolFamily {
    /// `throome_upstream_connections{kind}`.
    Upstreams,
    /// `throome_pool_clients{kind}`.
    Clients,
}

pub trait Protocol: Send + Sync + 'static {
    /// The `type:` of the services this adapter serves.
    fn kind(&self) -> ServiceKind;

    /// Serves one accepted client connection until it ends.
    fn serve(&self, session: Session, client: ClientConn) -> BoxFuture<'static, ()>;

    /// Serves a client of the gateway's shared listener for this protocol: the adapter reads
    /// which cluster (and service) the client names, then serves it as `serve` does
    /// (`crate::by_cluster`).
    fn serve_shared(&self, arrival: Arrival, client: ClientConn) -> BoxFuture<'static, ()> {
        let _ = (arrival, client);
        Box::pin(async {})
    }

    /// Whether this protocol can serve a shared listener configured as `listen` (`Err`: why
    /// not, and the gateway does not start).
    fn check_shared(&self, listen: &crate::config::gateway::SharedListen) -> Result<(), String> {
        let _ = listen;
        Err("this protocol has no shared listener".into())
    }

    /// One active health check of `backend` (the caller bounds it with the probe timeout):
    /// true when the backend answers as a healthy server of this protocol does.
    fn probe<'a>(
        &'a self,
        service: &'a ServiceRuntime,
        backend: &'a BackendState,
    ) -> BoxFuture<'a, bool>;

    /// Registers the adapter's own metric families; the value returned is what
    /// `Metrics::adapter` hands back to the adapter's sessions.
    fn register_metrics(
        &self,
        _registry: &mut prometheus_client::registry::Registry,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }

    /// Gauges of the service's pools, read at each metrics scrape.
    fn pool_gauges(&self, _service: &ServiceRuntime) -> Vec<PoolGauge> {
        Vec::new()
    }

    /// Called after a reload swapped in `snapshot`: the adapter lets go of what it keeps for
    /// services that are gone or changed (e.g. Kafka broker listeners), draining for `drain`.
    fn reloaded(
        &self,
        _shared: &Shared,
        _snapshot: &Snapshot,
        _drain: Duration,
    ) -> Vec<JoinHandle<()>> {
        Vec::new()
    }
}

/// A client accepted on a shared listener, before it named its service.
pub struct Arrival {
    pub peer: crate::session::Peer,
    pub shared: Arc<Shared>,
    /// The shared listener's configuration (its TLS, Kafka's `sni_domain`).
    pub listen: Arc<crate::config::gateway::SharedListen>,
}

impl Arrival {
    /// The session of the service the client named; it ends when the service is retired
    /// (`ServiceRuntime::retired`).
    pub fn into_session(self, service: Arc<ServiceRuntime>) -> Session {
        Session {
            hard_stop: service.retired.child_token(),
            service,
            metrics: self.shared.metrics.clone(),
            peer: self.peer,
            gateway: self.shared.gateway.get().cloned(),
            shared: self.shared,
            node: None,
            via: Some(self.listen),
        }
    }
}

/// What an adapter may ask of the running gateway (the PostgreSQL console's RELOAD).
pub trait Control: Send + Sync {
    /// Re-reads the configuration; Err says why the running one stays.
    fn reload<'a>(&'a self, trigger: &'a str) -> BoxFuture<'a, Result<(), String>>;
}

/// State an adapter keeps for the whole gateway (not per service), one value per type,
/// made on first use.
#[derive(Default)]
pub struct Extensions(Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Extensions {
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let any = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        any.downcast::<T>().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicUsize);

    #[test]
    fn an_extension_is_made_once_per_type() {
        let ext = super::Extensions::default();
        ext.get::<Counter>()
            .0
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let again = ext.get::<Counter>();
        assert_eq!(again.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
