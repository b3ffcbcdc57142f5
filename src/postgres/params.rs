//! The session parameters a client sees (ParameterStatus) stay its own in transaction
//! pooling: the values it was given or SET are replayed on whichever server it lands on.

use bytes::{Bytes, BytesMut};

use throome_pgwire::build;

use super::io::Wire;
use super::lease::lease_error;
use crate::config::PoolMode;

/// Parameters the server reports (`GUC_REPORT`) and clients act on.
pub const TRACKED: [&str; 6] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
];

/// Names are case-insensitive, as PostgreSQL's are (`SET timezone` sets `TimeZone`).
pub fn is_tracked(name: &[u8]) -> bool {
    TRACKED
        .iter()
        .any(|t| t.as_bytes().eq_ignore_ascii_case(name))
}

/// Statements that make a server's values match `wanted`; empty when they do. `reported`
/// holds what the server reported (ParameterStatus), `applied` what the proxy set there
/// for parameters it does not report: those the client does not want are RESET to the
/// server's own default, so one client's settings never reach another. `set_config` takes
/// the value as a startup packet does (a list such as `search_path = 'a, b'` stays a
/// list), and `E'...'` literals escape the same whatever `standard_conforming_strings` is.
/// The session user and role (`SET SESSION AUTHORIZATION`, `SET ROLE`), when either is in
/// play, are reset first and set last: settings are made with the login user's rights, as
/// the client made them before it changed roles.
pub fn set_sql(
    wanted: &[(Bytes, Bytes)],
    reported: &[(Bytes, Bytes)],
    applied: &[(Bytes, Bytes)],
) -> String {
    let current = |name: &Bytes| {
        reported
            .iter()
            .chain(applied)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    };
    let wants = |name: &Bytes| wanted.iter().any(|(n, _)| n == name);
    let differs = |(name, value): &&(Bytes, Bytes)| current(name) != Some(value);
    let calls: Vec<&(Bytes, Bytes)> = wanted
        .iter()
        .filter(|(n, _)| !is_identity(n))
        .filter(differs)
        .collect();
    let resets: Vec<&Bytes> = applied
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !is_identity(n) && !wants(n))
        .collect();
    let identity_changes = wanted
        .iter()
        .filter(|(n, _)| is_identity(n))
        .any(|p| differs(&p))
        || applied.iter().any(|(n, _)| is_identity(n) && !wants(n));
    if calls.is_empty() && resets.is_empty() && !identity_changes {
        return String::new();
    }
    let in_play = wanted.iter().chain(applied).any(|(n, _)| is_identity(n));
    let mut sql = String::new();
    for name in IDENTITY.iter().rev().filter(|_| in_play) {
        if applied.iter().any(|(n, _)| n == name.as_bytes()) {
            sql.push_str(&format!("RESET {name};"));
        }
    }
    if !calls.is_empty() {
        let calls: Vec<String> = calls.iter().map(|(n, v)| set_config(n, v)).collect();
        sql.push_str(&format!("SELECT {};", calls.join(", ")));
    }
    for name in resets {
        let name = String::from_utf8_lossy(name).replace('"', "\"\"");
        sql.push_str(&format!("RESET \"{name}\";"));
    }
    for name in IDENTITY.iter().filter(|_| in_play) {
        if let Some((n, v)) = wanted.iter().find(|(n, _)| n == name.as_bytes()) {
            sql.push_str(&format!("SELECT {};", set_config(n, v)));
        }
    }
    sql
}

/// Who the session runs as, in the order they are set.
const IDENTITY: [&str; 2] = ["session_authorization", "role"];

pub fn is_identity(name: &[u8]) -> bool {
    IDENTITY.iter().any(|i| i.as_bytes() == name)
}

fn set_config(name: &[u8], value: &[u8]) -> String {
    format!("set_config({}, {}, false)", literal(name), literal(value))
}

pub(super) fn literal(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text)
        .replace('\\', "\\\\")
        .replace('\'', "\\'");
    format!("E'{text}'")
}

/// The parameters in a startup packet's `options` (`-c name=value` or `--name=value`,
/// separated by blanks, a backslash escaping the next byte), named as PostgreSQL names them
/// (`-` in a name is `_`); any other switch is refused, as the proxy cannot pass it on.
/// <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-OPTIONS>
pub fn parse_options(options: &str) -> Result<Vec<(String, String)>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(w) = words.next() {
        let setting = if w == "-c" {
            words.next().ok_or("-c without a setting")?
        } else if let Some(rest) = w.strip_prefix("-c").filter(|r| !r.is_empty()) {
            rest.to_string()
        } else if let Some(rest) = w.strip_prefix("--") {
            rest.to_string()
        } else {
            return Err(format!("unsupported switch \"{w}\" in options"));
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(format!("\"{setting}\" in options needs a value"));
        };
        out.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(out)
}

/// ParameterStatus messages for every parameter.
pub fn announce(params: &[(Bytes, Bytes)], out: &mut BytesMut) {
    for (name, value) in params {
        out.extend_from_slice(&build::parameter_status(name, value));
    }
}

