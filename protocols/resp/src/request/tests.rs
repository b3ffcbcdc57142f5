use super::*;

fn scan_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(r) = s.scan(&mut buf)? {
        out.push(r.args().map(<[u8]>::to_vec).collect());
    }
    Ok(out)
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_and_inline() {
    let got = scan_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nSET  a \"b c\"\r\n").unwrap();
    assert_eq!(
        got,
        vec![
            strs(&["GET", "k"]),
            strs(&["PING"]),
            strs(&["SET", "a", "b c"])
        ]
    );
}

#[test]
fn empty_lines_and_empty_multibulks_are_skipped() {
    assert_eq!(
        scan_all(b"\r\n*0\r\n*-1\r\nPING\n").unwrap(),
        vec![strs(&["PING"])]
    );
}

#[test]
fn binary_safe_arguments() {
    let got = scan_all(b"*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n").unwrap();
    assert_eq!(got, vec![vec![b"SET".to_vec(), b"a\r\nb".to_vec()]]);
}

#[test]
fn incomplete_frames_wait_and_resume() {
    let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::new();
    for (i, b) in full.iter().enumerate() {
        buf.extend_from_slice(&[*b]);
        let r = s.scan(&mut buf).unwrap();
        if i + 1 < full.len() {
            assert!(r.is_none(), "complete too early at {i}");
        } else {
            let r = r.unwrap();
            assert_eq!(r.frame().as_ref(), full);
            assert_eq!(r.argc(), 3);
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn errors_match_redis() {
    assert_eq!(
        scan_all(b"*x\r\n"),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    assert_eq!(
        scan_all(b"*1\r\n:1\r\n"),
        Err(ProtocolError::ExpectedBulk(':'))
    );
    assert_eq!(
        scan_all(b"*1\r\n$-3\r\n"),
        Err(ProtocolError::InvalidBulkLength)
    );
    assert_eq!(
        scan_all(b"*1\r\n$1\r\nab\r\n"),
        Err(ProtocolError::BulkNotTerminated)
    );
    assert_eq!(
        scan_all(b"SET \"a\r\n"),
        Err(ProtocolError::UnbalancedQuotes)
    );
    assert_eq!(
        scan_all(&[b'*'; 64]),
        Err(ProtocolError::TooBigMultibulkCount)
    );
    assert_eq!(
        scan_all(&[b'a'; 70 * 1024]),
        Err(ProtocolError::TooBigInline)
    );
}

#[test]
fn limits_are_enforced_before_buffering() {
    let limits = Limits {
        max_bulk_len: 10,
        max_args: 3,
        ..Limits::default()
    };
    let mut s = RequestScanner::new(limits);
    let mut buf = BytesMut::from(&b"*4\r\n"[..]);
    assert_eq!(s.scan(&mut buf), Err(ProtocolError::InvalidMultibulkLength));
    let mut s = RequestScanner::new(limits);
    let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
    assert_eq!(s.scan(&mut buf), Err(ProtocolError::InvalidBulkLength));
    let mut s = RequestScanner::new(Limits {
        max_request_len: 20,
        ..Limits::default()
    });
    let mut buf = BytesMut::from(&b"*1\r\n$100\r\n"[..]);
    assert_eq!(s.scan(&mut buf), Err(ProtocolError::RequestTooLarge(20)));
}

#[test]
fn arg_bytes_share_the_frame() {
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
    let r = s.scan(&mut buf).unwrap().unwrap();
    let key = r.arg_bytes(1).unwrap();
    assert_eq!(key.as_ref(), b"key");
    assert_eq!(r.name(), b"GET");
    assert!(r.arg(2).is_none());
}

/// sdssplitargs' rules, case by case (redis-cli and telnet users type these).
#[test]
fn inline_quotes_and_escapes_split_as_redis_does() {
    let one = |line: &str| scan_all(format!("{line}\r\n").as_bytes());
    let ok = |line: &str| one(line).unwrap().remove(0);
    assert_eq!(ok(r#"SET k "a\x41\n""#), strs(&["SET", "k", "aA\n"]));
    assert_eq!(ok(r#"SET k "a\"b\\""#), strs(&["SET", "k", "a\"b\\"]));
    assert_eq!(ok(r#"SET k "\t\r\b\a\q""#)[2], b"\t\r\x08\x07q".to_vec());
    assert_eq!(ok(r#"SET k "\xZZ""#)[2], b"xZZ".to_vec());
    assert_eq!(ok(r"SET k 'it\'s'"), strs(&["SET", "k", "it's"]));
    assert_eq!(ok(r"SET k 'a\nb'"), strs(&["SET", "k", r"a\nb"]));
    assert_eq!(ok(r#"SET k a"b c""#), strs(&["SET", "k", "ab c"]));
    assert_eq!(ok(r#"SET k """#), strs(&["SET", "k", ""]));
    assert_eq!(ok("SET\tk \x0bv"), strs(&["SET", "k", "v"]));
    assert_eq!(
        scan_all(b"GET k\0 ignored\r\n").unwrap(),
        vec![strs(&["GET", "k"])]
    );
    for bad in [
        r#"SET k "ab"c"#,
        r"SET k 'ab'c",
        r#"SET k "open"#,
        r"SET k 'open",
    ] {
        assert_eq!(one(bad), Err(ProtocolError::UnbalancedQuotes), "{bad}");
    }
}

#[test]
fn inline_commands_travel_as_multibulk() {
    let mut s = RequestScanner::new(Limits::default());
    let mut buf = BytesMut::from(&b"set k \"a b\"\n"[..]);
    let r = s.scan(&mut buf).unwrap().unwrap();
    assert!(r.is_inline());
    assert_eq!(
        r.frame().as_ref(),
        b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$3\r\na b\r\n"
    );
    assert_eq!(r.name(), b"set");
}
