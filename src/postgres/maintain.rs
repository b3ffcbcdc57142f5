//! Pool upkeep, once a second per pool while its service runtime lives: idle connections
//! past `server_idle_timeout` or `server_lifetime` are closed, and the pool is topped up to
//! `min_pool_size` open connections (PgBouncer's `min_pool_size`), so the first clients after
//! a quiet spell do not pay for logins.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::pool::Pool;
use crate::snapshot::ServiceRuntime;

const PERIOD: Duration = Duration::from_secs(1);

/// Starts the upkeep of `pool` (once per pool).
pub fn start(service: &Arc<ServiceRuntime>, pool: &Arc<Pool>) {
    if !pool.claim_upkeep() {
        return;
    }
    let (service, pool) = (Arc::downgrade(service), Arc::downgrade(pool));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PERIOD).await;
            if !tend(&service, &pool).await {
                return;
            }
        }
    });
}

/// One round; false once the service or the pool is gone (reloaded away).
async fn tend(service: &Weak<ServiceRuntime>, pool: &Weak<Pool>) -> bool {
    let (Some(service), Some(pool)) = (service.upgrade(), pool.upgrade()) else {
        return false;
    };
    pool.close_expired(&service.spec.pg);
    let want = service.spec.pg.min_pool_size;
    let Some(backend) = service.backends.get(pool.key.backend).cloned() else {
        return false;
    };
    let pools = super::pool::PgPools::of(&service);
    let pg = &service.spec.pg;
    let scope = super::cap::Scope::Backend(pool.key.backend);
    let user_scope = super::cap::Scope::User(pool.key.user.clone());
    while pool.open_count() < want && backend.is_up() {
        // Under max_server_connections and max_user_connections, only while there is room.
        let Ok(cap) = super::cap::try_acquire(&pools, pg.max_server_connections, &scope) else {
            break;
        };
        let Ok(user_cap) = super::cap::try_acquire(&pools, pg.max_user_connections, &user_scope)
        else {
            break;
        };
        let (user, database) = (pool.key.user.as_str(), pool.key.database.as_str());
        let credential = pool.credential();
        let connect = super::upstream::connect(
            &service,
            backend.clone(),
            user,
            database,
            credential.as_ref(),
        );
        match connect.await {
            Ok(mut server) => {
                server.cap = cap;
                server.user_cap = user_cap;
                pool.add_idle(Box::new(server));
            }
            Err(e) => {
                tracing::debug!(error = %e, "min_pool_size: cannot open a server connection");
                break;
            }
        }
    }
    true
}
