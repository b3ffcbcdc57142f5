use super::*;

fn replies(input: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ProtocolError> {
    let mut s = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(r) = s.scan(&mut buf)? {
        out.push((r.kind(), r.frame().to_vec()));
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

#[test]
fn resp2_types() {
    let input =
        b"+OK\r\n-ERR bad\r\n:42\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:1\r\n*-1\r\n*0\r\n";
    let kinds: Vec<u8> = replies(input).unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(kinds, b"+-:$$***".to_vec());
}

#[test]
fn resp3_types_maps_sets_pushes_and_attributes() {
    let input = b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n~1\r\n,1.5\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n#t\r\n(123\r\n!3\r\nerr\r\n=7\r\ntxt:abc\r\n";
    let got = replies(input).unwrap();
    let kinds: Vec<u8> = got.iter().map(|r| r.0).collect();
    assert_eq!(kinds, b"%~>$#(!=".to_vec());
    // The attribute travels with the value it annotates.
    assert_eq!(got[3].1, b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n".to_vec());
}

#[test]
fn split_anywhere_gives_the_same_replies() {
    let input: &[u8] = b"*3\r\n$3\r\nfoo\r\n%1\r\n+k\r\n*2\r\n:1\r\n:2\r\n$-1\r\n+OK\r\n";
    let whole = replies(input).unwrap();
    for cut in 0..input.len() {
        let mut s = ReplyScanner::new(ReplyLimits::default());
        let mut buf = BytesMut::from(&input[..cut]);
        let mut got = Vec::new();
        while let Some(r) = s.scan(&mut buf).unwrap() {
            got.push((r.kind(), r.frame().to_vec()));
        }
        buf.extend_from_slice(&input[cut..]);
        while let Some(r) = s.scan(&mut buf).unwrap() {
            got.push((r.kind(), r.frame().to_vec()));
        }
        assert_eq!(got, whole, "cut at {cut}");
    }
}

#[test]
fn errors_and_limits() {
    assert_eq!(
        replies(b"?x\r\n"),
        Err(ProtocolError::UnexpectedReplyType(b'?'))
    );
    // Open aggregates that cannot share an entry are bounded.
    let wide = b"*2\r\n".repeat(200);
    let limits = ReplyLimits {
        max_depth: 128,
        ..ReplyLimits::default()
    };
    let mut s = ReplyScanner::new(limits);
    assert_eq!(
        s.scan(&mut BytesMut::from(&wide[..])),
        Err(ProtocolError::ReplyTooDeep(128))
    );
    let mut s = ReplyScanner::new(ReplyLimits::default());
    let r = s
        .scan(&mut BytesMut::from(&b"-MOVED 3999 127.0.0.1:6381\r\n"[..]))
        .unwrap()
        .unwrap();
    assert!(r.is_error());
    assert_eq!(r.error_line(), Some(&b"MOVED 3999 127.0.0.1:6381"[..]));
}

/// Nesting as deep as a Lua script's reply (thousands of one-element arrays, some wider
/// levels and attributes among them) frames whole, also when it arrives a byte at a time.
#[test]
fn deep_nesting_frames_whole() {
    let depth = 100_000;
    let mut reply = b"*1\r\n".repeat(depth);
    reply.extend_from_slice(b"*2\r\n:1\r\n*1\r\n|1\r\n+a\r\n+b\r\n*1\r\n$1\r\nx\r\n");
    reply.extend_from_slice(b"+after\r\n");
    let limits = ReplyLimits {
        max_depth: 8,
        ..ReplyLimits::default()
    };
    let mut s = ReplyScanner::new(limits);
    let mut buf = BytesMut::from(&reply[..]);
    let first = s.scan(&mut buf).unwrap().unwrap();
    assert_eq!(first.frame().len(), reply.len() - b"+after\r\n".len());
    assert_eq!(
        s.scan(&mut buf).unwrap().unwrap().frame(),
        &b"+after\r\n"[..]
    );
    let mut s = ReplyScanner::new(limits);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &reply[..] {
        buf.extend_from_slice(&[b]);
        while let Some(r) = s.scan(&mut buf).unwrap() {
            got.push(r.frame().len());
        }
    }
    assert_eq!(got, vec![reply.len() - 8, 8]);
}
