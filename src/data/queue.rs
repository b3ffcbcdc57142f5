//! The queue routes (kafka services), in the spirit of Confluent's REST Proxy v3:
//! `POST /topics/{topic}/records` produces one record or `{"records": [...]}` and answers
//! with offsets; `GET /topics/{topic}/partitions/{p}/records?offset=&max_bytes=` reads.
//! The gateway speaks to the brokers with `rskafka` (a pure-Rust client kept by InfluxData),
//! one client per service, logged in with the service's own SASL login when it has one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;
use serde::Deserialize;
use serde_json::{Value, json};

use super::DataError;
use super::access::{authorize, respond};
use super::error::body_json;
use crate::config::{ApiScope, SaslMechanism, ServiceKind};
use crate::gateway::Gateway;
use crate::snapshot::ServiceRuntime;

/// How long one request may take, retries included.
const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RECORDS: usize = 10_000;
const DEFAULT_FETCH: i32 = 1024 * 1024;
const MAX_FETCH: i32 = 16 * 1024 * 1024;
/// The longest a read may wait for records, well inside an HTTP client's patience.
const MAX_WAIT_MS: i32 = 5_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Opts {
    service: Option<String>,
    offset: Option<i64>,
    max_bytes: Option<i32>,
    max_wait_ms: Option<i32>,
    /// `base64`: every key and value in base64 (else UTF-8 text, base64 when not).
    encoding: Option<String>,
}

