//! Named prepared statements in transaction pooling (PgBouncer >= 1.21 semantics): a client's
//! statement is known to the proxy by the client's name, and prepared on a server under a name
//! derived from its text and parameter types, so any client's identical statement reuses it
//! and any server can be given it again before the client uses it there. A server's copy
//! serves a client only if it was prepared after the client's Parse, so what the client
//! is told about it matches the schema as the client saw it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use throome_pgwire::build;

/// Most statements one client may keep prepared (a bound on proxy memory per client).
pub const MAX_PER_CLIENT: usize = 10_000;

#[derive(Debug)]
pub struct Statement {
    /// The server-side name.
    pub name: Bytes,
    /// Running it drops the server's prepared statements (`DEALLOCATE`, `DISCARD`).
    pub destroys: bool,
    /// The Parse message under that name, ready to send to any server.
    pub parse: Bytes,
    /// When the client parsed it (`prepared::next_generation`): a server's copy older than
    /// that is prepared again before it serves this client.
    pub born: u64,
}

#[derive(Default)]
pub struct Statements {
    by_client_name: HashMap<Bytes, Arc<Statement>>,
    /// Server-side name -> client name of statements the client no longer has (closed, or a
    /// Parse the server skipped), so that a message still in flight with that name gets
    /// its error in the client's terms; a few only.
    retired: HashMap<Bytes, Bytes>,
    /// The client's unnamed statement: its last unnamed Parse message, until a simple Query
    /// or a Close destroys it (None). It outlives the client's transaction, not its server.
    pub unnamed: Option<Bytes>,
}

/// Most retired names remembered.
const MAX_RETIRED: usize = 64;

