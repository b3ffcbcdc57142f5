//! What a SQL text may do to its session beyond its transaction, found without a parser:
//! one pass over the bytes (`tokens.rs` skips what cannot hold a statement: string
//! constants, quoted identifiers, comments, dollar-quoted bodies) that looks at each
//! statement's first words and at the few functions that keep state. It only has to say
//! "maybe", and which settings: the server itself then says what the state is (see
//! `state.rs`), so a false alarm costs one small query and nothing but the decision to ask
//! is trusted to the scan. `SET LOCAL`, `SET TRANSACTION` and `set_config(..., true)` end
//! with their transaction: they cause nothing.
//! Lexical rules: <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>,
//! SET: <https://www.postgresql.org/docs/current/sql-set.html>.

use super::tokens::{Token, Tokens};

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

/// Which session settings a text may change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Settings {
    #[default]
    None,
    /// These (lower-case names; the session user and role are read whenever any is).
    Named(Vec<String>),
    /// Any (`RESET ALL`, `DISCARD ALL`, a name not written out, code run on the server).
    All,
}

impl Settings {
    /// Both texts' changes.
    pub fn merge(&mut self, other: Settings) {
        *self = match (std::mem::take(self), other) {
            (Settings::All, _) | (_, Settings::All) => Settings::All,
            (Settings::None, s) | (s, Settings::None) => s,
            (Settings::Named(mut a), Settings::Named(b)) => {
                for name in b {
                    if !a.contains(&name) {
                        a.push(name);
                    }
                }
                Settings::Named(a)
            }
        };
    }

    fn name(&mut self, name: &[u8]) {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        self.merge(Settings::Named(vec![name]));
    }
}

/// What a scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    pub settings: Settings,
    /// The text may create state that pins the client (for `max_pinned`).
    pub pins: Option<Pin>,
    /// The text may make or drop state that pins: the server is asked what there is.
    pub pin_state: bool,
}

impl Effects {
    /// Whether the server should be asked anything once the transaction is over.
    pub fn any(&self) -> bool {
        self.settings != Settings::None || self.pin_state
    }

    fn pin(&mut self, pin: Pin) {
        self.pins.get_or_insert(pin);
        self.pin_state = true;
    }

    /// Code run on the server: anything may change.
    fn everything(&mut self) {
        self.settings = Settings::All;
        self.pin_state = true;
    }
}

/// Scans `sql` (one Query or Parse text, possibly several statements).
pub fn scan(sql: &[u8]) -> Effects {
    let mut effects = Effects::default();
    let mut tokens = Tokens::new(sql);
    while let Some(first) = tokens.next() {
        let Token::Word(lead) = first else {
            continue; // `;`, `(`, ...
        };
        statement(lead, &mut tokens, &mut effects);
    }
    effects
}

/// One statement, from its first word up to its `;` (consumed).
fn statement(lead: &[u8], tokens: &mut Tokens, effects: &mut Effects) {
    let is = |w: &[u8]| lead.eq_ignore_ascii_case(w);
    if is(b"set") {
        set(tokens, effects);
    } else if is(b"reset") {
        reset(tokens, effects);
    } else if is(b"listen") {
        effects.pin(Pin::Listen);
    } else if is(b"prepare") {
        effects.pin(Pin::SqlPrepare);
    } else if is(b"discard") {
        match tokens.clone().next() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(b"all") => effects.everything(),
            Some(Token::Word(w)) if w.to_ascii_lowercase().starts_with(b"temp") => {
                effects.pin_state = true
            }
            _ => {}
        }
    } else if [&b"unlisten"[..], b"close", b"deallocate", b"drop"]
        .iter()
        .any(|w| is(w))
    {
        effects.pin_state = true;
    } else if [&b"do"[..], b"call", b"load"].iter().any(|w| is(w)) {
        effects.everything();
    }
    rest(lead, tokens, effects);
}

