//! TLS for client connections: a rustls server configuration from a service's PEM
//! certificate chain and private key (PostgreSQL clients ask for it with SSLRequest,
//! [protocol 54.2.10](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL)).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {0}: {1}")]
    Cert(String, String),
    #[error("cannot read the private key {0}: {1}")]
    Key(String, String),
    #[error("{0}")]
    Config(#[from] rustls::Error),
}

/// The acceptor for `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Cert(shown(cert), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(shown(cert), "no certificate in it".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key(shown(key), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_garbage_files_are_clear_errors() {
        let dir = std::env::temp_dir();
        let none = dir.join("throome-no-such-cert.pem");
        let err = acceptor(&none, &none).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("certificate chain")));
        let garbage = dir.join(format!("throome-garbage-{}.pem", std::process::id()));
        std::fs::write(&garbage, "not pem").unwrap();
        let err = acceptor(&garbage, &garbage).err().map(|e| e.to_string());
        assert!(err.as_ref().is_some_and(|e| e.contains("no certificate")), "{err:?}");
        let _ = std::fs::remove_file(garbage);
    }
}
