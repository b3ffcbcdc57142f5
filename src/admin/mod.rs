//! The admin HTTP API (axum): Prometheus metrics, liveness and readiness, and cluster
//! management under `/api/v1`, guarded by a bearer token when `server.admin_token` is set.

mod clusters;
pub mod view;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::gateway::Gateway;

/// An API error: a status and a JSON `{"error": message}` body.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub fn router(gw: Arc<Gateway>) -> Router {
    let api = Router::new()
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route(
            "/clusters/{id}",
            get(clusters::show).delete(clusters::delete),
        )
        .route("/reload", post(clusters::reload))
        .route("/reloads", get(clusters::reloads))
        .route("/upgrade", post(upgrade))
        .route_layer(middleware::from_fn_with_state(gw.clone(), require_token))
        // The data API has tokens of its own, per cluster (the admin token is not one).
        .merge(crate::data::router());
    let mut app = Router::new()
        .route("/", get(status_page))
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/ready", get(ready))
        .nest("/api/v1", api);
    if gw.config.monitoring.enabled {
        app = app.route(&gw.config.monitoring.metrics_path, get(metrics));
    }
    app.fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .with_state(gw)
}

/// The status page: one static file built into the binary, which polls `/metrics` and the
/// API (nothing fetched from elsewhere).
async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("status.html"),
    )
        .into_response()
}

/// Starts a new gateway process that takes over the listening sockets (`crate::handover`);
/// this one then drains and exits. The answer comes before the new process is ready.
async fn upgrade() -> Response {
    crate::handover::request();
    (StatusCode::ACCEPTED, Json(json!({ "status": "upgrading" }))).into_response()
}

async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.is_ready() {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "not ready".into()).into_response()
    }
}

/// OpenMetrics when the scraper asks for it (Prometheus does), classic text otherwise.
async fn metrics(State(gw): State<Arc<Gateway>>, headers: axum::http::HeaderMap) -> Response {
    let wants_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (content_type, text) = if wants_openmetrics {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gw.metrics().render_openmetrics(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            gw.metrics().render_prometheus(),
        )
    };
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
        Err(_) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot render metrics".into(),
        )
        .into_response(),
    }
}

async fn require_token(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let Some(token) = &gw.config.server.admin_token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        _ => {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        }
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a non-loopback admin address without a token: the API can rewrite the config.
pub fn check_exposure(addr: std::net::SocketAddr, has_token: bool) -> Result<(), String> {
    if has_token || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to serve the admin API on non-loopback address {addr} without server.admin_token"
        ))
    }
}