impl super::session::PgSession {
    /// Authentication is done: AuthenticationOk went out; now the server parameters, our
    /// BackendKeyData and ReadyForQuery. A first server connection supplies the parameters
    /// (and proves the database exists); a client in session mode gets its server now.
    pub(super) async fn welcome(&mut self, client: &mut Wire) -> bool {
        let startup = self
            .login
            .params
            .iter()
            .map(|(k, v)| (Bytes::from(k.clone()), Bytes::from(v.clone())));
        let (tracked, extra): (Vec<_>, Vec<_>) = startup.partition(|(k, _)| is_tracked(k));
        // All of them on the first server, so a setting the server refuses fails the login.
        self.wanted = tracked.iter().chain(&extra).cloned().collect();
        let (user, database) = self.server_login();
        // The client is shown what the server shows: its spellings (`UTF8` for `utf-8`)
        // are learned on a server. A client with settings of its own checks them on a
        // server now: one the server refuses fails the login, not every statement after it.
        let spelled: Option<Vec<(Bytes, Bytes)>> = tracked
            .iter()
            .map(|(n, v)| self.pools.spelling(n, v).map(|s| (n.clone(), s)))
            .collect();
        let cached = match (extra.is_empty(), spelled, self.pool_mode) {
            (true, Some(spelled), PoolMode::Transaction) => {
                self.pools.welcome(&user, &database).map(|p| (p, spelled))
            }
            _ => None,
        };
        let shown = match cached {
            Some((mut shown, spelled)) => {
                for (name, value) in spelled {
                    match shown.iter_mut().find(|(n, _)| *n == name) {
                        Some(p) => p.1 = value,
                        None => shown.push((name, value)),
                    }
                }
                shown
            }
            None => {
                if let Err(e) = self.acquire(None).await {
                    let _ = client.send(&lease_error(&e)).await;
                    return false;
                }
                let Some(lease) = &self.lease else {
                    return false;
                };
                for (name, value) in tracked {
                    if let Some(shown) = lease.server.param(&name) {
                        self.pools.learn_spelling(name, value, shown.clone());
                    }
                }
                lease.server.params.clone()
            }
        };
        let mut out = BytesMut::new();
        announce(&shown, &mut out);
        // Tracked values as announced, then the client's other startup parameters
        // (`search_path`, `options`' settings, JDBC's `extra_float_digits`, ...), which are
        // set on every server it gets but never announced (PostgreSQL does not report them).
        self.wanted = shown
            .iter()
            .filter(|(n, _)| is_tracked(n))
            .cloned()
            .chain(extra)
            .collect();
        if let (PoolMode::Session, Some(lease)) = (self.pool_mode, &self.lease) {
            self.cancel.show_pid(lease.server.pid);
        }
        out.extend_from_slice(&build::backend_key_data(
            self.cancel.pid(),
            &self.cancel.key,
        ));
        out.extend_from_slice(&build::ready_for_query(b'I'));
        self.maybe_release();
        client.send(&out).await.is_ok()
    }
}

/// A tracked parameter the server reports changed (the client ran SET) is the client's now.
pub(super) fn remember(wanted: &mut Vec<(Bytes, Bytes)>, name: &[u8], value: &[u8]) {
    if !is_tracked(name) {
        return;
    }
    match wanted.iter_mut().find(|(n, _)| n == name) {
        Some(p) => p.1 = Bytes::copy_from_slice(value),
        None => wanted.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_differences_are_set_and_quotes_escaped() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let wanted = vec![
            (b("TimeZone"), b("Europe/Paris")),
            (b("application_name"), b("it's \\")),
            (b("search_path"), b("a, b")),
        ];
        let reported = vec![
            (b("TimeZone"), b("Europe/Paris")),
            (b("application_name"), b("x")),
        ];
        let applied = vec![(b("search_path"), b("a, b"))];
        assert_eq!(
            set_sql(&wanted, &reported, &applied),
            "SELECT set_config(E'application_name', E'it\\'s \\\\', false);"
        );
        assert_eq!(
            set_sql(&wanted[2..], &reported, &[]),
            "SELECT set_config(E'search_path', E'a, b', false);"
        );
        assert_eq!(
            set_sql(&wanted, &reported[..1], &applied)
                .matches("set_config")
                .count(),
            1
        );
        // What the proxy set for someone else goes back to the server's default.
        assert_eq!(
            set_sql(&wanted[..1], &reported, &applied),
            "RESET \"search_path\";"
        );
        assert_eq!(set_sql(&wanted[..1], &reported, &[]), "");
    }

    #[test]
    fn roles_are_undone_first_and_made_last() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let role = (b("role"), b("r1"));
        let work_mem = (b("work_mem"), b("65536"));
        // Another client's role goes before anything else is set.
        assert_eq!(
            set_sql(
                std::slice::from_ref(&work_mem),
                &[],
                std::slice::from_ref(&role)
            ),
            "RESET role;SELECT set_config(E'work_mem', E'65536', false);"
        );
        // The client's own role is set last, after its settings.
        assert_eq!(
            set_sql(&[work_mem.clone(), role.clone()], &[], &[]),
            "SELECT set_config(E'work_mem', E'65536', false);\
             SELECT set_config(E'role', E'r1', false);"
        );
        assert_eq!(
            set_sql(
                std::slice::from_ref(&role),
                &[],
                std::slice::from_ref(&role)
            ),
            ""
        );
        let user = (b("session_authorization"), b("u"));
        assert_eq!(
            set_sql(
                &[user.clone(), role.clone()],
                &[],
                std::slice::from_ref(&role)
            ),
            "RESET role;SELECT set_config(E'session_authorization', E'u', false);\
             SELECT set_config(E'role', E'r1', false);"
        );
    }

    #[test]
    fn options_as_postgres_reads_them() {
        let got = parse_options(
            r"-c search_path=app\,public --statement-timeout=5s -cwork_mem=64MB -c x=a\ b",
        )
        .unwrap();
        let want = [
            ("search_path", "app,public"),
            ("statement_timeout", "5s"),
            ("work_mem", "64MB"),
            ("x", "a b"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(parse_options("-d 5").unwrap_err().contains("-d"));
        assert!(parse_options("-c").is_err());
        assert!(parse_options("--geqo").is_err());
        assert_eq!(parse_options("  ").unwrap(), vec![]);
    }
}
