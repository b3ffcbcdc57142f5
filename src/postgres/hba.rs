//! Host-based authentication, PgBouncer's `auth_type = hba`: rules in pg_hba.conf's own line
//! syntax (`auth.hba` in the service), the first whose connection type, database, user and
//! client address match decides the authentication method, and a connection no rule matches
//! is refused ([pg_hba.conf](https://www.postgresql.org/docs/current/auth-pg-hba-conf.html)).
//!
//! The subset PgBouncer takes: types `local`, `host`, `hostssl`, `hostnossl`; databases and
//! users `all`, `sameuser` (databases) or comma-separated names; addresses `all` or CIDR
//! (IPv4 or IPv6; a bare address is that one host); methods `trust`, `reject`, `md5`,
//! `scram-sha-256` and `cert`. Group (`+role`), file (`@file`) and regular-expression entries,
//! host names and options are refused when the configuration is read.

use std::net::IpAddr;

use crate::config::AuthMethod;

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    kind: ConnKind,
    databases: Names,
    users: Names,
    /// `None` for `local` rules and for `all`.
    address: Option<(IpAddr, u8)>,
    pub method: Method,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnKind {
    Local,
    Host,
    HostSsl,
    HostNoSsl,
}

#[derive(Debug, Clone, PartialEq)]
enum Names {
    All,
    SameUser,
    List(Vec<String>),
}

/// What a matching rule says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Reject,
    /// Authenticate this way (instead of the service's `auth.method`).
    Use(AuthMethod),
}

/// Who is connecting, as the rules see it.
pub struct Connection<'a> {
    /// `None` over a Unix-domain socket.
    pub address: Option<IpAddr>,
    pub tls: bool,
    pub database: &'a str,
    pub user: &'a str,
}

/// Parses one pg_hba.conf line (comments after `#` ignored).
pub fn parse(line: &str) -> Result<Rule, String> {
    let text = line.split('#').next().unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let kind = match fields.first().copied() {
        Some("local") => ConnKind::Local,
        Some("host") => ConnKind::Host,
        Some("hostssl") => ConnKind::HostSsl,
        Some("hostnossl") => ConnKind::HostNoSsl,
        Some(other) => return Err(format!("unknown connection type `{other}`")),
        None => return Err("empty rule".into()),
    };
    let want = if kind == ConnKind::Local { 4 } else { 5 };
    if fields.len() < want {
        return Err(format!(
            "expected {want} fields (type, database, user{}, method)",
            if want == 5 { ", address" } else { "" }
        ));
    }
    if fields.len() > want {
        return Err(format!(
            "authentication options (`{}`) are not supported",
            fields[want..].join(" ")
        ));
    }
    let databases = names(fields[1], true)?;
    let users = names(fields[2], false)?;
    let address = match kind {
        ConnKind::Local => None,
        _ => address(fields[3])?,
    };
    let method = method(fields[want - 1])?;
    Ok(Rule {
        kind,
        databases,
        users,
        address,
        method,
    })
}

fn names(field: &str, database: bool) -> Result<Names, String> {
    match field {
        "all" => return Ok(Names::All),
        "sameuser" if database => return Ok(Names::SameUser),
        _ => {}
    }
    let list: Vec<String> = field.split(',').map(str::to_string).collect();
    match list
        .iter()
        .find(|n| n.is_empty() || n.starts_with(['+', '@', '/']) || *n == "samerole")
    {
        Some(n) => Err(format!(
            "`{n}`: groups, files and regular expressions are not supported; list the names"
        )),
        None => Ok(Names::List(list)),
    }
}

fn address(field: &str) -> Result<Option<(IpAddr, u8)>, String> {
    if field == "all" {
        return Ok(None);
    }
    let (ip, len) = match field.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (field, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| {
        format!("address `{field}`: an IP address range such as 10.0.0.0/8, or `all`")
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("address `{field}`: the prefix length must be 0..={max}"))?,
    };
    Ok(Some((ip, len)))
}

fn method(field: &str) -> Result<Method, String> {
    Ok(match field {
        "reject" => Method::Reject,
        "trust" => Method::Use(AuthMethod::Trust),
        "md5" => Method::Use(AuthMethod::Md5),
        "scram-sha-256" => Method::Use(AuthMethod::ScramSha256),
        "cert" => Method::Use(AuthMethod::Cert),
        other => {
            return Err(format!(
                "method `{other}`: Throome takes trust, reject, md5, scram-sha-256 or cert"
            ));
        }
    })
}

impl Rule {
    fn matches(&self, c: &Connection) -> bool {
        let kind = match (self.kind, c.address) {
            (ConnKind::Local, None) => true,
            (ConnKind::Host, Some(_)) => true,
            (ConnKind::HostSsl, Some(_)) => c.tls,
            (ConnKind::HostNoSsl, Some(_)) => !c.tls,
            _ => false,
        };
        let database = match &self.databases {
            Names::All => true,
            Names::SameUser => c.database == c.user,
            Names::List(l) => l.iter().any(|d| d == c.database),
        };
        let user = match &self.users {
            Names::All => true,
            Names::SameUser => false,
            Names::List(l) => l.iter().any(|u| u == c.user),
        };
        let address = match (self.address, c.address) {
            (Some((net, len)), Some(ip)) => in_network(ip, net, len),
            _ => true,
        };
        kind && database && user && address
    }
}

