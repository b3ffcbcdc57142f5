//! One upstream Redis connection that many requests share, pipelined: a writer task sends
//! frames in arrival order, a reader task frames replies and hands each to the request at the
//! head of the queue (Redis answers in order). Split in two so that a large pipeline never
//! deadlocks with both sides blocked on writes.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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
        }
    }
}

pub type ReplyResult = Result<Reply, UpstreamError>;

struct Job {
    frame: Bytes,
    reply: oneshot::Sender<ReplyResult>,
}

/// A handle to a running upstream connection; cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    jobs: mpsc::Sender<Job>,
}

impl Upstream {
    pub fn is_closed(&self) -> bool {
        self.jobs.is_closed()
    }

    /// Queues `frame`; the receiver yields its reply.
    pub async fn send(&self, frame: Bytes) -> oneshot::Receiver<ReplyResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = self.jobs.send(Job { frame, reply: tx }).await {
            let _ = job.reply.send(Err(UpstreamError::Lost));
        }
        rx
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

/// Starts the writer and reader tasks for an opened connection. `on_failure` runs once if
/// the connection breaks while requests are outstanding.
pub fn spawn(stream: TcpStream, on_failure: impl FnOnce() + Send + 'static) -> Upstream {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(1024);
    let (queue_tx, queue_rx) = mpsc::unbounded_channel::<oneshot::Sender<ReplyResult>>();
    let (rd, wr) = stream.into_split();
    let dead = CancellationToken::new();
    tokio::spawn(write_loop(wr, jobs_rx, queue_tx, dead.clone()));
    tokio::spawn(async move {
        read_loop(rd, queue_rx, on_failure).await;
        dead.cancel();
    });
    Upstream { jobs: jobs_tx }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut jobs: mpsc::Receiver<Job>,
    queue: mpsc::UnboundedSender<oneshot::Sender<ReplyResult>>,
    dead: CancellationToken,
) {
    let mut out = BytesMut::new();
    loop {
        let job = tokio::select! {
            () = dead.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let mut batch = Some(job);
        // Everything already queued goes out in one write.
        while let Some(job) = batch.take().or_else(|| jobs.try_recv().ok()) {
            // Register the reply slot before the bytes leave, so the reader always has it.
            if let Err(mpsc::error::SendError(reply)) = queue.send(job.reply) {
                let _ = reply.send(Err(UpstreamError::Lost));
                continue;
            }
            out.extend_from_slice(&job.frame);
            if out.len() > 256 * 1024 {
                break;
            }
        }
        if wr.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
    }
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let _ = job.reply.send(Err(UpstreamError::Lost));
    }
    // No half-close: Redis drops a client whose read side ends, even one blocked in BLPOP
    // or in the middle of EXEC. Hold the write half until the reader has what is owed.
    drop(queue);
    dead.cancelled().await;
    drop(wr);
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut queue: mpsc::UnboundedReceiver<oneshot::Sender<ReplyResult>>,
    on_failure: impl FnOnce(),
) {
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting: VecDeque<oneshot::Sender<ReplyResult>> = VecDeque::new();
    let failure = loop {
        match scanner.scan(&mut buf) {
            Ok(Some(reply)) => {
                if reply.is_push() {
                    continue; // not an answer to anything on a shared connection
                }
                while let Ok(w) = queue.try_recv() {
                    waiting.push_back(w);
                }
                let slot = match waiting.pop_front() {
                    Some(w) => Some(w),
                    None => queue.recv().await,
                };
                match slot {
                    Some(w) => {
                        let _ = w.send(Ok(reply));
                    }
                    None => break None,
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => break Some(UpstreamError::Protocol(e)),
        }
        let read = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            // Nothing owed: wait for the next request, or end when no more can come.
            w = queue.recv(), if waiting.is_empty() => match w {
                Some(w) => {
                    waiting.push_back(w);
                    continue;
                }
                None => break None,
            },
        };
        match read {
            Ok(n) if n > 0 => {}
            _ => {
                // EOF or error: a failure only if someone is still owed a reply.
                while let Ok(w) = queue.try_recv() {
                    waiting.push_back(w);
                }
                break if waiting.is_empty() && queue.is_closed() {
                    None
                } else {
                    Some(UpstreamError::Lost)
                };
            }
        }
    };
    queue.close();
    while let Ok(w) = queue.try_recv() {
        waiting.push_back(w);
    }
    if let Some(err) = failure {
        on_failure();
        for w in waiting {
            let _ = w.send(Err(err.clone()));
        }
    }
}

/// Elapsed time helper for metrics.
pub fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
