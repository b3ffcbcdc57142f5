//! Redis sharding settings (twemproxy's `hash`, `hash_tag`, `distribution`, named servers,
//! `auto_eject_hosts`, `redis_db`) and where they apply.

use crate::config::{ServiceConfig, ServiceKind};

pub(super) fn validate(name: &str, s: &ServiceConfig) -> Result<(), String> {
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
