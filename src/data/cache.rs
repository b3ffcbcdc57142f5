//! The cache routes (redis services): Upstash's REST API (`POST /redis` with one command,
//! `/redis/pipeline` and `/redis/multi-exec` with arrays of them) and plain
//! `GET/PUT/DELETE /cache/{key}`. Each request is served by a session of the Redis adapter
//! over an in-process socket pair, as a native client's connection would be: the same
//! routing, sharding, pools, command rules and metrics; the session ends with the request,
//! so no state (a MULTI, a SELECT) outlives it.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};
use throome_resp::commands::flag;
use throome_resp::{ReplyLimits, ReplyScanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::DataError;
use super::access::{authorize, respond};
use super::error::{body_json, result};
use super::resp_json::{self, Json};
use crate::config::{ApiScope, ServiceKind};
use crate::gateway::Gateway;
use crate::snapshot::ServiceRuntime;

/// The most reply bytes one request may gather before it is refused.
const MAX_REPLY: usize = 64 * 1024 * 1024;
/// Commands in one pipeline or transaction.
const MAX_COMMANDS: usize = 10_000;
/// How long a request may take when the service sets no `request_timeout`.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Opts {
    service: Option<String>,
    /// `base64`: bulk replies (and a PUT body) in base64.
    encoding: Option<String>,
    /// Seconds a PUT key lives.
    ttl: Option<u64>,
}

type Q = Result<Query<Opts>, QueryRejection>;
type Body = Result<Bytes, BytesRejection>;

fn opts(q: Q) -> Result<Opts, DataError> {
    let Query(o) = q.map_err(|e| DataError::bad_request(e.body_text()))?;
    match o.encoding.as_deref() {
        None | Some("base64") => Ok(o),
        Some(other) => Err(DataError::bad_request(format!(
            "unknown encoding `{other}` (only base64)"
        ))),
    }
}

/// Serves one route: options, the token (with the scopes the commands need), then `run`.
async fn serve<F, Fut>(
    gw: Arc<Gateway>,
    id: &str,
    headers: &HeaderMap,
    q: Q,
    route: &'static str,
    commands: Result<Vec<Vec<Vec<u8>>>, DataError>,
    run: F,
) -> Response
where
    F: FnOnce(Arc<Gateway>, Arc<ServiceRuntime>, Vec<Vec<Vec<u8>>>, Opts) -> Fut,
    Fut: std::future::Future<Output = Result<Response, DataError>>,
{
    let o = match opts(q) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let need = match &commands {
        Ok(c) if c.iter().all(|a| is_read(a)) => ApiScope::Read,
        _ => ApiScope::Write,
    };
    let kind = ServiceKind::Redis;
    let service = match authorize(&gw, id, headers, kind, o.service.as_deref(), need) {
        Ok((s, _)) => s,
        Err(e) => return e.into_response(),
    };
    let r = match commands.and_then(checked) {
        Ok(commands) => run(gw.clone(), service.clone(), commands, o).await,
        Err(e) => Err(e),
    };
    respond(&gw, &service, route, r)
}

/// `POST /redis`: one command, `{"result": ...}` or a 400 with the Redis error.
pub async fn command(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    q: Q,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let commands = body_json::<Vec<Value>>(body)
        .and_then(|c| one(&c))
        .map(|c| vec![c]);
    serve(
        gw,
        &id,
        &headers,
        q,
        "redis",
        commands,
        |gw, s, c, o| async move { single(exchange(&gw, s, &c, o.encoding.is_some()).await?) },
    )
    .await
}

/// `POST /redis/pipeline`: `[{"result": ...} | {"error": ...}, ...]`, one per command.
pub async fn pipeline(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    q: Q,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let commands = many(body);
    serve(
        gw,
        &id,
        &headers,
        q,
        "redis_pipeline",
        commands,
        |gw, s, c, o| async move {
            let replies = exchange(&gw, s, &c, o.encoding.is_some()).await?;
            Ok(axum::Json(replies.into_iter().map(entry).collect::<Vec<_>>()).into_response())
        },
    )
    .await
}

