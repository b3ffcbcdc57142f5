//! Request headers, read by hand ([request header](https://kafka.apache.org/protocol.html#protocol_messages)):
//! `api_key`, `api_version`, `correlation_id`, then (header v1+) a nullable Int16 `client_id`
//! and (header v2, the flexible versions) tagged fields. Responses start with the
//! correlation id alone.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::KafkaError;
use crate::api;
use crate::wire::Cursor;

/// What the proxy needs from one request frame (size prefix included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// The client's `client_id`, a view into the frame.
    pub client_id: Option<Bytes>,
    /// Where the body starts within the frame; `None` for an API key this crate does not know
    /// (its header version, and so its length, is unknown).
    pub body_offset: Option<usize>,
}

impl RequestHeader {
    /// Parses the header of a whole frame from `FrameScanner`.
    pub fn parse(frame: &Bytes) -> Result<RequestHeader, KafkaError> {
        let mut c = Cursor::new(frame, 4);
        let api_key = c.i16("api_key")?;
        let api_version = c.i16("api_version")?;
        let correlation_id = c.i32("correlation_id")?;
        let header_version = ApiKey::try_from(api_key)
            .ok()
            .map(|k| k.request_header_version(api_version));
        let mut header = RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: None,
            body_offset: None,
        };
        // Unknown keys: take the common v1 shape for the client id, leave the body unknown.
        let header_version_or_v1 = header_version.unwrap_or(1);
        if header_version_or_v1 >= 1 {
            let start = c.pos();
            if let Some(id) = c.string(false, "client_id")? {
                let from = start + 2;
                header.client_id = Some(frame.slice(from..from + id.len()));
            }
        }
        if header_version_or_v1 >= 2 {
            c.skip_tags("request header tags")?;
        }
        if header_version.is_some() {
            header.body_offset = Some(c.pos());
        }
        Ok(header)
    }

    /// Whether the header uses the flexible (compact) encodings of KIP-482.
    pub fn flexible(&self) -> bool {
        ApiKey::try_from(self.api_key)
            .map(|k| k.request_header_version(self.api_version) >= 2)
            .unwrap_or(false)
    }
}

/// Whether the broker answers this request: every request gets a response except a Produce
/// with `acks = 0` ([Produce request](https://kafka.apache.org/protocol.html#The_Messages_Produce)).
pub fn expects_response(header: &RequestHeader, frame: &[u8]) -> Result<bool, KafkaError> {
    if header.api_key != api::PRODUCE {
        return Ok(true);
    }
    let offset = header.body_offset.ok_or(KafkaError::Malformed("produce"))?;
    let mut c = Cursor::new(frame, offset);
    if header.api_version >= 3 {
        c.string(header.api_version >= 9, "transactional_id")?;
    }
    Ok(c.i16("acks")? != 0)
}

/// The correlation id a response frame starts with.
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, KafkaError> {
    Cursor::new(frame, 4).i32("correlation_id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Bytes {
        let mut f = (body.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        Bytes::from(f)
    }

    #[test]
    fn metadata_v1_header() {
        // api 3 v1, correlation 7, client id "kc"
        let f = frame(&[0, 3, 0, 1, 0, 0, 0, 7, 0, 2, b'k', b'c', 0, 0, 0, 0]);
        let h = RequestHeader::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (3, 1, 7));
        assert_eq!(h.client_id.as_deref(), Some(&b"kc"[..]));
        assert_eq!(h.body_offset, Some(16));
        assert!(!h.flexible());
    }

    #[test]
    fn flexible_header_skips_tags() {
        // api 3 v12 (flexible): null client id, one tagged field of 2 bytes
        let f = frame(&[0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 1, 5, 2, 9, 9, 0xaa]);
        let h = RequestHeader::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.client_id, None);
        assert_eq!(h.body_offset, Some(19));
        assert!(h.flexible());
    }

    #[test]
    fn produce_with_acks_zero_gets_no_response() {
        // Produce v3: null transactional id, acks 0
        let f = frame(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0, 0]);
        let h = RequestHeader::parse(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(expects_response(&h, &f), Ok(false));
        let f = frame(&[0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(expects_response(&h, &f), Ok(true));
    }

    #[test]
    fn short_header_is_an_error() {
        assert!(RequestHeader::parse(&frame(&[0, 3, 0])).is_err());
    }
}
