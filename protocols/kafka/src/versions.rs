//! [ApiVersions](https://kafka.apache.org/protocol.html#The_Messages_ApiVersions) handling.
//!
//! The proxy decodes the responses it rewrites, so it must never let a client pick a newer
//! version of those APIs than it can decode: the advertised max versions are clamped in place
//! (same size, so the rest of the response is untouched). And a client whose ApiVersions
//! request version the proxy will not pass on gets the KIP-511 answer, error 35
//! (UNSUPPORTED_VERSION) in a v0 body listing the supported range, so it retries lower.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse,
};
use kafka_protocol::protocol::Message;

use crate::wire::Cursor;
use crate::{KafkaError, RequestHeader, api, code};

/// The newest version of an API whose responses the proxy rewrites, or `None` when it passes
/// them through at any version.
pub fn newest_rewritable(api_key: i16) -> Option<i16> {
    match api_key {
        api::METADATA => Some(MetadataResponse::VERSIONS.max),
        api::FIND_COORDINATOR => Some(FindCoordinatorResponse::VERSIONS.max),
        api::DESCRIBE_CLUSTER => Some(DescribeClusterResponse::VERSIONS.max),
        _ => None,
    }
}

/// The answer to a SaslHandshake v0 request: error 35 (UNSUPPORTED_VERSION) and no
/// mechanisms, so the client reports a clear error instead of the connection failing later
/// on its first bare token.
/// [SaslHandshake](https://kafka.apache.org/protocol.html#The_Messages_SaslHandshake) v0 is
/// followed by bare SASL tokens without request headers (KIP-43), which no correlation
/// tracking can follow; from v1 the tokens travel in SaslAuthenticate requests (KIP-152),
/// which pass through like any other request. ApiVersions answers still list v0: librdkafka
/// takes "SaslHandshake v0 in range" to mean the broker has SASL at all, then uses v1.
pub fn sasl_handshake_v0_refusal(correlation_id: i32) -> Bytes {
    let mut frame = Vec::with_capacity(14);
    frame.extend_from_slice(&10i32.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&code::UNSUPPORTED_VERSION.to_be_bytes());
    frame.extend_from_slice(&0i32.to_be_bytes());
    Bytes::from(frame)
}

/// Clamps the max versions of rewritten APIs in an ApiVersions response frame of `version`.
/// `Ok(None)` when nothing needed changing (forward the original bytes).
pub fn clamp_api_versions(version: i16, frame: &[u8]) -> Result<Option<Bytes>, KafkaError> {
    let mut c = Cursor::new(frame, 4);
    c.i32("correlation_id")?; // ApiVersions responses always use header v0
    let error = c.i16("error_code")?;
    // An UNSUPPORTED_VERSION answer is always a v0 body.
    let flexible = version >= 3 && error != code::UNSUPPORTED_VERSION;
    let n = c.count(flexible, 6, "api_keys")?;
    let mut patches = Vec::new();
    for _ in 0..n {
        let key = c.i16("api_key")?;
        c.i16("min_version")?;
        let at = c.pos();
        let max = c.i16("max_version")?;
        if flexible {
            c.skip_tags("api key tags")?;
        }
        if let Some(newest) = newest_rewritable(key).filter(|&newest| max > newest) {
            patches.push((at, newest));
        }
    }
    if patches.is_empty() {
        return Ok(None);
    }
    let mut out = BytesMut::from(frame);
    for (at, v) in patches {
        out[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    Ok(Some(out.freeze()))
}

/// The KIP-511 answer to an ApiVersions request of an unsupported version: error 35 and the
/// supported ApiVersions range, in a v0 body (which every client can read).
pub fn unsupported_api_versions(correlation_id: i32, min: i16, max: i16) -> Bytes {
    let mut body = Vec::with_capacity(20);
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&code::UNSUPPORTED_VERSION.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&api::API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&min.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

/// The API's name for metric labels (`Produce`, `Fetch`, ...), `Unknown` for keys
/// `kafka-protocol` does not know.
pub fn api_name(api_key: i16) -> &'static str {
    static NAMES: OnceLock<HashMap<i16, &'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=i16::from(u8::MAX))
            .filter_map(|k| ApiKey::try_from(k).ok().map(|a| (k, a)))
            .map(|(k, a)| (k, &*format!("{a:?}").leak()))
            .map(|(k, name)| (k, name.strip_suffix("Key").unwrap_or(name)))
            .collect()
    });
    names.get(&api_key).copied().unwrap_or("Unknown")
}

