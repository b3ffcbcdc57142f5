//! The query that reads a session's state back from its server (see `state.rs`), built for
//! what a transaction may have changed, and what its rows mean for the client. Rows are
//! (name, value): settings under their names, then under names no setting can have the
//! session user, the role and what pins the client.
//! <https://www.postgresql.org/docs/current/view-pg-settings.html>,
//! <https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET>.

use bytes::Bytes;

use super::effects::{Effects, Settings};
use super::params::{is_identity, is_tracked, literal};

/// Every setting made in the session (the transaction in progress, if any, is over: the
/// query runs between transactions). `pg_settings` builds a row for every parameter, so it
/// is read only when the text did not name what it set.
const ALL_SETTINGS: &str = "SELECT name, setting FROM pg_catalog.pg_settings \
     WHERE source = 'session' AND left(name, 12) <> 'transaction_'";

const IDENTITY: &str = "SELECT ' user', session_user::text \
     UNION ALL SELECT ' role', pg_catalog.current_setting('role')";

const PINS: &str = "SELECT ' pin', concat_ws(', ', \
     CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_class \
       WHERE relnamespace = pg_catalog.pg_my_temp_schema()) THEN 'temporary table' END, \
     CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_locks \
       WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) THEN 'advisory lock' END, \
     CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_listening_channels()) THEN 'LISTEN' END, \
     CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_cursors) THEN 'WITH HOLD cursor' END, \
     CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_prepared_statements WHERE from_sql) \
       THEN 'SQL PREPARE' END)";

/// The query asking what `asked` names.
pub fn query(asked: &Effects) -> String {
    let mut parts: Vec<String> = Vec::new();
    match &asked.settings {
        Settings::None => {}
        Settings::Named(names) => {
            for name in names.iter().filter(|n| !is_identity(n.as_bytes())) {
                let name = literal(name.as_bytes());
                parts.push(format!(
                    "SELECT {name}, pg_catalog.current_setting({name}, true)"
                ));
            }
            parts.push(IDENTITY.into());
        }
        Settings::All => {
            parts.push(ALL_SETTINGS.into());
            parts.push(IDENTITY.into());
        }
    }
    if asked.pin_state {
        parts.push(PINS.into());
    }
    parts.join(" UNION ALL ")
}

/// Takes the rows answering `asked` into the client's settings (`wanted`); returns what
/// pins the client ("" for nothing) if that was asked. `login_user` is the user servers
/// are logged in as: a session user other than it is the client's.
pub fn apply(
    asked: &Effects,
    rows: Vec<(Bytes, Option<Bytes>)>,
    wanted: &mut Vec<(Bytes, Bytes)>,
    login_user: &str,
) -> Option<String> {
    if asked.settings == Settings::All {
        // What the server does not list is at its default: only tracked ones stay.
        wanted.retain(|(n, _)| is_tracked(n));
    }
    let mut pin = None;
    for (name, value) in rows {
        let value = match &name[..] {
            b" pin" => {
                pin = Some(String::from_utf8_lossy(value.as_deref().unwrap_or_default()).into());
                continue;
            }
            b" user" => value.filter(|v| v != login_user.as_bytes()),
            b" role" => value.filter(|v| &v[..] != b"none"),
            _ if is_tracked(&name) => continue,
            _ => value,
        };
        let name = match &name[..] {
            b" user" => Bytes::from_static(b"session_authorization"),
            b" role" => Bytes::from_static(b"role"),
            _ => name,
        };
        set(wanted, name, value);
    }
    // The session user before the role: the order they are replayed in.
    wanted.sort_by_key(|(n, _)| match &n[..] {
        b"session_authorization" => 1,
        b"role" => 2,
        _ => 0,
    });
    pin
}

/// `name` is `value` for the client; None: at the server's default.
fn set(wanted: &mut Vec<(Bytes, Bytes)>, name: Bytes, value: Option<Bytes>) {
    let at = wanted
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(&name));
    match (at, value) {
        (Some(i), Some(v)) => wanted[i].1 = v,
        (Some(i), None) => {
            wanted.remove(i);
        }
        (None, Some(v)) => wanted.push((name, v)),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn asked(settings: Settings, pin_state: bool) -> Effects {
        Effects {
            settings,
            pins: None,
            pin_state,
        }
    }

    #[test]
    fn the_query_asks_only_what_the_text_may_have_changed() {
        let named = query(&asked(Settings::Named(vec!["work_mem".into()]), false));
        assert!(
            named.starts_with("SELECT E'work_mem', pg_catalog.current_setting(E'work_mem', true)")
        );
        assert!(named.contains("' user'") && !named.contains("pg_settings"));
        assert!(!named.contains("' pin'"));
        let all = query(&asked(Settings::All, true));
        assert!(all.contains("pg_settings") && all.contains("' pin'"));
        assert_eq!(query(&asked(Settings::None, true)), PINS);
    }

    #[test]
    fn rows_become_the_clients_settings() {
        let mut wanted = vec![(b("TimeZone"), b("UTC")), (b("lock_timeout"), b("1s"))];
        let rows = vec![
            (b("work_mem"), Some(b("64MB"))),
            (b("lock_timeout"), None),
            (b(" user"), Some(b("postgres"))),
            (b(" role"), Some(b("r1"))),
        ];
        let named = asked(Settings::Named(vec!["work_mem".into()]), false);
        assert_eq!(apply(&named, rows, &mut wanted, "postgres"), None);
        assert_eq!(
            wanted,
            [
                (b("TimeZone"), b("UTC")),
                (b("work_mem"), b("64MB")),
                (b("role"), b("r1"))
            ]
        );
        // All settings: what is not listed went back to its default.
        let rows = vec![
            (b("search_path"), Some(b("s1"))),
            (b(" user"), Some(b("u1"))),
            (b(" role"), Some(b("none"))),
            (b(" pin"), Some(b("LISTEN"))),
        ];
        let pin = apply(&asked(Settings::All, true), rows, &mut wanted, "postgres");
        assert_eq!(pin.as_deref(), Some("LISTEN"));
        assert_eq!(
            wanted,
            [
                (b("TimeZone"), b("UTC")),
                (b("search_path"), b("s1")),
                (b("session_authorization"), b("u1"))
            ]
        );
    }
}
