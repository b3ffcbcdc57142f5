//! SASL ending at the proxy (a Kafka broker's `SASL_PLAINTEXT`/`SASL_SSL` listener, played
//! by Throome): with `auth.users`, clients authenticate to the proxy with PLAIN or SCRAM
//! ([KIP-43](https://cwiki.apache.org/confluence/display/KAFKA/KIP-43%3A+Kafka+SASL+enhancements),
//! KIP-84, KIP-152) and nothing but ApiVersions reaches a broker before they have; with
//! `sasl_mechanism`, `username` and `password` the proxy logs in to each broker connection
//! itself (`login`), so the brokers' credentials never leave it. Without either, SASL passes
//! through to the brokers untouched.

pub mod login;
pub mod scram;

use std::collections::BTreeMap;

use bytes::Bytes;
use throome_kafka::sasl::{self, SASL_AUTHENTICATE, sasl_code};
use throome_kafka::{RequestHeader, api};

use crate::config::{SaslMechanism, Secret};
use crate::snapshot::ServiceRuntime;
use scram::{Credential, ServerExchange, Sha};

/// What the request side does with one request.
pub enum Verdict {
    /// Goes on as usual.
    Pass,
    /// Answered by the proxy with this frame.
    Answer(Bytes),
    /// The client is not authenticated: the connection closes, as a broker closes it.
    Close,
}

enum State {
    /// No handshake yet (or the last one named an unknown mechanism).
    Start,
    Handshaken(SaslMechanism),
    /// SCRAM's first round done, for this user.
    Scram(Box<ServerExchange>, String),
    /// As this user (`None`: the proxy's own broker login stands for every client).
    Authenticated(Option<String>),
    /// The credentials were wrong: only the answer saying so goes out.
    Failed,
}

/// One client connection's SASL state, when the proxy authenticates clients or logs in to
/// brokers itself.
pub struct Gate {
    users: BTreeMap<String, Secret>,
    mechanisms: Vec<SaslMechanism>,
    state: State,
    /// The user of an authentication that just failed, as a metric label: a configured
    /// user's name, else `(unknown)` (a client must not make a series per name it tries).
    failed: Option<String>,
}

impl Gate {
    /// `None` when SASL passes through to the brokers.
    pub fn of(service: &ServiceRuntime) -> Option<Gate> {
        let users = service.spec.auth.as_ref().map(|a| a.users.clone());
        let users = users.unwrap_or_default();
        if users.is_empty() && service.spec.kafka.login.is_none() {
            return None;
        }
        let configured = service.spec.auth.as_ref().map(|a| a.mechanisms.clone());
        let mechanisms = match configured.unwrap_or_default() {
            m if !m.is_empty() => m,
            _ if users.is_empty() => Vec::new(),
            _ => vec![SaslMechanism::ScramSha256, SaslMechanism::ScramSha512],
        };
        // Without client users the proxy's own login stands for everyone.
        let state = match users.is_empty() {
            true => State::Authenticated(None),
            false => State::Start,
        };
        Some(Gate {
            users,
            mechanisms,
            state,
            failed: None,
        })
    }

