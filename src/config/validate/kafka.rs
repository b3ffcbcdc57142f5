//! Kafka settings (per-broker ports, frame limit, SASL at the proxy and to brokers) and
//! where they apply.

use crate::config::{ServiceConfig, ServiceKind};

pub(super) fn validate(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let kafka_only = [
        ("advertised_host", s.advertised_host.is_some()),
        ("broker_port_base", s.broker_port_base.is_some()),
        ("broker_ports", !s.broker_ports.is_empty()),
        ("max_frame_bytes", s.max_frame_bytes.is_some()),
        ("sasl_mechanism", s.sasl_mechanism.is_some()),
        (
            "auth.mechanisms",
            s.auth.as_ref().is_some_and(|a| !a.mechanisms.is_empty()),
        ),
    ];
    if s.kind != ServiceKind::Kafka {
        return match kafka_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!(
                "service `{name}`: {key} applies to kafka services only"
            )),
            None => Ok(()),
        };
    }
    if let Some(listen) = &s.listen
        && listen.value.0.ip().is_unspecified()
        && s.advertised_host.is_none()
    {
        return Err(format!(
            "service `{name}`: listening on {} needs `advertised_host`, the name clients use \
             to reach the per-broker ports",
            listen.value
        ));
    }
    validate_kafka_sasl(name, s)?;
    if s.advertised_host
        .as_deref()
        .is_some_and(|h| h.trim().is_empty())
    {
        return Err(format!("service `{name}`: advertised_host is empty"));
    }
    if let Some((node, port)) = s.broker_ports.iter().find(|(n, p)| **n < 0 || **p == 0) {
        return Err(format!(
            "service `{name}`: broker_ports entry {node}: {port} needs a node id >= 0 and a \
             non-zero port"
        ));
    }
    if s.max_frame_bytes
        .is_some_and(|n| n < 1024 || n > i32::MAX as u64)
    {
        return Err(format!(
            "service `{name}`: max_frame_bytes must be 1024..=2147483647"
        ));
    }
    Ok(())
}

/// SASL at the proxy: client users need a password each and the proxy's own broker login
/// needs all three of `username`, `password` and `sasl_mechanism`.
fn validate_kafka_sasl(name: &str, s: &ServiceConfig) -> Result<(), String> {
    if let Some(auth) = &s.auth {
        if auth.password.is_some() {
            return Err(format!(
                "service `{name}`: auth.password: kafka clients authenticate as named users \
                 (auth.users)"
            ));
        }
        if auth.users.is_empty() && !auth.mechanisms.is_empty() {
            return Err(format!(
                "service `{name}`: auth.mechanisms needs auth.users"
            ));
        }
    }
    let login = [
        s.username.is_some(),
        s.password.is_some(),
        s.sasl_mechanism.is_some(),
    ];
    if login.contains(&true) && login.contains(&false) {
        return Err(format!(
            "service `{name}`: the proxy's broker login needs username, password and \
             sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) together"
        ));
    }
    Ok(())
}
