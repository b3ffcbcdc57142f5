//! The client's startup phase: TLS and GSS encryption requests answered `N`, cancel requests
//! passed on, protocol version negotiated down to 3.0, then authentication at the proxy
//! ([start-up flow](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP)).

use bytes::Bytes;

use throome_pgwire::{Startup, build, msg, scan_startup};

use super::hba;
use super::io::{Wire, WireError};
use super::scram::{self, Exchange, Verifier};
use super::secret::{self, Kind};
use crate::config::AuthMethod;
use crate::session::Peer;
use crate::snapshot::ServiceRuntime;

pub struct Login {
    pub user: String,
    pub database: String,
    /// Startup parameters other than user and database (application_name, client_encoding,
    /// DateStyle, TimeZone, options, ...).
    pub params: Vec<(String, String)>,
    /// What logs in to servers as this user, learned at authentication.
    pub credential: Option<Credential>,
}

/// How the proxy logs in to a server as the client's own user (when the service names no
/// `username` of its own).
#[derive(Debug, Clone)]
pub enum Credential {
    /// The user's password from `auth.users`.
    Password(String),
    /// The user's md5 hash (`md5...`, as in `pg_authid`): answers md5 challenges only.
    Md5Hash(String),
    /// The ClientKey the user's SCRAM proof revealed, for a user whose `auth.users` entry is
    /// a SCRAM verifier (see `scram_client`).
    ClientKey(scram::ClientKey),
}

impl Credential {
    /// A configured secret used to log in: an md5 hash as such, anything else as a password.
    pub fn from_secret(secret: &str) -> Credential {
        match secret::kind(secret) {
            Kind::Md5Hash => Credential::Md5Hash(secret.to_string()),
            _ => Credential::Password(secret.to_string()),
        }
    }
}

pub enum Opening {
    Login(Login),
    /// A cancel request (handled) or a client that went away.
    Done,
    /// Refused: this ErrorResponse is sent, then the connection closes.
    Refused(Bytes),
    /// A wrong password or unknown user, then as `Refused`.
    AuthFailed {
        /// The metric label: the user when it is a known one, else `(unknown)` (a client
        /// must not be able to make a series per name it tries).
        user: String,
        error: Bytes,
    },
}

fn fatal(code: &str, text: &str) -> Opening {
    Opening::Refused(build::error("FATAL", code, text))
}

/// What the client asked for before its StartupMessage was answered.
pub enum Negotiated {
    Startup {
        major: u16,
        minor: u16,
        params: Vec<(String, String)>,
    },
    /// A cancel request (passed on) or a client that went away.
    Done,
    /// Not a startup packet: the reason.
    Invalid(String),
}

