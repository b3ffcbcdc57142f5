//! The proxy's own clients, as Redis shows and ends its: `CLIENT LIST`, `CLIENT INFO` and
//! `CLIENT KILL` answer about the clients connected to this service (not about the proxy's
//! pooled connections to the backends, which is what a backend would list)
//! ([CLIENT LIST](https://redis.io/docs/latest/commands/client-list/),
//! [CLIENT KILL](https://redis.io/docs/latest/commands/client-kill/)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::encode;
use super::local::ClientState;

/// What a session updates as it works, read by CLIENT LIST: cheap to write (an atomic per
/// read, a short lock only when the command changes).
#[derive(Default)]
pub struct Activity {
    /// Milliseconds after registration of the last request read.
    last_ms: AtomicU64,
    /// The last command: its name and subcommand, as Redis's `cmd=` (`client|info`).
    cmd: Mutex<(&'static str, Option<&'static str>)>,
    /// Commands queued since MULTI, or -1 outside a transaction.
    multi: AtomicI64,
    /// While a blocking command waits: its backend and that connection's id there, for
    /// CLIENT UNBLOCK.
    blocked: Mutex<Option<Blocked>>,
    /// After the raw hand-over: the backend's address and the connection's id there, for
    /// another client's CLIENT TRACKING REDIRECT.
    raw: Mutex<Option<(String, i64)>>,
}

/// A blocking command's connection, as its backend knows it.
#[derive(Clone)]
pub struct Blocked {
    pub backend: Arc<crate::backend::BackendState>,
    pub id: i64,
}

impl Activity {
    pub fn touched(&self, since: Instant, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(0);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    pub fn command(&self, name: &'static str, sub: Option<&'static str>) {
        if let Ok(mut c) = self.cmd.lock() {
            *c = (name, sub);
        }
    }

    pub fn multi(&self, queued: i64) {
        self.multi.store(queued, Ordering::Relaxed);
    }

    /// A blocking command went out on a connection of `backend`; `id` answers its
    /// CLIENT ID (asked in the same write).
    pub fn blocking_on(
        self: &Arc<Self>,
        backend: Arc<crate::backend::BackendState>,
        id: tokio::sync::oneshot::Receiver<crate::redis::upstream::ReplyResult>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(Ok(reply)) = id.await else {
                return;
            };
            let id = std::str::from_utf8(reply.frame())
                .ok()
                .and_then(|t| t.trim().strip_prefix(':')?.parse().ok());
            if let (Some(id), Ok(mut b)) = (id, me.blocked.lock()) {
                *b = Some(Blocked { backend, id });
            }
        });
    }

    /// The client now has a connection of its own: `own` is (backend address, its id there).
    pub fn raw_on(&self, own: Option<(String, i64)>) {
        if let Ok(mut r) = self.raw.lock() {
            *r = own;
        }
    }

    /// The blocking command was answered.
    pub fn unblocked(&self) {
        if let Ok(mut b) = self.blocked.lock() {
            *b = None;
        }
    }

    /// One more command queued in the open transaction.
    pub fn queued(&self) {
        self.multi.fetch_add(1, Ordering::Relaxed);
    }
}

/// What CLIENT LIST shows of one client.
struct Entry {
    /// `cluster/service`.
    service: String,
    addr: String,
    laddr: String,
    fd: i32,
    since: Instant,
    activity: Arc<Activity>,
    name: Option<Vec<u8>>,
    user: Vec<u8>,
    resp3: bool,
    kill: CancellationToken,
}

static REGISTRY: LazyLock<Mutex<HashMap<u64, Entry>>> = LazyLock::new(Default::default);

/// Where a client connected from and to: `addr`, `laddr`, `fd`.
pub struct Socket {
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
}

/// A connected client, listed until dropped.
pub struct Registration(u64);

impl Registration {
    /// Lists client `id` of `service`; cancelling `kill` ends its session. The session
    /// reports its work through `activity`.
    pub fn new(
        id: u64,
        service: String,
        socket: Socket,
        activity: Arc<Activity>,
        kill: CancellationToken,
    ) -> Registration {
        if let Ok(mut r) = REGISTRY.lock() {
            activity.multi(-1);
            let entry = Entry {
                service,
                addr: socket.addr,
                laddr: socket.laddr,
                fd: socket.fd,
                since: Instant::now(),
                activity,
                name: None,
                user: b"default".to_vec(),
                resp3: false,
                kill,
            };
            r.insert(id, entry);
        }
        Registration(id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut r) = REGISTRY.lock() {
            crate::memtrim::remove_and_shrink(&mut r, &self.0);
        }
    }
}

