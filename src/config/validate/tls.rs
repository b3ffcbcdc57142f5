//! TLS on either side (`tls` to clients, `server_tls` to backends) and certificate login.

use crate::config::{ServiceConfig, ServiceKind};

pub(super) fn validate(name: &str, s: &ServiceConfig) -> Result<(), String> {
    if let Some(tls) = &s.tls {
        if !matches!(
            s.kind,
            ServiceKind::Postgres | ServiceKind::Kafka | ServiceKind::Redis
        ) {
            return Err(format!(
                "service `{name}`: tls applies to postgres, kafka and redis services only"
            ));
        }
        if s.kind != ServiceKind::Postgres && tls.required {
            return Err(format!(
                "service `{name}`: tls.required: this listener speaks only TLS already"
            ));
        }
        if let Err(e) = crate::tls::acceptor(tls) {
            return Err(format!("service `{name}`: tls: {e}"));
        }
    }
    if let Some(st) = &s.server_tls {
        if !matches!(
            s.kind,
            ServiceKind::Postgres | ServiceKind::Kafka | ServiceKind::Redis
        ) {
            return Err(format!(
                "service `{name}`: server_tls applies to postgres, kafka and redis services only"
            ));
        }
        if s.kind != ServiceKind::Postgres && st.mode == crate::config::ServerTlsMode::Prefer {
            return Err(format!(
                "service `{name}`: server_tls: this protocol has no TLS negotiation; use require or verify-full"
            ));
        }
        if st.mode == crate::config::ServerTlsMode::VerifyFull && st.ca.is_none() {
            return Err(format!(
                "service `{name}`: server_tls: verify-full needs `ca` (the certificates to trust)"
            ));
        }
        if st.cert.is_some() != st.key.is_some() {
            return Err(format!(
                "service `{name}`: server_tls: cert and key go together"
            ));
        }
        if let Err(e) = crate::tls::connector(st) {
            return Err(format!("service `{name}`: server_tls: {e}"));
        }
    }
    let cert_auth = s
        .auth
        .as_ref()
        .is_some_and(|a| a.method == Some(crate::config::AuthMethod::Cert));
    if cert_auth && s.tls.as_ref().and_then(|t| t.client_ca.as_ref()).is_none() {
        return Err(format!(
            "service `{name}`: auth.method cert needs tls with client_ca (the CA that signs \
             the client certificates)"
        ));
    }
    Ok(())
}
