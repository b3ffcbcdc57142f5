//! Who may connect and how: client authentication at the proxy (passwords, users, host
//! rules, auth query, SASL mechanisms) and TLS on either side.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::Secret;

/// A Kafka SASL mechanism, by its Kafka name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How clients prove who they are to a Postgres service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum AuthMethod {
    #[default]
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "md5")]
    Md5,
    #[serde(rename = "trust")]
    Trust,
    /// The client's TLS certificate (signed by `tls.client_ca`) names the user in its
    /// Common Name (PgBouncer's `auth_type = cert`, PostgreSQL's `cert`).
    #[serde(rename = "cert")]
    Cert,
}

/// Client authentication at the proxy: a `requirepass`-style password for the `default`
/// user, and/or named users (ACL-style `AUTH user pass`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// Postgres: `scram-sha-256` (default), `md5` or `trust`.
    pub method: Option<AuthMethod>,
    pub password: Option<Secret>,
    #[serde(default)]
    pub users: BTreeMap<String, Secret>,
    /// Postgres: users (from `users`) who may open the admin console (database `throome`).
    #[serde(default)]
    pub admin_users: Vec<String>,
    /// Postgres: how users missing from `users` are looked up (PgBouncer's `auth_query`).
    pub query: Option<AuthQuery>,
    /// Postgres: host-based authentication rules in pg_hba.conf's line syntax (PgBouncer's
    /// `auth_type = hba`): the first rule matching decides the method; none matching refuses.
    #[serde(default)]
    pub hba: Vec<String>,
    /// Kafka: the SASL mechanisms clients may authenticate to the proxy with (Kafka's
    /// `sasl.enabled.mechanisms`; default SCRAM-SHA-256 and SCRAM-SHA-512).
    #[serde(default)]
    pub mechanisms: Vec<SaslMechanism>,
}

/// A PEM certificate chain and private key (paths absolute or relative to Throome's working
/// directory); with `required`, clients that do not ask for TLS are refused (postgres); with
/// `client_ca`, clients must present a certificate signed by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    #[serde(default)]
    pub required: bool,
    pub client_ca: Option<std::path::PathBuf>,
}

/// TLS to the servers, by libpq's `sslmode` names: `prefer` (when the server offers it),
/// `require` (encrypted, the server unverified) or `verify-full` (its certificate chains to
/// `ca` and names the backend's host).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    pub mode: ServerTlsMode,
    pub ca: Option<std::path::PathBuf>,
    /// A certificate (and its key) presented to servers that ask for one (mutual TLS).
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerTlsMode {
    Prefer,
    Require,
    VerifyFull,
}

/// A query run on the primary for a user's SCRAM verifier, as `user` (with `password`, or
/// none where the server trusts it), in the database the client asked for.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthQuery {
    /// `$1` is the user name; the first column of the first row is the verifier (no row or
    /// NULL: no such user). E.g. `SELECT rolpassword FROM pg_authid WHERE rolname = $1`
    /// (superuser only) or a SECURITY DEFINER function over it.
    pub sql: String,
    pub user: String,
    pub password: Option<Secret>,
}
