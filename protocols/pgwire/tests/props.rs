//! Properties: what the builders write frames back to the same messages, split anywhere;
//! arbitrary bytes never panic the framers or the body parsers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use proptest::prelude::*;
use throome_pgwire::{FrameScanner, Startup, build, msg, scan_startup};

fn message() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        prop::sample::select(b"QPBDESHXpdcfC".to_vec()),
        prop::collection::vec(any::<u8>(), 0..300),
    )
}

proptest! {
    #[test]
    fn framing_round_trips_however_the_bytes_arrive(
        msgs in prop::collection::vec(message(), 1..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire: Vec<u8> = msgs.iter().flat_map(|(t, b)| build::message(*t, b).to_vec()).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let scanner = FrameScanner::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points {
            buf.extend_from_slice(&wire[at..p]);
            at = p;
            while let Some(f) = scanner.scan(&mut buf).unwrap() {
                got.push((f.tag(), f.body().to_vec()));
            }
        }
        prop_assert_eq!(got, msgs);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn startup_round_trips(params in prop::collection::vec(("[a-z_]{1,12}", "[ -~]{0,20}"), 0..6)) {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut buf = BytesMut::from(&build::startup(&pairs)[..]);
        let got = scan_startup(&mut buf).unwrap().unwrap();
        let Startup::Startup { major, minor, params: got } = got else { panic!("not a startup") };
        prop_assert_eq!((major, minor), (3, 0));
        prop_assert_eq!(got, params);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 5usize..1024) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = scan_startup(&mut buf);
        let scanner = FrameScanner::new(max);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(f)) = scanner.scan(&mut buf) {
            prop_assert!(f.bytes().len() <= max);
            let body = f.body();
            let _ = (msg::parse(body), msg::bind(body), msg::target(body), msg::query(body));
            let _ = (msg::ready_status(body), msg::backend_key(body), msg::parameter_status(body));
            let _ = (msg::auth_request(body), msg::fields(body).count(), msg::first_keyword(body));
        }
    }
}

#[test]
fn lengths_are_checked_before_anything_is_buffered() {
    let scanner = FrameScanner::new(1024);
    // A declared length under 4 and one over the limit fail on the header alone.
    for header in [
        &b"Q\0\0\0\x03"[..],
        &b"Q\x7f\xff\xff\xff"[..],
        &b"Q\xff\xff\xff\xff"[..],
    ] {
        assert!(
            scanner.scan(&mut BytesMut::from(header)).is_err(),
            "{header:?}"
        );
    }
    assert!(scan_startup(&mut BytesMut::from(&b"\0\0\0\x04"[..])).is_err());
    assert!(scan_startup(&mut BytesMut::from(&b"\x7f\0\0\0"[..])).is_err());
    // A cancel request (3.0: 4-byte key) and an SSLRequest.
    let mut buf = BytesMut::from(&build::cancel_request(42, b"abcd")[..]);
    assert!(matches!(
        scan_startup(&mut buf),
        Ok(Some(Startup::Cancel { pid: 42, .. }))
    ));
    let mut buf = BytesMut::from(&b"\0\0\0\x08\x04\xd2\x16\x2f"[..]);
    assert_eq!(scan_startup(&mut buf), Ok(Some(Startup::Ssl)));
}
