//! Small value types shared by the gateway and cluster files. Each validates itself while
//! deserializing, so a bad value is reported by serde-saphyr at its own line and column.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written in seconds, fractions allowed (`interval: 0.5`).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Seconds(pub Duration);

impl Seconds {
    pub const fn from_secs(s: u64) -> Self {
        Seconds(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = f64::deserialize(d)?;
        // Bounded to a day: anything longer is a typo, and `Duration::from_secs_f64` panics on
        // huge or non-finite input.
        if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
            return Err(de::Error::custom(format!(
                "expected a number of seconds greater than 0 and at most 86400, got {secs}"
            )));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

/// A secret such as a password. `${NAME}` references are expanded from the environment when
/// the file is read; the value never appears in `Debug`, logs or API output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw, |name| std::env::var(name).ok())
            .map(Secret)
            .map_err(de::Error::custom)
    }
}

/// Expands `${NAME}` references; `$$` is a literal `$`. Unknown variables are errors, so a
/// typo never silently becomes an empty password.
pub fn expand_env(raw: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name `{name}`"));
            }
            let value =
                lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A `HOST:PORT` listen address. Only literal IP addresses: a listener must not depend on DNS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        let raw = raw.trim();
        let normalized = raw
            .strip_prefix("localhost:")
            .map(|p| format!("127.0.0.1:{p}"));
        normalized
            .as_deref()
            .unwrap_or(raw)
            .parse::<SocketAddr>()
            .map(ListenAddr)
            .map_err(|_| {
                de::Error::custom(format!(
                    "invalid listen address `{raw}`: expected IP:PORT such as 127.0.0.1:6380 or [::1]:6380"
                ))
            })
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "PG_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_env_references() {
        assert_eq!(expand_env("${PG_PASSWORD}", env).as_deref(), Ok("s3cret"));
        assert_eq!(
            expand_env("a${PG_PASSWORD}b", env).as_deref(),
            Ok("as3cretb")
        );
        assert_eq!(expand_env("cost$$5", env).as_deref(), Ok("cost$5"));
        assert_eq!(expand_env("plain$x", env).as_deref(), Ok("plain$x"));
    }

    #[test]
    fn rejects_missing_or_malformed_references() {
        assert!(
            expand_env("${NOPE}", env)
                .unwrap_err()
                .contains("`NOPE` is not set")
        );
        assert!(
            expand_env("${PG_PASSWORD", env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(expand_env("${a-b}", env).unwrap_err().contains("invalid"));
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
    }
}