/// The rest of a statement: temporary tables, WITH HOLD, and calls of state functions.
fn rest(lead: &[u8], tokens: &mut Tokens, effects: &mut Effects) {
    let mut previous: &[u8] = lead;
    while let Some(token) = tokens.next() {
        let word = match token {
            Token::Punct(b';') => return,
            Token::Word(w) => w,
            _ => {
                previous = b"";
                continue;
            }
        };
        let is = |w: &[u8]| word.eq_ignore_ascii_case(w);
        // CREATE [OR REPLACE] [LOCAL|GLOBAL] TEMP[ORARY] ..., SELECT ... INTO TEMP ...
        let makes_temp = [&b"create"[..], b"replace", b"local", b"global", b"into"]
            .iter()
            .any(|w| previous.eq_ignore_ascii_case(w));
        if (is(b"temp") || is(b"temporary")) && makes_temp {
            effects.pin(Pin::TempTable);
        } else if is(b"hold") && lead.eq_ignore_ascii_case(b"declare") {
            effects.pin(Pin::HoldCursor);
        } else if is(b"set_config") {
            set_config(tokens.clone(), effects);
        } else if word.len() > 11 {
            advisory(word, effects);
        }
        previous = word;
    }
}

/// `pg_advisory_lock(...)` and kin: session-level locks pin, unlocks may unpin, those of
/// a transaction end with it.
fn advisory(word: &[u8], effects: &mut Effects) {
    let lower = word.to_ascii_lowercase();
    if !(lower.starts_with(b"pg_advisory_") || lower.starts_with(b"pg_try_advisory_")) {
        return;
    }
    let has = |part: &[u8]| lower.windows(part.len()).any(|w| w == part);
    if has(b"xact") {
        return;
    }
    match has(b"unlock") {
        true => effects.pin_state = true,
        false => effects.pin(Pin::AdvisoryLock),
    }
}

/// `SET [SESSION] name ...`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `SET TIME ZONE`,
/// `SET NAMES`, `SET SCHEMA`; `SET LOCAL`, `SET TRANSACTION` and `SET CONSTRAINTS` change
/// nothing past the transaction.
fn set(tokens: &mut Tokens, effects: &mut Effects) {
    let mut name = tokens.next();
    if word_is(&name, b"session") {
        name = tokens.next();
        if word_is(&name, b"characteristics") {
            for setting in ["isolation", "read_only", "deferrable"] {
                effects
                    .settings
                    .name(format!("default_transaction_{setting}").as_bytes());
            }
            return;
        }
    }
    let local = [&b"local"[..], b"transaction", b"constraints"];
    if local.iter().any(|w| word_is(&name, w)) {
        return;
    }
    if word_is(&name, b"time") {
        return effects.settings.name(b"timezone");
    }
    let alias = [
        (&b"names"[..], &b"client_encoding"[..]),
        (b"schema", b"search_path"),
        (b"xml", b"xmloption"),
        (b"role", b"role"),
        (b"authorization", b"session_authorization"),
    ];
    for (word, setting) in alias {
        if word_is(&name, word) {
            return effects.settings.name(setting);
        }
    }
    setting_name(name, tokens, effects);
}

/// `RESET name`, `RESET ALL`, `RESET ROLE`, `RESET SESSION AUTHORIZATION`.
fn reset(tokens: &mut Tokens, effects: &mut Effects) {
    let name = tokens.next();
    if word_is(&name, b"all") {
        effects.settings = Settings::All;
    } else if word_is(&name, b"session") {
        effects.settings.name(b"session_authorization");
    } else if word_is(&name, b"time") {
        effects.settings.name(b"timezone");
    } else {
        setting_name(name, tokens, effects);
    }
}

/// A setting's name as SET and RESET take it: a word or quoted name, `.`-qualified for
/// custom settings.
fn setting_name(first: Option<Token>, tokens: &mut Tokens, effects: &mut Effects) {
    let mut name = match first {
        Some(Token::Word(w)) => w.to_vec(),
        Some(Token::Quoted(q)) => q.to_vec(),
        _ => return effects.settings = Settings::All,
    };
    while tokens.clone().next() == Some(Token::Punct(b'.')) {
        tokens.next();
        match tokens.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => {
                name.push(b'.');
                name.extend_from_slice(w);
            }
            _ => return effects.settings = Settings::All,
        }
    }
    effects.settings.name(&name);
}

