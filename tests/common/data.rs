//! The data API's test set-up: cluster `app` with a cache (redis-server), a database
//! (PostgreSQL, database `app`) and a queue (tansu, topic `events` with 3 partitions), and
//! cluster `other` with a cache of its own (another redis-server; a password for native
//! clients, which the data API's token stands in for), each with API tokens.

use serde_json::Value;

use super::gateway::Throome;
use super::kafka::Tansu;
use super::{Postgres, RedisServer, free_port};

/// Writes and reads everything in `app`.
pub const WRITER: &str = "app-writer-token-0001";
/// `read` scope only.
pub const READER: &str = "app-reader-token-0002";
/// Both scopes, `cache` only.
pub const CACHE_ONLY: &str = "app-cache-only-token-03";
/// The gateway's admin token (`server.admin_token`): not a data token.
pub const ADMIN: &str = "the-admin-token-0005";
/// `other`'s token.
pub const OTHER: &str = "other-cluster-token-0004";

pub struct Data {
    pub gw: Throome,
    /// The native listeners of `app`: cache, database, queue.
    pub ports: (u16, u16, u16),
    pub redis: RedisServer,
    pub other_redis: RedisServer,
    pub pg: Postgres,
    pub tansu: Tansu,
}

pub async fn setup() -> Data {
    let (redis, other_redis) = (RedisServer::start(), RedisServer::start());
    let pg = Postgres::start();
    let admin = super::pg::direct(pg.port).await;
    admin.batch_execute("CREATE DATABASE app").await.unwrap();
    let tansu = Tansu::start();
    tansu.create_topic("events", 3);
    // The writer's token is stored hashed, the others as themselves.
    let writer = throome::data::access::hash_token(WRITER);
    let ports = (free_port(), free_port(), free_port());
    let app = format!(
        "cluster_id: app\nname: app\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{}\"\n    host: 127.0.0.1\n    port: {}\n  db:\n    type: postgres\n    listen: \"127.0.0.1:{}\"\n    host: 127.0.0.1\n    port: {}\n    database: app\n    username: postgres\n  queue:\n    type: kafka\n    listen: \"127.0.0.1:{}\"\n    broker_port_base: {}\n    host: 127.0.0.1\n    port: {}\napi_tokens:\n  - {{ name: writer, token: \"{writer}\" }}\n  - {{ name: reader, token: {READER}, scopes: [read] }}\n  - {{ name: cache-only, token: {CACHE_ONLY}, services: [cache] }}\n",
        ports.0,
        redis.port,
        ports.1,
        pg.port,
        ports.2,
        super::kafka::free_broker_port_base(),
        tansu.port,
    );
    let other = format!(
        "cluster_id: other\nname: other\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{}\"\n    host: 127.0.0.1\n    port: {}\n    auth: {{ password: native-clients-need-this }}\napi_tokens:\n  - {{ name: main, token: {OTHER} }}\n",
        free_port(),
        other_redis.port
    );
    let gw = tokio::task::spawn_blocking(move || {
        let opts = super::gateway::Options {
            token: Some(ADMIN.into()),
            ..Default::default()
        };
        Throome::start_with(&[("app", &app), ("other", &other)], opts)
    })
    .await
    .unwrap();
    Data {
        gw,
        ports,
        redis,
        other_redis,
        pg,
        tansu,
    }
}

/// An HTTP call to the gateway's admin server: status and JSON body.
pub fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let (status, text) = call_text(port, method, path, token, body);
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
    (status, json)
}

pub fn call_text(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let auth = token.map(|t| format!("Bearer {t}"));
    let result = match (method, body) {
        ("GET" | "DELETE", _) => {
            let mut r = match method {
                "GET" => agent.get(&url),
                _ => agent.delete(&url),
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (_, body) => {
            let mut r = match method {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.content_type("application/json").send(body.unwrap_or(""))
        }
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}
