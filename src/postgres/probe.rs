//! Health probe for PostgreSQL backends: log in with the backend credentials and run
//! `SELECT 1`. A server that accepts TCP but is starting up, in recovery trouble or refusing
//! us fails.

use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;

pub async fn select_one(service: &ServiceRuntime, backend: &BackendState) -> bool {
    let Some(state) = service
        .backends
        .iter()
        .find(|b| std::ptr::eq(b.as_ref(), backend))
    else {
        return false;
    };
    let user = service.spec.username.as_deref().unwrap_or("postgres");
    let database = service.spec.database.as_deref().unwrap_or(user);
    let credential = super::upstream::login_credential(service, None);
    let connect =
        super::upstream::connect(service, state.clone(), user, database, credential.as_ref());
    let Ok(mut server) = connect.await else {
        return false;
    };
    let ok = super::hidden::run(&mut server, "SELECT 1").await.is_ok();
    let _ = server.wire.send(&throome_pgwire::build::terminate()).await;
    ok
}
