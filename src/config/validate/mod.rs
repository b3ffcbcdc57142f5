//! Checks that a well-formed file also makes sense: what serde alone cannot express. One
//! file per concern: backend addresses and sockets, Redis sharding, pools and Postgres
//! settings, TLS, Kafka.

mod backends;
mod kafka;
mod pools;
mod redis;
mod tls;

use std::collections::HashMap;

use super::{ClusterConfig, ConfigError, LoadedCluster, Located, ServiceConfig};

pub use backends::unix_socket_mode;

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
    tokens(cluster)
}

/// Data API tokens: unique names, known services, well-formed hashes; an error names the
/// token's line.
fn tokens(cluster: &ClusterConfig) -> Result<(), Located> {
    let mut names = std::collections::HashSet::new();
    for spanned in &cluster.api_tokens {
        let t = &spanned.value;
        let at =
            |m: String| Located::at(spanned.referenced, format!("api_tokens `{}`: {m}", t.name));
        if !names.insert(t.name.as_str()) {
            return Err(at("the name is used twice".into()));
        }
        if let Some(s) = t
            .services
            .iter()
            .find(|s| !cluster.services.contains_key(*s))
        {
            return Err(at(format!("no service `{s}`")));
        }
        let secret = t.token.expose();
        if let Some(hex) = secret.strip_prefix("sha256:") {
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at("a sha256: token is 64 hex digits".into()));
            }
        } else if secret.len() < 16 {
            return Err(at("a token is at least 16 characters".into()));
        }
    }
    Ok(())
}

/// One service's settings, each concern in turn; the first problem found is reported.
fn validate_service(name: &str, s: &ServiceConfig) -> Result<(), String> {
    backends::validate(name, s)?;
    redis::validate(name, s)?;
    pools::validate(name, s)?;
    tls::validate(name, s)?;
    kafka::validate(name, s)
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
