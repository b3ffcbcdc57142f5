//! Checks that a well-formed file also makes sense: what serde alone cannot express.

use std::collections::HashMap;

use super::{ClusterConfig, ConfigError, LoadedCluster, Located, ServiceConfig, ServiceKind};

/// Largest accepted backend weight; keeps smooth weighted round-robin sums far from overflow.
pub const MAX_WEIGHT: u32 = 10_000;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.starts_with(['-', '_'])
}

pub fn validate_cluster(cluster: &ClusterConfig) -> Result<(), Located> {
    let id = &cluster.cluster_id;
    if !valid_id(&id.value) {
        return Err(Located::at(
            id.referenced,
            format!(
                "invalid cluster_id `{}`: use 1-63 letters, digits, `-` or `_`",
                id.value
            ),
        ));
    }
    let h = &cluster.health;
    if h.unhealthy_threshold == 0 || h.healthy_threshold == 0 {
        return Err(Located::at(
            id.referenced,
            "health thresholds must be at least 1",
        ));
    }
    if cluster.circuit_breaker.failure_threshold == 0 {
        return Err(Located::at(
            id.referenced,
            "circuit_breaker.failure_threshold must be at least 1",
        ));
    }
    for (name, service) in &cluster.services {
        let at = service.referenced;
        if !valid_id(name) {
            return Err(Located::at(
                at,
                format!("invalid service name `{name}`: use letters, digits, `-` or `_`"),
            ));
        }
        validate_service(name, &service.value).map_err(|m| Located::at(at, m))?;
    }
    Ok(())
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

fn validate_service(name: &str, s: &ServiceConfig) -> Result<(), String> {
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
    validate_unix_socket(name, s)?;
    validate_redis_db(name, s)?;
    if let Some(tag) = &s.hash_tag
        && !(tag.is_empty() || tag.len() == 2 && tag.is_ascii())
    {
        return Err(format!(
            "service `{name}`: hash_tag must be two ASCII characters such as \"{{}}\", or \"\""
        ));
    }
    let hashed = matches!(
        s.sharding,
        Some(crate::config::Sharding::Ketama | crate::config::Sharding::Modula)
    );
    if s.read_from_replicas == Some(true) && hashed {
        return Err(format!(
            "service `{name}`: read_from_replicas applies to a primary with replicas or to \
             sharding: cluster, not to ketama or modula (each shard is one server)"
        ));
    }
    if s.auto_eject_hosts.is_some() && !hashed {
        return Err(format!(
            "service `{name}`: auto_eject_hosts applies to sharding: ketama or modula"
        ));
    }
    if s.backends.iter().any(|b| b.name.is_some()) && !hashed {
        return Err(format!(
            "service `{name}`: backend names apply to sharding: ketama or modula"
        ));
    }
    if s.backends
        .iter()
        .any(|b| b.name.as_deref().is_some_and(|n| n.trim().is_empty()))
    {
        return Err(format!("service `{name}`: a backend name is empty"));
    }
    if s.hash.is_some() && !hashed {
        return Err(format!(
            "service `{name}`: hash applies to sharding: ketama or modula"
        ));
    }
    if s.auto_eject_hosts == Some(true) && s.backends.len() > 64 {
        return Err(format!(
            "service `{name}`: auto_eject_hosts takes at most 64 backends"
        ));
    }
    if s.sharding.is_some() && s.kind != ServiceKind::Redis {
        return Err(format!(
            "service `{name}`: sharding applies to redis services only"
        ));
    }
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
        ("client_idle_timeout", s.client_idle_timeout.is_some()),
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
    ];
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
    if s.kind != ServiceKind::Postgres
        && let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set)
    {
        let which = match *key {
            "max_client_conn" => "postgres and redis",
            _ => "postgres",
        };
        return Err(format!(
            "service `{name}`: {key} applies to {which} services only"
        ));
    }
    validate_kafka(name, s)
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

/// A Redis `database` is a number (twemproxy's `redis_db`); Redis Cluster has only 0.
fn validate_redis_db(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let Some(db) = s
        .database
        .as_deref()
        .filter(|_| s.kind == ServiceKind::Redis)
    else {
        return Ok(());
    };
    if db.parse::<u32>().is_err() {
        return Err(format!(
            "service `{name}`: database for redis is a database number (0, 1, ...), not {db:?}"
        ));
    }
    if s.sharding == Some(crate::config::Sharding::Cluster) && db != "0" {
        return Err(format!(
            "service `{name}`: Redis Cluster has database 0 only"
        ));
    }
    Ok(())
}

fn validate_kafka(name: &str, s: &ServiceConfig) -> Result<(), String> {
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

/// Checks across all loaded clusters: unique `cluster_id`s and listen addresses.
pub fn validate_set(clusters: &[LoadedCluster]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut ids: HashMap<&str, &LoadedCluster> = HashMap::new();
    let mut listens: HashMap<std::net::SocketAddr, (&LoadedCluster, &str)> = HashMap::new();
    let mut sockets: HashMap<&str, (&LoadedCluster, &str)> = HashMap::new();
    for c in clusters {
        let id = &c.config.cluster_id;
        if let Some(first) = ids.insert(&id.value, c) {
            errors.push(
                Located::at(
                    id.referenced,
                    format!(
                        "cluster_id `{}` is already used by {}",
                        id.value,
                        first.path.display()
                    ),
                )
                .in_file(&c.path),
            );
        }
        for (name, service) in &c.config.services {
            if let Some(path) = &service.value.unix_socket
                && let Some((first, first_name)) = sockets.insert(&path.value, (c, name))
            {
                errors.push(
                    Located::at(
                        path.referenced,
                        format!(
                            "unix_socket {} is already used by service `{first_name}` in {}",
                            path.value,
                            first.path.display()
                        ),
                    )
                    .in_file(&c.path),
                );
            }
            let Some(listen) = &service.value.listen else {
                continue;
            };
            if let Some((first, first_name)) = listens.insert(listen.value.0, (c, name)) {
                errors.push(
                    Located::at(
                        listen.referenced,
                        format!(
                            "listen address {} is already used by service `{first_name}` in {}",
                            listen.value,
                            first.path.display()
                        ),
                    )
                    .in_file(&c.path),
                );
            }
        }
    }
    errors
}