/// Reads up to the StartupMessage: SSLRequest answered `S` and TLS started with `acceptor`
/// (else `N`; over a Unix-domain socket PostgreSQL answers `N`, there is nothing to protect
/// from the network), GSSENCRequest and a second SSLRequest answered `N`, a cancel request
/// passed on.
pub async fn negotiate(
    client: &mut Wire,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Result<Negotiated, WireError> {
    loop {
        let startup = loop {
            match scan_startup(&mut client.buf) {
                Ok(Some(s)) => break s,
                Ok(None) => client.fill().await?,
                Err(e) => return Ok(Negotiated::Invalid(e.to_string())),
            }
        };
        match startup {
            Startup::Ssl if !client.is_tls() && !client.is_unix() => match &acceptor {
                Some(acceptor) => {
                    client.send(b"S").await?;
                    client.start_tls(acceptor).await?;
                }
                // `sslmode=prefer` clients go on in clear.
                None => client.send(b"N").await?,
            },
            Startup::Ssl | Startup::GssEnc => client.send(b"N").await?,
            Startup::Cancel { pid, key } => {
                super::cancel::forward(pid, &key).await;
                return Ok(Negotiated::Done);
            }
            Startup::Startup {
                major,
                minor,
                params,
            } => {
                return Ok(Negotiated::Startup {
                    major,
                    minor,
                    params,
                });
            }
        }
    }
}

/// Runs the startup phase up to a successful authentication.
pub async fn open(
    client: &mut Wire,
    service: &ServiceRuntime,
    peer: &Peer,
) -> Result<Opening, WireError> {
    let acceptor = if client.is_tls() {
        None
    } else {
        tls_acceptor(service)
    };
    let (major, minor, params) = match negotiate(client, acceptor).await? {
        Negotiated::Startup {
            major,
            minor,
            params,
        } => (major, minor, params),
        Negotiated::Done => return Ok(Opening::Done),
        Negotiated::Invalid(e) => {
            return Ok(fatal("08P01", &format!("invalid startup packet: {e}")));
        }
    };
    let required = service.spec.tls.as_ref().is_some_and(|t| t.required);
    if required && !client.is_tls() && !client.is_unix() {
        return Ok(fatal(
            "28000",
            "this service requires TLS: connect with sslmode=require",
        ));
    }
    if major != 3 {
        return Ok(fatal(
            "0A000",
            &format!("unsupported frontend protocol {major}.{minor}: Throome speaks 3.0"),
        ));
    }
    login(client, service, peer, (minor, params)).await
}

/// The service's TLS acceptor; `None` without `tls` or when its files no longer load (they
/// did when the configuration was checked).
fn tls_acceptor(service: &ServiceRuntime) -> Option<tokio_rustls::TlsAcceptor> {
    let tls = service.spec.tls.as_ref()?;
    crate::tls::cached_acceptor(tls)
        .inspect_err(|e| tracing::error!(error = %e, "TLS for clients is off"))
        .ok()
}

/// The StartupMessage's protocol minor version and parameters.
type Asked = (u16, Vec<(String, String)>);

async fn login(
    client: &mut Wire,
    service: &ServiceRuntime,
    peer: &Peer,
    (minor, params): Asked,
) -> Result<Opening, WireError> {
    // Protocol 3.2 and `_pq_.` extensions: say we speak 3.0 without them.
    let unknown: Vec<&str> = params
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("_pq_."))
        .collect();
    if minor > 0 || !unknown.is_empty() {
        client
            .send(&build::negotiate_protocol_version(0, &unknown))
            .await?;
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(user) = get("user") else {
        return Ok(fatal(
            "28000",
            "no PostgreSQL user name specified in startup packet",
        ));
    };
    let database = get("database").unwrap_or_else(|| user.clone());
    let connection = hba::Connection {
        address: match peer {
            Peer::Tcp(a) => Some(a.ip()),
            Peer::Unix | Peer::Internal => None,
        },
        tls: client.is_tls(),
        database: &database,
        user: &user,
    };
    let credential = if matches!(peer, Peer::Internal) {
        // The data API checked its own token; the user's configured password (not a SCRAM
        // verifier, which cannot log in) is what logs in to servers, as after a login.
        client.send(&build::auth_ok()).await?;
        internal_credential(service, &user)
    } else {
        match authenticated(client, service, &connection, user.clone()).await? {
            Ok(credential) => credential,
            Err(opening) => return Ok(opening),
        }
    };
    let rest = match session_params(params) {
        Ok(p) => p,
        Err(why) => return Ok(fatal("08P01", &why)),
    };
    Ok(Opening::Login(Login {
        user,
        database,
        params: rest,
        credential,
    }))
}

fn internal_credential(service: &ServiceRuntime, user: &str) -> Option<Credential> {
    let secret = service.spec.auth.as_ref()?.users.get(user)?.expose();
    match secret::kind(secret) {
        Kind::Scram => None,
        _ => Some(Credential::from_secret(secret)),
    }
}

/// The client's login checked: its credential, or the opening that refuses it.
async fn authenticated(
    client: &mut Wire,
    service: &ServiceRuntime,
    connection: &hba::Connection<'_>,
    user: String,
) -> Result<Result<Option<Credential>, Opening>, WireError> {
    Ok(Ok(
        match authenticate(client, service, connection).await? {
            Authenticated::Yes(credential) => credential,
            Authenticated::Denied(text) => {
                let configured = service
                    .spec
                    .auth
                    .as_ref()
                    .is_some_and(|a| a.users.contains_key(&user));
                return Ok(Err(Opening::AuthFailed {
                    error: build::error("FATAL", "28000", &text),
                    user: label(user, configured),
                }));
            }
            Authenticated::No { known } => {
                let text = format!("password authentication failed for user \"{user}\"");
                return Ok(Err(Opening::AuthFailed {
                    error: build::error("FATAL", "28P01", &text),
                    user: label(user, known),
                }));
            }
            Authenticated::Unknowable(why) => {
                return Ok(Err(fatal(
                    "08006",
                    &format!("cannot look up user \"{user}\": {why}"),
                )));
            }
        },
    ))
}

/// The startup parameters that are session settings: `options` read into its `-c`
/// settings, without user, database and protocol extensions. A replication connection is
/// refused: its protocol is not pooled.
fn session_params(params: Vec<(String, String)>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "user" | "database" => {}
            "replication" if !matches!(v.as_str(), "false" | "off" | "no" | "0") => {
                return Err("replication connections are not supported by Throome".into());
            }
            "replication" => {}
            "options" => out.extend(super::params::parse_options(&v)?),
            k if k.starts_with("_pq_.") => {}
            _ => out.push((k, v)),
        }
    }
    Ok(out)
}

