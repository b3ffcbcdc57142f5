//! `client_idle_timeout` for Kafka connections (a broker's `connections.max.idle.ms`): a
//! connection owed no response that sent no whole request for that long is closed. The
//! two directions of a connection run in one task; this is what they share about it.
//! Bytes of an unfinished request are not activity, so a client trickling one is cut off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

pub(super) struct Idle {
    pub limit: Option<Duration>,
    start: Instant,
    /// Milliseconds after `start` of the last whole request or response.
    active_ms: AtomicU64,
    /// A response is owed to the client.
    owed: AtomicBool,
}

impl Idle {
    pub fn new(limit: Option<Duration>) -> Idle {
        Idle {
            limit,
            start: Instant::now(),
            active_ms: AtomicU64::new(0),
            owed: AtomicBool::new(false),
        }
    }

    /// A whole request or response went through.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.active_ms.store(ms, Ordering::Relaxed);
    }

    pub fn owe(&self, owed: bool) {
        self.owed.store(owed, Ordering::Relaxed);
    }

    /// When the connection is idle past its limit unless something happens first.
    pub fn deadline(&self, limit: Duration) -> Instant {
        self.start + Duration::from_millis(self.active_ms.load(Ordering::Relaxed)) + limit
    }

    /// Whether the limit has passed with nothing owed.
    pub fn expired(&self, limit: Duration) -> bool {
        !self.owed.load(Ordering::Relaxed) && Instant::now() >= self.deadline(limit)
    }
}

/// Reads from the client, or None once it is idle past its limit.
pub(super) async fn read_or_idle<R: tokio::io::AsyncRead + Unpin>(
    idle: &Idle,
    reader: &mut R,
    buf: &mut bytes::BytesMut,
) -> Option<std::io::Result<usize>> {
    use tokio::io::AsyncReadExt;
    let Some(limit) = idle.limit else {
        return Some(reader.read_buf(buf).await);
    };
    loop {
        // `read_buf` is cancel safe: a read cut short by the deadline took no bytes.
        match tokio::time::timeout_at(idle.deadline(limit), reader.read_buf(buf)).await {
            Ok(r) => return Some(r),
            Err(_) if idle.expired(limit) => return None,
            Err(_) => {
                // Busy meanwhile (a response owed or sent): wait a whole limit more.
                if idle.owed.load(Ordering::Relaxed) {
                    idle.touch();
                }
            }
        }
    }
}