/// Takes in what HELLO, AUTH or CLIENT SETNAME changed.
pub fn update(state: &ClientState, user: Option<&[u8]>) {
    if let Ok(mut r) = REGISTRY.lock()
        && let Some(e) = r.get_mut(&state.id)
    {
        e.name.clone_from(&state.name);
        e.resp3 = state.resp3;
        if let Some(u) = user {
            e.user = u.to_vec();
        }
    }
}

/// One CLIENT LIST line with every field of Redis 7.0 (`clientInfoString` in networking.c),
/// from the proxy's own view of its client: buffers are the proxy's (it reads and writes
/// without keeping per-client buffers between requests, so those show 0); subscribers are
/// handed to a backend connection of their own, so a client listed here has none.
fn line(id: u64, e: &Entry, now: Instant) -> String {
    let age = now.saturating_duration_since(e.since);
    let last = std::time::Duration::from_millis(e.activity.last_ms.load(Ordering::Relaxed));
    let idle = age.saturating_sub(last).as_secs();
    let cmd = match e.activity.cmd.lock().map(|c| *c) {
        Ok((name, Some(sub))) => format!("{name}|{sub}"),
        Ok((name, None)) if !name.is_empty() => name.to_string(),
        _ => "NULL".to_string(),
    };
    let multi = e.activity.multi.load(Ordering::Relaxed);
    let flags = if multi >= 0 { "x" } else { "N" };
    format!(
        "id={id} addr={} laddr={} fd={} name={} age={} idle={idle} flags={flags} db=0 sub=0 psub=0 ssub=0 multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user={} redir=-1 resp={}\n",
        e.addr,
        e.laddr,
        e.fd,
        String::from_utf8_lossy(e.name.as_deref().unwrap_or_default()),
        age.as_secs(),
        String::from_utf8_lossy(&e.user),
        if e.resp3 { 3 } else { 2 },
    )
}

/// `CLIENT LIST [TYPE normal] [ID id ...]`: the service's clients, by id.
pub fn list(service: &str, args: &[&[u8]]) -> Bytes {
    let ids = match list_filter(args) {
        Ok(ids) => ids,
        Err(e) => return e,
    };
    let Ok(r) = REGISTRY.lock() else {
        return encode::bulk(b"");
    };
    let now = Instant::now();
    let mut rows: Vec<(&u64, &Entry)> = r
        .iter()
        .filter(|(id, e)| e.service == service && ids.as_ref().is_none_or(|w| w.contains(id)))
        .collect();
    rows.sort_by_key(|(id, _)| **id);
    let text: String = rows.iter().map(|(id, e)| line(**id, e, now)).collect();
    encode::bulk(text.as_bytes())
}

/// CLIENT LIST's options after `LIST`: `TYPE normal` (every proxy client is one) and `ID`
/// followed by ids; `None` lists all.
fn list_filter(args: &[&[u8]]) -> Result<Option<Vec<u64>>, Bytes> {
    let rest = args.get(2..).unwrap_or_default();
    match rest {
        [] => Ok(None),
        [t, kind] if t.eq_ignore_ascii_case(b"type") => {
            match kind.to_ascii_lowercase().as_slice() {
                b"normal" => Ok(None),
                b"replica" | b"master" | b"pubsub" => Ok(Some(Vec::new())),
                _ => Err(encode::error(&format!(
                    "ERR Unknown client type '{}'",
                    String::from_utf8_lossy(kind)
                ))),
            }
        }
        [i, ids @ ..] if i.eq_ignore_ascii_case(b"id") && !ids.is_empty() => ids
            .iter()
            .map(|id| std::str::from_utf8(id).ok().and_then(|s| s.parse().ok()))
            .collect::<Option<Vec<u64>>>()
            .map(Some)
            .ok_or_else(|| encode::error("ERR Invalid client ID")),
        _ => Err(encode::error("ERR syntax error")),
    }
}

/// `CLIENT INFO`: the calling client's own line.
pub fn info(id: u64) -> Bytes {
    let text = REGISTRY
        .lock()
        .ok()
        .and_then(|r| r.get(&id).map(|e| line(id, e, Instant::now())))
        .unwrap_or_default();
    encode::bulk(text.as_bytes())
}