/// The first rule matching the connection, as PostgreSQL reads pg_hba.conf.
pub fn decide<'a>(rules: &'a [Rule], c: &Connection) -> Option<&'a Rule> {
    rules.iter().find(|r| r.matches(c))
}

/// Whether `ip` is in `net/len`; an IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`)
/// is matched as the IPv4 address it is.
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip.to_canonical(), net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// PostgreSQL's words for a refused connection (SQLSTATE 28000), `rejected` by a `reject`
/// rule or else matched by none.
pub fn refusal(c: &Connection, rejected: bool) -> String {
    let host = match c.address {
        Some(ip) => format!("host \"{}\"", ip.to_canonical()),
        None => "host \"[local]\"".to_string(),
    };
    let encryption = if c.tls {
        "SSL encryption"
    } else {
        "no encryption"
    };
    let (user, database) = (c.user, c.database);
    match rejected {
        true => format!(
            "pg_hba.conf rejects connection for {host}, user \"{user}\", database \"{database}\", {encryption}"
        ),
        false => format!(
            "no pg_hba.conf entry for {host}, user \"{user}\", database \"{database}\", {encryption}"
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conn<'a>(ip: Option<&str>, tls: bool, database: &'a str, user: &'a str) -> Connection<'a> {
        Connection {
            address: ip.map(|i| i.parse().unwrap()),
            tls,
            database,
            user,
        }
    }

    fn first(rules: &[&str], c: &Connection) -> Option<Method> {
        let rules: Vec<Rule> = rules.iter().map(|r| parse(r).unwrap()).collect();
        decide(&rules, c).map(|r| r.method)
    }

    #[test]
    fn first_matching_rule_decides() {
        let rules = [
            "local all all trust",
            "hostssl all admin 0.0.0.0/0 cert",
            "host sales,hr alice 10.1.0.0/16 md5 # the office",
            "host sameuser all ::1/128 trust",
            "host all bob all reject",
            "host all all 127.0.0.0/8 scram-sha-256",
        ];
        let scram = Some(Method::Use(AuthMethod::ScramSha256));
        assert_eq!(
            first(&rules, &conn(None, false, "x", "y")),
            Some(Method::Use(AuthMethod::Trust))
        );
        assert_eq!(
            first(&rules, &conn(Some("10.9.9.9"), true, "d", "admin")),
            Some(Method::Use(AuthMethod::Cert))
        );
        assert_eq!(
            first(&rules, &conn(Some("10.9.9.9"), false, "d", "admin")),
            None
        );
        assert_eq!(
            first(&rules, &conn(Some("10.1.200.3"), false, "hr", "alice")),
            Some(Method::Use(AuthMethod::Md5))
        );
        assert_eq!(
            first(&rules, &conn(Some("10.2.0.1"), false, "hr", "alice")),
            None
        );
        assert_eq!(
            first(&rules, &conn(Some("::1"), false, "carol", "carol")),
            Some(Method::Use(AuthMethod::Trust))
        );
        assert_eq!(first(&rules, &conn(Some("::1"), false, "x", "carol")), None);
        assert_eq!(
            first(&rules, &conn(Some("127.0.0.1"), false, "d", "bob")),
            Some(Method::Reject)
        );
        assert_eq!(
            first(&rules, &conn(Some("127.3.2.1"), false, "d", "eve")),
            scram
        );
        // An IPv4 client on a dual-stack socket.
        assert_eq!(
            first(&rules, &conn(Some("::ffff:127.0.0.5"), false, "d", "eve")),
            scram
        );
        assert_eq!(
            first(&rules, &conn(Some("192.168.1.1"), false, "d", "eve")),
            None
        );
    }

    #[test]
    fn prefix_lengths_at_the_edges() {
        let any = |rule: &str, ip: &str| first(&[rule], &conn(Some(ip), false, "d", "u")).is_some();
        assert!(any("host all all 0.0.0.0/0 trust", "203.0.113.9"));
        assert!(any("host all all 127.0.0.1 trust", "127.0.0.1"));
        assert!(!any("host all all 127.0.0.1 trust", "127.0.0.2"));
        assert!(any("host all all ::/0 trust", "2001:db8::1"));
        assert!(!any("host all all ::/0 trust", "10.0.0.1"));
        assert!(any("host all all 2001:db8::/32 trust", "2001:db8:ffff::1"));
    }

    #[test]
    fn unsupported_lines_say_why() {
        for (line, why) in [
            ("", "empty"),
            ("hostgssenc all all all trust", "connection type"),
            ("host all all trust", "5 fields"),
            (
                "host all all 10.0.0.0/8 md5 clientcert=verify-full",
                "options",
            ),
            ("host all +admins all md5", "groups"),
            ("host @dbs all all md5", "files"),
            ("host all all db.example.com md5", "IP address range"),
            ("host all all 10.0.0.0/33 md5", "prefix length"),
            ("host all all all password", "method `password`"),
            ("local all all peer", "method `peer`"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }

    #[test]
    fn refusals_read_as_postgresqls() {
        let c = conn(Some("127.0.0.3"), false, "postgres", "alice");
        assert_eq!(
            refusal(&c, false),
            "no pg_hba.conf entry for host \"127.0.0.3\", user \"alice\", database \"postgres\", no encryption"
        );
        assert!(
            refusal(&conn(None, false, "d", "u"), true)
                .starts_with("pg_hba.conf rejects connection for host \"[local]\"")
        );
    }
}
