//! SCRAM-SHA-256 as the server side ([RFC 5802](https://www.rfc-editor.org/rfc/rfc5802),
//! [PostgreSQL SASL](https://www.postgresql.org/docs/current/sasl-authentication.html)),
//! without channel binding. The user's secret is a verifier (salt, iterations, StoredKey,
//! ServerKey): made once from a configured password, or given as PostgreSQL stores it
//! (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const MECHANISM: &str = "SCRAM-SHA-256";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub(super) iterations: u32,
    pub(super) salt: Vec<u8>,
    pub(super) stored_key: [u8; 32],
    pub(super) server_key: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("nonce mismatch")]
    Nonce,
    #[error("wrong password")]
    Proof,
}

impl Verifier {
    /// The verifier for a configured value: a stored SCRAM verifier as is, otherwise a
    /// password (hashed here with a fresh salt, as `CREATE ROLE ... PASSWORD` would).
    pub fn from_secret(secret: &str) -> Verifier {
        if let Some(v) = Verifier::parse(secret) {
            return v;
        }
        let stored = postgres_protocol::password::scram_sha_256(secret.as_bytes());
        // Our own dependency's output always parses; a fallback keeps this total.
        Verifier::parse(&stored).unwrap_or(Verifier {
            iterations: 1,
            salt: Vec::new(),
            stored_key: [0; 32],
            server_key: [0; 32],
        })
    }

    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 parts.
    pub fn parse(s: &str) -> Option<Verifier> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Verifier {
            iterations: iterations.parse().ok()?,
            salt: STANDARD.decode(salt).ok()?,
            stored_key: STANDARD.decode(stored).ok()?.try_into().ok()?,
            server_key: STANDARD.decode(server).ok()?.try_into().ok()?,
        })
    }
}

/// The verifier for a configured secret, computed once per secret: hashing a password
/// takes 4096 HMAC rounds, too much to repeat on every login.
pub fn cached(secret: &str) -> Verifier {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CACHE: LazyLock<Mutex<HashMap<String, Verifier>>> = LazyLock::new(Default::default);
    if let Ok(cache) = CACHE.lock()
        && let Some(v) = cache.get(secret)
    {
        return v.clone();
    }
    let v = Verifier::from_secret(secret);
    if let Ok(mut cache) = CACHE.lock() {
        // Bounded by the secrets in the configuration, which reloads may change.
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(secret.to_string(), v.clone());
    }
    v
}

/// One exchange, after the client's first message.
pub struct Exchange {
    verifier: Verifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Reads client-first-message (`n,,n=user,r=nonce`) and returns the exchange with the
    /// server-first-message to send.
    pub fn start(verifier: &Verifier, client_first: &[u8]) -> Result<Exchange, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
        let bare = match text.as_bytes().first() {
            // "y": the client could bind but thinks we cannot; "n": it cannot.
            Some(b'n' | b'y') => text.splitn(3, ',').nth(2).ok_or(ScramError::Malformed)?,
            Some(b'p') => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        };
        let client_nonce = attribute(bare, 'r').ok_or(ScramError::Malformed)?;
        let (nonce, server_first) = server_first(client_nonce, &verifier.salt, verifier.iterations)
            .ok_or(ScramError::Malformed)?;
        Ok(Exchange {
            verifier: verifier.clone(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }

    pub fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// Checks client-final-message (`c=biws,r=nonce,p=proof`); returns server-final-message
    /// and the client's key, which the proof reveals (and which logs in as the same user to
    /// a server holding the same verifier, see `scram_client`).
    pub fn finish(&self, client_final: &[u8]) -> Result<(Vec<u8>, ClientKey), ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let binding = attribute(without_proof, 'c').ok_or(ScramError::Malformed)?;
        // base64("n,,") or base64("y,,"): no channel binding data.
        if binding != "biws" && binding != "eSws" {
            return Err(ScramError::ChannelBinding);
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err(ScramError::Nonce);
        }
        let proof: [u8; 32] = STANDARD
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed)?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.verifier.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !constant_time_eq(&stored, &self.verifier.stored_key) {
            return Err(ScramError::Proof);
        }
        let server_signature = hmac(&self.verifier.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", STANDARD.encode(server_signature)).into_bytes();
        let key = ClientKey {
            key: client_key,
            verifier: self.verifier.clone(),
        };
        Ok((server_final, key))
    }
}

/// A client's SCRAM ClientKey (`H(ClientKey)` is the verifier's StoredKey), learned from its
/// proof, with the verifier it was checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey {
    pub key: [u8; 32],
    pub verifier: Verifier,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(..)")
    }
}

/// (the exchange's nonce, server-first-message) for a client nonce: ours appended to the
/// client's, then the salt and iteration count (RFC 5802 section 5.1). `None` without
/// randomness for our part.
pub(crate) fn server_first(
    client_nonce: &str,
    salt: &[u8],
    iterations: u32,
) -> Option<(String, String)> {
    let mut ours = [0u8; 18];
    getrandom::fill(&mut ours).ok()?;
    let nonce = format!("{client_nonce}{}", STANDARD.encode(ours));
    let message = format!("r={nonce},s={},i={iterations}", STANDARD.encode(salt));
    Some((nonce, message))
}

/// The value of `name=` in a comma-separated SCRAM message.
pub(crate) fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// postgres-protocol's client (the one tokio-postgres uses) against our server side.
    fn exchange(configured: &str, typed: &str) -> Result<(), ScramError> {
        let verifier = Verifier::from_secret(configured);
        let mut client = ScramSha256::new(typed.as_bytes(), ChannelBinding::unsupported());
        let ex = Exchange::start(&verifier, client.message())?;
        client.update(ex.server_first()).unwrap();
        let (server_final, _) = ex.finish(client.message())?;
        client.finish(&server_final).unwrap();
        Ok(())
    }

    #[test]
    fn a_real_client_authenticates_and_verifies_the_server() {
        assert_eq!(exchange("s3cret", "s3cret"), Ok(()));
        assert_eq!(exchange("s3cret", "wrong"), Err(ScramError::Proof));
    }

    #[test]
    fn a_stored_verifier_works_like_the_password() {
        let stored = postgres_protocol::password::scram_sha_256(b"pw");
        assert!(Verifier::parse(&stored).is_some());
        assert_eq!(exchange(&stored, "pw"), Ok(()));
        assert_eq!(exchange(&stored, "nope"), Err(ScramError::Proof));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let v = Verifier::from_secret("x");
        assert!(Exchange::start(&v, b"").is_err());
        assert!(Exchange::start(&v, b"p=tls-server-end-point,,n=,r=abc").is_err());
        let ex = Exchange::start(&v, b"n,,n=,r=abc").unwrap();
        assert!(ex.finish(b"c=biws,r=abc,p=!!!").is_err());
        assert!(ex.finish(b"").is_err());
    }
}
