//! The two SASL requests a proxy answers when it authenticates clients itself, and their
//! responses ([KIP-152](https://cwiki.apache.org/confluence/display/KAFKA/KIP-152+-+Improve+diagnostics+for+SASL+authentication+failures)):
//! [SaslHandshake](https://kafka.apache.org/protocol.html#The_Messages_SaslHandshake) v1
//! names the mechanism, then each
//! [SaslAuthenticate](https://kafka.apache.org/protocol.html#The_Messages_SaslAuthenticate)
//! v0-2 carries one SASL token. Also the requests the proxy sends to log in to a broker.

use kafka_protocol::messages::ApiKey;

use crate::wire::{Cursor, put_count, put_uvarint};
use crate::{KafkaError, RequestHeader, api};

/// SaslAuthenticate's API key.
pub const SASL_AUTHENTICATE: i16 = 36;

/// Error codes of the SASL exchange.
pub mod sasl_code {
    pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
    pub const ILLEGAL_SASL_STATE: i16 = 34;
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
}

/// The mechanism a SaslHandshake request names.
pub fn handshake_mechanism(h: &RequestHeader, frame: &[u8]) -> Result<String, KafkaError> {
    let offset = h
        .body_offset
        .ok_or(KafkaError::Malformed("sasl handshake"))?;
    let name = Cursor::new(frame, offset)
        .string(false, "mechanism")?
        .ok_or(KafkaError::Malformed("mechanism"))?;
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// The token a SaslAuthenticate request carries (`auth_bytes`, compact from v2).
pub fn authenticate_bytes<'a>(h: &RequestHeader, frame: &'a [u8]) -> Result<&'a [u8], KafkaError> {
    let offset = h
        .body_offset
        .ok_or(KafkaError::Malformed("sasl authenticate"))?;
    let mut c = Cursor::new(frame, offset);
    let len = match h.api_version >= 2 {
        true => (c.uvarint("auth_bytes")? as usize)
            .checked_sub(1)
            .ok_or(KafkaError::Malformed("auth_bytes"))?,
        false => usize::try_from(c.i32("auth_bytes")?)
            .map_err(|_| KafkaError::Malformed("auth_bytes"))?,
    };
    c.take(len, "auth_bytes")
}

/// The SaslHandshake response (v0 and v1 share it): `error` and the mechanisms on offer.
pub fn handshake_response(correlation_id: i32, error: i16, mechanisms: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&error.to_be_bytes());
    // A handful of names: the count always fits.
    let _ = put_count(&mut body, false, mechanisms.len());
    for m in mechanisms {
        body.extend_from_slice(&(m.len() as i16).to_be_bytes());
        body.extend_from_slice(m.as_bytes());
    }
    framed(body)
}

/// The SaslAuthenticate response of `version`: `error` (0 or SASL_AUTHENTICATION_FAILED) with
/// its message, and the server's token.
pub fn authenticate_response(
    correlation_id: i32,
    version: i16,
    error: i16,
    message: Option<&str>,
    token: &[u8],
) -> Vec<u8> {
    let flexible = version >= 2;
    let mut body = Vec::new();
    body.extend_from_slice(&correlation_id.to_be_bytes());
    if flexible {
        put_uvarint(&mut body, 0); // response header tags
    }
    body.extend_from_slice(&error.to_be_bytes());
    match (message, flexible) {
        (None, true) => put_uvarint(&mut body, 0),
        (None, false) => body.extend_from_slice(&(-1i16).to_be_bytes()),
        (Some(m), true) => {
            put_uvarint(&mut body, m.len() as u32 + 1);
            body.extend_from_slice(m.as_bytes());
        }
        (Some(m), false) => {
            body.extend_from_slice(&(m.len() as i16).to_be_bytes());
            body.extend_from_slice(m.as_bytes());
        }
    }
    match flexible {
        true => put_uvarint(&mut body, token.len() as u32 + 1),
        false => body.extend_from_slice(&(token.len() as i32).to_be_bytes()),
    }
    body.extend_from_slice(token);
    if version >= 1 {
        // session_lifetime_ms: 0, no re-authentication required (KIP-368).
        body.extend_from_slice(&0i64.to_be_bytes());
    }
    if flexible {
        put_uvarint(&mut body, 0);
    }
    framed(body)
}

/// A request the proxy sends as a client: SaslHandshake v1 for `mechanism`.
pub fn handshake_request(correlation_id: i32, mechanism: &str) -> Vec<u8> {
    let mut body = header(api::SASL_HANDSHAKE, 1, correlation_id);
    body.extend_from_slice(&(mechanism.len() as i16).to_be_bytes());
    body.extend_from_slice(mechanism.as_bytes());
    framed(body)
}

/// SaslAuthenticate v1 carrying `token`.
pub fn authenticate_request(correlation_id: i32, token: &[u8]) -> Vec<u8> {
    let mut body = header(SASL_AUTHENTICATE, 1, correlation_id);
    body.extend_from_slice(&(token.len() as i32).to_be_bytes());
    body.extend_from_slice(token);
    framed(body)
}

