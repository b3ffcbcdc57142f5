//! SCRAM-SHA-256 as the client side, proving a user's identity to a server with the
//! ClientKey a client revealed when it logged in to the proxy (PgBouncer calls this SCRAM
//! pass-through): no password is stored anywhere. The proof
//! `ClientKey XOR HMAC(StoredKey, AuthMessage)` is the one the user's own client would send,
//! so it works only when the server holds the same verifier (same salt and iteration
//! count), e.g. when `auth.users` has the server's `pg_authid.rolpassword`.
//! [RFC 5802 section 3](https://www.rfc-editor.org/rfc/rfc5802#section-3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::scram::{ClientKey, attribute, constant_time_eq, hmac};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyLoginError {
    #[error("malformed SCRAM message from the server")]
    Malformed,
    #[error("the server's SCRAM secret for this user differs from the one Throome has")]
    OtherSecret,
    #[error("the server's signature does not match: it does not hold this user's secret")]
    ServerSignature,
}

/// One login, from client-first-message to checking server-final-message.
pub struct KeyLogin {
    key: ClientKey,
    client_first_bare: String,
    nonce: String,
    auth_message: String,
}

impl KeyLogin {
    pub fn new(key: &ClientKey) -> KeyLogin {
        let mut ours = [0u8; 18];
        let _ = getrandom::fill(&mut ours);
        let nonce = STANDARD.encode(ours);
        KeyLogin {
            key: key.clone(),
            // The user name comes from the startup message; PostgreSQL ignores this one.
            client_first_bare: format!("n=,r={nonce}"),
            nonce,
            auth_message: String::new(),
        }
    }

    /// client-first-message, for SASLInitialResponse.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Reads server-first-message (`r=nonce,s=salt,i=iterations`) and returns
    /// client-final-message.
    pub fn answer(&mut self, server_first: &[u8]) -> Result<Vec<u8>, KeyLoginError> {
        let text = std::str::from_utf8(server_first).map_err(|_| KeyLoginError::Malformed)?;
        let nonce = attribute(text, 'r').ok_or(KeyLoginError::Malformed)?;
        let salt = attribute(text, 's').and_then(|s| STANDARD.decode(s).ok());
        let iterations = attribute(text, 'i').and_then(|i| i.parse::<u32>().ok());
        let (Some(salt), Some(iterations)) = (salt, iterations) else {
            return Err(KeyLoginError::Malformed);
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(KeyLoginError::Malformed);
        }
        let verifier = &self.key.verifier;
        if salt != verifier.salt || iterations != verifier.iterations {
            return Err(KeyLoginError::OtherSecret);
        }
        let without_proof = format!("c=biws,r={nonce}");
        self.auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = hmac(&verifier.stored_key, self.auth_message.as_bytes());
        let mut proof = [0u8; 32];
        for (p, (k, s)) in proof.iter_mut().zip(self.key.key.iter().zip(signature)) {
            *p = k ^ s;
        }
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final-message (`v=signature`): the server proves it holds the secret.
    pub fn check(&self, server_final: &[u8]) -> Result<(), KeyLoginError> {
        let text = std::str::from_utf8(server_final).map_err(|_| KeyLoginError::Malformed)?;
        let given = attribute(text, 'v')
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or(KeyLoginError::Malformed)?;
        let want = hmac(&self.key.verifier.server_key, self.auth_message.as_bytes());
        match constant_time_eq(&given, &want) {
            true => Ok(()),
            false => Err(KeyLoginError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::scram::{Exchange, Verifier};
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// The key a real client (postgres-protocol's) reveals logging in with `password`
    /// against `verifier`.
    fn revealed(verifier: &Verifier, password: &str) -> ClientKey {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let ex = Exchange::start(verifier, client.message()).unwrap();
        client.update(ex.server_first()).unwrap();
        ex.finish(client.message()).unwrap().1
    }

    /// Our server side stands in for PostgreSQL holding `verifier`.
    fn log_in(key: &ClientKey, verifier: &Verifier) -> Result<(), KeyLoginError> {
        let mut login = KeyLogin::new(key);
        let ex = Exchange::start(verifier, &login.first()).map_err(|_| KeyLoginError::Malformed)?;
        let last = login.answer(ex.server_first())?;
        let (server_final, again) = ex.finish(&last).map_err(|_| KeyLoginError::Malformed)?;
        assert_eq!(&again, key);
        login.check(&server_final)
    }

    #[test]
    fn a_revealed_key_logs_in_where_the_same_verifier_is_held() {
        let stored = postgres_protocol::password::scram_sha_256(b"pw");
        let verifier = Verifier::parse(&stored).unwrap();
        let key = revealed(&verifier, "pw");
        assert_eq!(log_in(&key, &verifier), Ok(()));
        // The same password hashed with another salt is another secret.
        let other = Verifier::parse(&postgres_protocol::password::scram_sha_256(b"pw")).unwrap();
        assert_eq!(log_in(&key, &other), Err(KeyLoginError::OtherSecret));
    }

    #[test]
    fn a_server_without_the_secret_is_caught() {
        let verifier = Verifier::parse(&postgres_protocol::password::scram_sha_256(b"pw")).unwrap();
        let mut login = KeyLogin::new(&revealed(&verifier, "pw"));
        let ex = Exchange::start(&verifier, &login.first()).unwrap();
        login.answer(ex.server_first()).unwrap();
        assert_eq!(login.check(b"v=AAAA"), Err(KeyLoginError::ServerSignature));
        assert_eq!(login.answer(b"r=x"), Err(KeyLoginError::Malformed));
        assert_eq!(login.check(b"garbage"), Err(KeyLoginError::Malformed));
    }
}
