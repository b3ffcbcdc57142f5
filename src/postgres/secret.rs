//! What a user's secret is, as PgBouncer reads its `auth_file` and `auth_query` answers: a
//! SCRAM-SHA-256 verifier, an md5 hash (`md5` + hex(md5(password || user)), as PostgreSQL
//! stores md5 passwords), or a password in clear. The md5 answer to a salt can be computed
//! from the hash alone ([AuthenticationMD5Password](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP)),
//! so a stored hash checks md5 clients and logs in to md5 servers without the password.

use md5::{Digest, Md5};

use super::scram::Verifier;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Scram,
    Md5Hash,
    Password,
}

/// Which kind `secret` is; PostgreSQL's own rule for md5 (`md5` then 32 hex digits).
pub fn kind(secret: &str) -> Kind {
    if is_md5_hash(secret) {
        Kind::Md5Hash
    } else if Verifier::parse(secret).is_some() {
        Kind::Scram
    } else {
        Kind::Password
    }
}

fn is_md5_hash(s: &str) -> bool {
    s.len() == 35
        && s.starts_with("md5")
        && s[3..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The md5 hash PostgreSQL stores for `password` of `user`.
pub fn md5_hash(user: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(user.as_bytes());
    format!("md5{}", hex(&h.finalize()))
}

/// The PasswordMessage answer to an md5 challenge with `salt`, from a stored hash:
/// `md5` + hex(md5(hex part of the hash || salt)).
pub fn md5_answer(hash: &str, salt: [u8; 4]) -> String {
    let mut h = Md5::new();
    h.update(hash.get(3..).unwrap_or_default().as_bytes());
    h.update(salt);
    format!("md5{}", hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_answers_match_libpq() {
        let salt = [1, 2, 3, 4];
        let hash = md5_hash("alice", "wonderland");
        let libpq = postgres_protocol::authentication::md5_hash(b"alice", b"wonderland", salt);
        assert_eq!(md5_answer(&hash, salt), libpq);
        assert_ne!(md5_answer(&hash, [4, 3, 2, 1]), libpq);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind(&md5_hash("u", "p")), Kind::Md5Hash);
        assert_eq!(kind("md5-pw"), Kind::Password);
        assert_eq!(kind("MD5ABCDEF0123456789ABCDEF0123456789"), Kind::Password);
        let v = postgres_protocol::password::scram_sha_256(b"pw");
        assert_eq!(kind(&v), Kind::Scram);
        assert_eq!(kind("wonderland"), Kind::Password);
    }
}
