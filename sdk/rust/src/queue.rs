//! The queue: a cluster's kafka service. Records travel in base64, so any bytes round-trip.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::{Client, Error, service_query};

pub struct Queue<'a> {
    client: &'a Client,
    service: Option<String>,
}

/// Where a record went.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub partition_id: i32,
    pub offset: i64,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, Vec<u8>>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

#[derive(Deserialize)]
struct RawHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct RawRecord {
    offset: i64,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Vec<RawHeader>,
    timestamp: i64,
}

impl<'a> Queue<'a> {
    pub(crate) fn new(client: &'a Client, service: Option<&str>) -> Queue<'a> {
        Queue {
            client,
            service: service.map(str::to_string),
        }
    }

    /// Produces `value` to `topic` (the partition chosen round-robin).
    pub async fn publish(&self, topic: &str, value: impl AsRef<[u8]>) -> Result<Published, Error> {
        self.publish_record(topic, None, value, None).await
    }

    /// Produces a record with a key (partitioned by it, as Kafka's default partitioner
    /// does) or to a given partition.
    pub async fn publish_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: impl AsRef<[u8]>,
        partition: Option<i32>,
    ) -> Result<Published, Error> {
        let binary = |b: &[u8]| json!({ "type": "BINARY", "data": STANDARD.encode(b) });
        let mut body = json!({ "value": binary(value.as_ref()) });
        if let Some(k) = key {
            body["key"] = binary(k);
        }
        if let Some(p) = partition {
            body["partition_id"] = json!(p);
        }
        let q = service_query(self.service.as_deref());
        let path = format!("topics/{}/records", segment(topic));
        self.client.call(Method::POST, &path, &q, Some(&body)).await
    }

    /// Records of `partition` from `offset` on (up to about 1 MiB).
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Vec<Record>, Error> {
        #[derive(Deserialize)]
        struct Answer {
            records: Vec<RawRecord>,
        }
        let mut q = service_query(self.service.as_deref());
        q.extend([
            ("offset", offset.to_string()),
            ("encoding", "base64".into()),
        ]);
        let path = format!("topics/{}/partitions/{partition}/records", segment(topic));
        let a: Answer = self.client.call(Method::GET, &path, &q, None).await?;
        a.records.into_iter().map(decode).collect()
    }
}

fn decode(r: RawRecord) -> Result<Record, Error> {
    let bytes = |s: String| STANDARD.decode(s).map_err(|e| Error::Decode(e.to_string()));
    let mut headers = BTreeMap::new();
    for h in r.headers {
        headers.insert(h.name, bytes(h.value)?);
    }
    Ok(Record {
        offset: r.offset,
        key: r.key.map(bytes).transpose()?,
        value: r.value.map(bytes).transpose()?,
        headers,
        timestamp: r.timestamp,
    })
}

/// A topic name as one path segment (Kafka names are letters, digits, `.`, `_`, `-`).
fn segment(topic: &str) -> String {
    topic
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
