//! Properties: what a client encodes is what the scanner returns, however the bytes arrive.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use bytes::BytesMut;
use proptest::prelude::*;
use throome_resp::{Limits, ReplyLimits, ReplyScanner, RequestScanner};

fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn commands() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let arg = prop::collection::vec(any::<u8>(), 0..40);
    prop::collection::vec(prop::collection::vec(arg, 1..6), 1..8)
}

/// Scans `input` delivered in chunks cut at `cuts`, returning every frame's args.
fn scan_chunked(input: &[u8], cuts: &[usize]) -> Vec<Vec<Vec<u8>>> {
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for p in points {
        buf.extend_from_slice(&input[last..p.max(last)]);
        last = p.max(last);
        while let Some(r) = s.scan(&mut buf).unwrap() {
            out.push(r.args().map(<[u8]>::to_vec).collect());
        }
    }
    assert!(buf.is_empty());
    out
}

/// A RESP3 value, encoded.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        "[a-zA-Z0-9 ]{0,12}".prop_map(|s| format!("+{s}\r\n").into_bytes()),
        "[a-zA-Z0-9 ]{0,12}".prop_map(|s| format!("-ERR {s}\r\n").into_bytes()),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..30).prop_map(|b| {
            let mut v = format!("${}\r\n", b.len()).into_bytes();
            v.extend_from_slice(&b);
            v.extend_from_slice(b"\r\n");
            v
        }),
        Just(b"$-1\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
        Just(b"#t\r\n".to_vec()),
        Just(b",3.25\r\n".to_vec()),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec![b'*', b'~', b'>']),
                prop::collection::vec(inner.clone(), 0..6)
            )
                .prop_map(|(t, items)| {
                    let mut v = vec![t];
                    v.extend_from_slice(format!("{}\r\n", items.len()).as_bytes());
                    items.iter().for_each(|i| v.extend_from_slice(i));
                    v
                }),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(|pairs| {
                let mut v = format!("%{}\r\n", pairs.len()).into_bytes();
                pairs.iter().for_each(|(k, x)| {
                    v.extend_from_slice(k);
                    v.extend_from_slice(x);
                });
                v
            }),
            (inner.clone(), inner).prop_map(|(attr_value, value)| {
                let mut v = b"|1\r\n+key\r\n".to_vec();
                v.extend_from_slice(&attr_value);
                v.extend_from_slice(&value);
                v
            }),
        ]
    })
}

proptest! {
    #[test]
    fn requests_round_trip_whatever_the_chunking(cmds in commands(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let input: Vec<u8> = cmds.iter().flat_map(|c| encode_command(c)).collect();
        prop_assert_eq!(scan_chunked(&input, &cuts), cmds);
    }

    #[test]
    fn replies_are_framed_whole_whatever_the_chunking(values in prop::collection::vec(value(), 1..6), cut in any::<usize>()) {
        let input: Vec<u8> = values.concat();
        let cut = cut % (input.len() + 1);
        let mut s = ReplyScanner::new(ReplyLimits::default());
        let mut buf = BytesMut::from(&input[..cut]);
        let mut frames = Vec::new();
        while let Some(r) = s.scan(&mut buf).unwrap() {
            frames.push(r.frame().to_vec());
        }
        buf.extend_from_slice(&input[cut..]);
        while let Some(r) = s.scan(&mut buf).unwrap() {
            frames.push(r.frame().to_vec());
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames, values);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut s = RequestScanner::new(Limits::default());
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(r)) = s.scan(&mut buf) {
            let _ = r.args().count();
            let _ = throome_resp::resolve(&r.args().collect::<Vec<_>>());
        }
        let mut s = ReplyScanner::new(ReplyLimits::default());
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = s.scan(&mut buf) {}
    }
}

/// An inline line with every argument double-quoted and every byte escaped (`\xHH`, or
/// `\"`, `\\` and plain printable bytes), as a careful telnet user would type it.
fn inline_line(args: &[Vec<u8>]) -> Vec<u8> {
    let mut line = Vec::new();
    for a in args {
        line.extend_from_slice(b" \"");
        for &b in a {
            match b {
                b'"' | b'\\' => line.extend_from_slice(&[b'\\', b]),
                b'a'..=b'z' | b'0'..=b'9' => line.push(b),
                _ => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            }
        }
        line.push(b'"');
    }
    line.extend_from_slice(b"\r\n");
    line
}

proptest! {
    #[test]
    fn quoted_inline_commands_give_back_their_arguments(cmds in commands(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let input: Vec<u8> = cmds.iter().flat_map(|c| inline_line(c)).collect();
        prop_assume!(input.len() < 60 * 1024);
        prop_assert_eq!(scan_chunked(&input, &cuts), cmds);
    }
}
