//! Client bytes, split at an arbitrary point: the request scanner frames them or reports a
//! protocol error, never panics, and every frame's arguments and keys can be read.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use throome_resp::{Limits, RequestScanner};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(data.len());
    let limits = Limits {
        max_bulk_len: 4096,
        max_args: 64,
        max_inline_len: 1024,
        max_request_len: 1 << 16,
    };
    let mut s = RequestScanner::new(limits);
    let mut buf = BytesMut::from(&data[..cut]);
    let mut keys = Vec::new();
    for chunk in [&data[cut..], &[][..]] {
        loop {
            match s.scan(&mut buf) {
                Ok(Some(r)) => {
                    let args: Vec<&[u8]> = r.args().collect();
                    assert_eq!(args.len(), r.argc());
                    if let Some(spec) = throome_resp::resolve(&args) {
                        keys.clear();
                        spec.keys(&args, &mut keys);
                        assert!(keys.iter().all(|&k| k > 0 && k < args.len()));
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        buf.extend_from_slice(chunk);
    }
});
