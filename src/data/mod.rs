//! The HTTP data API: a cluster's cache, database and queue for clients without a driver
//! (serverless functions, browsers, scripts, the SDKs in `sdk/`), on the admin server under
//! `/api/v1/clusters/{id}/`. Requests go through the services the native listeners serve:
//! Redis commands through a session of the Redis adapter, SQL through the PostgreSQL
//! transaction pool, records through a Kafka client of the gateway's own. Each cluster's
//! `api_tokens` guard it; the admin token does not.

pub mod access;
mod cache;
mod endpoints;
mod error;
mod pg_exec;
mod pg_json;
mod queue;
mod resp_json;
mod sql;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::gateway::Gateway;

pub use error::DataError;

/// The largest request body the data API reads (a pipeline, a batch of records).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The routes, relative to `/api/v1`. Every path here is in `openapi.json` (a test checks
/// the two agree).
pub fn router() -> Router<Arc<Gateway>> {
    let c = "/clusters/{id}";
    Router::new()
        .route(&format!("{c}/redis"), post(cache::command))
        .route(&format!("{c}/redis/pipeline"), post(cache::pipeline))
        .route(&format!("{c}/redis/multi-exec"), post(cache::multi_exec))
        .route(
            &format!("{c}/cache/{{key}}"),
            get(cache::get).put(cache::put).delete(cache::delete),
        )
        .route(&format!("{c}/sql"), post(sql::run))
        .route(
            &format!("{c}/topics/{{topic}}/records"),
            post(queue::produce),
        )
        .route(
            &format!("{c}/topics/{{topic}}/partitions/{{partition}}/records"),
            get(queue::read),
        )
        .route(&format!("{c}/endpoints"), get(endpoints::list))
        .route("/openapi.json", get(openapi))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

/// The OpenAPI 3.1 description of the data API, as shipped in the binary.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}
