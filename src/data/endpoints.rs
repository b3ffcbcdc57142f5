//! `GET /clusters/{id}/endpoints`: the cluster's native connection strings per service, for
//! SDK users who would rather use their usual driver (`redis://`, `postgresql://`, Kafka
//! bootstrap addresses), as the admin API's cluster view gives them (`connect`). Any token
//! of the cluster may ask; the services a token is limited to are the ones it sees.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::DataError;
use super::access::token_of;
use crate::gateway::Gateway;

pub async fn list(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = gw.snapshot();
    let Some(cluster) = snapshot.clusters.get(&id) else {
        let msg = format!("no cluster `{id}`");
        return DataError::new(StatusCode::NOT_FOUND, "cluster_not_found", msg).into_response();
    };
    let token = match token_of(cluster, &headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let mut services = Map::new();
    for (name, s) in &cluster.services {
        if !token.services.is_empty() && !token.services.contains(name) {
            continue;
        }
        let connect = crate::by_cluster::connection_strings(s, &gw.config.listeners);
        services.insert(
            name.clone(),
            json!({ "type": s.spec.kind.as_str(), "connect": connect }),
        );
    }
    axum::Json(json!({ "cluster_id": id, "services": Value::Object(services) })).into_response()
}
