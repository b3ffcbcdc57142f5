//! One client for a Throome cluster's cache, database and queue, over the gateway's HTTP
//! data API (`/api/v1/clusters/{id}/...`): no Redis, PostgreSQL or Kafka driver needed.
//! For the native protocols, [`Client::endpoints`] gives the cluster's connection strings.
//!
//! ```no_run
//! # async fn run() -> Result<(), throome_sdk::Error> {
//! use std::time::Duration;
//! let client = throome_sdk::Client::new("http://localhost:9000", "my-app").token("...");
//! client.cache().set("user:1", "ada", Some(Duration::from_secs(60))).await?;
//! let rows = client.db().query("select $1::int + 1 as n", &[1.into()]).await?;
//! let sent = client.queue().publish("events", b"signed up").await?;
//! # Ok(()) }
//! ```

mod cache;
mod db;
mod queue;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use cache::Cache;
pub use db::{Db, Field, Rows};
pub use queue::{Published, Queue, Record};

/// What can go wrong: the request (`Http`), or the gateway's answer (`Api`, with the
/// backend's own code: a SQLSTATE, a Redis error word, a Kafka error name).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl Error {
    /// The error's code when the gateway answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A cluster on a gateway.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    cluster: String,
    token: Option<String>,
}

impl Client {
    /// `url` is the gateway's admin server (`server.admin_listen`), `cluster_id` the
    /// cluster's ID.
    pub fn new(url: &str, cluster_id: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_string(),
            cluster: cluster_id.to_string(),
            token: None,
        }
    }

    /// The API token, one of the cluster's `api_tokens`.
    pub fn token(mut self, token: &str) -> Client {
        self.token = Some(token.to_string());
        self
    }

    pub fn cache(&self) -> Cache<'_> {
        Cache::new(self, None)
    }

    /// The cache service named `service`, when the cluster has several.
    pub fn cache_named(&self, service: &str) -> Cache<'_> {
        Cache::new(self, Some(service))
    }

    pub fn db(&self) -> Db<'_> {
        Db::new(self, None)
    }

    pub fn db_named(&self, service: &str) -> Db<'_> {
        Db::new(self, Some(service))
    }

    pub fn queue(&self) -> Queue<'_> {
        Queue::new(self, None)
    }

    pub fn queue_named(&self, service: &str) -> Queue<'_> {
        Queue::new(self, Some(service))
    }

    /// Each service's type and native connection strings (`redis://...`,
    /// `postgresql://...`, a Kafka bootstrap address), for the usual drivers.
    pub async fn endpoints(&self) -> Result<BTreeMap<String, Endpoint>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            services: BTreeMap<String, Endpoint>,
        }
        let a: Answer = self
            .call(reqwest::Method::GET, "endpoints", &[], None)
            .await?;
        Ok(a.services)
    }

    /// One request to `path` (under the cluster) with `query` and an optional JSON body.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<T, Error> {
        let url = format!("{}/api/v1/clusters/{}/{path}", self.base, self.cluster);
        let mut req = self.http.request(method, url).query(query);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let value: Value = resp
            .json()
            .await
            .map_err(|e| Error::Decode(format!("HTTP {status}: {e}")))?;
        if !status.is_success() {
            let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
            return Err(Error::Api {
                status: status.as_u16(),
                code: text("code").to_string(),
                message: text("error").to_string(),
            });
        }
        serde_json::from_value(value).map_err(|e| Error::Decode(e.to_string()))
    }
}

/// A service's native endpoints.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    #[serde(rename = "type")]
    pub kind: String,
    pub connect: Vec<String>,
}

/// `?service=` when a service is named.
fn service_query(service: Option<&str>) -> Vec<(&'static str, String)> {
    service
        .map(|s| vec![("service", s.to_string())])
        .unwrap_or_default()
}