/// The `client_software_name` and `client_software_version` of an ApiVersions v3+ request
/// (KIP-511), from its body.
pub fn client_software(h: &RequestHeader, frame: &[u8]) -> Option<(String, String)> {
    if h.api_key != api::API_VERSIONS || h.api_version < 3 {
        return None;
    }
    let mut c = Cursor::new(frame, h.body_offset?);
    let name = c.string(true, "client_software_name").ok()??;
    let version = c.string(true, "client_software_version").ok()??;
    Some((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(version).into_owned(),
    ))
}

/// librdkafka before 2.2.0 (Debian's kcat links 2.0.2) fails to parse the tagged fields of
/// flexible (v3+) ApiVersions responses ("Read underflow", fixed in 2.2.0) and then gives up
/// on the broker. Those clients get the KIP-511 answer instead, and retry at v0. Wrappers report the
/// bundled library as `<wrapper version>-rdkafka-<version>`.
pub fn needs_api_versions_fallback(h: &RequestHeader, frame: &[u8]) -> bool {
    let Some((name, version)) = client_software(h, frame) else {
        return false;
    };
    let lib = if name == "librdkafka" {
        version.as_str()
    } else {
        match version.split_once("-rdkafka-") {
            Some((_, lib)) => lib,
            None => return false,
        }
    };
    let mut parts = lib.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let major_minor = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major_minor < (2, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_versions_v3(name: &str, version: &str) -> (RequestHeader, bytes::Bytes) {
        let mut body = vec![0, 18, 0, 3, 0, 0, 0, 1, 0, 4, b'k', b'c', b'a', b't', 0];
        for s in [name, version] {
            body.push(s.len() as u8 + 1);
            body.extend_from_slice(s.as_bytes());
        }
        body.push(0);
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        let f = bytes::Bytes::from(f);
        (RequestHeader::parse(&f).unwrap(), f)
    }

    #[test]
    fn old_librdkafka_gets_the_fallback() {
        let (h, f) = api_versions_v3("librdkafka", "2.0.2");
        assert_eq!(
            client_software(&h, &f),
            Some(("librdkafka".into(), "2.0.2".into()))
        );
        assert!(needs_api_versions_fallback(&h, &f));
        let (h, f) = api_versions_v3("confluent-kafka-python", "1.9.2-rdkafka-1.9.2");
        assert!(needs_api_versions_fallback(&h, &f));
        let (h, f) = api_versions_v3("librdkafka", "2.1.1");
        assert!(needs_api_versions_fallback(&h, &f));
        for fixed in ["2.2.0", "2.15.0", "2.16.1"] {
            let (h, f) = api_versions_v3("librdkafka", fixed);
            assert!(!needs_api_versions_fallback(&h, &f), "{fixed}");
        }
        let (h, f) = api_versions_v3("confluent-kafka-python", "2.12.0-rdkafka-2.12.0");
        assert!(!needs_api_versions_fallback(&h, &f));
        let (h, f) = api_versions_v3("kafka-python", "3.0.12");
        assert!(!needs_api_versions_fallback(&h, &f));
    }

    #[test]
    fn names() {
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(3), "Metadata");
        assert_eq!(api_name(18), "ApiVersions");
        assert_eq!(api_name(-5), "Unknown");
    }

    #[test]
    fn unsupported_answer_is_a_v0_body() {
        let f = unsupported_api_versions(9, 0, 2);
        assert_eq!(
            &f[..],
            &[
                0, 0, 0, 16, 0, 0, 0, 9, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 2
            ]
        );
        // And it is itself clampable without change.
        assert_eq!(clamp_api_versions(3, &f), Ok(None));
    }

    #[test]
    fn sasl_handshake_v0_refusal_is_error_35_with_no_mechanisms() {
        assert_eq!(
            &sasl_handshake_v0_refusal(5)[..],
            &[0, 0, 0, 10, 0, 0, 0, 5, 0, 35, 0, 0, 0, 0]
        );
    }
}
