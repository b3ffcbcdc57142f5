//! One upstream Redis connection that many clients share, pipelined: senders write whole
//! requests and register reply slots in the same order under one lock; a reader task frames
//! replies and completes the slot at the head of the queue (Redis answers in order). Reading
//! never waits for writing, so a large pipeline cannot deadlock.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc, oneshot};

use throome_resp::{ProtocolError, Reply, ReplyLimits, ReplyScanner};

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
}

impl UpstreamError {
    /// The `throome_errors_total{kind}` label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::NoBackend(_) => "no_backend",
            UpstreamError::Connect(..) => "connect",
            UpstreamError::Lost => "backend_io",
            UpstreamError::Handshake(_) => "backend_auth",
            UpstreamError::Protocol(_) => "backend_protocol",
            UpstreamError::Timeout(_) => "timeout",
        }
    }
}

pub type ReplyResult = Result<Reply, UpstreamError>;
/// Consecutive replies to one client, byte for byte as the backend sent them.
pub type GroupResult = Result<BytesMut, UpstreamError>;

/// Where the replies to requests written on a connection go, in the order written.
pub enum Slot {
    /// One reply, framed, for a request the proxy looks at (redirects, merges, INFO).
    One(oneshot::Sender<ReplyResult>),
    /// The next `n` replies, delivered together: a client's pipeline costs one wake-up and
    /// one write back instead of one per reply (twemproxy pays one per reply).
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

/// A slot the reader is filling.
enum Owed {
    One(oneshot::Sender<ReplyResult>),
    Group {
        left: u32,
        tx: oneshot::Sender<GroupResult>,
        bytes: BytesMut,
    },
}

impl From<Slot> for Owed {
    fn from(slot: Slot) -> Self {
        match slot {
            Slot::One(tx) => Owed::One(tx),
            Slot::Group(n, tx) => Owed::Group {
                left: n,
                tx,
                bytes: BytesMut::new(),
            },
        }
    }
}

impl Owed {
    fn fail(self, e: UpstreamError) {
        match self {
            Owed::One(tx) => drop(tx.send(Err(e))),
            Owed::Group { tx, .. } => drop(tx.send(Err(e))),
        }
    }

    /// Resolves once the client waiting for this is gone.
    async fn abandoned(&mut self) {
        match self {
            Owed::One(tx) => tx.closed().await,
            Owed::Group { tx, .. } => tx.closed().await,
        }
    }
}

/// A handle to a running upstream connection; cheap to clone. Requests are written by the
/// sending client's own task under a short lock (no writer task, no extra hop); one reader
/// task per connection frames replies and completes the slots in order.
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
    wake: Notify,
    handles_gone: AtomicBool,
}

struct Outbox {
    bytes: BytesMut,
    queue: mpsc::UnboundedSender<Slot>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.handles_gone.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

struct Writer {
    half: Option<OwnedWriteHalf>,
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