/// `CLIENT KILL addr:port` (the old form: `+OK` or an error) or `CLIENT KILL <filter>
/// <value> ...` with `ID`, `ADDR`, `LADDR`, `USER`, `TYPE` and `SKIPME yes|no` (the number
/// of clients ended), checked as `clientKillCommand` in networking.c checks them. The
/// caller is `me`; `known_user` says whether a user name exists (an unknown one is an
/// error, as an ACL user Redis does not have); a killed client's connection is closed.
pub fn kill(service: &str, me: u64, args: &[&[u8]], known_user: &dyn Fn(&[u8]) -> bool) -> Bytes {
    let rest = args.get(2..).unwrap_or_default();
    if let [addr] = rest {
        return match end(service, |_, e| e.addr.as_bytes() == *addr) {
            0 => encode::error("ERR No such client"),
            _ => encode::simple("OK"),
        };
    }
    if rest.is_empty() || rest.len() % 2 != 0 {
        return encode::error("ERR syntax error");
    }
    let mut filter = KillFilter {
        skip_me: true,
        ..KillFilter::default()
    };
    for pair in rest.chunks(2) {
        // A backend's ACL user is known once one of the service's clients logged in as it.
        let known = |u: &[u8]| known_user(u) || logged_in(service, u);
        if let Err(e) = filter.add(pair[0], pair[1], &known) {
            return e;
        }
    }
    let n = end(service, |id, e| filter.matches(id, e, me));
    encode::integer(i64::try_from(n).unwrap_or(i64::MAX))
}

#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<Vec<u8>>,
    laddr: Option<Vec<u8>>,
    user: Option<Vec<u8>>,
    /// `TYPE` other than normal: every proxy client is normal, so none matches.
    other_type: bool,
    skip_me: bool,
}

impl KillFilter {
    fn add(
        &mut self,
        key: &[u8],
        value: &[u8],
        known_user: &dyn Fn(&[u8]) -> bool,
    ) -> Result<(), Bytes> {
        match key.to_ascii_lowercase().as_slice() {
            b"id" => {
                let id = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|n| *n >= 1);
                self.id = Some(
                    id.ok_or_else(|| encode::error("ERR client-id should be greater than 0"))?,
                );
            }
            b"type" => match value.to_ascii_lowercase().as_slice() {
                b"normal" => {}
                b"replica" | b"slave" | b"master" | b"pubsub" => self.other_type = true,
                _ => {
                    return Err(encode::error(&format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(value)
                    )));
                }
            },
            b"addr" => self.addr = Some(value.to_vec()),
            b"laddr" => self.laddr = Some(value.to_vec()),
            b"user" if !known_user(value) => {
                return Err(encode::error(&format!(
                    "ERR No such user '{}'",
                    String::from_utf8_lossy(value)
                )));
            }
            b"user" => self.user = Some(value.to_vec()),
            b"skipme" => {
                self.skip_me = match value.to_ascii_lowercase().as_slice() {
                    b"yes" => true,
                    b"no" => false,
                    _ => return Err(encode::error("ERR syntax error")),
                }
            }
            _ => return Err(encode::error("ERR syntax error")),
        }
        Ok(())
    }

    fn matches(&self, id: u64, e: &Entry, me: u64) -> bool {
        !self.other_type
            && self.id.is_none_or(|want| want == id)
            && self.addr.as_deref().is_none_or(|a| a == e.addr.as_bytes())
            && self
                .laddr
                .as_deref()
                .is_none_or(|a| a == e.laddr.as_bytes())
            && self.user.as_deref().is_none_or(|u| u == e.user)
            && !(self.skip_me && id == me)
    }
}

/// Ends the sessions of `service`'s clients that `pick` selects; how many.
fn end(service: &str, pick: impl Fn(u64, &Entry) -> bool) -> usize {
    let Ok(r) = REGISTRY.lock() else {
        return 0;
    };
    r.iter()
        .filter(|(id, e)| e.service == service && pick(**id, e))
        .map(|(_, e)| e.kill.cancel())
        .count()
}

/// Where client `id` of `service` waits in a blocking command, if it does.
pub fn blocked(service: &str, id: u64) -> Option<Blocked> {
    let r = REGISTRY.lock().ok()?;
    let e = r.get(&id).filter(|e| e.service == service)?;
    e.activity.blocked.lock().ok()?.clone()
}

/// Whether a client of `service` is logged in as `user`.
fn logged_in(service: &str, user: &[u8]) -> bool {
    REGISTRY
        .lock()
        .is_ok_and(|r| r.values().any(|e| e.service == service && e.user == user))
}

/// The backend address and connection id of client `id` of `service`, once it has a
/// connection of its own.
pub fn raw_of(service: &str, id: u64) -> Option<(String, i64)> {
    let r = REGISTRY.lock().ok()?;
    let e = r.get(&id).filter(|e| e.service == service)?;
    e.activity.raw.lock().ok()?.clone()
}
