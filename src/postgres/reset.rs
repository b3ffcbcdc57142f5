//! `RESET name`, `RESET ALL` and `SET name TO DEFAULT` go back to the client's startup
//! value on the server itself: a startup packet sets a parameter's reset value. The proxy
//! sets the client's startup values with `set_config` (a session SET), whose reset value is
//! the server's default, so it appends `set_config` of the startup values to such a query
//! and hides what that adds: the client sees the answer the server itself would give
//! ([RESET](https://www.postgresql.org/docs/current/sql-reset.html)).

use throome_pgwire::build;

use super::params::literal;
use super::statements::starts_with_word;

/// What a lone RESET (or SET ... TO DEFAULT) names.
#[derive(Debug, PartialEq)]
enum Target {
    All,
    One(String),
}

/// The query to send in place of `sql` when it resets startup parameters of the client's
/// (`startup`), or None when it does not.
pub fn rewrite(sql: &[u8], startup: &[(String, String)]) -> Option<bytes::Bytes> {
    // Every Query passes here: most leave at these byte checks, without allocating.
    let start = throome_pgwire::msg::skip_blanks(sql);
    let reset = starts_with_word(start, b"reset");
    if startup.is_empty() || !(reset || starts_with_word(start, b"set")) {
        return None;
    }
    let end = sql
        .trim_ascii_end()
        .strip_suffix(b";")
        .unwrap_or(sql)
        .trim_ascii_end();
    let to_default = end.len() >= 7 && end[end.len() - 7..].eq_ignore_ascii_case(b"default");
    if !reset && !to_default {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?;
    let statement = text.trim().trim_end_matches(';').trim_end();
    let target = target(statement)?;
    let restore: Vec<String> = startup
        .iter()
        .filter(|(name, _)| match &target {
            Target::All => true,
            Target::One(one) => name.eq_ignore_ascii_case(one),
        })
        .map(|(name, value)| {
            format!(
                "set_config({}, {}, false)",
                literal(name.as_bytes()),
                literal(value.as_bytes())
            )
        })
        .collect();
    if restore.is_empty() {
        return None;
    }
    Some(build::query(&format!(
        "{statement}; SELECT {}",
        restore.join(", ")
    )))
}

fn target(statement: &str) -> Option<Target> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let name = match lower.as_slice() {
        ["reset", "all"] => return Some(Target::All),
        ["reset", _] => words[1],
        ["set", _, "to" | "=", "default"] => words[1],
        ["set", "session", _, "to" | "=", "default"] => words[2],
        _ => return None,
    };
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted,
        None => name,
    };
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    plain.then(|| Target::One(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Vec<(String, String)> {
        vec![
            ("TimeZone".into(), "PST8PDT".into()),
            ("application_name".into(), "it's".into()),
        ]
    }

    fn sql(q: &str) -> Option<String> {
        rewrite(q.as_bytes(), &startup()).map(|b| String::from_utf8_lossy(&b[5..]).into())
    }

    #[test]
    fn resets_of_startup_parameters_are_completed() {
        assert_eq!(
            sql("RESET timezone;").as_deref(),
            Some("RESET timezone; SELECT set_config(E'TimeZone', E'PST8PDT', false)\0")
        );
        assert_eq!(
            sql(" set SESSION \"TimeZone\" = DEFAULT").as_deref(),
            Some(
                "set SESSION \"TimeZone\" = DEFAULT; \
                 SELECT set_config(E'TimeZone', E'PST8PDT', false)\0"
            )
        );
        let all = sql("reset all").unwrap();
        assert!(all.starts_with("reset all; SELECT set_config(E'TimeZone'"));
        assert!(all.contains("E'it\\'s'"));
    }

    #[test]
    fn other_statements_are_left_alone() {
        assert_eq!(sql("RESET search_path"), None);
        assert_eq!(sql("SET timezone = 'UTC'"), None);
        assert_eq!(sql("RESET timezone; SELECT 1"), None);
        assert_eq!(sql("SELECT 'RESET ALL'"), None);
        assert_eq!(rewrite(b"RESET ALL", &[]), None);
    }
}