/// A failed login's user as a metric label.
fn label(user: String, known: bool) -> String {
    match known {
        true => user,
        false => "(unknown)".into(),
    }
}

enum Authenticated {
    Yes(Option<Credential>),
    /// A wrong password, or an unknown user (`known: false`) (28P01).
    No {
        known: bool,
    },
    /// Refused for another reason, with PostgreSQL's words (28000).
    Denied(String),
    /// The auth query could not run.
    Unknowable(String),
}

/// Checks the client's password by the method the service's `auth.hba` rules pick for
/// this connection, or else by its `auth.method`.
async fn authenticate(
    client: &mut Wire,
    service: &ServiceRuntime,
    connection: &hba::Connection<'_>,
) -> Result<Authenticated, WireError> {
    let (user, database) = (connection.user, connection.database);
    let Some(auth) = &service.spec.auth else {
        client.send(&build::auth_ok()).await?;
        return Ok(Authenticated::Yes(None));
    };
    let configured = match service.spec.pg.hba.as_slice() {
        [] => auth.method.unwrap_or_default(),
        rules => match hba::decide(rules, connection).map(|r| r.method) {
            Some(hba::Method::Use(method)) => method,
            Some(hba::Method::Reject) => {
                return Ok(Authenticated::Denied(hba::refusal(connection, true)));
            }
            None => return Ok(Authenticated::Denied(hba::refusal(connection, false))),
        },
    };
    let mut secret = auth.users.get(user).map(|s| s.expose().to_string());
    let cert = configured == AuthMethod::Cert;
    if secret.is_none()
        && !cert
        && let Some(query) = &auth.query
    {
        match super::auth_query::lookup(service, query, user, database).await {
            Ok(found) => secret = found,
            Err(e) => return Ok(Authenticated::Unknowable(e.to_string())),
        }
    }
    let kind = secret.as_deref().map(secret::kind);
    // As PgBouncer: under md5 a user whose secret is a SCRAM verifier is asked for SCRAM
    // (md5 cannot be checked against a verifier); under SCRAM an md5 hash cannot serve.
    let method = match (configured, kind) {
        (AuthMethod::Md5, Some(Kind::Scram)) => AuthMethod::ScramSha256,
        (m, _) => m,
    };
    let result = match method {
        AuthMethod::Trust => Authenticated::Yes(None),
        AuthMethod::Cert => certificate(client, user),
        AuthMethod::Md5 => {
            let mut salt = [0u8; 4];
            let _ = getrandom::fill(&mut salt);
            client.send(&build::auth_md5(salt)).await?;
            let answer = password_message(client).await?;
            let want = secret.as_deref().map(|s| match secret::kind(s) {
                Kind::Md5Hash => secret::md5_answer(s, salt),
                _ => secret::md5_answer(&secret::md5_hash(user, s), salt),
            });
            match want.is_some_and(|w| answer.strip_suffix(b"\0") == Some(w.as_bytes())) {
                true => Authenticated::Yes(secret.as_deref().map(Credential::from_secret)),
                false => Authenticated::No { known: true },
            }
        }
        AuthMethod::ScramSha256 => {
            // An unknown user (or one with only an md5 hash) goes through the exchange too,
            // against a random verifier, so the answer does not tell which users exist.
            let usable = secret.as_deref().filter(|_| kind != Some(Kind::Md5Hash));
            let verifier = scram::cached(usable.unwrap_or("throome: no such user"));
            match scram_exchange(client, &verifier).await? {
                // A configured password serves for server logins too; a stored verifier
                // only through the key the proof revealed.
                Some(key) => match usable.map(|s| (s, secret::kind(s))) {
                    Some((s, Kind::Password)) => {
                        Authenticated::Yes(Some(Credential::Password(s.to_string())))
                    }
                    Some(_) => Authenticated::Yes(Some(Credential::ClientKey(key))),
                    None => Authenticated::No { known: true },
                },
                None => Authenticated::No { known: true },
            }
        }
    };
    // The client is told the same either way; only the metric label tells them apart.
    let result = match result {
        Authenticated::No { .. } if secret.is_none() => Authenticated::No { known: false },
        r => r,
    };
    if matches!(result, Authenticated::Yes(_)) {
        client.send(&build::auth_ok()).await?;
    }
    Ok(result)
}

