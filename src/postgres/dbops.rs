//! Statements that need a database without other sessions (`DROP DATABASE x`, `ALTER
//! DATABASE x RENAME`, `CREATE DATABASE y TEMPLATE x`): PostgreSQL refuses them while
//! anyone is connected to `x`, idle pooled server connections included. Before such a
//! statement goes out, the service's connections to `x` are closed: idle ones at once, lent
//! ones when they come back (the server itself waits up to 5 s for sessions to leave)
//! ([DROP DATABASE](https://www.postgresql.org/docs/current/sql-dropdatabase.html)).

/// The database a client's Query or Parse needs to itself, if it is one of those
/// statements.
pub fn needs_alone(frame: &throome_pgwire::Frame) -> Option<String> {
    use throome_pgwire::msg;
    let sql = match frame.tag() {
        msg::front::QUERY => msg::query(frame.body())?,
        msg::front::PARSE => msg::parse(frame.body())?.1,
        _ => return None,
    };
    database_of(sql)
}

fn database_of(sql: &[u8]) -> Option<String> {
    // Every Query and Parse passes here: most leave at these byte checks.
    let start = throome_pgwire::msg::skip_blanks(sql);
    if ![&b"drop"[..], b"alter", b"create"]
        .iter()
        .any(|w| super::statements::starts_with_word(start, w))
    {
        return None;
    }
    let text = std::str::from_utf8(sql).ok()?;
    let words = words(text.trim().trim_end_matches(';'));
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let at = match lower.as_slice() {
        ["drop", "database", "if", "exists", ..] => 4,
        ["drop", "database", ..] => 2,
        ["alter", "database", _, "rename", ..] => 2,
        ["create", "database", ..] => {
            let t = lower.iter().position(|w| *w == "template")?;
            if lower.get(t + 1) == Some(&"=") {
                t + 2
            } else {
                t + 1
            }
        }
        _ => return None,
    };
    identifier(words.get(at)?)
}

/// Words of `text`, `=` and parentheses apart, a "quoted identifier" one word.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if quoted => word.push(c),
            c if c.is_whitespace() || "=()".contains(c) => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                if c == '=' {
                    out.push("=".into());
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A database name as PostgreSQL reads it: unquoted folds to lower case.
fn identifier(word: &str) -> Option<String> {
    match word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        Some(quoted) => Some(quoted.replace("\"\"", "\"")),
        None => Some(word.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::database_of;

    fn db(sql: &str) -> Option<String> {
        database_of(sql.as_bytes())
    }

    #[test]
    fn statements_that_need_a_database_alone() {
        assert_eq!(db("DROP DATABASE app").as_deref(), Some("app"));
        assert_eq!(
            db("drop database if exists \"My DB\";").as_deref(),
            Some("My DB")
        );
        assert_eq!(db("DROP DATABASE App WITH (FORCE)").as_deref(), Some("app"));
        assert_eq!(
            db("ALTER DATABASE app RENAME TO old").as_deref(),
            Some("app")
        );
        assert_eq!(db("CREATE DATABASE b TEMPLATE a").as_deref(), Some("a"));
        assert_eq!(
            db("CREATE DATABASE b WITH OWNER x TEMPLATE=a").as_deref(),
            Some("a")
        );
    }

    #[test]
    fn other_statements_need_nothing() {
        assert_eq!(db("CREATE DATABASE b"), None);
        assert_eq!(db("ALTER DATABASE app SET work_mem = '1MB'"), None);
        assert_eq!(db("SELECT 'DROP DATABASE x'"), None);
        assert_eq!(db("DROP TABLE t"), None);
    }
}
