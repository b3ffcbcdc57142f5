//! Client side: framing, request headers, the Produce acks check and the KIP-511 client
//! software fields on arbitrary bytes: never panics, never yields a frame over the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use throome_kafka::{FrameScanner, RequestHeader, expects_response, needs_api_versions_fallback};

fuzz_target!(|data: &[u8]| {
    let scanner = FrameScanner::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = scanner.next(&mut buf) {
        assert!(f.len() <= 4 + 64 * 1024);
        if let Ok(h) = RequestHeader::parse(&f) {
            let _ = expects_response(&h, &f);
            let _ = needs_api_versions_fallback(&h, &f);
        }
    }
});