/// A broker's answer to one of those two: (error code, error message, token).
pub fn read_response(
    api_key: i16,
    frame: &[u8],
) -> Result<(i16, Option<String>, Vec<u8>), KafkaError> {
    let mut c = Cursor::new(frame, 8); // size and correlation id
    let error = c.i16("error_code")?;
    if api_key == api::SASL_HANDSHAKE {
        return Ok((error, None, Vec::new()));
    }
    let message = c
        .string(false, "error_message")?
        .map(|m| String::from_utf8_lossy(m).into_owned());
    let len =
        usize::try_from(c.i32("auth_bytes")?).map_err(|_| KafkaError::Malformed("auth_bytes"))?;
    Ok((error, message, c.take(len, "auth_bytes")?.to_vec()))
}

/// A request the proxy sends as a client to learn the brokers: Metadata v1 for no topics
/// (its answer still lists every broker).
pub fn metadata_request(correlation_id: i32) -> Vec<u8> {
    let mut body = header(api::METADATA, 1, correlation_id);
    body.extend_from_slice(&0i32.to_be_bytes());
    framed(body)
}

/// A v1 request header (client id "throome").
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    debug_assert_eq!(
        ApiKey::try_from(api_key).map(|k| k.request_header_version(version)),
        Ok(1)
    );
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&7i16.to_be_bytes());
    out.extend_from_slice(b"throome");
    out
}

fn framed(body: Vec<u8>) -> Vec<u8> {
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_metadata_request_for_no_topics_is_framed_with_a_v1_header() {
        let r = super::metadata_request(7);
        // size, api key 3, version 1, correlation id 7, client id "throome", 0 topics.
        assert_eq!(&r[..4], &((r.len() - 4) as i32).to_be_bytes());
        assert_eq!(&r[4..12], &[0, 3, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&r[r.len() - 4..], &[0, 0, 0, 0]);
    }

    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{
        RequestHeader as KpHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
        SaslHandshakeResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    /// A client's SaslAuthenticate request as kafka-protocol encodes it.
    fn client_request(version: i16, token: &'static [u8]) -> Bytes {
        let mut buf = BytesMut::new();
        let header_version = ApiKey::SaslAuthenticate.request_header_version(version);
        KpHeader::default()
            .with_request_api_key(SASL_AUTHENTICATE)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .encode(&mut buf, header_version)
            .unwrap();
        SaslAuthenticateRequest::default()
            .with_auth_bytes(Bytes::from_static(token))
            .encode(&mut buf, version)
            .unwrap();
        Bytes::from(framed(buf.to_vec()))
    }

    #[test]
    fn tokens_are_read_in_every_version() {
        for version in 0..=2 {
            let frame = client_request(version, b"n,,n=u,r=x");
            let h = RequestHeader::parse(&frame).unwrap();
            assert_eq!(authenticate_bytes(&h, &frame).unwrap(), b"n,,n=u,r=x");
            // Cut short: an error, not a panic.
            let short = frame.slice(..frame.len() - 3);
            assert!(authenticate_bytes(&h, &short).is_err());
        }
    }

    #[test]
    fn responses_decode_with_kafka_protocol() {
        for version in 0..=2i16 {
            let frame = authenticate_response(9, version, 58, Some("bad"), b"v=abc");
            let mut body = Bytes::from(frame[8..].to_vec());
            if version >= 2 {
                body = body.slice(1..); // the response header's tags
            }
            let r = SaslAuthenticateResponse::decode(&mut body, version).unwrap();
            assert_eq!(r.error_code, 58);
            assert_eq!(r.error_message.as_deref(), Some("bad"));
            assert_eq!(r.auth_bytes.as_ref(), b"v=abc");
            assert!(body.is_empty());
        }
        let frame = handshake_response(4, 33, &["PLAIN", "SCRAM-SHA-256"]);
        let r = SaslHandshakeResponse::decode(&mut Bytes::from(frame[8..].to_vec()), 1).unwrap();
        assert_eq!(r.error_code, 33);
        assert_eq!(r.mechanisms.len(), 2);
    }

    #[test]
    fn the_proxys_own_requests_parse_back() {
        let frame = Bytes::from(handshake_request(1, "SCRAM-SHA-512"));
        let h = RequestHeader::parse(&frame).unwrap();
        assert_eq!(handshake_mechanism(&h, &frame).unwrap(), "SCRAM-SHA-512");
        let frame = Bytes::from(authenticate_request(2, b"tok"));
        let h = RequestHeader::parse(&frame).unwrap();
        assert_eq!(authenticate_bytes(&h, &frame).unwrap(), b"tok");
        let answer = authenticate_response(2, 1, 0, None, b"srv");
        assert_eq!(
            read_response(SASL_AUTHENTICATE, &answer).unwrap(),
            (0, None, b"srv".to_vec())
        );
    }
}
