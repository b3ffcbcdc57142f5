//! SQL tokens, as far as `effects.rs` needs them: words, quoted identifiers, plain string
//! constants and punctuation. Everything else that cannot hold a statement is skipped:
//! `E'...'` strings (backslash escapes), dollar-quoted bodies, `--` and nested `/* */`
//! comments. Unterminated text ends the tokens.
//! <https://www.postgresql.org/docs/current/sql-syntax-lexical.html>

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// A keyword or unquoted identifier (ASCII letters, digits, `_`, `$`, non-ASCII).
    Word(&'a [u8]),
    /// A `"quoted"` identifier's text (a doubled quote left doubled).
    Quoted(&'a [u8]),
    /// A `'plain'` string constant's text (a doubled quote left doubled).
    Str(&'a [u8]),
    /// What other tokens there are: a skipped string or body, a number, an operator byte.
    Other,
    Punct(u8),
}

#[derive(Clone)]
pub struct Tokens<'a> {
    sql: &'a [u8],
    at: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(sql: &'a [u8]) -> Tokens<'a> {
        Tokens { sql, at: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let sql = self.sql;
        loop {
            let i = self.at;
            let b = *sql.get(i)?;
            let (token, end) = match b {
                b if b.is_ascii_whitespace() => (None, i + 1),
                b'\'' => {
                    let end = past_quote(sql, i + 1, b'\'', false);
                    (Some(Token::Str(inside(sql, i, end))), end)
                }
                b'"' => {
                    let end = past_quote(sql, i + 1, b'"', false);
                    (Some(Token::Quoted(inside(sql, i, end))), end)
                }
                b'-' if sql.get(i + 1) == Some(&b'-') => {
                    let end = sql[i..].iter().position(|c| *c == b'\n');
                    (None, end.map_or(sql.len(), |n| i + n + 1))
                }
                b'/' if sql.get(i + 1) == Some(&b'*') => (None, past_comment(sql, i + 2)),
                b'$' => (Some(Token::Other), past_dollar(sql, i)),
                b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                    let len = sql[i..]
                        .iter()
                        .take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | 0x80..)
                        })
                        .count();
                    let end = i + len;
                    match &sql[i..end] {
                        // E'...' is a string with backslash escapes.
                        [b'e' | b'E'] if sql.get(end) == Some(&b'\'') => {
                            (Some(Token::Other), past_quote(sql, end + 1, b'\'', true))
                        }
                        word => (Some(Token::Word(word)), end),
                    }
                }
                b if b.is_ascii_digit() => {
                    let len = sql[i..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'.')
                        .count();
                    (Some(Token::Other), i + len)
                }
                b => (Some(Token::Punct(b)), i + 1),
            };
            self.at = end;
            if let Some(token) = token {
                return Some(token);
            }
        }
    }
}

/// The text between a quote at `start` and the closing one before `end` (or the end).
fn inside(sql: &[u8], start: usize, end: usize) -> &[u8] {
    let close =
        usize::from(end <= sql.len() && sql.get(end - 1) == sql.get(start) && end > start + 1);
    &sql[start + 1..end - close]
}

/// Past the closing `quote` of a string or quoted identifier whose text starts at `i` (a
/// doubled quote stands for one; with `backslash`, a backslash escapes the next byte).
fn past_quote(sql: &[u8], mut i: usize, quote: u8, backslash: bool) -> usize {
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
fn past_comment(sql: &[u8], mut i: usize) -> usize {
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
/// the `$` and its digits (a parameter such as `$1`).
fn past_dollar(sql: &[u8], i: usize) -> usize {
    let tag_len = sql[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c >= 0x80)
        .count();
    let tag_end = i + 1 + tag_len;
    let is_tag =
        sql.get(tag_end) == Some(&b'$') && !sql.get(i + 1).is_some_and(|c| c.is_ascii_digit());
    if !is_tag {
        return tag_end.max(i + 1);
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

    #[test]
    fn tokens_of_a_statement() {
        let sql = b"SELECT set_config('a.b', E'x\\'y', true) -- c\n/* d */ FROM \"T\" WHERE x = $1 AND y = $q$z$q$;";
        let got: Vec<Token> = Tokens::new(sql).collect();
        use Token::*;
        let want = [
            Word(b"SELECT"),
            Word(b"set_config"),
            Punct(b'('),
            Str(b"a.b"),
            Punct(b','),
            Other,
            Punct(b','),
            Word(b"true"),
            Punct(b')'),
            Word(b"FROM"),
            Quoted(b"T"),
            Word(b"WHERE"),
            Word(b"x"),
            Punct(b'='),
            Other,
            Word(b"AND"),
            Word(b"y"),
            Punct(b'='),
            Other,
            Punct(b';'),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn unterminated_text_ends_the_tokens() {
        for sql in [&b"'abc"[..], b"\"x", b"$a$ x", b"/* x", b"E'", b"'", b"$"] {
            let got: Vec<Token> = Tokens::new(sql).collect();
            assert!(got.len() <= 1, "{got:?}");
        }
    }
}
