//! One upstream Redis connection that many clients share, pipelined: senders queue whole
//! requests and their reply slots in the same order under one lock; a reader task frames
//! replies and completes the slot at the head of the queue (Redis answers in order). Reading
//! never waits for writing, so a large pipeline cannot deadlock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{Notify, oneshot};

use throome_resp::{ProtocolError, Reply, ReplyLimits, ReplyScanner};

mod reader;
mod stream;

pub use stream::RedisStream;
use stream::WriteSide;

use crate::config::Sharding;
use crate::snapshot::ServiceRuntime;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("no healthy backend for service {0}")]
    NoBackend(String),
    #[error("cannot connect to backend {0}: {1}")]
    Connect(String, String),
    #[error("backend connection lost")]
    Lost,
    #[error("backend refused the connection setup: {0}")]
    Handshake(String),
    #[error("backend sent an invalid reply: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("backend did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("backend sent a reply to no request")]
    Unsolicited,
}

impl UpstreamError {
    /// The `throome_errors_total{kind}` label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::NoBackend(_) => "no_backend",
            UpstreamError::Connect(..) => "connect",
            UpstreamError::Lost => "backend_io",
            UpstreamError::Handshake(_) => "backend_auth",
            UpstreamError::Protocol(_) | UpstreamError::Unsolicited => "backend_protocol",
            UpstreamError::Timeout(_) => "timeout",
        }
    }
}

/// Credentials a client gave (`AUTH [user] pass`, `HELLO ... AUTH user pass`) on a service
/// without `auth:`: the backend checks them, and the client's requests then go out on
/// connections logged in with them, so Redis ACLs apply behind the proxy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Login {
    pub user: Option<Vec<u8>>,
    pub pass: Vec<u8>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.user.as_deref().map(String::from_utf8_lossy);
        f.debug_struct("Login")
            .field("user", &user)
            .finish_non_exhaustive()
    }
}

pub type ReplyResult = Result<Reply, UpstreamError>;
/// Consecutive replies to one client, byte for byte as the backend sent them.
pub type GroupResult = Result<Bytes, UpstreamError>;

/// Where the replies to requests written on a connection go, in the order written.
pub enum Slot {
    /// One reply, framed, for a request the proxy looks at (redirects, merges, INFO).
    One(oneshot::Sender<ReplyResult>),
    /// The next `n` (at least 1) replies, delivered together: a client's pipeline costs one
    /// wake-up and one write back instead of one per reply (twemproxy pays one per reply).
    Group(u32, oneshot::Sender<GroupResult>),
}

impl Slot {
    fn fail(self, e: UpstreamError) {
        match self {
            Slot::One(tx) => drop(tx.send(Err(e))),
            Slot::Group(_, tx) => drop(tx.send(Err(e))),
        }
    }
}

/// A handle to a running upstream connection; cheap to clone. Clients queue requests and
/// their reply slots under one short lock; a writer task sends what is queued, a reader task
/// frames replies and completes the slots in order.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    closed: Arc<AtomicBool>,
}

/// What senders and the connection's writer task share.
struct Shared {
    /// Bytes waiting to be written; reply slots are registered under the same lock, so the
    /// order of slots is the order of the bytes.
    outbox: std::sync::Mutex<Outbox>,
    /// Wakes the writer.
    wake: Notify,
    /// Wakes the reader when the last handle goes.
    reader_wake: Notify,
    handles_gone: AtomicBool,
}

struct Outbox {
    bytes: BytesMut,
    /// Reply slots for the requests in `bytes` and those written before; the reader takes
    /// them when replies come, so registering one wakes nobody.
    slots: VecDeque<Slot>,
    /// The reader is gone: nothing sent now can be answered.
    closed: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.handles_gone.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        self.shared.reader_wake.notify_one();
    }
}

struct Writer {
    half: Option<WriteSide>,
}

impl Drop for Writer {
    /// No half-close when the last handle goes: Redis drops a client whose read side ends,
    /// even one blocked in BLPOP. The socket closes when the reader has every reply.
    fn drop(&mut self) {
        if let Some(half) = self.half.take() {
            half.forget();
        }
    }
}

