//! Broker side: every rewriter (Metadata, FindCoordinator, DescribeCluster) and the
//! ApiVersions clamp on arbitrary response bytes, at the version the first byte picks. Array
//! counts come from the input, so this is also the check that no count reaches an
//! allocation unchecked (libFuzzer's malloc limit fails the run if one does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use throome_kafka::{Broker, clamp_api_versions, rewrite_response};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let version = i16::from(pick % 16);
    let api = [3i16, 10, 60, 18][usize::from(pick / 16) % 4];
    let mut frame = (rest.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(rest);
    let mut map = |b: &Broker| (format!("proxy-{}", b.node_id), 9000);
    if api == 18 {
        let _ = clamp_api_versions(version, &frame);
    } else if let Ok(out) = rewrite_response(api, version, &frame, &mut map) {
        assert!(out.frame.len() >= 4);
    }
});
