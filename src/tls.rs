//! TLS with rustls: the server side for client connections, from a service's PEM
//! certificate chain and private key, and the client side for server connections, verifying
//! the server against a CA file or (libpq's `sslmode=require`) only encrypting. PostgreSQL
//! asks for either with SSLRequest,
//! [protocol 54.2.10](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use crate::config::{ServerTlsConfig, TlsConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {0}: {1}")]
    Cert(String, String),
    #[error("cannot read the private key {0}: {1}")]
    Key(String, String),
    #[error("{0}")]
    Config(#[from] rustls::Error),
    #[error("the CA file {0} holds no usable certificate")]
    NoRoots(String),
}

/// Acceptors and connectors by their files, made again when a file changed (a renewed
/// certificate is served to the next connection, no reload needed). A file caught half
/// written keeps the previous one in service until it reads whole.
type Cache<K, V> = LazyLock<Mutex<HashMap<K, Stamped<V>>>>;
static ACCEPTORS: Cache<TlsConfig, TlsAcceptor> = LazyLock::new(Default::default);
static CONNECTORS: Cache<ServerTlsConfig, TlsConnector> = LazyLock::new(Default::default);

struct Stamped<V> {
    value: V,
    changed: Vec<Option<SystemTime>>,
}

/// When each file last changed (`None`: cannot tell).
fn changed(files: &[&Path]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

fn cached<K, V>(
    cache: &Cache<K, V>,
    key: K,
    files: &[&Path],
    make: impl FnOnce() -> Result<V, TlsError>,
) -> Result<V, TlsError>
where
    K: std::hash::Hash + Eq,
    V: Clone,
{
    let now = changed(files);
    if let Some(e) = cache.lock().ok().and_then(|c| {
        c.get(&key)
            .filter(|e| e.changed == now)
            .map(|e| e.value.clone())
    }) {
        return Ok(e);
    }
    match make() {
        Ok(value) => {
            if let Ok(mut c) = cache.lock() {
                let entry = Stamped {
                    value: value.clone(),
                    changed: now,
                };
                c.insert(key, entry);
            }
            Ok(value)
        }
        Err(e) => {
            let old = cache
                .lock()
                .ok()
                .and_then(|c| c.get(&key).map(|e| e.value.clone()));
            match old {
                Some(v) => {
                    tracing::warn!(error = %e, "a changed TLS file does not load; the previous one stays");
                    Ok(v)
                }
                None => Err(e),
            }
        }
    }
}

pub fn cached_acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let files = present(&[Some(&tls.cert), Some(&tls.key), tls.client_ca.as_ref()]);
    cached(&ACCEPTORS, tls.clone(), &files, || acceptor(tls))
}

pub fn cached_connector(tls: &ServerTlsConfig) -> Result<TlsConnector, TlsError> {
    let files = present(&[tls.ca.as_ref(), tls.cert.as_ref(), tls.key.as_ref()]);
    cached(&CONNECTORS, tls.clone(), &files, || connector(tls))
}

fn present<'a>(files: &[Option<&'a PathBuf>]) -> Vec<&'a Path> {
    files.iter().flatten().map(|p| p.as_path()).collect()
}

/// The TLS handshake as a client over `tcp` to `host` (the name the certificate must carry
/// under `verify-full`), with the service's `server_tls`.
pub async fn connect(
    tls: &ServerTlsConfig,
    host: &str,
    tcp: TcpStream,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = cached_connector(tls).map_err(std::io::Error::other)?;
    let name = ServerName::try_from(host.to_string()).map_err(std::io::Error::other)?;
    connector.connect(name, tcp).await
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The connector for server connections: with `ca`, the server's certificate must chain to
/// it and name the host connected to; without, the connection is encrypted and the
/// certificate's signatures are checked, but not who it names (libpq's `require`). With
/// `cert` and `key`, the proxy presents that certificate when the server asks (mutual TLS).
pub fn connector(tls: &ServerTlsConfig) -> Result<TlsConnector, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let verified = match &tls.ca {
        Some(ca) => builder.with_root_certificates(roots(ca)?),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(
                provider().signature_verification_algorithms,
            ))),
    };
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            verified.with_client_auth_cert(chain(cert)?, private_key(key)?)?
        }
        _ => verified.with_no_client_auth(),
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file (a chain, leaf first), at least one.
fn chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert(shown.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(shown, "no certificate in it".into()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::Key(path.display().to_string(), e.to_string()))
}

/// The trust anchors in a PEM file of CA certificates.
fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(chain(path)?);
    if added == 0 {
        return Err(TlsError::NoRoots(path.display().to_string()));
    }
    Ok(roots)
}

/// Accepts any certificate chain but still checks the handshake signatures with the key in
/// it: encryption against a passive listener, as libpq's `sslmode=require`.
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The acceptor for `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1);
/// with `client_ca`, a client must present a certificate that chains to it (mutual TLS).
pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::Cert(ca.display().to_string(), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain(&tls.cert)?, private_key(&tls.key)?)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_garbage_files_are_clear_errors() {
        let dir = std::env::temp_dir();
        let none = dir.join("throome-no-such-cert.pem");
        let config = |p: &Path| TlsConfig {
            cert: p.to_path_buf(),
            key: p.to_path_buf(),
            required: false,
            client_ca: None,
        };
        let err = acceptor(&config(&none)).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("certificate chain")));
        let garbage = dir.join(format!("throome-garbage-{}.pem", std::process::id()));
        std::fs::write(&garbage, "not pem").unwrap();
        let err = acceptor(&config(&garbage)).err().map(|e| e.to_string());
        assert!(
            err.as_ref().is_some_and(|e| e.contains("no certificate")),
            "{err:?}"
        );
        let _ = std::fs::remove_file(garbage);
    }
}