impl Upstream {
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Whether both handles are the same connection.
    pub fn same(&self, other: &Upstream) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Queues `bytes` (whole requests) and their reply slots, in order. The connection's
    /// writer task sends what all clients queued in one write, as twemproxy does with one
    /// `writev` per event-loop turn: far fewer packets than a write per request.
    pub async fn send_batch(&self, bytes: &[u8], slots: &mut Vec<Slot>) {
        let mut outbox = match self.inner.shared.outbox.lock() {
            Ok(o) if !o.closed => o,
            _ => {
                for slot in slots.drain(..) {
                    slot.fail(UpstreamError::Lost);
                }
                return;
            }
        };
        outbox.slots.extend(slots.drain(..));
        let was_empty = outbox.bytes.is_empty();
        outbox.bytes.extend_from_slice(bytes);
        drop(outbox);
        if was_empty {
            self.inner.shared.wake.notify_one();
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut writer: Writer, closed: Arc<AtomicBool>) {
    // Swapped with the outbox's buffer, so neither is reallocated for every write.
    let mut chunk = BytesMut::new();
    loop {
        shared.wake.notified().await;
        // Let the clients that are runnable now queue their requests too.
        tokio::task::yield_now().await;
        loop {
            chunk.clear();
            match shared.outbox.lock() {
                Ok(mut o) if !o.bytes.is_empty() => std::mem::swap(&mut o.bytes, &mut chunk),
                _ => break,
            }
            let written = match writer.half.as_mut() {
                Some(half) => half.send(&chunk).await.is_ok(),
                None => false,
            };
            if !written {
                // The reader sees the broken socket and fails every registered slot.
                closed.store(true, Ordering::Release);
                return;
            }
        }
        if shared.handles_gone.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Opens a connection to `addr`, authenticates with the service's backend credentials and
/// switches to RESP3 when `resp3`; returns the stream and any bytes read past the handshake.
pub async fn open(
    service: &ServiceRuntime,
    addr: (&str, u16),
    resp3: bool,
) -> Result<RedisStream, UpstreamError> {
    open_as(service, addr, resp3, None).await
}

/// [`open`], logged in as a client's `login` instead of the service's credentials.
pub async fn open_as(
    service: &ServiceRuntime,
    addr: (&str, u16),
    resp3: bool,
    login: Option<&Login>,
) -> Result<RedisStream, UpstreamError> {
    let name = match addr {
        (path, 0) if path.starts_with('/') => path.to_string(),
        (host, port) => format!("{host}:{port}"),
    };
    let connect = async {
        if addr.0.starts_with('/') {
            // Redis's `unixsocket`: a local server, so never TLS.
            return Ok(RedisStream::Unix(UnixStream::connect(addr.0).await?));
        }
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        stream::secure(service, addr.0, tcp).await
    };
    let mut stream = match tokio::time::timeout(service.spec.connect_timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(UpstreamError::Connect(name, e.to_string())),
        Err(_) => return Err(UpstreamError::Connect(name, "timed out".into())),
    };
    let mut setup: Vec<Vec<&[u8]>> = Vec::new();
    if let Some(login) = login {
        match &login.user {
            Some(user) => setup.push(vec![b"AUTH", user, &login.pass]),
            None => setup.push(vec![b"AUTH", &login.pass]),
        }
    } else if let Some(pass) = &service.spec.password {
        match &service.spec.username {
            Some(user) => setup.push(vec![b"AUTH", user.as_bytes(), pass.expose().as_bytes()]),
            None => setup.push(vec![b"AUTH", pass.expose().as_bytes()]),
        }
    }
    if resp3 {
        setup.push(vec![b"HELLO", b"3"]);
    }
    // twemproxy's `redis_db`: every connection works in the configured database.
    let db = service.spec.database.as_deref().filter(|d| *d != "0");
    if let Some(db) = db {
        setup.push(vec![b"SELECT", db.as_bytes()]);
    }
    // Reads may go to cluster replicas, which answer them only after READONLY (masters
    // accept it and are unaffected). Without `read_from_replicas` a node that became a
    // replica keeps redirecting, so reads never see its lag.
    if service.spec.read_from_replicas && service.spec.sharding == Some(Sharding::Cluster) {
        setup.push(vec![b"READONLY"]);
    }
    if setup.is_empty() {
        return Ok(stream);
    }
    let mut out = Vec::new();
    for cmd in &setup {
        super::encode::command(&mut out, cmd);
    }
    let io = |e: std::io::Error| UpstreamError::Handshake(e.to_string());
    stream.write_all(&out).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::new();
    let mut answered = 0;
    let deadline = service.spec.connect_timeout;
    while answered < setup.len() {
        if let Some(reply) = scanner.scan(&mut buf)? {
            if reply.is_error() {
                return Err(UpstreamError::Handshake(
                    String::from_utf8_lossy(reply.frame()).trim().to_string(),
                ));
            }
            answered += 1;
            continue;
        }
        match tokio::time::timeout(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => {
                return Err(UpstreamError::Handshake(
                    "connection closed during setup".into(),
                ));
            }
        }
    }
    Ok(stream)
}

/// Starts the reader task for an opened connection. `on_failure` runs once if the
/// connection breaks while requests are outstanding. The socket stays open, with no
/// half-close (Redis drops a client whose read side ends, even one blocked in BLPOP), until
/// every handle is gone and every reply is in.
pub fn spawn(stream: RedisStream, on_failure: impl FnOnce() + Send + 'static) -> Upstream {
    let (rd, wr) = stream.split();
    let closed = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        outbox: std::sync::Mutex::new(Outbox {
            bytes: BytesMut::new(),
            slots: VecDeque::new(),
            closed: false,
        }),
        wake: Notify::new(),
        reader_wake: Notify::new(),
        handles_gone: AtomicBool::new(false),
    });
    let reader_closed = closed.clone();
    let reader_shared = shared.clone();
    tokio::spawn(async move {
        reader::read_loop(rd, &reader_shared, on_failure).await;
        reader_closed.store(true, Ordering::Release);
    });
    tokio::spawn(write_loop(
        shared.clone(),
        Writer { half: Some(wr) },
        closed.clone(),
    ));
    Upstream {
        inner: Arc::new(Inner { shared, closed }),
    }
}
