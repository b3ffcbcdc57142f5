//! `POST /clusters/{id}/sql` (postgres services), in the shape of Neon's SQL over HTTP:
//! `{"query": "...", "params": [...]}` gives `{"command", "rowCount", "fields", "rows"}`;
//! `{"queries": [...]}` runs them as one transaction and gives `{"results": [...]}`.
//! Parameters always travel as Bind values, never spliced into the SQL.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::DataError;
use super::access::{authorize, respond};
use super::error::body_json;
use super::pg_exec::{Client, Failure, Limits, Statement};
use super::pg_json;
use crate::config::{ApiScope, ServiceKind};
use crate::gateway::Gateway;

/// Defaults and ceilings of what one request may take.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_ROWS: usize = 10_000;
const MAX_ROWS: usize = 1_000_000;
const MAX_BYTES: usize = 64 * 1024 * 1024;
const MAX_STATEMENTS: usize = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct One {
    query: String,
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    query: Option<String>,
    #[serde(default)]
    params: Vec<Value>,
    queries: Option<Vec<One>>,
    /// Milliseconds before the statement is cancelled (default 30 s, at most 300 s).
    timeout_ms: Option<u64>,
    /// Rows the whole request may return (default 10,000).
    max_rows: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Opts {
    service: Option<String>,
}

pub async fn run(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    q: Result<Query<Opts>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let opts = match q {
        Ok(Query(o)) => o,
        Err(e) => return DataError::bad_request(e.body_text()).into_response(),
    };
    let kind = ServiceKind::Postgres;
    let need = ApiScope::Read;
    let (service, token) = match authorize(&gw, &id, &headers, kind, opts.service.as_deref(), need)
    {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let read_only = !token.scopes.contains(&ApiScope::Write);
    let user = token.user.clone().or_else(|| service.spec.username.clone());
    let r = async {
        let req: Request = body_json(body)?;
        let Some(user) = user else {
            return Err(DataError::bad_request(format!(
                "service `{}` names no `username` and token `{}` no `user`: nothing to run SQL as",
                service.name, token.name
            )));
        };
        let database = service
            .spec
            .database
            .clone()
            .unwrap_or_else(|| user.clone());
        execute(&gw, service.clone(), &user, &database, req, read_only).await
    }
    .await;
    respond(&gw, &service, "sql", r)
}

async fn execute(
    gw: &Gateway,
    service: Arc<crate::snapshot::ServiceRuntime>,
    user: &str,
    database: &str,
    req: Request,
    read_only: bool,
) -> Result<Response, DataError> {
    let (statements, batch) = match (req.query, req.queries) {
        (Some(query), None) => (vec![statement(query, &req.params)], false),
        (None, Some(qs)) if !qs.is_empty() && qs.len() <= MAX_STATEMENTS => (
            qs.into_iter()
                .map(|o| statement(o.query, &o.params))
                .collect(),
            true,
        ),
        _ => {
            return Err(DataError::bad_request(format!(
                "give either `query` or `queries` (1 to {MAX_STATEMENTS})"
            )));
        }
    };
    if req.timeout_ms == Some(0) {
        return Err(DataError::bad_request("timeout_ms is at least 1"));
    }
    let limits = Limits {
        timeout: req
            .timeout_ms
            .map_or(DEFAULT_TIMEOUT, Duration::from_millis)
            .min(MAX_TIMEOUT),
        max_rows: req.max_rows.unwrap_or(DEFAULT_ROWS).min(MAX_ROWS),
        max_bytes: MAX_BYTES,
    };
    let wrap = match (read_only, batch) {
        (true, _) => Some("BEGIN READ ONLY"),
        (false, true) => Some("BEGIN"),
        (false, false) => None,
    };
    let (ours, theirs) = tokio::net::UnixStream::pair()
        .map_err(|e| DataError::unavailable(format!("cannot open a session: {e}")))?;
    let session = gw.internal_session(service);
    tokio::spawn(crate::session::run(
        session,
        crate::session::ClientConn::Unix(theirs),
    ));
    let run = async {
        let mut client = Client::start(ours, user, database).await?;
        client.run(&statements, wrap, &limits).await
    };
    let mut results = run.await.map_err(failure)?;
    let body = match batch {
        true => json!({ "results": results }),
        false => results.pop().unwrap_or(Value::Null),
    };
    Ok(axum::Json(body).into_response())
}

fn statement(sql: String, params: &[Value]) -> Statement {
    Statement {
        sql,
        params: params.iter().map(pg_json::param).collect(),
    }
}

fn failure(f: Failure) -> DataError {
    match f {
        Failure::Sql {
            code,
            message,
            extra,
        } => {
            // Connection-level classes are the gateway's or the server's trouble.
            // A protocol violation here is the request's (a parameter count that does not
            // fit the statement), a cancel is its timeout's.
            let status = match (code.as_str(), code.get(..2)) {
                ("08P01" | "57014", _) => StatusCode::BAD_REQUEST,
                (_, Some("08" | "53" | "57")) => StatusCode::SERVICE_UNAVAILABLE,
                (_, Some("28")) => StatusCode::FORBIDDEN,
                _ => StatusCode::BAD_REQUEST,
            };
            let mut e = DataError::new(status, &code, message);
            e.extra = extra;
            e
        }
        Failure::TooLarge(m) => {
            // Limits the request chose (or the defaults): its own doing, as PostgreSQL's
            // statement_timeout gives an ordinary error.
            DataError::new(StatusCode::BAD_REQUEST, "result_too_large", m)
        }
        Failure::Timeout => DataError::new(
            StatusCode::BAD_REQUEST,
            "57014",
            "canceling statement due to the request's timeout",
        ),
        Failure::Invalid(m) => DataError::bad_request(m),
        Failure::Broken(m) => DataError::unavailable(m),
    }
}
