//! Broker-address rewriting for the three responses that tell a client where brokers are:
//! [Metadata](https://kafka.apache.org/protocol.html#The_Messages_Metadata),
//! [FindCoordinator](https://kafka.apache.org/protocol.html#The_Messages_FindCoordinator) and
//! [DescribeCluster](https://kafka.apache.org/protocol.html#The_Messages_DescribeCluster).
//!
//! Only the part before and including the broker list is touched: the fields in front are
//! copied, each broker entry is decoded with `kafka-protocol`, given the proxy's address and
//! re-encoded at the same version, and everything after the list (topics, partitions, tags)
//! is copied byte for byte. Array counts are checked against the remaining bytes before any
//! element is decoded.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{ApiKey, FindCoordinatorResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::KafkaError;
use crate::api;
use crate::wire::{Cursor, put_count};

/// A broker as the upstream cluster describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broker {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// Decides the address a client is told for an upstream broker.
pub trait BrokerMap {
    fn proxy_address(&mut self, upstream: &Broker) -> (String, i32);
}

impl<F: FnMut(&Broker) -> (String, i32)> BrokerMap for F {
    fn proxy_address(&mut self, upstream: &Broker) -> (String, i32) {
        self(upstream)
    }
}

/// A rewritten response frame and the upstream brokers it named.
#[derive(Debug)]
pub struct Rewritten {
    pub frame: Bytes,
    pub brokers: Vec<Broker>,
    /// The response lists every live broker (Metadata, DescribeCluster), so a broker missing
    /// from it has left the cluster.
    pub complete: bool,
}

/// Whether responses to this API carry broker addresses.
pub fn rewrites(api_key: i16) -> bool {
    matches!(
        api_key,
        api::METADATA | api::FIND_COORDINATOR | api::DESCRIBE_CLUSTER
    )
}

