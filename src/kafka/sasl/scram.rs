//! SCRAM-SHA-256 and SCRAM-SHA-512 ([RFC 5802](https://www.rfc-editor.org/rfc/rfc5802),
//! [RFC 7677](https://www.rfc-editor.org/rfc/rfc7677)) as Kafka uses them
//! ([KIP-84](https://cwiki.apache.org/confluence/display/KAFKA/KIP-84%3A+Support+SASL+SCRAM+mechanisms)):
//! the server side for clients of the proxy, the client side for the proxy's own login to
//! brokers. No channel binding (Kafka has none).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::postgres::scram::{attribute, constant_time_eq, server_first};

/// Iterations for credentials made from configured passwords (Kafka's minimum).
const ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sha {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("nonce mismatch")]
    Nonce,
    #[error("invalid credentials")]
    Proof,
    #[error("the server's signature does not match: not the broker the password is for")]
    ServerSignature,
    #[error("the server refused: {0}")]
    Refused(String),
}

impl Sha {
    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length, so `new_from_slice` cannot fail.
        match self {
            Sha::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Sha::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Sha::Sha256 => Sha256::digest(data).to_vec(),
            Sha::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this HMAC, one block.
    fn salted(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut block = salt.to_vec();
        block.extend_from_slice(&1u32.to_be_bytes());
        let mut u = self.mac(password, &block);
        let mut out = u.clone();
        for _ in 1..iterations {
            u = self.mac(password, &u);
            out.iter_mut().zip(&u).for_each(|(o, x)| *o ^= x);
        }
        out
    }
}

/// What the server keeps of a user's password (RFC 5802 section 3).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    sha: Sha,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Credential {
    /// From a configured password, with a fresh salt.
    pub fn new(sha: Sha, password: &str) -> Credential {
        let mut salt = [0u8; 16];
        // Without randomness the salt is still unique per credential in practice (the
        // password's own hash); a fixed salt only weakens stored hashes, which stay in memory.
        if getrandom::fill(&mut salt).is_err() {
            salt.copy_from_slice(&sha.digest(password.as_bytes())[..16]);
        }
        let salted = sha.salted(password.as_bytes(), &salt, ITERATIONS);
        Credential {
            sha,
            stored_key: sha.digest(&sha.mac(&salted, b"Client Key")),
            server_key: sha.mac(&salted, b"Server Key"),
            salt: salt.to_vec(),
            iterations: ITERATIONS,
        }
    }

    /// The credential for a configured password, made once per (mechanism, password): 4096
    /// HMAC rounds are too many to repeat on every connection.
    pub fn cached(sha: Sha, password: &str) -> Credential {
        use std::collections::HashMap;
        use std::sync::{LazyLock, Mutex};
        type Cache = Mutex<HashMap<(Sha, String), Credential>>;
        static CACHE: LazyLock<Cache> = LazyLock::new(Default::default);
        let key = (sha, password.to_string());
        if let Some(c) = CACHE.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return c;
        }
        let made = Credential::new(sha, password);
        if let Ok(mut cache) = CACHE.lock() {
            // Bounded by the passwords in the configuration, which reloads may change.
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(key, made.clone());
        }
        made
    }
}

/// The user a client-first-message names (`n,,n=user,r=nonce`), `=2C` and `=3D` decoded.
pub fn user_of(client_first: &[u8]) -> Result<String, ScramError> {
    let (_, bare) = split_gs2(client_first)?;
    let name = attribute(bare, 'n').ok_or(ScramError::Malformed)?;
    Ok(name.replace("=2C", ",").replace("=3D", "="))
}

/// (gs2 header, client-first-message-bare). Kafka clients send `n,,` (or `n,a=user,`).
fn split_gs2(client_first: &[u8]) -> Result<(&str, &str), ScramError> {
    let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    if !text.starts_with("n,") {
        return Err(ScramError::Malformed);
    }
    let cut = text
        .match_indices(',')
        .nth(1)
        .map(|(i, _)| i + 1)
        .ok_or(ScramError::Malformed)?;
    Ok((&text[..cut], &text[cut..]))
}

