//! Read/write split: which work may run on a replica. Conservative: one SELECT outside a
//! transaction that locks nothing and calls no known volatile function, or a transaction
//! opened read-only.

use throome_pgwire::{Frame, msg};

/// Functions whose call makes a SELECT write (sequences, advisory locks, ...).
const VOLATILE: [&str; 6] = [
    "nextval",
    "setval",
    "pg_advisory_lock",
    "pg_advisory_xact_lock",
    "lo_create",
    "txid_current",
];

/// Whether a client's first message of a transaction may go to a replica.
pub fn is_read_only(frame: &Frame) -> bool {
    if frame.tag() != msg::front::QUERY {
        return false;
    }
    let Some(sql) = msg::query(frame.body()) else {
        return false;
    };
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
        is_read_only(&build::frame(b'Q', format!("{sql}\0").as_bytes()))
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
}