    pub fn authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated(_))
    }

    /// The user of the authentication that failed last, once.
    pub fn take_failure(&mut self) -> Option<String> {
        self.failed.take()
    }

    /// The user the client authenticated as, once it has.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated(user) => user.as_deref(),
            _ => None,
        }
    }

    pub fn check(&mut self, h: &RequestHeader, frame: &[u8]) -> Verdict {
        match h.api_key {
            // v0 is refused as without a gate (its bare tokens cannot be followed).
            api::SASL_HANDSHAKE if h.api_version >= 1 => self.handshake(h, frame),
            SASL_AUTHENTICATE => self.authenticate(h, frame),
            api::API_VERSIONS | api::SASL_HANDSHAKE => Verdict::Pass,
            _ if matches!(self.state, State::Authenticated(_)) => Verdict::Pass,
            _ => Verdict::Close,
        }
    }

    fn handshake(&mut self, h: &RequestHeader, frame: &[u8]) -> Verdict {
        let names: Vec<&str> = self.mechanisms.iter().map(|m| m.name()).collect();
        let asked = sasl::handshake_mechanism(h, frame).ok();
        let chosen = self
            .mechanisms
            .iter()
            .find(|m| asked.as_deref() == Some(m.name()));
        let error = match chosen {
            Some(m) => {
                self.state = State::Handshaken(*m);
                0
            }
            None => sasl_code::UNSUPPORTED_SASL_MECHANISM,
        };
        let answer = sasl::handshake_response(h.correlation_id, error, &names);
        Verdict::Answer(Bytes::from(answer))
    }

    fn authenticate(&mut self, h: &RequestHeader, frame: &[u8]) -> Verdict {
        let token = sasl::authenticate_bytes(h, frame).unwrap_or_default();
        let tried = match &self.state {
            State::Handshaken(SaslMechanism::Plain) => token
                .split(|b| *b == 0)
                .nth(1)
                .map(|u| String::from_utf8_lossy(u).into_owned()),
            State::Handshaken(_) => scram::user_of(token).ok(),
            State::Scram(_, user) => Some(user.clone()),
            _ => None,
        };
        let outcome = match std::mem::replace(&mut self.state, State::Failed) {
            State::Handshaken(SaslMechanism::Plain) => self.plain(token),
            State::Handshaken(m) => self.scram_first(sha(m), token),
            State::Scram(exchange, user) => exchange
                .finish(token)
                .map(|last| (State::Authenticated(Some(user)), last)),
            _ => {
                let text = "SaslAuthenticate before a SaslHandshake";
                let answer = sasl::authenticate_response(
                    h.correlation_id,
                    h.api_version,
                    sasl_code::ILLEGAL_SASL_STATE,
                    Some(text),
                    &[],
                );
                return Verdict::Answer(Bytes::from(answer));
            }
        };
        let (error, message, token) = match outcome {
            Ok((next, token)) => {
                self.state = next;
                (0, None, token)
            }
            Err(_) => {
                self.failed = Some(match tried {
                    Some(user) if self.users.contains_key(&user) => user,
                    _ => "(unknown)".into(),
                });
                (
                    sasl_code::SASL_AUTHENTICATION_FAILED,
                    Some("Authentication failed: invalid credentials"),
                    Vec::new(),
                )
            }
        };
        let answer =
            sasl::authenticate_response(h.correlation_id, h.api_version, error, message, &token);
        Verdict::Answer(Bytes::from(answer))
    }

    /// `authzid NUL authcid NUL password` (RFC 4616); an authzid must name the same user.
    fn plain(&self, token: &[u8]) -> Result<(State, Vec<u8>), scram::ScramError> {
        let mut parts = token.split(|b| *b == 0);
        let (Some(authz), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(scram::ScramError::Malformed);
        };
        let user = std::str::from_utf8(user).map_err(|_| scram::ScramError::Malformed)?;
        let known = self.users.get(user).map(|s| s.expose().as_bytes());
        let ok = (authz.is_empty() || authz == user.as_bytes())
            && known.is_some_and(|k| crate::postgres::scram::constant_time_eq(k, password));
        match ok {
            true => Ok((State::Authenticated(Some(user.to_string())), Vec::new())),
            false => Err(scram::ScramError::Proof),
        }
    }

    fn scram_first(&self, sha: Sha, token: &[u8]) -> Result<(State, Vec<u8>), scram::ScramError> {
        let user = scram::user_of(token)?;
        let credential = match self.users.get(&user) {
            Some(password) => Credential::cached(sha, password.expose()),
            // An unknown user goes through the same rounds and fails at the proof.
            None => Credential::cached(sha, unknowable()),
        };
        let exchange = ServerExchange::start(credential, token)?;
        let first = exchange.server_first().to_vec();
        Ok((State::Scram(Box::new(exchange), user), first))
    }
}

fn sha(m: SaslMechanism) -> Sha {
    match m {
        SaslMechanism::ScramSha512 => Sha::Sha512,
        _ => Sha::Sha256,
    }
}

/// A password no client can know, made once per process.
fn unknowable() -> &'static str {
    static SECRET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut bytes = [0u8; 24];
        let _ = getrandom::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    &SECRET
}
