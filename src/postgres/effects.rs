//! What a SQL text may do to its session beyond its transaction, found without a parser:
//! one pass over the bytes that skips what cannot hold a statement (string constants,
//! quoted identifiers, comments, dollar-quoted bodies) and looks at each statement's first
//! word and at the few function names that keep state. It only has to say "maybe": the
//! server itself then says what state there is (see `state.rs`), so a false alarm costs one
//! query and nothing is trusted to the scan but the decision to ask.
//! Lexical rules: <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>.

/// Why a statement may tie a client to its server: state the proxy cannot replay elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    TempTable,
    AdvisoryLock,
    Listen,
    HoldCursor,
    SqlPrepare,
}

impl Pin {
    /// What pins, for an error message.
    pub fn what(self) -> &'static str {
        match self {
            Pin::TempTable => "a temporary table",
            Pin::AdvisoryLock => "a session-level advisory lock",
            Pin::Listen => "LISTEN",
            Pin::HoldCursor => "a WITH HOLD cursor",
            Pin::SqlPrepare => "a prepared statement of SQL PREPARE",
        }
    }
}

/// What a scan found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Effects {
    /// The text may change session state (settings, roles, or what `Pin` lists, made or
    /// dropped): the server is asked what its state is once the transaction is over.
    pub state: bool,
    /// The text may create state that pins the client (for `max_pinned`).
    pub pins: Option<Pin>,
}

/// First words of statements that may change session state.
const STATE_WORDS: [&[u8]; 13] = [
    b"set",
    b"reset",
    b"listen",
    b"unlisten",
    b"declare",
    b"prepare",
    b"deallocate",
    b"discard",
    b"close",
    b"drop",
    // Code that runs on the server may do any of it.
    b"do",
    b"call",
    b"load",
];

/// Scans `sql` (one Query or Parse text, possibly several statements).
pub fn scan(sql: &[u8]) -> Effects {
    let mut effects = Effects::default();
    let mut words = Words::default();
    let mut i = 0;
    while i < sql.len() {
        let b = sql[i];
        i = match b {
            b'\'' => skip_quoted(sql, i + 1, b'\'', false),
            b'"' => skip_quoted(sql, i + 1, b'"', false),
            b'-' if sql.get(i + 1) == Some(&b'-') => sql[i..]
                .iter()
                .position(|c| *c == b'\n')
                .map_or(sql.len(), |n| i + n + 1),
            b'/' if sql.get(i + 1) == Some(&b'*') => skip_comment(sql, i + 2),
            b'$' => skip_dollar(sql, i),
            b';' => {
                words = Words::default();
                i + 1
            }
            b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                let end = i + sql[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | 0x80..))
                    .count()
                    .max(1);
                let word = &sql[i..end];
                // E'...' is a string with backslash escapes.
                if word.eq_ignore_ascii_case(b"e") && sql.get(end) == Some(&b'\'') {
                    skip_quoted(sql, end + 1, b'\'', true)
                } else {
                    words.on_word(word, &mut effects);
                    end
                }
            }
            _ => i + 1,
        };
    }
    effects
}

/// The words of the statement being scanned, as far as they matter.
#[derive(Default)]
struct Words<'a> {
    first: Option<&'a [u8]>,
    previous: &'a [u8],
}