/// Rewrites the broker addresses in a response frame (size prefix included) to `api_key` at
/// `version`. Fails on a version `kafka-protocol` cannot decode or a malformed body.
pub fn rewrite_response(
    api_key: i16,
    version: i16,
    frame: &[u8],
    map: &mut dyn BrokerMap,
) -> Result<Rewritten, KafkaError> {
    let key = ApiKey::try_from(api_key).map_err(|_| unsupported(api_key, version))?;
    if !rewrites(api_key) || !key.valid_versions().contains(version) {
        return Err(unsupported(api_key, version));
    }
    let mut c = Cursor::new(frame, 4);
    c.i32("correlation_id")?;
    if key.response_header_version(version) >= 1 {
        c.skip_tags("response header tags")?;
    }
    let mut out = BytesMut::with_capacity(frame.len() + 64);
    out.extend_from_slice(&frame[..c.pos()]);
    let mut rw = Rewriter {
        c,
        out,
        version,
        map,
        brokers: Vec::new(),
    };
    let complete = match api_key {
        api::METADATA => rw.metadata()?,
        api::FIND_COORDINATOR => rw.find_coordinator()?,
        _ => rw.describe_cluster()?,
    };
    let Rewriter {
        c,
        mut out,
        brokers,
        ..
    } = rw;
    out.extend_from_slice(c.rest());
    let size = i32::try_from(out.len() - 4).map_err(|_| KafkaError::Encode("too long".into()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(Rewritten {
        frame: out.freeze(),
        brokers,
        complete,
    })
}

fn unsupported(api_key: i16, version: i16) -> KafkaError {
    KafkaError::UnsupportedVersion { api_key, version }
}

trait VersionsExt {
    fn contains(&self, v: i16) -> bool;
}

impl VersionsExt for kafka_protocol::protocol::VersionRange {
    fn contains(&self, v: i16) -> bool {
        self.min <= v && v <= self.max
    }
}

struct Rewriter<'a, 'm> {
    c: Cursor<'a>,
    out: BytesMut,
    version: i16,
    map: &'m mut dyn BrokerMap,
    brokers: Vec<Broker>,
}

impl Rewriter<'_, '_> {
    /// Copies `n` bytes of fields that do not change.
    fn copy(&mut self, n: usize, what: &'static str) -> Result<(), KafkaError> {
        let s = self.c.take(n, what)?;
        self.out.extend_from_slice(s);
        Ok(())
    }

    fn copy_string(&mut self, flexible: bool, what: &'static str) -> Result<(), KafkaError> {
        let start = self.c.pos();
        self.c.string(flexible, what)?;
        let whole = self.c.whole();
        self.out.extend_from_slice(&whole[start..self.c.pos()]);
        Ok(())
    }

    /// Address for an upstream broker; records it.
    fn map_one(&mut self, node_id: i32, host: &mut StrBytes, port: &mut i32) {
        if node_id < 0 {
            return; // "no coordinator" placeholders carry no address
        }
        let upstream = Broker {
            node_id,
            host: host.as_str().to_owned(),
            port: *port,
        };
        let (h, p) = self.map.proxy_address(&upstream);
        *host = StrBytes::from_string(h);
        *port = p;
        self.brokers.push(upstream);
    }

    /// Decodes, rewrites and re-encodes every element of an array of broker entries.
    fn each<T: Decodable + Encodable>(
        &mut self,
        flexible: bool,
        min_element: usize,
        what: &'static str,
        mut edit: impl FnMut(&mut Self, &mut T),
    ) -> Result<(), KafkaError> {
        let n = self.c.count(flexible, min_element, what)?;
        put_count_bytes(&mut self.out, flexible, n)?;
        for _ in 0..n {
            let mut item: T = self.decode(what)?;
            edit(self, &mut item);
            item.encode(&mut self.out, self.version)
                .map_err(|e| KafkaError::Encode(e.to_string()))?;
        }
        Ok(())
    }

    fn decode<T: Decodable>(&mut self, what: &'static str) -> Result<T, KafkaError> {
        let mut rest = self.c.rest();
        let before = rest.len();
        let item = T::decode(&mut rest, self.version).map_err(|_| KafkaError::Malformed(what))?;
        self.c.take(before - rest.len(), what)?;
        Ok(item)
    }

    /// Metadata: `[throttle_time_ms (v3+)] brokers[] ...`; flexible from v9.
    fn metadata(&mut self) -> Result<bool, KafkaError> {
        if self.version >= 3 {
            self.copy(4, "throttle_time_ms")?;
        }
        let flexible = self.version >= 9;
        self.each(
            flexible,
            9,
            "brokers",
            |rw, b: &mut MetadataResponseBroker| rw.map_one(b.node_id.0, &mut b.host, &mut b.port),
        )?;
        Ok(true)
    }

    /// DescribeCluster (always flexible): `throttle_time_ms error_code error_message
    /// [endpoint_type (v1+)] cluster_id controller_id brokers[] ...`.
    fn describe_cluster(&mut self) -> Result<bool, KafkaError> {
        self.copy(6, "throttle_time_ms, error_code")?;
        self.copy_string(true, "error_message")?;
        if self.version >= 1 {
            self.copy(1, "endpoint_type")?;
        }
        self.copy_string(true, "cluster_id")?;
        self.copy(4, "controller_id")?;
        self.each(true, 11, "brokers", |rw, b: &mut DescribeClusterBroker| {
            rw.map_one(b.broker_id.0, &mut b.host, &mut b.port)
        })?;
        Ok(true)
    }

    /// FindCoordinator: one flat coordinator up to v3, `coordinators[]` from v4.
    fn find_coordinator(&mut self) -> Result<bool, KafkaError> {
        if self.version < 4 {
            // No arrays before v4, so decoding the whole body cannot over-allocate.
            let mut r: FindCoordinatorResponse = self.decode("find coordinator")?;
            self.map_one(r.node_id.0, &mut r.host, &mut r.port);
            r.encode(&mut self.out, self.version)
                .map_err(|e| KafkaError::Encode(e.to_string()))?;
            return Ok(false);
        }
        self.copy(4, "throttle_time_ms")?;
        self.each(true, 13, "coordinators", |rw, k: &mut Coordinator| {
            rw.map_one(k.node_id.0, &mut k.host, &mut k.port)
        })?;
        Ok(false)
    }
}

fn put_count_bytes(out: &mut BytesMut, flexible: bool, n: usize) -> Result<(), KafkaError> {
    let mut v = Vec::with_capacity(5);
    put_count(&mut v, flexible, n)?;
    out.extend_from_slice(&v);
    Ok(())
}
