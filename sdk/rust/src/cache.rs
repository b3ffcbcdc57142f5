//! The cache: a cluster's redis service. Values travel in base64, so any bytes round-trip.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Error, service_query};

pub struct Cache<'a> {
    client: &'a Client,
    service: Option<String>,
}

#[derive(Deserialize)]
struct Result<T> {
    result: T,
}

impl<'a> Cache<'a> {
    pub(crate) fn new(client: &'a Client, service: Option<&str>) -> Cache<'a> {
        Cache {
            client,
            service: service.map(str::to_string),
        }
    }

    fn query(&self, base64: bool) -> Vec<(&'static str, String)> {
        let mut q = service_query(self.service.as_deref());
        if base64 {
            q.push(("encoding", "base64".into()));
        }
        q
    }

    /// Sets `key` to `value`, expiring after `ttl` (whole seconds, at least one) if given.
    pub async fn set(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        ttl: Option<Duration>,
    ) -> std::result::Result<(), Error> {
        let mut q = self.query(true);
        if let Some(ttl) = ttl {
            q.push(("ttl", ttl.as_secs().max(1).to_string()));
        }
        let body = Value::String(STANDARD.encode(value));
        let path = format!("cache/{}", encode_key(key));
        let _: Result<Value> = self
            .client
            .call(Method::PUT, &path, &q, Some(&body))
            .await?;
        Ok(())
    }

    /// The value of `key`, `None` when it does not exist.
    pub async fn get(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, Error> {
        let path = format!("cache/{}", encode_key(key));
        match self
            .client
            .call::<Result<String>>(Method::GET, &path, &self.query(true), None)
            .await
        {
            Ok(r) => STANDARD
                .decode(r.result)
                .map(Some)
                .map_err(|e| Error::Decode(e.to_string())),
            Err(Error::Api { code, .. }) if code == "not_found" => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `key` as text (invalid UTF-8 replaced).
    pub async fn get_string(&self, key: &str) -> std::result::Result<Option<String>, Error> {
        Ok(self
            .get(key)
            .await?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Deletes `key`; whether it existed.
    pub async fn del(&self, key: &str) -> std::result::Result<bool, Error> {
        let path = format!("cache/{}", encode_key(key));
        let q = self.query(false);
        let r: Result<i64> = self.client.call(Method::DELETE, &path, &q, None).await?;
        Ok(r.result > 0)
    }

    /// Any Redis command (Upstash's REST form): its reply as JSON. A Redis error reply is
    /// `Error::Api` with the error's first word as its code (`WRONGTYPE`).
    pub async fn command(&self, args: &[&str]) -> std::result::Result<Value, Error> {
        let body = json!(args);
        let q = self.query(false);
        let r: Result<Value> = self
            .client
            .call(Method::POST, "redis", &q, Some(&body))
            .await?;
        Ok(r.result)
    }
}

/// A key as one path segment.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
