//! The session parameters a client sees (ParameterStatus) stay its own in transaction
//! pooling: the values it was given or SET are replayed on whichever server it lands on.

use bytes::{Bytes, BytesMut};

use throome_pgwire::build;

/// Parameters the server reports (`GUC_REPORT`) and clients act on.
pub const TRACKED: [&str; 6] = [
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
];

pub fn is_tracked(name: &[u8]) -> bool {
    TRACKED.iter().any(|t| t.as_bytes() == name)
}

/// `SET` statements that make a server's values match `wanted`; empty when they do.
pub fn set_sql(wanted: &[(Bytes, Bytes)], server: &[(Bytes, Bytes)]) -> String {
    let mut sql = String::new();
    for (name, value) in wanted {
        let current = server.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        if current != Some(value) {
            let name = String::from_utf8_lossy(name).replace('"', "\"\"");
            let value = String::from_utf8_lossy(value).replace('\'', "''");
            sql.push_str(&format!("SET \"{name}\" TO '{value}';"));
        }
    }
    sql
}

/// ParameterStatus messages for every parameter.
pub fn announce(params: &[(Bytes, Bytes)], out: &mut BytesMut) {
    for (name, value) in params {
        out.extend_from_slice(&build::parameter_status(name, value));
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
            (b("application_name"), b("it's")),
        ];
        let server = vec![
            (b("TimeZone"), b("Europe/Paris")),
            (b("application_name"), b("x")),
        ];
        assert_eq!(
            set_sql(&wanted, &server),
            "SET \"application_name\" TO 'it''s';"
        );
        assert_eq!(set_sql(&wanted[..1], &server), "");
    }
}
