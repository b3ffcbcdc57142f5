//! Cancel requests: every client gets its own BackendKeyData; while it has a server
//! connection, its key maps to that server's, and a CancelRequest with the client's key is
//! sent on to the server that runs its query
//! ([canceling requests](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

/// Where a cancel for one client goes right now.
#[derive(Clone)]
pub struct Target {
    pub backend: Arc<crate::backend::BackendState>,
    pub pid: i32,
    pub key: Bytes,
    /// For a lent server: its pool and the pool's epoch when it joined, which tell the
    /// console's WAIT_CLOSE whether it is to close when it comes back.
    pub origin: Option<(Arc<super::pool::Pool>, u64)>,
}

impl Target {
    /// The server connection a cancel for its current query goes to.
    pub fn of(server: &super::upstream::Server) -> Target {
        Target {
            backend: server.backend.clone(),
            pid: server.pid,
            key: server.key.clone(),
            origin: None,
        }
    }

    /// A lent server, with where it came from.
    pub fn lent(lease: &super::pool::Lease) -> Target {
        Target {
            origin: Some((lease.pool().clone(), lease.server.epoch)),
            ..Target::of(&lease.server)
        }
    }
}

struct Entry {
    key: [u8; 4],
    /// The process id the client was told (BackendKeyData).
    shown: Arc<AtomicI32>,
    target: Arc<Mutex<Option<Target>>>,
    info: Arc<ClientInfo>,
    /// Ends the client's session (the console's KILL and KILL_CLIENT).
    kill: CancellationToken,
}

/// Who a client is, for the admin console's SHOW CLIENTS and SHOW SERVERS.
pub struct ClientInfo {
    /// `cluster/service`.
    pub service: String,
    pub user: String,
    pub database: String,
    pub peer: crate::session::Peer,
    pub since: std::time::SystemTime,
    /// Why the client holds a server between transactions (empty: it does not).
    pub pinned: Mutex<String>,
}

/// A connected client as the console lists it.
pub struct ClientRow {
    pub pid: i32,
    pub info: Arc<ClientInfo>,
    pub server: Option<Target>,
}

/// The clients of one service (`cluster/service`).
pub fn clients_of(service: &str) -> Vec<ClientRow> {
    let Ok(r) = REGISTRY.lock() else {
        return Vec::new();
    };
    let mut rows: Vec<ClientRow> = r
        .iter()
        .filter(|(_, e)| e.info.service == service)
        .map(|(pid, e)| ClientRow {
            pid: *pid,
            info: e.info.clone(),
            server: e.target.lock().ok().and_then(|t| t.clone()),
        })
        .collect();
    rows.sort_by_key(|r| r.pid);
    rows
}

/// Ends the sessions of `service`'s clients that `pick` selects (by id and who they are);
/// returns how many. Their server connections are released as on any disconnect: one left
/// mid-transaction is closed, never handed to another client.
pub fn kill(service: &str, pick: impl Fn(i32, &ClientInfo) -> bool) -> usize {
    let Ok(r) = REGISTRY.lock() else {
        return 0;
    };
    r.iter()
        .filter(|(pid, e)| e.info.service == service && pick(**pid, &e.info))
        .map(|(_, e)| e.kill.cancel())
        .count()
}

/// Clients by the proxy's id for them (the console's).
static REGISTRY: LazyLock<Mutex<HashMap<i32, Entry>>> = LazyLock::new(Default::default);
static NEXT_ID: AtomicI32 = AtomicI32::new(1);

/// Process ids shown to transaction-mode clients start above Linux's largest pid
/// (`pid_max` is at most 2^22), so `pg_terminate_backend` of one never hits a real server
/// process: it finds none, as for an ended session.
const TRANSACTION_PID_BASE: i32 = 1 << 22;

/// A client's registration; dropping it unregisters.
pub struct Registration {
    /// The proxy's id for the client (SHOW CLIENTS, KILL_CLIENT).
    pub id: i32,
    pub key: [u8; 4],
    shown: Arc<AtomicI32>,
    target: Arc<Mutex<Option<Target>>>,
    info: Arc<ClientInfo>,
}

impl Registration {
    /// Registers a client; cancelling `kill` ends its session.
    pub fn new(info: ClientInfo, kill: CancellationToken) -> Registration {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) & (TRANSACTION_PID_BASE - 1);
        let mut key = [0u8; 4];
        let _ = getrandom::fill(&mut key);
        let target = Arc::new(Mutex::new(None));
        let shown = Arc::new(AtomicI32::new(TRANSACTION_PID_BASE + id));
        let info = Arc::new(info);
        if let Ok(mut r) = REGISTRY.lock() {
            r.insert(
                id,
                Entry {
                    key,
                    shown: shown.clone(),
                    target: target.clone(),
                    info: info.clone(),
                    kill,
                },
            );
        }
        Registration {
            id,
            key,
            shown,
            target,
            info,
        }
    }

    /// What SHOW CLIENTS says pins the client (empty: nothing).
    pub fn set_pinned(&self, reason: &str) {
        if let Ok(mut p) = self.info.pinned.lock() {
            reason.clone_into(&mut p);
        }
    }

    /// The process id the client is shown: its own above real pids in transaction mode;
    /// in session mode its server's, so `pg_backend_pid()`, NOTIFY senders and
    /// `pg_stat_activity` agree with it (the key stays the proxy's, so cancels still come
    /// here).
    pub fn pid(&self) -> i32 {
        self.shown.load(Ordering::Relaxed)
    }

    pub fn show_pid(&self, pid: i32) {
        self.shown.store(pid, Ordering::Relaxed);
    }

    /// The server now running this client's queries (None between transactions).
    pub fn set(&self, target: Option<Target>) {
        if let Ok(mut t) = self.target.lock() {
            *t = target;
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut r) = REGISTRY.lock() {
            crate::memtrim::remove_and_shrink(&mut r, &self.id);
        }
    }
}

/// Sends the cancel on to the client's current server, if the key matches; a wrong key
/// or an idle client is ignored, as PostgreSQL does.
pub async fn forward(pid: i32, key: &[u8]) {
    // A scan: cancels are rare, and a shown pid (a server's) need not be unique.
    let target = REGISTRY.lock().ok().and_then(|r| {
        let e = r
            .values()
            .find(|e| e.key.as_slice() == key && e.shown.load(Ordering::Relaxed) == pid)?;
        e.target.lock().ok()?.clone()
    });
    if let Some(t) = target {
        send(&t).await;
    }
}

/// A CancelRequest for the query `t`'s server runs (the proxy's own `query_timeout` too).
/// Returns once the server closed the cancel connection, which it does after signalling
/// the query's process (as libpq's PQcancel waits): the client's cancel connection closes
/// only then, so a client that goes on at that point cannot have its next query cancelled.
pub async fn send(t: &Target) {
    let limit = std::time::Duration::from_secs(5);
    let exchange = async {
        let mut s = super::upstream::dial(&t.backend).await.ok()?;
        s.write_all(&throome_pgwire::build::cancel_request(t.pid, &t.key))
            .await
            .ok()?;
        let mut sink = bytes::BytesMut::with_capacity(64);
        while s.read_buf(&mut sink).await.ok()? > 0 {
            sink.clear();
        }
        Some(())
    };
    let _ = tokio::time::timeout(limit, exchange).await;
}