/// `cert`: the user is the Common Name of the client's certificate, as PostgreSQL's `cert`
/// method without a user map (<https://www.postgresql.org/docs/current/auth-cert.html>).
/// Servers are logged in to with the service's credentials.
fn certificate(client: &Wire, user: &str) -> Authenticated {
    match client.peer_common_name() {
        Some(cn) if cn == user => Authenticated::Yes(None),
        Some(_) => Authenticated::Denied(format!(
            "certificate authentication failed for user \"{user}\""
        )),
        None => Authenticated::Denied("connection requires a valid client certificate".into()),
    }
}

/// The SCRAM exchange; the client's key when its proof is right.
async fn scram_exchange(
    client: &mut Wire,
    verifier: &Verifier,
) -> Result<Option<scram::ClientKey>, WireError> {
    client.send(&build::auth_sasl(&[scram::MECHANISM])).await?;
    let initial = password_message(client).await?;
    // SASLInitialResponse: mechanism, Int32 length, client-first-message.
    let Some((mechanism, rest)) = initial
        .iter()
        .position(|&b| b == 0)
        .map(|i| (&initial[..i], &initial[i + 1..]))
    else {
        return Ok(None);
    };
    if mechanism != scram::MECHANISM.as_bytes() || rest.len() < 4 {
        return Ok(None);
    }
    let Ok(exchange) = Exchange::start(verifier, &rest[4..]) else {
        return Ok(None);
    };
    client
        .send(&build::auth_sasl_continue(exchange.server_first()))
        .await?;
    let last = password_message(client).await?;
    match exchange.finish(&last) {
        Ok((server_final, key)) => {
            client.send(&build::auth_sasl_final(&server_final)).await?;
            Ok(Some(key))
        }
        Err(_) => Ok(None),
    }
}

/// The body of the client's next message, which must be a PasswordMessage/SASL response.
async fn password_message(client: &mut Wire) -> Result<Bytes, WireError> {
    let frame = client.frame().await?;
    if frame.tag() != msg::front::PASSWORD {
        return Err(WireError::Closed);
    }
    let body = frame.body().to_vec();
    Ok(Bytes::from(body))
}