/// `set_config('name', value, is_local)`: the name when it is a plain literal, nothing when
/// `is_local` is the literal `true`, else any setting.
fn set_config(mut tokens: Tokens, effects: &mut Effects) {
    if tokens.next() != Some(Token::Punct(b'(')) {
        return;
    }
    let name = match (tokens.next(), tokens.clone().next()) {
        (Some(Token::Str(name)), Some(Token::Punct(b','))) if !name.contains(&b'\'') => Some(name),
        _ => None,
    };
    if name.is_some() {
        tokens.next(); // its comma
    }
    // Past the value (any expression) to the third argument, at the call's own depth.
    let mut depth = 0usize;
    let mut commas = usize::from(name.is_some());
    let mut third = None;
    for token in tokens.by_ref() {
        match token {
            Token::Punct(b'(' | b'[') => depth += 1,
            Token::Punct(b')' | b']') if depth == 0 => break,
            Token::Punct(b')' | b']') => depth -= 1,
            Token::Punct(b',') if depth == 0 => {
                commas += 1;
                if commas == 2 {
                    third = tokens.next();
                    break;
                }
            }
            Token::Punct(b';') => break,
            _ => {}
        }
    }
    match (third, name) {
        (Some(Token::Word(w)), _) if w.eq_ignore_ascii_case(b"true") => {}
        (_, Some(name)) => effects.settings.name(name),
        (_, None) => effects.settings = Settings::All,
    }
}

fn word_is(token: &Option<Token>, word: &[u8]) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(sql: &str) -> Settings {
        scan(sql.as_bytes()).settings
    }

    fn named(names: &[&str]) -> Settings {
        Settings::Named(names.iter().map(|n| n.to_string()).collect())
    }

    fn pins(sql: &str) -> Option<Pin> {
        scan(sql.as_bytes()).pins
    }

    #[test]
    fn settings_are_named_where_the_text_names_them() {
        let cases = [
            ("SET ROLE r1", named(&["role"])),
            ("  set search_path = s1", named(&["search_path"])),
            ("SET SESSION work_mem TO '1MB'", named(&["work_mem"])),
            ("set \"TimeZone\" = 'UTC'", named(&["timezone"])),
            ("SET app.tenant = '7'", named(&["app.tenant"])),
            ("SET TIME ZONE 'UTC'", named(&["timezone"])),
            ("SET NAMES 'UTF8'", named(&["client_encoding"])),
            (
                "-- x\nSET SESSION AUTHORIZATION u",
                named(&["session_authorization"]),
            ),
            (
                "SELECT set_config('work_mem', '64MB', false)",
                named(&["work_mem"]),
            ),
            (
                "select pg_catalog.set_config('a.b', 'c', is_local => false)",
                named(&["a.b"]),
            ),
            (
                "SELECT 1; SET statement_timeout = '123s'; RESET lock_timeout",
                named(&["statement_timeout", "lock_timeout"]),
            ),
            ("/* hi */ RESET ALL", Settings::All),
            ("DISCARD ALL", Settings::All),
            ("DO $$ BEGIN PERFORM 1; END $$", Settings::All),
            ("CALL p()", Settings::All),
            ("SELECT set_config($1, $2, false)", Settings::All),
            ("SELECT set_config('a', $1, $2)", named(&["a"])),
        ];
        for (sql, want) in cases {
            assert_eq!(settings(sql), want, "{sql}");
        }
    }

    #[test]
    fn what_ends_with_the_transaction_is_not_state() {
        for sql in [
            "SET LOCAL work_mem = '1MB'",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TRANSACTION READ ONLY",
            "SET CONSTRAINTS ALL DEFERRED",
            "SELECT set_config('request.jwt', $1, true), set_config('role', 'anon', TRUE)",
            "SELECT pg_advisory_xact_lock(1)",
        ] {
            let e = scan(sql.as_bytes());
            let characteristics = sql.contains("CHARACTERISTICS");
            assert!(
                (!e.any() || characteristics) && e.pins.is_none(),
                "{sql}: {e:?}"
            );
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
            "SELECT temp, temporary FROM weather",
            "CREATE TABLE t (temp int)",
            "BEGIN",
            "",
        ] {
            let e = scan(sql.as_bytes());
            assert!(!e.any() && e.pins.is_none(), "{sql}: {e:?}");
        }
    }

    #[test]
    fn what_pins_is_named_and_what_unpins_is_seen() {
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
        assert_eq!(pins("SELECT 'LISTEN x'; SELECT 2"), None);
        for sql in [
            "SELECT pg_advisory_unlock(7)",
            "SELECT pg_advisory_unlock_all()",
            "DROP TABLE t",
            "DISCARD TEMP",
            "CLOSE ALL",
            "UNLISTEN *",
            "DEALLOCATE p",
        ] {
            let e = scan(sql.as_bytes());
            assert!(e.pin_state && e.pins.is_none(), "{sql}: {e:?}");
        }
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
            "SET",
            "SET a.",
            "SELECT set_config(",
        ] {
            let _ = scan(sql.as_bytes());
        }
        assert_eq!(settings("SELECT $a$ x $a$; SET x = 1"), named(&["x"]));
    }
}
