//! Backend bytes: the reply framer frames them or reports an error, never panics, and the
//! frames it returns cover exactly the bytes it consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use throome_resp::{ReplyLimits, ReplyScanner};

fuzz_target!(|data: &[u8]| {
    let mut s = ReplyScanner::new(ReplyLimits {
        max_bulk_len: 4096,
        max_depth: 16,
        max_line_len: 4096,
    });
    let mut buf = BytesMut::from(data);
    let mut consumed = 0;
    while let Ok(Some(r)) = s.scan(&mut buf) {
        assert!(data[consumed..].starts_with(r.frame()));
        consumed += r.frame().len();
    }
});