/// One server-side exchange, after the client's first message.
pub struct ServerExchange {
    credential: Credential,
    gs2: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ServerExchange {
    /// Reads client-first-message; `credential` is the named user's (for an unknown user a
    /// made-up one: the exchange then fails at the proof, as for a wrong password).
    pub fn start(credential: Credential, client_first: &[u8]) -> Result<Self, ScramError> {
        let (gs2, bare) = split_gs2(client_first)?;
        let client_nonce = attribute(bare, 'r').ok_or(ScramError::Malformed)?;
        let c = &credential;
        let (nonce, server_first) =
            server_first(client_nonce, &c.salt, c.iterations).ok_or(ScramError::Malformed)?;
        Ok(ServerExchange {
            credential,
            gs2: gs2.to_string(),
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
        })
    }

    pub fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// The client-final-message's nonce must be the whole nonce of server-first-message
    /// (RFC 5802 section 5.1). librdkafka before 2.6.1 (confluent-kafka, kcat, ...) puts its
    /// own nonce in front once more (librdkafka#4895), which Kafka 3.x brokers accepted; that
    /// exact form is accepted too: it still carries the whole server nonce.
    fn nonce_matches(&self, got: Option<&str>) -> bool {
        let Some(got) = got else { return false };
        if got == self.nonce {
            return true;
        }
        let client_nonce = attribute(&self.client_first_bare, 'r').unwrap_or_default();
        got.strip_prefix(client_nonce) == Some(self.nonce.as_str())
    }

    /// Checks client-final-message (`c=<gs2 header>,r=nonce,p=proof`); returns
    /// server-final-message.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        if attribute(without_proof, 'c') != Some(STANDARD.encode(&self.gs2).as_str()) {
            return Err(ScramError::Malformed);
        }
        if !self.nonce_matches(attribute(without_proof, 'r')) {
            return Err(ScramError::Nonce);
        }
        let proof = STANDARD.decode(proof).map_err(|_| ScramError::Malformed)?;
        let c = &self.credential;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = c.sha.mac(&c.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::Proof);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&c.sha.digest(&client_key), &c.stored_key) {
            return Err(ScramError::Proof);
        }
        let server_signature = c.sha.mac(&c.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

/// The client side, for the proxy's own login to a broker.
pub struct ClientExchange {
    sha: Sha,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Vec<u8>,
}

impl ClientExchange {
    pub fn new(sha: Sha, user: &str, password: &str) -> ClientExchange {
        let mut ours = [0u8; 18];
        let _ = getrandom::fill(&mut ours);
        let nonce = STANDARD.encode(ours);
        let user = user.replace('=', "=3D").replace(',', "=2C");
        ClientExchange {
            sha,
            password: password.to_string(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: Vec::new(),
        }
    }

    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final-message for the server-first-message.
    pub fn answer(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed)?;
        if let Some(e) = attribute(text, 'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        let nonce = attribute(text, 'r').ok_or(ScramError::Malformed)?;
        if !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        let salt = attribute(text, 's')
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or(ScramError::Malformed)?;
        let iterations: u32 = attribute(text, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| (1..=1_000_000).contains(i))
            .ok_or(ScramError::Malformed)?;
        let sha = self.sha;
        let salted = sha.salted(self.password.as_bytes(), &salt, iterations);
        let client_key = sha.mac(&salted, b"Client Key");
        let stored_key = sha.digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = sha.mac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = sha.mac(&salted, b"Server Key");
        self.server_signature = sha.mac(&server_key, auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: the server knew the password too.
    pub fn check(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed)?;
        if let Some(e) = attribute(text, 'e') {
            return Err(ScramError::Refused(e.to_string()));
        }
        let signature = attribute(text, 'v')
            .and_then(|v| STANDARD.decode(v).ok())
            .ok_or(ScramError::Malformed)?;
        match constant_time_eq(&signature, &self.server_signature) {
            true => Ok(()),
            false => Err(ScramError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(sha: Sha, configured: &str, typed: &str) -> Result<(), ScramError> {
        let mut client = ClientExchange::new(sha, "a,b=c", typed);
        assert_eq!(user_of(&client.first())?, "a,b=c");
        let server = ServerExchange::start(Credential::cached(sha, configured), &client.first())?;
        let last = client.answer(server.server_first())?;
        client.check(&server.finish(&last)?)
    }

    #[test]
    fn both_sides_agree_for_both_hashes() {
        for sha in [Sha::Sha256, Sha::Sha512] {
            assert_eq!(exchange(sha, "pw", "pw"), Ok(()));
            assert_eq!(exchange(sha, "pw", "nope"), Err(ScramError::Proof));
        }
    }

    #[test]
    fn rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", the client's nonce and the
        // server's first message as given there.
        let mut client = ClientExchange::new(Sha::Sha256, "user", "pencil");
        client.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        client.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = client.answer(server_first).unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_final = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
        assert_eq!(client.check(server_final), Ok(()));
    }

    #[test]
    fn old_librdkafkas_doubled_client_nonce_is_accepted_and_nothing_else() {
        let sha = Sha::Sha256;
        let mut client = ClientExchange::new(sha, "u", "pw");
        let server = ServerExchange::start(Credential::cached(sha, "pw"), &client.first()).unwrap();
        let right = client.answer(server.server_first()).unwrap();
        let text = String::from_utf8(right.clone()).unwrap();
        let cnonce = client.nonce.clone();
        // What librdkafka < 2.6.1 sends: its nonce once more in front. The proof covers the
        // message as sent, so it is computed over the doubled form.
        let doubled_final = |prefix: &str| {
            let (without, _) = text.rsplit_once(",p=").unwrap();
            let without = without.replacen("r=", &format!("r={prefix}"), 1);
            let auth = format!(
                "{},{},{without}",
                client.client_first_bare,
                String::from_utf8_lossy(server.server_first())
            );
            let salted = sha.salted(b"pw", &server.credential.salt, 4096);
            let key = sha.mac(&salted, b"Client Key");
            let sig = sha.mac(&sha.digest(&key), auth.as_bytes());
            let proof: Vec<u8> = key.iter().zip(&sig).map(|(k, s)| k ^ s).collect();
            format!("{without},p={}", STANDARD.encode(proof)).into_bytes()
        };
        assert!(server.finish(&right).is_ok());
        assert!(server.finish(&doubled_final(&cnonce)).is_ok());
        assert_eq!(server.finish(&doubled_final("x")), Err(ScramError::Nonce));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let c = Credential::cached(Sha::Sha512, "x");
        assert!(ServerExchange::start(c.clone(), b"").is_err());
        assert!(ServerExchange::start(c.clone(), b"p=tls,,n=u,r=a").is_err());
        let ex = ServerExchange::start(c, b"n,,n=u,r=abc").unwrap();
        assert!(ex.finish(b"c=biws,r=abc,p=!!!").is_err());
        assert!(ex.finish(b"").is_err());
        let mut client = ClientExchange::new(Sha::Sha256, "u", "p");
        assert!(
            client.answer(b"r=zzz,s=AA==,i=1").is_err(),
            "a nonce not ours"
        );
        assert!(matches!(
            client.answer(b"e=unknown-user"),
            Err(ScramError::Refused(_))
        ));
    }
}
