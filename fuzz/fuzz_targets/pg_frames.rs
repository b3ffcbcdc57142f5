//! Message framing (both directions frame alike) and every body parser on arbitrary bytes:
//! never panics, never yields a frame over the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use throome_pgwire::{FrameScanner, msg};

fuzz_target!(|data: &[u8]| {
    let scanner = FrameScanner::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = scanner.scan(&mut buf) {
        assert!(f.bytes().len() <= 64 * 1024);
        let body = f.body();
        let _ = (
            msg::parse(body),
            msg::bind(body),
            msg::target(body),
            msg::query(body),
        );
        let _ = (
            msg::ready_status(body),
            msg::backend_key(body),
            msg::parameter_status(body),
        );
        let _ = (
            msg::auth_request(body),
            msg::fields(body).count(),
            msg::first_keyword(body),
        );
    }
});
