//! Pool sizes and limits, and the settings only a Postgres service takes (PgBouncer's).

use crate::config::{ServiceConfig, ServiceKind};

pub(super) fn validate(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let max_pool = if s.kind == ServiceKind::Postgres {
        10_000
    } else {
        64
    };
    if s.pool_size == Some(0) || s.pool_size.is_some_and(|n| n > max_pool) {
        return Err(format!(
            "service `{name}`: pool_size must be 1..={max_pool}"
        ));
    }
    if s.reserve_pool_size.is_some_and(|n| n > 10_000) {
        return Err(format!(
            "service `{name}`: reserve_pool_size must be at most 10000"
        ));
    }
    if let (Some(min), size) = (s.min_pool_size, s.pool_size.unwrap_or(20))
        && min > size
    {
        return Err(format!(
            "service `{name}`: min_pool_size ({min}) is larger than pool_size ({size})"
        ));
    }
    if s.max_user_connections == Some(0) {
        return Err(format!(
            "service `{name}`: max_user_connections must be at least 1"
        ));
    }
    if s.max_server_connections == Some(0) {
        return Err(format!(
            "service `{name}`: max_server_connections must be at least 1"
        ));
    }
    if s.max_prepared_statements == Some(0) {
        return Err(format!(
            "service `{name}`: max_prepared_statements must be at least 1"
        ));
    }
    if let Some(q) = s.auth.as_ref().and_then(|a| a.query.as_ref())
        && !q.sql.contains("$1")
    {
        return Err(format!(
            "service `{name}`: auth.query.sql must use $1 for the user name"
        ));
    }
    postgres_only(name, s)?;
    if let Some((user, _)) = s
        .user_settings
        .iter()
        .find(|(_, u)| u.pool_size.is_some_and(|n| n == 0 || n > max_pool))
    {
        return Err(format!(
            "service `{name}`: user_settings.{user}.pool_size must be 1..={max_pool}"
        ));
    }
    hba(name, s)
}

/// Every `auth.hba` line parses; the rules, not `auth.method`, name the methods; `cert`
/// needs client certificates.
fn hba(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let Some(auth) = s.auth.as_ref().filter(|a| !a.hba.is_empty()) else {
        return Ok(());
    };
    if auth.method.is_some() {
        return Err(format!(
            "service `{name}`: auth.method and auth.hba: with hba rules each rule names its \
             method; drop auth.method"
        ));
    }
    for (i, line) in auth.hba.iter().enumerate() {
        let rule = crate::postgres::hba::parse(line)
            .map_err(|e| format!("service `{name}`: auth.hba rule {} ({line:?}): {e}", i + 1))?;
        let cert =
            rule.method == crate::postgres::hba::Method::Use(crate::config::AuthMethod::Cert);
        if cert && s.tls.as_ref().and_then(|t| t.client_ca.as_ref()).is_none() {
            return Err(format!(
                "service `{name}`: auth.hba rule {}: cert needs tls with client_ca",
                i + 1
            ));
        }
    }
    Ok(())
}

/// A PgBouncer setting on a service of another type is a mistake worth naming.
fn postgres_only(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let postgres_only = [
        ("pool_mode", s.pool_mode.is_some()),
        (
            "max_client_conn",
            s.max_client_conn.is_some() && s.kind != ServiceKind::Redis,
        ),
        ("min_pool_size", s.min_pool_size.is_some()),
        ("max_server_connections", s.max_server_connections.is_some()),
        ("max_user_connections", s.max_user_connections.is_some()),
        ("query_wait_timeout", s.query_wait_timeout.is_some()),
        ("reserve_pool_size", s.reserve_pool_size.is_some()),
        ("reserve_pool_timeout", s.reserve_pool_timeout.is_some()),
        (
            "idle_transaction_timeout",
            s.idle_transaction_timeout.is_some(),
        ),
        ("client_login_timeout", s.client_login_timeout.is_some()),
        (
            "client_idle_timeout",
            s.client_idle_timeout.is_some() && s.kind == ServiceKind::Tcp,
        ),
        ("query_timeout", s.query_timeout.is_some()),
        ("stats_period", s.stats_period.is_some()),
        ("server_idle_timeout", s.server_idle_timeout.is_some()),
        ("server_lifetime", s.server_lifetime.is_some()),
        ("read_write_split", s.read_write_split.is_some()),
        (
            "max_prepared_statements",
            s.max_prepared_statements.is_some(),
        ),
        (
            "auth.method",
            s.auth.as_ref().is_some_and(|a| a.method.is_some()),
        ),
        (
            "auth.admin_users",
            s.auth.as_ref().is_some_and(|a| !a.admin_users.is_empty()),
        ),
        (
            "auth.query",
            s.auth.as_ref().is_some_and(|a| a.query.is_some()),
        ),
        ("server_reset_query", s.server_reset_query.is_some()),
        ("session_state", s.session_state.is_some()),
        ("max_pinned", s.max_pinned.is_some()),
        ("user_settings", !s.user_settings.is_empty()),
        (
            "auth.hba",
            s.auth.as_ref().is_some_and(|a| !a.hba.is_empty()),
        ),
    ];
    if s.kind != ServiceKind::Postgres
        && let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set)
    {
        let which = match *key {
            "max_client_conn" => "postgres and redis",
            "client_idle_timeout" => "postgres, redis and kafka",
            _ => "postgres",
        };
        return Err(format!(
            "service `{name}`: {key} applies to {which} services only"
        ));
    }
    Ok(())
}