impl<'a> Words<'a> {
    /// One keyword or identifier of the statement.
    fn on_word(&mut self, word: &'a [u8], effects: &mut Effects) {
        let is = |w: &[u8]| word.eq_ignore_ascii_case(w);
        let previous = std::mem::replace(&mut self.previous, word);
        let Some(lead) = self.first else {
            self.first = Some(word);
            if STATE_WORDS.iter().any(|w| is(w)) {
                effects.state = true;
                if is(b"listen") {
                    effects.pins.get_or_insert(Pin::Listen);
                } else if is(b"prepare") {
                    effects.pins.get_or_insert(Pin::SqlPrepare);
                }
            }
            return;
        };
        // CREATE [OR REPLACE] [LOCAL|GLOBAL] TEMP[ORARY] ..., SELECT ... INTO TEMP ...
        let makes_temp = [&b"create"[..], b"replace", b"local", b"global", b"into"]
            .iter()
            .any(|w| previous.eq_ignore_ascii_case(w));
        if (is(b"temp") || is(b"temporary")) && makes_temp {
            effects.state = true;
            effects.pins.get_or_insert(Pin::TempTable);
        } else if is(b"hold") && lead.eq_ignore_ascii_case(b"declare") {
            effects.pins.get_or_insert(Pin::HoldCursor);
        } else if is(b"set_config") {
            effects.state = true;
        } else if word.len() > 11 {
            let lower = word.to_ascii_lowercase();
            if lower.starts_with(b"pg_advisory_") || lower.starts_with(b"pg_try_advisory_") {
                effects.state = true;
                let session_lock = !contains(&lower, b"xact") && !contains(&lower, b"unlock");
                if session_lock {
                    effects.pins.get_or_insert(Pin::AdvisoryLock);
                }
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Past the closing `quote` of a string or quoted identifier that starts at `i` (a doubled
/// quote stands for one; with `backslash`, a backslash escapes the next byte).
fn skip_quoted(sql: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
    while i < sql.len() {
        match sql[i] {
            b'\\' if backslash => i += 2,
            c if c == quote => {
                if sql.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            }
            _ => i += 1,
        }
    }
    sql.len()
}

/// Past the end of a block comment whose body starts at `i` (they nest).
fn skip_comment(sql: &[u8], mut i: usize) -> usize {
    let mut depth = 1usize;
    while i < sql.len() {
        match (sql[i], sql.get(i + 1)) {
            (b'/', Some(b'*')) => (depth, i) = (depth + 1, i + 2),
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    sql.len()
}

/// At a `$`: past a dollar-quoted string (`$tag$ ... $tag$`) if one starts here, else past
/// the `$` (a parameter such as `$1`).
fn skip_dollar(sql: &[u8], i: usize) -> usize {
    let tag_len = sql[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c >= 0x80)
        .count();
    let tag_end = i + 1 + tag_len;
    let is_tag =
        sql.get(tag_end) == Some(&b'$') && !sql.get(i + 1).is_some_and(|c| c.is_ascii_digit());
    if !is_tag {
        return i + 1;
    }
    let tag = &sql[i..=tag_end];
    let body = tag_end + 1;
    match sql[body..].windows(tag.len()).position(|w| w == tag) {
        Some(at) => body + at + tag.len(),
        None => sql.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sql: &str) -> bool {
        scan(sql.as_bytes()).state
    }

    fn pins(sql: &str) -> Option<Pin> {
        scan(sql.as_bytes()).pins
    }

    #[test]
    fn statements_that_keep_state_are_seen() {
        for sql in [
            "SET ROLE r1",
            "  set search_path = s1",
            "/* hi */ RESET ALL",
            "-- x\nSET SESSION AUTHORIZATION u",
            "SELECT set_config('work_mem', '64MB', false)",
            "select pg_catalog.set_config('a.b', 'c', false)",
            "SELECT 1; SET statement_timeout = '123s'",
            "DISCARD ALL",
            "DO $$ BEGIN PERFORM 1; END $$",
            "CALL p()",
            "DROP TABLE t",
            "SELECT pg_advisory_unlock_all()",
            "CLOSE ALL",
            "UNLISTEN *",
        ] {
            assert!(state(sql), "{sql}");
        }
    }

    #[test]
    fn quoting_comments_and_bodies_do_not_fool_it() {
        for sql in [
            "SELECT 'SET ROLE r1'",
            "SELECT 1 -- ; SET x = 1",
            "SELECT /* ; set x = 1 /* nested */ ; set y */ 1",
            "SELECT \"set_config\" FROM t",
            "SELECT E'it\\'s; SET x' AS a",
            "SELECT 'it''s; SET x'",
            "CREATE FUNCTION f() RETURNS int AS $body$ SET x = 1; SELECT set_config('a','b',false) $body$ LANGUAGE sql",
            "SELECT $1::text, $2",
            "UPDATE t SET x = 1",
            "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
            "SELECT pg_advisory_xact_lock(1)",
            "SELECT temp, temporary FROM weather",
            "CREATE TABLE t (temp int)",
            "BEGIN",
            "",
        ] {
            let e = scan(sql.as_bytes());
            let ok = !e.state || sql.contains("pg_advisory_xact_lock");
            assert!(ok && e.pins.is_none(), "{sql}: {e:?}");
        }
    }

    #[test]
    fn what_pins_is_named() {
        assert_eq!(pins("CREATE TEMP TABLE t(x int)"), Some(Pin::TempTable));
        assert_eq!(
            pins("create local temporary table t as select 1"),
            Some(Pin::TempTable)
        );
        assert_eq!(pins("SELECT 1 INTO TEMP t"), Some(Pin::TempTable));
        assert_eq!(pins("SELECT pg_advisory_lock(7)"), Some(Pin::AdvisoryLock));
        assert_eq!(
            pins("select pg_try_advisory_lock_shared(1, 2)"),
            Some(Pin::AdvisoryLock)
        );
        assert_eq!(pins("LISTEN ch"), Some(Pin::Listen));
        assert_eq!(
            pins("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
            Some(Pin::HoldCursor)
        );
        assert_eq!(pins("DECLARE c CURSOR FOR SELECT 1"), None);
        assert_eq!(pins("PREPARE p AS SELECT 1"), Some(Pin::SqlPrepare));
        assert_eq!(pins("SELECT pg_advisory_unlock(7)"), None);
        assert_eq!(pins("SELECT 'LISTEN x'; SELECT 2"), None);
    }

    #[test]
    fn unterminated_text_ends_the_scan() {
        for sql in [
            "SELECT 'abc",
            "SELECT $a$ x",
            "SELECT /* x",
            "SELECT \"x",
            "$",
            "E'",
        ] {
            let _ = scan(sql.as_bytes());
        }
        assert!(state("SELECT $a$ x $a$; SET x = 1"));
    }
}