/// A record as sent: `key`/`value` a string, any JSON, or Confluent's typed
/// `{"type": "STRING"|"JSON"|"BINARY", "data": ...}`; headers' values in base64.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    partition_id: Option<i32>,
    key: Option<Value>,
    value: Option<Value>,
    #[serde(default)]
    headers: Vec<HeaderIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderIn {
    name: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Produce {
    Batch { records: Vec<RecordIn> },
    One(RecordIn),
}

type Q = Result<Query<Opts>, QueryRejection>;

fn opts(q: Q) -> Result<Opts, DataError> {
    q.map(|Query(o)| o)
        .map_err(|e| DataError::bad_request(e.body_text()))
}

pub async fn produce(
    State(gw): State<Arc<Gateway>>,
    Path((id, topic)): Path<(String, String)>,
    q: Q,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let o = match opts(q) {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let kind = ServiceKind::Kafka;
    let need = ApiScope::Write;
    let service = match authorize(&gw, &id, &headers, kind, o.service.as_deref(), need) {
        Ok((s, _)) => s,
        Err(e) => return e.into_response(),
    };
    let r = async {
        let (records, batch) = match body_json::<Produce>(body)? {
            Produce::Batch { records } => (records, true),
            Produce::One(r) => (vec![r], false),
        };
        if records.is_empty() || records.len() > MAX_RECORDS {
            return Err(DataError::bad_request(format!(
                "1 to {MAX_RECORDS} records a request"
            )));
        }
        let client = client(&service).await?;
        let offsets = within(send(&client, &topic, records)).await?;
        let body = match (batch, offsets.first()) {
            (false, Some(&(p, offset))) => {
                json!({ "topic_name": topic, "partition_id": p, "offset": offset })
            }
            _ => json!({ "topic_name": topic, "offsets": offsets.iter()
                .map(|(p, o)| json!({ "partition_id": p, "offset": o })).collect::<Vec<_>>() }),
        };
        Ok(axum::Json(body).into_response())
    }
    .await;
    respond(&gw, &service, "records_produce", r)
}

pub async fn read(
    State(gw): State<Arc<Gateway>>,
    path: Result<Path<(String, String, i32)>, axum::extract::rejection::PathRejection>,
    q: Q,
    headers: HeaderMap,
) -> Response {
    let (o, Path((id, topic, partition))) = match (opts(q), path) {
        (Ok(o), Ok(path)) => (o, path),
        (Err(e), _) => return e.into_response(),
        (_, Err(e)) => return DataError::bad_request(e.body_text()).into_response(),
    };
    let kind = ServiceKind::Kafka;
    let need = ApiScope::Read;
    let service = match authorize(&gw, &id, &headers, kind, o.service.as_deref(), need) {
        Ok((s, _)) => s,
        Err(e) => return e.into_response(),
    };
    let r = async {
        let client = client(&service).await?;
        let max_bytes = o.max_bytes.unwrap_or(DEFAULT_FETCH).clamp(1, MAX_FETCH);
        let wait = o.max_wait_ms.unwrap_or(500).clamp(0, MAX_WAIT_MS);
        let offset = o.offset.unwrap_or(0);
        let fetched = within(async {
            let partitions = partition_count(&client, &topic).await?;
            if !(0..partitions).contains(&partition) {
                return Err(Failure::NoTopic(format!("{topic}` partition `{partition}")));
            }
            let pc = client
                .partition_client(topic.as_str(), partition, UnknownTopicHandling::Error)
                .await?;
            let fetched = pc.fetch_records(offset, 1..max_bytes.saturating_add(1), wait);
            fetched.await.map_err(Failure::from)
        })
        .await?;
        let (records, high) = fetched;
        let base64 = o.encoding.as_deref() == Some("base64");
        let out: Vec<Value> = records
            .into_iter()
            .map(|r| {
                let headers: Vec<Value> = r
                    .record
                    .headers
                    .iter()
                    .map(|(k, v)| json!({ "name": k, "value": STANDARD.encode(v) }))
                    .collect();
                json!({
                    "partition_id": partition,
                    "offset": r.offset,
                    "timestamp": r.record.timestamp.timestamp_millis(),
                    "key": r.record.key.as_deref().map(|b| text(b, base64)),
                    "value": r.record.value.as_deref().map(|b| text(b, base64)),
                    "headers": headers,
                })
            })
            .collect();
        let body = json!({ "topic_name": topic, "partition_id": partition,
            "high_watermark": high, "records": out });
        Ok(axum::Json(body).into_response())
    }
    .await;
    respond(&gw, &service, "records_read", r)
}

fn text(bytes: &[u8], base64: bool) -> Value {
    match (base64, std::str::from_utf8(bytes)) {
        (false, Ok(s)) => Value::String(s.into()),
        _ => Value::String(STANDARD.encode(bytes)),
    }
}

/// Produces the records, each to its partition (given, else by key as Kafka's default
/// partitioner does, else round-robin); returns (partition, offset) in request order.
async fn send(
    client: &Client,
    topic: &str,
    records: Vec<RecordIn>,
) -> Result<Vec<(i32, i64)>, Failure> {
    let partitions = partition_count(client, topic).await?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let key = r.key.as_ref().map(bytes_of).transpose()?;
        let p = match r.partition_id {
            Some(p) if (0..partitions).contains(&p) => p,
            Some(p) => return Err(Failure::NoTopic(format!("{topic}` partition `{p}"))),
            None => choose(key.as_deref(), partitions),
        };
        let mut headers = BTreeMap::new();
        for h in r.headers {
            let v = match h.value {
                Some(v) => STANDARD.decode(v).map_err(|e| {
                    Failure::Input(format!("header `{}` is not base64: {e}", h.name))
                })?,
                None => Vec::new(),
            };
            headers.insert(h.name, v);
        }
        let record = Record {
            key,
            value: r.value.as_ref().map(bytes_of).transpose()?,
            headers,
            timestamp: now(),
        };
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await?;
        let offsets = pc.produce(vec![record], Compression::NoCompression).await?;
        out.push((p, offsets.first().copied().unwrap_or(-1)));
    }
    Ok(out)
}

/// The time now, as a record's timestamp (rskafka's chrono is built without its clock).
fn now() -> rskafka::chrono::DateTime<rskafka::chrono::Utc> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    rskafka::chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

async fn partition_count(client: &Client, topic: &str) -> Result<i32, Failure> {
    let topics = client.list_topics().await?;
    let found = topics.iter().find(|t| t.name == topic);
    match found.map(|t| t.partitions.len()) {
        Some(n) if n > 0 => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
        _ => Err(Failure::NoTopic(topic.to_string())),
    }
}

/// Kafka's default partitioner for a keyed record: murmur2 of the key, positive, modulo
/// the partitions (`Utils.murmur2` in the Java client); unkeyed records go round-robin.
fn choose(key: Option<&[u8]>, partitions: i32) -> i32 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = partitions.max(1);
    match key {
        Some(k) => ((murmur2(k) & 0x7fff_ffff) as i32) % n,
        None => (NEXT.fetch_add(1, Ordering::Relaxed) % n as usize) as i32,
    }
}

fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    for (i, b) in tail.iter().enumerate().rev() {
        h ^= u32::from(*b) << (8 * i);
        if i == 0 {
            h = h.wrapping_mul(M);
        }
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// A key or value's bytes: a string as UTF-8, Confluent's typed form, other JSON as text.
fn bytes_of(v: &Value) -> Result<Vec<u8>, Failure> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.contains_key("data") => {
            let data = o.get("data").unwrap_or(&Value::Null);
            match (o.get("type").and_then(Value::as_str), data) {
                (Some("BINARY"), Value::String(b)) => STANDARD
                    .decode(b)
                    .map_err(|e| Failure::Input(format!("BINARY data is not base64: {e}"))),
                (Some("STRING") | None, Value::String(s)) => Ok(s.as_bytes().to_vec()),
                (Some("JSON"), d) => Ok(d.to_string().into_bytes()),
                (t, _) => Err(Failure::Input(format!(
                    "unsupported key/value type {t:?} (STRING, JSON or BINARY)"
                ))),
            }
        }
        other => Ok(other.to_string().into_bytes()),
    }
}

enum Failure {
    Input(String),
    NoTopic(String),
    Kafka(rskafka::client::error::Error),
}

impl From<rskafka::client::error::Error> for Failure {
    fn from(e: rskafka::client::error::Error) -> Self {
        Failure::Kafka(e)
    }
}

async fn within<T>(
    f: impl std::future::Future<Output = Result<T, impl Into<Failure>>>,
) -> Result<T, DataError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| to_error(e.into())),
        Err(_) => Err(DataError::timeout("the brokers did not answer in time")),
    }
}

fn to_error(f: Failure) -> DataError {
    use rskafka::client::error::{Error, ProtocolError};
    match f {
        Failure::Input(m) => DataError::bad_request(m),
        Failure::NoTopic(t) => DataError::new(
            StatusCode::NOT_FOUND,
            "UNKNOWN_TOPIC_OR_PARTITION",
            format!("no topic `{t}`"),
        ),
        Failure::Kafka(Error::ServerError {
            protocol_error,
            error_message,
            ..
        }) => {
            let status = match protocol_error {
                ProtocolError::UnknownTopicOrPartition => StatusCode::NOT_FOUND,
                ProtocolError::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
                ProtocolError::MessageTooLarge | ProtocolError::RecordListTooLarge => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                _ => StatusCode::BAD_GATEWAY,
            };
            let message = error_message.unwrap_or_else(|| protocol_error.to_string());
            DataError::new(status, &snake(&format!("{protocol_error:?}")), message)
        }
        Failure::Kafka(e) => DataError::unavailable(e.to_string()),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`, Kafka's own spelling.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

type Clients = Mutex<HashMap<String, (Weak<ServiceRuntime>, Arc<Client>)>>;

/// The service's client, made on first use and again after a reload changed the service.
async fn client(service: &Arc<ServiceRuntime>) -> Result<Arc<Client>, DataError> {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    let clients = CLIENTS.get_or_init(Clients::default);
    let key = format!("{}/{}", service.cluster, service.name);
    let cached = clients.lock().ok().and_then(|m| {
        let (w, c) = m.get(&key)?;
        w.upgrade()
            .filter(|s| Arc::ptr_eq(s, service))
            .map(|_| c.clone())
    });
    if let Some(c) = cached {
        return Ok(c);
    }
    let brokers = service.backends.iter().map(|b| b.address()).collect();
    let mut builder = ClientBuilder::new(brokers)
        .client_id("throome-http")
        .backoff_config(rskafka::BackoffConfig {
            deadline: Some(Duration::from_secs(5)),
            ..Default::default()
        });
    if let Some((mechanism, user, pass)) = &service.spec.kafka.login {
        let c = Credentials::new(user.clone(), pass.expose().to_string());
        builder = builder.sasl_config(match mechanism {
            SaslMechanism::Plain => SaslConfig::Plain(c),
            SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(c),
            SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(c),
        });
    }
    let built = tokio::time::timeout(TIMEOUT, builder.build()).await;
    let client = match built {
        Ok(Ok(c)) => Arc::new(c),
        Ok(Err(e)) => {
            return Err(DataError::unavailable(format!(
                "cannot reach the brokers: {e}"
            )));
        }
        Err(_) => return Err(DataError::timeout("the brokers did not answer in time")),
    };
    if let Ok(mut m) = clients.lock() {
        m.retain(|_, (w, _)| w.strong_count() > 0);
        m.insert(key, (Arc::downgrade(service), client.clone()));
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(
            snake("UnknownTopicOrPartition"),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
    }
}
