//! Where a service's backends are and where it listens: `host`/`port` or `backends`,
//! weights, Unix-domain sockets.

use super::MAX_WEIGHT;
use crate::config::{ServiceConfig, ServiceKind};

/// The service's backend addresses and listeners.
pub(super) fn validate(name: &str, s: &ServiceConfig) -> Result<(), String> {
    match (&s.host, s.port, s.backends.is_empty()) {
        (Some(_), Some(_), true) | (None, None, false) => {}
        (Some(h), None, true) if is_socket_path(h) => {}
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err(format!("service `{name}`: `host` and `port` go together"));
        }
        (Some(_), Some(_), false) => {
            return Err(format!(
                "service `{name}`: use either `host`/`port` or `backends`, not both"
            ));
        }
        (None, None, true) => {
            return Err(format!(
                "service `{name}`: needs `host` and `port`, or `backends`"
            ));
        }
    }
    if let Some(host) = &s.host {
        validate_backend_address(name, s.kind, host, s.port.unwrap_or(0))?;
    }
    for b in &s.backends {
        validate_backend_address(name, s.kind, &b.host, b.port)?;
        if b.weight == 0 || b.weight > MAX_WEIGHT {
            return Err(format!(
                "service `{name}`: backend {}:{} weight must be 1..={MAX_WEIGHT}",
                b.host, b.port
            ));
        }
    }
    if let Some(listen) = &s.listen
        && !matches!(
            s.kind,
            ServiceKind::Tcp | ServiceKind::Redis | ServiceKind::Postgres | ServiceKind::Kafka
        )
    {
        return Err(format!(
            "service `{name}`: type `{}` cannot be exposed on {} yet; its protocol listener is \
             not implemented (use `type: tcp` for a plain pass-through)",
            s.kind.as_str(),
            listen.value
        ));
    }
    validate_unix_socket(name, s)
}

/// A backend `host` that starts with `/` is a Unix-domain socket: Redis's `unixsocket` file,
/// or PostgreSQL's socket directory (libpq's rule).
fn is_socket_path(host: &str) -> bool {
    host.starts_with('/')
}

fn validate_backend_address(
    name: &str,
    kind: ServiceKind,
    host: &str,
    port: u16,
) -> Result<(), String> {
    if host.trim().is_empty() {
        return Err(format!("service `{name}`: every backend needs a host"));
    }
    match (is_socket_path(host), kind) {
        (false, _) if port == 0 => Err(format!(
            "service `{name}`: backend {host} needs a non-zero port"
        )),
        (false, _) | (true, ServiceKind::Redis) => Ok(()),
        (true, ServiceKind::Postgres) if port == 0 => Err(format!(
            "service `{name}`: backend {host} is a socket directory and needs the server's \
             `port` (the socket is {host}/.s.PGSQL.<port>)"
        )),
        (true, ServiceKind::Postgres) => Ok(()),
        (true, other) => Err(format!(
            "service `{name}`: backend {host} is a Unix-domain socket, which `type: {}` \
             does not reach (redis and postgres do)",
            other.as_str()
        )),
    }
}

fn validate_unix_socket(name: &str, s: &ServiceConfig) -> Result<(), String> {
    if s.unix_socket_mode.is_some() && s.unix_socket.is_none() {
        return Err(format!(
            "service `{name}`: unix_socket_mode without unix_socket"
        ));
    }
    let Some(path) = &s.unix_socket else {
        return Ok(());
    };
    if !matches!(
        s.kind,
        ServiceKind::Tcp | ServiceKind::Redis | ServiceKind::Postgres
    ) {
        return Err(format!(
            "service `{name}`: type `{}` cannot listen on a Unix-domain socket (its clients \
             are sent to host:port addresses)",
            s.kind.as_str()
        ));
    }
    if !path.value.starts_with('/') {
        return Err(format!(
            "service `{name}`: unix_socket must be an absolute path, not `{}`",
            path.value
        ));
    }
    // sun_path holds 108 bytes with the terminating NUL.
    if path.value.len() > 107 {
        return Err(format!(
            "service `{name}`: unix_socket path is {} bytes; the limit is 107",
            path.value.len()
        ));
    }
    unix_socket_mode(s).map(|_| ())
}

/// The permissions for a service's `unix_socket` (default 0777).
pub fn unix_socket_mode(s: &ServiceConfig) -> Result<u32, String> {
    let Some(text) = &s.unix_socket_mode else {
        return Ok(0o777);
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "unix_socket_mode `{text}` is not octal permissions such as \"0770\""
        )),
    }
}