    /// Writes `bytes` (one or more whole requests) and registers one slot per request.
    /// Queues `bytes` (whole requests) and one reply slot per request. The connection's
    /// writer task sends what all clients queued in one write, as twemproxy does with one
    /// `writev` per event-loop turn: far fewer packets than a write per request.
    pub async fn send_batch(&self, bytes: &[u8], slots: Vec<Slot>) {
        let Ok(mut outbox) = self.inner.shared.outbox.lock() else {
            return fail(slots);
        };
        for slot in slots {
            if let Err(mpsc::error::SendError(slot)) = outbox.queue.send(slot) {
                slot.fail(UpstreamError::Lost);
            }
        }
        let was_empty = outbox.bytes.is_empty();
        outbox.bytes.extend_from_slice(bytes);
        drop(outbox);
        if was_empty {
            self.inner.shared.wake.notify_one();
        }
    }
}

async fn write_loop(shared: Arc<Shared>, mut writer: Writer, closed: Arc<AtomicBool>) {
    loop {
        shared.wake.notified().await;
        // Let the clients that are runnable now queue their requests too.
        tokio::task::yield_now().await;
        loop {
            let chunk = match shared.outbox.lock() {
                Ok(mut o) if !o.bytes.is_empty() => o.bytes.split(),
                _ => break,
            };
            let written = match writer.half.as_mut() {
                Some(half) => half.write_all(&chunk).await.is_ok(),
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
) -> Result<TcpStream, UpstreamError> {
    let name = format!("{}:{}", addr.0, addr.1);
    let connect = tokio::time::timeout(service.spec.connect_timeout, TcpStream::connect(addr));
    let mut stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(UpstreamError::Connect(name, e.to_string())),
        Err(_) => return Err(UpstreamError::Connect(name, "timed out".into())),
    };
    let _ = stream.set_nodelay(true);
    let mut setup: Vec<Vec<&[u8]>> = Vec::new();
    if let Some(pass) = &service.spec.password {
        match &service.spec.username {
            Some(user) => setup.push(vec![b"AUTH", user.as_bytes(), pass.expose().as_bytes()]),
            None => setup.push(vec![b"AUTH", pass.expose().as_bytes()]),
        }
    }
    if resp3 {
        setup.push(vec![b"HELLO", b"3"]);
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
pub fn spawn(stream: TcpStream, on_failure: impl FnOnce() + Send + 'static) -> Upstream {
    let (queue_tx, queue_rx) = mpsc::unbounded_channel::<Slot>();
    let (rd, wr) = stream.into_split();
    let closed = Arc::new(AtomicBool::new(false));
    let reader_closed = closed.clone();
    tokio::spawn(async move {
        read_loop(rd, queue_rx, on_failure).await;
        reader_closed.store(true, Ordering::Release);
    });
    let shared = Arc::new(Shared {
        outbox: std::sync::Mutex::new(Outbox {
            bytes: BytesMut::new(),
            queue: queue_tx,
        }),
        wake: Notify::new(),
        handles_gone: AtomicBool::new(false),
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

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut queue: mpsc::UnboundedReceiver<Slot>,
    on_failure: impl FnOnce(),
) {
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting: VecDeque<Owed> = VecDeque::new();
    let mut queue_done = false;
    let failure = loop {
        match scanner.measure(&buf) {
            Ok(Some((len, kind))) => {
                if kind == b'>' {
                    buf.advance(len); // a push answers nothing on a shared connection
                    continue;
                }
                while let Ok(w) = queue.try_recv() {
                    waiting.push_back(w.into());
                }
                if waiting.is_empty() {
                    match queue.recv().await {
                        Some(w) => waiting.push_back(w.into()),
                        None => break None,
                    }
                }
                deliver(&mut waiting, &mut buf, (len, kind));
                continue;
            }
            Ok(None) => {}
            Err(e) => break Some(UpstreamError::Protocol(e)),
        }
        let read = tokio::select! {
            // A short read tells tokio the socket is drained: no wasted EAGAIN read.
            r = rd.read_buf(&mut buf) => r,
            // Reply slots, in the order their requests were written.
            w = queue.recv(), if !queue_done => match w {
                Some(w) => {
                    waiting.push_back(w.into());
                    continue;
                }
                None if waiting.is_empty() => break None,
                None => {
                    queue_done = true;
                    continue;
                }
            },
            // No handle can send any more and every client still owed a reply is gone (say,
            // one that left during BLPOP 0): close, so Redis frees what it was blocked on.
            () = all_abandoned(&mut waiting), if queue_done => break None,
        };
        if !matches!(read, Ok(n) if n > 0) {
            // EOF or error: a failure only if someone is still owed a reply.
            while let Ok(w) = queue.try_recv() {
                waiting.push_back(w.into());
            }
            break if waiting.is_empty() {
                None
            } else {
                Some(UpstreamError::Lost)
            };
        }
    };
    queue.close();
    while let Ok(w) = queue.try_recv() {
        waiting.push_back(w.into());
    }
    let err = match failure {
        Some(err) => {
            on_failure();
            err
        }
        None => UpstreamError::Lost,
    };
    for w in waiting {
        w.fail(err.clone());
    }
}

/// Hands the measured reply at the front of `buf` to the slot at the front of `waiting`.
fn deliver(waiting: &mut VecDeque<Owed>, buf: &mut BytesMut, measured: (usize, u8)) {
    match waiting.front_mut() {
        Some(Owed::One(_)) => {
            if let Some(Owed::One(tx)) = waiting.pop_front() {
                let _ = tx.send(Ok(ReplyScanner::split(buf, measured)));
            }
        }
        Some(Owed::Group { left, bytes, .. }) => {
            let len = measured.0;
            if bytes.is_empty() {
                bytes.reserve(len * *left as usize);
            }
            bytes.extend_from_slice(&buf[..len]);
            buf.advance(len);
            *left -= 1;
            if *left == 0
                && let Some(Owed::Group { tx, bytes, .. }) = waiting.pop_front()
            {
                let _ = tx.send(Ok(bytes));
            }
        }
        None => buf.advance(measured.0),
    }
}

fn fail(slots: Vec<Slot>) {
    for slot in slots {
        slot.fail(UpstreamError::Lost);
    }
}

/// Resolves once every waiting reply slot's receiver has been dropped.
async fn all_abandoned(waiting: &mut VecDeque<Owed>) {
    for slot in waiting.iter_mut() {
        slot.abandoned().await;
    }
}