impl Statements {
    /// Records the client's Parse; returns the statement as the server knows it.
    pub fn parse(
        &mut self,
        client_name: &[u8],
        query: &[u8],
        rest: &[u8],
    ) -> Option<Arc<Statement>> {
        if self.by_client_name.len() >= MAX_PER_CLIENT
            && !self.by_client_name.contains_key(client_name)
        {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(query);
        hash.update([0]);
        hash.update(rest);
        let digest = hash.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let name = Bytes::from(format!("throome_{hex}"));
        let statement = Arc::new(Statement {
            parse: build::parse(&name, query, rest),
            name,
            destroys: destroys_statements(query),
            born: super::prepared::next_generation(),
        });
        self.by_client_name
            .insert(Bytes::copy_from_slice(client_name), statement.clone());
        Some(statement)
    }

    pub fn get(&self, client_name: &[u8]) -> Option<Arc<Statement>> {
        self.by_client_name.get(client_name).cloned()
    }

    /// Close of a statement: the client's name goes (the statement it stood for is
    /// returned); the server keeps its copy for reuse.
    pub fn close(&mut self, client_name: &[u8]) -> Option<Arc<Statement>> {
        let st = self.by_client_name.remove(client_name)?;
        self.retire(&st, client_name);
        Some(st)
    }

    fn retire(&mut self, st: &Statement, client_name: &[u8]) {
        if self.retired.len() >= MAX_RETIRED {
            self.retired.clear();
        }
        self.retired
            .insert(st.name.clone(), Bytes::copy_from_slice(client_name));
    }

    /// Undoes a change the server skipped: `name` stands for `previous` again.
    pub fn undo(&mut self, undo: super::flow::Undo) {
        match undo.previous {
            Some(st) => {
                self.by_client_name.insert(undo.name, st);
            }
            None => {
                if let Some(st) = self.by_client_name.remove(&undo.name) {
                    self.retire(&st, &undo.name);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.by_client_name.clear();
    }
}

impl Statements {
    /// A server ErrorResponse (whole message) that names a statement by its server-side
    /// name, with the client's name for it instead: errors read as they would directly
    /// ("bind message supplies 1 parameters, but prepared statement \"s1\" requires 0").
    /// None when it names none (most errors: the check is one substring search).
    pub fn in_client_terms(&self, error: &[u8]) -> Option<Bytes> {
        const PREFIX: &[u8] = b"\"throome_";
        let body = error.get(5..)?;
        let message = throome_pgwire::msg::field(body, b'M')?;
        let at = message.windows(PREFIX.len()).position(|w| w == PREFIX)? + 1;
        let len = message[at..].iter().position(|&b| b == b'"')?;
        let server_name = &message[at..at + len];
        let client_name = self
            .by_client_name
            .iter()
            .find(|(_, st)| st.name == server_name)
            .map(|(name, _)| name)
            .or_else(|| self.retired.get(server_name))?;
        let mut renamed = message[..at].to_vec();
        renamed.extend_from_slice(client_name);
        renamed.extend_from_slice(&message[at + len..]);
        let fields = throome_pgwire::msg::fields(body).map(|(kind, value)| match kind {
            b'M' => (kind, renamed.as_slice()),
            _ => (kind, value),
        });
        Some(build::fields(b'E', fields))
    }
}

/// SQL that drops prepared statements on the server it runs on (`DEALLOCATE`, `DISCARD`):
/// after it, the proxy must prepare its statements there again.
pub fn destroys_statements(sql: &[u8]) -> bool {
    let sql = throome_pgwire::msg::skip_blanks(sql);
    starts_with_word(sql, b"deallocate") || starts_with_word(sql, b"discard")
}

/// A lone `DISCARD ALL`: the session's prepared statements go, the client's included.
pub fn discards_all(sql: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(sql) else {
        return false;
    };
    let words: Vec<&str> = text
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect();
    matches!(words.as_slice(), [d, a] if d.eq_ignore_ascii_case("discard") && a.eq_ignore_ascii_case("all"))
}

/// Whether `sql` begins with the keyword `word` (any case), without allocating: this runs
/// for every query.
pub(super) fn starts_with_word(sql: &[u8], word: &[u8]) -> bool {
    sql.len() >= word.len()
        && sql[..word.len()].eq_ignore_ascii_case(word)
        && sql
            .get(word.len())
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
}

/// What a lone `DEALLOCATE [PREPARE] name|ALL` names: `Some(None)` for ALL, `Some(name)` for
/// one statement (identifier rules: unquoted folds to lower case, "quoted" kept as is).
pub fn deallocate_target(sql: &[u8]) -> Option<Option<Vec<u8>>> {
    let sql = throome_pgwire::msg::skip_blanks(sql);
    if !starts_with_word(sql, b"deallocate") {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?;
    let text = text.trim().trim_end_matches(';').trim_end();
    let mut words = text.splitn(2, char::is_whitespace);
    if !words.next()?.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let mut rest = words.next()?.trim_start();
    if let Some((first, after)) = rest.split_once(char::is_whitespace)
        && first.eq_ignore_ascii_case("prepare")
    {
        rest = after.trim_start();
    }
    if rest.eq_ignore_ascii_case("all") {
        return Some(None);
    }
    if let Some(quoted) = rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return (!quoted.contains('"')).then(|| Some(quoted.as_bytes().to_vec()));
    }
    let plain = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    (plain && !rest.is_empty()).then(|| Some(rest.to_ascii_lowercase().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deallocate_forms() {
        assert_eq!(
            deallocate_target(b"DEALLOCATE _pg3_0"),
            Some(Some(b"_pg3_0".to_vec()))
        );
        assert_eq!(
            deallocate_target(b"deallocate prepare \"S_1\";"),
            Some(Some(b"S_1".to_vec()))
        );
        assert_eq!(deallocate_target(b"DEALLOCATE ALL"), Some(None));
        assert_eq!(
            deallocate_target(b"DEALLOCATE Foo"),
            Some(Some(b"foo".to_vec()))
        );
        assert_eq!(deallocate_target(b"DEALLOCATE a; SELECT 1"), None);
        assert_eq!(deallocate_target(b"SELECT 1"), None);
        assert_eq!(deallocate_target(b"DEALLOCATE"), None);
        assert_eq!(deallocate_target(b"DEALLOCATEX a"), None);
        assert!(destroys_statements(b" discard all") && destroys_statements(b"DEALLOCATE x"));
        assert!(!destroys_statements(b"discarded") && !destroys_statements(b"SELECT 1"));
        assert!(discards_all(b" Discard  ALL;") && !discards_all(b"DISCARD PLANS"));
    }
}