/// `POST /redis/multi-exec`: the commands in one MULTI/EXEC; a command refused while
/// queueing discards the whole transaction (EXECABORT), as in Redis.
pub async fn multi_exec(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    q: Q,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let commands = many(body).map(|mut c| {
        c.insert(0, vec![b"MULTI".to_vec()]);
        c.push(vec![b"EXEC".to_vec()]);
        c
    });
    serve(
        gw,
        &id,
        &headers,
        q,
        "redis_multi_exec",
        commands,
        |gw, s, c, o| async move {
            let replies = exchange(&gw, s, &c, o.encoding.is_some()).await?;
            // MULTI's +OK, each command's +QUEUED or its error, then EXEC's reply.
            if let Some(Err(e)) = replies.iter().skip(1).find(|r| r.is_err()) {
                return Err(redis_error(format!("EXECABORT Transaction discarded: {e}")));
            }
            match replies.into_iter().last() {
                Some(Ok(Value::Array(items))) => Ok(axum::Json(
                    items.into_iter().map(item_entry).collect::<Vec<_>>(),
                )
                .into_response()),
                Some(Ok(Value::Null)) => {
                    Err(redis_error("EXECABORT the transaction was aborted".into()))
                }
                Some(Err(e)) => Err(redis_error(e)),
                _ => Err(DataError::unavailable("no reply to EXEC")),
            }
        },
    )
    .await
}

/// `GET /cache/{key}`: the value, or 404 when the key does not exist.
pub async fn get(
    State(gw): State<Arc<Gateway>>,
    Path((id, key)): Path<(String, String)>,
    q: Q,
    headers: HeaderMap,
) -> Response {
    let c = Ok(vec![vec![b"GET".to_vec(), key.clone().into_bytes()]]);
    serve(
        gw,
        &id,
        &headers,
        q,
        "cache_get",
        c,
        |gw, s, c, o| async move {
            match exchange(&gw, s, &c, o.encoding.is_some()).await?.pop() {
                Some(Ok(Value::Null)) => Err(DataError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no key `{key}`"),
                )),
                Some(Ok(v)) => Ok(result(v)),
                Some(Err(e)) => Err(redis_error(e)),
                None => Err(DataError::unavailable("no reply")),
            }
        },
    )
    .await
}

/// `PUT /cache/{key}` with a JSON string body (base64 under `encoding=base64`), `ttl` in
/// seconds.
pub async fn put(
    State(gw): State<Arc<Gateway>>,
    Path((id, key)): Path<(String, String)>,
    q: Q,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let base64 = matches!(&q, Ok(Query(o)) if o.encoding.is_some());
    let ttl = match &q {
        Ok(Query(o)) => o.ttl,
        Err(_) => None,
    };
    let c = body_json::<String>(body).and_then(|v| {
        let value = match base64 {
            true => base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|e| DataError::bad_request(format!("value is not base64: {e}")))?,
            false => v.into_bytes(),
        };
        let mut set = vec![b"SET".to_vec(), key.into_bytes(), value];
        if let Some(ttl) = ttl {
            set.extend([b"EX".to_vec(), ttl.to_string().into_bytes()]);
        }
        Ok(vec![set])
    });
    serve(
        gw,
        &id,
        &headers,
        q,
        "cache_put",
        c,
        |gw, s, c, _| async move { single(exchange(&gw, s, &c, false).await?) },
    )
    .await
}

/// `DELETE /cache/{key}`: `{"result": 1}` when it existed, 0 when not.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path((id, key)): Path<(String, String)>,
    q: Q,
    headers: HeaderMap,
) -> Response {
    let c = Ok(vec![vec![b"DEL".to_vec(), key.into_bytes()]]);
    serve(
        gw,
        &id,
        &headers,
        q,
        "cache_delete",
        c,
        |gw, s, c, _| async move { single(exchange(&gw, s, &c, false).await?) },
    )
    .await
}

fn single(replies: Vec<Json>) -> Result<Response, DataError> {
    match replies.into_iter().next() {
        Some(Ok(v)) => Ok(result(v)),
        Some(Err(e)) => Err(redis_error(e)),
        None => Err(DataError::unavailable("no reply")),
    }
}

fn one(command: &[Value]) -> Result<Vec<Vec<u8>>, DataError> {
    resp_json::args(command).map_err(DataError::bad_request)
}

fn many(body: Body) -> Result<Vec<Vec<Vec<u8>>>, DataError> {
    let commands = body_json::<Vec<Vec<Value>>>(body)?;
    if commands.is_empty() || commands.len() > MAX_COMMANDS {
        return Err(DataError::bad_request(format!(
            "a pipeline has 1 to {MAX_COMMANDS} commands"
        )));
    }
    commands.iter().map(|c| one(c)).collect()
}

fn entry(r: Json) -> Value {
    match r {
        Ok(v) => json!({ "result": v }),
        Err(e) => json!({ "error": e }),
    }
}

/// An EXEC reply's item: an error inside it came as `{"error": ...}` already.
fn item_entry(v: Value) -> Value {
    match v {
        Value::Object(ref o) if o.contains_key("error") => v,
        v => json!({ "result": v }),
    }
}

