//! Read/write split: which work may run on a replica. Conservative: one SELECT outside a
//! transaction that locks nothing and calls no known volatile function, or a transaction
//! opened read-only.

use bytes::Bytes;
use throome_pgwire::{Frame, msg};

use super::statements::Statements;

/// Functions whose call makes a SELECT write (sequences, advisory locks, ...).
const VOLATILE: [&str; 6] = [
    "nextval",
    "setval",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "lo_create",
    "txid_current",
];

/// The SQL a client's first message of a transaction runs: a Query's text, a Parse's, or
/// for a Bind of a named statement the text it was prepared with.
pub fn first_sql(frame: &Frame, statements: &Statements) -> Option<Bytes> {
    let body = frame.body();
    match frame.tag() {
        msg::front::QUERY => msg::query(body).map(Bytes::copy_from_slice),
        msg::front::PARSE => msg::parse(body).map(|(_, q, _)| Bytes::copy_from_slice(q)),
        msg::front::BIND => {
            let (_, name, _) = msg::bind(body)?;
            let st = statements.get(name)?;
            let (_, q, _) = msg::parse(st.parse.get(5..)?)?;
            Some(Bytes::copy_from_slice(q))
        }
        _ => None,
    }
}

/// Whether SQL that starts a transaction may run on a replica.
pub fn is_read_only(sql: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(sql) else {
        return false;
    };
    let lower = text.to_ascii_lowercase();
    let single = lower.trim_end().trim_end_matches(';');
    if single.contains(';') {
        return false;
    }
    match msg::first_keyword(sql).as_str() {
        "SELECT" => {
            ![
                " for update",
                " for share",
                " for no key update",
                " for key share",
                " into ",
            ]
            .iter()
            .any(|w| single.contains(w))
                && !VOLATILE.iter().any(|f| single.contains(f))
        }
        "BEGIN" | "START" => {
            let words: Vec<&str> = single.split_whitespace().collect();
            words.windows(2).any(|w| w == ["read", "only"])
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throome_pgwire::build;

    fn ro(sql: &str) -> bool {
        let frame = build::frame(b'Q', format!("{sql}\0").as_bytes());
        let text = first_sql(&frame, &Statements::default()).unwrap();
        is_read_only(&text)
    }

    #[test]
    fn only_plain_reads_and_read_only_transactions() {
        assert!(ro("SELECT 1"));
        assert!(ro("  /* c */ select * from t where id = 1;"));
        assert!(ro("BEGIN READ ONLY"));
        assert!(ro(
            "start transaction isolation level repeatable read, read only"
        ));
        assert!(!ro("SELECT * FROM t FOR UPDATE"));
        assert!(!ro("SELECT nextval('s')"));
        assert!(!ro("SELECT 1; DELETE FROM t"));
        assert!(!ro("SELECT * INTO t2 FROM t"));
        assert!(!ro("BEGIN"));
        assert!(!ro("INSERT INTO t VALUES (1)"));
    }

    #[test]
    fn extended_protocol_reads_are_recognised_too() {
        let mut statements = Statements::default();
        let parse = build::parse(b"", b"SELECT $1::int", b"\0\0");
        let frame = build::frame(b'P', &parse[5..]);
        assert!(is_read_only(&first_sql(&frame, &statements).unwrap()));
        statements.parse(b"s1", b"UPDATE t SET x = 1", b"\0\0");
        let bind = build::bind(b"", b"s1", b"\0\0\0\0\0\0");
        let frame = build::frame(b'B', &bind[5..]);
        assert_eq!(
            first_sql(&frame, &statements).as_deref(),
            Some(&b"UPDATE t SET x = 1"[..])
        );
        assert!(!is_read_only(b"UPDATE t SET x = 1"));
    }
}
