//! `/api/v1/clusters` and `/api/v1/reload`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiError, view};
use crate::config;
use crate::gateway::{Gateway, ReloadError};

pub async fn list(State(gw): State<Arc<Gateway>>) -> Response {
    let snapshot = gw.snapshot();
    let conns = gw.connections().await;
    let clusters: Vec<_> = snapshot
        .clusters
        .values()
        .map(|c| view::cluster(c, &conns, &gw.config.listeners))
        .collect();
    Json(json!({ "clusters": clusters })).into_response()
}

pub async fn show(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let snapshot = gw.snapshot();
    let conns = gw.connections().await;
    match snapshot.clusters.get(&id) {
        Some(c) => Json(view::cluster(c, &conns, &gw.config.listeners)).into_response(),
        None => not_found(&id),
    }
}

fn not_found(id: &str) -> Response {
    ApiError(StatusCode::NOT_FOUND, format!("no cluster `{id}`")).into_response()
}

fn reload_failed(e: &ReloadError) -> Response {
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).into_response()
}

/// Creates a cluster from a YAML or JSON body: validated, written to
/// `clusters_dir/<id>/config.yaml` exactly as sent, then loaded.
pub async fn create(State(gw): State<Arc<Gateway>>, body: String) -> Response {
    let parsed = match config::parse_cluster(&body) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("request body:{}:{}: {}", e.line, e.column, e.message);
            return ApiError(StatusCode::BAD_REQUEST, msg).into_response();
        }
    };
    let id = parsed.cluster_id.value.clone();
    let dir = gw.clusters_dir.join(&id);
    if gw.snapshot().clusters.contains_key(&id) || dir.exists() {
        return ApiError(
            StatusCode::CONFLICT,
            format!("cluster `{id}` already exists"),
        )
        .into_response();
    }
    let file = dir.join("config.yaml");
    let written = tokio::fs::create_dir_all(&dir)
        .await
        .and(tokio::fs::write(&file, body.as_bytes()).await);
    if let Err(e) = written {
        let msg = format!("cannot write {}: {e}", file.display());
        return ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
    }
    match gw.reload("api create").await {
        Ok(summary) => {
            let snapshot = gw.snapshot();
            let conns = gw.connections().await;
            let body = snapshot
                .clusters
                .get(&id)
                .map(|c| json!({ "cluster": view::cluster(c, &conns, &gw.config.listeners), "reload": summary }));
            (StatusCode::CREATED, Json(body)).into_response()
        }
        Err(e) => {
            // Leave the directory as it was: the running config never saw this file.
            let _ = tokio::fs::remove_dir_all(&dir).await;
            reload_failed(&e)
        }
    }
}

pub async fn delete(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    let Some(cluster) = gw.snapshot().clusters.get(&id).cloned() else {
        return not_found(&id);
    };
    if let Err(e) = tokio::fs::remove_file(&cluster.path).await {
        let msg = format!("cannot remove {}: {e}", cluster.path.display());
        return ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
    }
    if let Some(dir) = cluster.path.parent() {
        // Only removes the directory when nothing else is in it.
        let _ = tokio::fs::remove_dir(dir).await;
    }
    match gw.reload("api delete").await {
        Ok(summary) => Json(json!({ "deleted": id, "reload": summary })).into_response(),
        Err(e) => reload_failed(&e),
    }
}

pub async fn reload(State(gw): State<Arc<Gateway>>) -> Response {
    match gw.reload("api").await {
        Ok(summary) => Json(json!({ "status": "ok", "reload": summary })).into_response(),
        Err(e) => reload_failed(&e),
    }
}

/// The last reloads with their triggers, results and errors (the status page's history).
pub async fn reloads(State(gw): State<Arc<Gateway>>) -> Response {
    Json(json!({ "reloads": gw.reload_history() })).into_response()
}