/// A Redis error reply as a 400, its first word as the code.
fn redis_error(e: String) -> DataError {
    let code = e.split(' ').next().unwrap_or("ERR").to_string();
    DataError::new(StatusCode::BAD_REQUEST, &code, e)
}

/// Whether a `read` token may send the command: Redis's `readonly` commands, and those
/// that only read or frame a transaction.
fn is_read(args: &[Vec<u8>]) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    let plain = [
        &b"ping"[..],
        b"echo",
        b"time",
        b"multi",
        b"exec",
        b"discard",
    ];
    plain.iter().any(|p| name.eq_ignore_ascii_case(p))
        || throome_resp::lookup(name).is_some_and(|s| s.has(flag::READONLY) && !s.is_write())
}

/// Refuses what cannot work over a request and its reply: blocking commands, pub/sub,
/// MONITOR, and commands that change the connection's protocol or reply counting.
fn checked(commands: Vec<Vec<Vec<u8>>>) -> Result<Vec<Vec<Vec<u8>>>, DataError> {
    for args in &commands {
        let Some(name) = args.first() else {
            return Err(DataError::bad_request("an empty command"));
        };
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        let spec = throome_resp::lookup(name);
        let blocking = if is(b"xread") || is(b"xreadgroup") {
            args.iter().any(|a| a.eq_ignore_ascii_case(b"block"))
        } else {
            spec.is_some_and(|s| s.has(flag::BLOCKING)) || is(b"wait") || is(b"waitaof")
        };
        let pubsub =
            spec.is_some_and(|s| s.has(flag::PUBSUB) && !is(b"publish") && !is(b"spublish"));
        let connection = ["monitor", "hello", "auth", "quit", "reset", "sync", "psync"]
            .iter()
            .any(|n| is(n.as_bytes()))
            || (is(b"client")
                && args
                    .get(1)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"reply")));
        if blocking || pubsub || connection {
            let shown = String::from_utf8_lossy(name).to_uppercase();
            let why = match (blocking, pubsub) {
                (true, _) => "blocking commands",
                (_, true) => "pub/sub commands",
                _ => "commands on the connection itself",
            };
            return Err(DataError::new(
                StatusCode::BAD_REQUEST,
                "command_not_supported",
                format!("{shown} is not supported over HTTP: {why} need a native client"),
            ));
        }
    }
    Ok(commands)
}

/// Sends the commands through a session of the service's Redis adapter and reads one
/// reply per command, writing and reading at once so a long pipeline cannot stall on full
/// socket buffers.
async fn exchange(
    gw: &Gateway,
    service: Arc<ServiceRuntime>,
    commands: &[Vec<Vec<u8>>],
    base64: bool,
) -> Result<Vec<Json>, DataError> {
    let (ours, theirs) = tokio::net::UnixStream::pair()
        .map_err(|e| DataError::unavailable(format!("cannot open a session: {e}")))?;
    let limit = service.spec.request_timeout.unwrap_or(DEFAULT_TIMEOUT);
    let session = gw.internal_session(service);
    // Served as a client connection on the service's own listener would be.
    tokio::spawn(crate::session::run(
        session,
        crate::session::ClientConn::Unix(theirs),
    ));
    let mut out = BytesMut::new();
    for c in commands {
        resp_json::encode(c, &mut out);
    }
    let (mut rd, mut wr) = ours.into_split();
    let write = async move { wr.write_all(&out).await.map(|()| wr) };
    let read = async move {
        let limits = ReplyLimits {
            max_bulk_len: MAX_REPLY,
            ..ReplyLimits::default()
        };
        let mut scanner = ReplyScanner::new(limits);
        let (mut buf, mut replies, mut total) = (BytesMut::new(), Vec::new(), 0usize);
        while replies.len() < commands.len() {
            match scanner.scan(&mut buf) {
                Ok(Some(r)) => {
                    total += r.frame().len();
                    replies.push(resp_json::reply(r.frame(), base64));
                }
                Ok(None) if buf.len() + total > MAX_REPLY => {
                    return Err(DataError::new(
                        StatusCode::BAD_REQUEST,
                        "reply_too_large",
                        format!("the replies exceed {MAX_REPLY} bytes"),
                    ));
                }
                Ok(None) => match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => {
                        return Err(DataError::unavailable("the session closed before replying"));
                    }
                    Ok(_) => {}
                },
                Err(e) => return Err(DataError::unavailable(format!("bad reply: {e}"))),
            }
        }
        Ok(replies)
    };
    let both = async { tokio::join!(write, read) };
    match tokio::time::timeout(limit, both).await {
        Ok((_, replies)) => replies,
        Err(_) => Err(DataError::timeout(format!(
            "no reply within {}s",
            limit.as_secs_f64()
        ))),
    }
}
