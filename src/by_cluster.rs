//! Shared listeners: one address per protocol for every cluster, where the client names its
//! cluster in what it sends first (Supavisor's `user.tenant` for PostgreSQL, `user@cluster` in
//! a Redis `AUTH`), so 100 clusters need three ports, not 300. This module finds the service a
//! client named; each adapter reads the name from its own protocol
//! (`crate::protocol::Protocol::serve_shared`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::ServiceKind;
use crate::snapshot::{ServiceRuntime, Snapshot};

/// A login name with the cluster in it.
#[derive(Debug, PartialEq, Eq)]
pub struct Named<'a> {
    /// The user as the backend or the service's `auth:` knows it; empty when the client gave
    /// only the cluster.
    pub user: &'a str,
    pub cluster: &'a str,
    /// Which of the cluster's services of the protocol, when it has several.
    pub service: Option<&'a str>,
}

/// `user@cluster`, `user@cluster/service`, or `cluster` alone (a cluster without users).
/// The last `@` splits, so user names with an `@` (e-mail addresses) still work.
pub fn at_sign(name: &str) -> Named<'_> {
    let (user, rest) = name.rsplit_once('@').unwrap_or(("", name));
    let (cluster, service) = match rest.split_once('/') {
        Some((c, s)) => (c, Some(s)),
        None => (rest, None),
    };
    Named {
        user,
        cluster,
        service,
    }
}

/// `user.cluster` (Supavisor's convention); the last `.` splits, so `first.last.app` is user
/// `first.last` of cluster `app`. `None` without a dot.
pub fn dotted(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('.')
        .filter(|(u, c)| !u.is_empty() && !c.is_empty())
}

/// What looking a named service up found.
pub enum Lookup {
    Found(Arc<ServiceRuntime>),
    /// No such cluster (or it has no service of the protocol on the shared listener): the
    /// client is told what it would be told for an unknown user, nothing about clusters.
    NoCluster,
    /// The cluster is there but `pick` names none of its services.
    NoService,
}

/// The service of `kind` in `cluster` that `pick` names, by service name or by its
/// `database`; without `pick`, the cluster's only one. Services with `shared_listener: false` are never found.
pub fn find(snapshot: &Snapshot, cluster: &str, kind: ServiceKind, pick: Option<&str>) -> Lookup {
    let Some(c) = snapshot.clusters.get(cluster) else {
        return Lookup::NoCluster;
    };
    let candidates: Vec<&Arc<ServiceRuntime>> = c
        .services
        .values()
        .filter(|s| s.spec.kind == kind && s.spec.shared_listener)
        .collect();
    if candidates.is_empty() {
        return Lookup::NoCluster;
    }
    let found = match pick {
        Some(p) => candidates.iter().find(|s| s.name == p).or_else(|| {
            candidates
                .iter()
                .find(|s| s.spec.database.as_deref() == Some(p))
        }),
        None if candidates.len() == 1 => candidates.first(),
        None => None,
    };
    match found {
        Some(s) => Lookup::Found(Arc::clone(s)),
        None => Lookup::NoService,
    }
}

/// Clients on the shared listeners per cluster ID (kept across reloads, which rebuild the
/// cluster runtimes), for the clusters' `max_client_conn`.
#[derive(Default)]
pub struct ClusterClients(std::sync::Mutex<std::collections::HashMap<String, Arc<AtomicUsize>>>);

/// A client counted against its cluster's `max_client_conn` until dropped.
pub struct ClusterSlot(Arc<AtomicUsize>);

impl Drop for ClusterSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts one more client of `service`'s cluster; `None` when the cluster is full.
pub fn admit(shared: &crate::listener::Shared, service: &ServiceRuntime) -> Option<ClusterSlot> {
    let limit = shared
        .snapshot
        .load()
        .clusters
        .get(&service.cluster)
        .and_then(|c| c.config.max_client_conn)
        .unwrap_or(usize::MAX);
    let clients = shared.ext.get::<ClusterClients>();
    let count = {
        let mut map = clients.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(service.cluster.clone()).or_default().clone()
    };
    if count.fetch_add(1, Ordering::Relaxed) >= limit {
        count.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    Some(ClusterSlot(count))
}

/// The gateway file's shared listeners, by protocol.
pub type SharedListeners =
    std::collections::BTreeMap<ServiceKind, crate::config::gateway::SharedListen>;

/// What a client of `s` copies to connect: through the shared listener of its protocol
/// (the cluster in the user name) and on the service's own `listen`. `USER` and `PASSWORD`
/// stand for a user of the service's `auth:` (or of the backend).
pub fn connection_strings(s: &ServiceRuntime, listeners: &SharedListeners) -> Vec<String> {
    let host = |a: std::net::SocketAddr| match a.ip().is_unspecified() {
        true => format!("localhost:{}", a.port()),
        false => a.to_string(),
    };
    let shared = listeners
        .get(&s.spec.kind)
        .filter(|_| s.spec.shared_listener)
        .map(|l| (host(l.addr()), l.tls().is_some()));
    let own = s.spec.listen.map(|a| (host(a), s.spec.tls.is_some()));
    let (c, name) = (&s.cluster, &s.name);
    let db = s.spec.database.as_deref().unwrap_or("postgres");
    let users = s.spec.auth.is_some();
    let mut out = Vec::new();
    match s.spec.kind {
        ServiceKind::Redis => {
            let scheme = |tls| if tls { "rediss" } else { "redis" };
            if let Some((a, tls)) = shared {
                let login = match users {
                    true => format!("USER%40{c}%2F{name}:PASSWORD"),
                    false => format!("{c}%2F{name}:"),
                };
                out.push(format!("{}://{login}@{a}", scheme(tls)));
            }
            if let Some((a, tls)) = own {
                out.push(format!("{}://{a}", scheme(tls)));
            }
        }
        ServiceKind::Postgres => {
            if let Some((a, _)) = shared {
                out.push(format!("postgresql://USER.{c}@{a}/{name}"));
            }
            if let Some((a, _)) = own {
                out.push(format!("postgresql://USER@{a}/{db}"));
            }
        }
        ServiceKind::Kafka => {
            let named = listeners
                .get(&ServiceKind::Kafka)
                .filter(|_| s.spec.shared_listener)
                .and_then(|l| Some((l.sni_domain()?, l.addr().port())));
            if let Some((domain, port)) = named {
                out.push(format!("{c}.bootstrap.{domain}:{port}"));
            }
            out.extend(own.map(|(a, _)| a));
        }
        ServiceKind::Tcp => out.extend(own.map(|(a, _)| a)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_the_last_separator() {
        let n = at_sign("alice@shop/cache");
        assert_eq!(
            (n.user, n.cluster, n.service),
            ("alice", "shop", Some("cache"))
        );
        let n = at_sign("a@example.com@shop");
        assert_eq!(
            (n.user, n.cluster, n.service),
            ("a@example.com", "shop", None)
        );
        let n = at_sign("shop");
        assert_eq!((n.user, n.cluster, n.service), ("", "shop", None));
        assert_eq!(dotted("first.last.app"), Some(("first.last", "app")));
        assert_eq!(dotted("postgres"), None);
        assert_eq!(dotted("postgres."), None);
    }
}
