//! Client side: framing, request headers, the Produce acks check, the KIP-511 client
//! software fields and the SASL requests the proxy answers itself (and the broker answers
//! to its own login) on arbitrary bytes: never panics, never yields a frame over the limit.
//! The cut-through splitter, fed the same bytes in reads of varying size and passing or
//! holding each big frame as the input decides, gives back exactly the bytes it was fed
//! (up to the first framing error), in order.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use throome_kafka::{
    FrameScanner, FrameSplitter, Piece, RequestHeader, expects_response,
    needs_api_versions_fallback, sasl,
};

const MAX: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let scanner = FrameScanner::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(f)) = scanner.next(&mut buf) {
        assert!(f.len() <= 4 + 64 * 1024);
        if let Ok(h) = RequestHeader::parse(&f) {
            let _ = expects_response(&h, &f);
            let _ = needs_api_versions_fallback(&h, &f);
            let _ = sasl::handshake_mechanism(&h, &f);
            let _ = sasl::authenticate_bytes(&h, &f);
        }
        let _ = sasl::read_response(sasl::SASL_AUTHENTICATE, &f);
    }
    split(data);
});

fn split(data: &[u8]) {
    let mut s = FrameSplitter::new(FrameScanner::new(MAX));
    let (mut buf, mut out, mut fed) = (BytesMut::new(), Vec::new(), 0);
    let mut step = 1 + data.first().copied().unwrap_or(0) as usize * 37;
    while fed < data.len() {
        let to = (fed + step).min(data.len());
        buf.extend_from_slice(&data[fed..to]);
        fed = to;
        step = step * 7 % 5003 + 1;
        loop {
            match s.next(&mut buf) {
                Ok(Some(Piece::Whole(f))) => {
                    assert!(f.len() <= 4 + MAX);
                    out.extend_from_slice(&f);
                }
                Ok(Some(Piece::Rest(b))) => out.extend_from_slice(&b),
                Ok(Some(Piece::Big { total })) => {
                    assert!(total <= 4 + MAX && buf.len() < total);
                    if out.len() % 2 == 0 {
                        out.extend_from_slice(&s.pass(&mut buf, total));
                    } else {
                        s.hold(&mut buf, total);
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert_eq!(out[..], data[..out.len()]);
    assert_eq!(out.len() + buf.len(), data.len());
}
