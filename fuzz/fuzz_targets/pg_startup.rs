//! The startup packet scanner on arbitrary bytes: never panics, never reads past the
//! declared length.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(s)) = throome_pgwire::scan_startup(&mut buf) {
        let _ = s.param("user");
    }
});
