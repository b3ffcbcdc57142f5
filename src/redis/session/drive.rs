//! The client loop: read requests, hand them out, write replies back in order, with the
//! socket read and written at once (`io.rs`), until the client or the proxy ends it.

use bytes::{Bytes, BytesMut};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use throome_resp::RequestScanner;

use super::{
    BEHIND_COMMANDS, Client, EOF_LINGER, Flow, HOLD_READ_LIMIT, MAX_PENDING, Pending, io, replies,
};
use crate::redis::encode;

/// Where the loop stands.
#[derive(Default)]
struct Progress {
    /// No more requests are served (QUIT, a protocol error).
    stop: bool,
    /// The client sent its last byte.
    eof: bool,
    /// A blocking command is out: nothing behind it is handled until it is answered.
    hold: bool,
    /// When to stop waiting for replies after the client left.
    give_up: Option<tokio::time::Instant>,
    /// Whole requests handled so far.
    handled: u64,
}

/// What scanning the read bytes left.
enum Scanned {
    /// Whether whole requests are left unread for want of room.
    Done { unscanned: bool },
    /// The client goes to a raw connection of its own, starting with this request.
    Raw(Bytes),
}

impl Client {
    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin + io::Readiness>(
        &mut self,
        client: S,
        // What was read before the session started; empty (unallocated) on a client's own
        // listener: allocated when the first bytes arrive (`io.rs`).
        mut buf: BytesMut,
    ) {
        let mut client = io::ClientIo::new(client);
        let mut scanner = RequestScanner::new(self.service.spec.limits);
        let mut at = Progress::default();
        let idle_limit = self.service.spec.client_idle_timeout;
        let mut active_at = tokio::time::Instant::now();
        let mut was_busy = false;
        loop {
            if at.hold && self.pending.is_empty() {
                at.hold = false;
                self.activity.unblocked();
            }
            if self.pending.is_empty() {
                // Whatever path emptied it, nothing is in flight.
                self.queued = 0;
            }
            // Every whole request read so far is handled before waiting on anything: a
            // client that wrote its whole pipeline sends nothing more until it is answered.
            let handled = at.handled;
            let unscanned = match self.scan_all(&mut scanner, &mut buf, &mut at).await {
                Scanned::Done { unscanned } => unscanned,
                Scanned::Raw(first) => {
                    return Box::pin(self.hand_over(client.stream, first, buf)).await;
                }
            };
            self.flush_batch().await;
            self.settle().await;
            if self.out.len() > self.service.spec.output_limit {
                return self.overflow();
            }
            if client.write_now(&mut self.out).await.is_err() {
                return;
            }
            let served = at.stop || (at.eof && !unscanned);
            if served && self.pending.is_empty() && self.out.is_empty() {
                break;
            }
            // Requests left unread for want of room, which there is now.
            let room = (!at.hold || self.pending.is_empty()) && !self.in_flight_full();
            if unscanned && room {
                continue;
            }
            let waiting = matches!(
                self.pending.front(),
                Some(Pending::Wait { .. } | Pending::Group { .. } | Pending::Merge { .. })
            );
            let full = self.in_flight_full() || (at.hold && buf.len() >= HOLD_READ_LIMIT);
            let readable = !at.stop && !at.eof && !full;
            // Idle: owed nothing and no whole request since `active_at`; a blocked client
            // waits by design, as in Redis.
            let busy = at.handled != handled || !self.pending.is_empty() || !self.out.is_empty();
            // Idle time starts when the last busy stretch ends (its last reply written).
            if idle_limit.is_some() && (busy || was_busy) {
                active_at = tokio::time::Instant::now();
            }
            was_busy = busy;
            let idle_at = idle_limit.filter(|_| !busy).map(|t| active_at + t);
            // Owed nothing: the reply queues go back to the worker's pool while waiting.
            if self.pending.is_empty() {
                self.return_queues();
            }
            tokio::select! {
                n = replies::wait_front_counted(&mut self.pending, &self.metrics, &self.service), if waiting => {
                    self.queued = self.queued.saturating_sub(n);
                }
                turn = client.turn(&mut self.out, &mut buf, readable) => match turn {
                    io::Io::Wrote => {}
                    io::Io::Read => {
                        // Replies are owed: a buffer for them from the worker's pool (given
                        // back once they are written).
                        if self.out.capacity() == 0 {
                            self.out = crate::bufpool::take();
                        }
                        self.now = Instant::now();
                        self.activity.touched(self.since, self.now);
                    }
                    io::Io::Closed => self.client_closed(&mut at),
                    io::Io::Failed => return,
                },
                // select! builds every branch's future each turn, enabled or not: the
                // timers are made only when polled (no clock read or timer per request).
                () = sleep_until_some(at.give_up), if at.give_up.is_some() => return,
                () = sleep_until_some(idle_at), if idle_at.is_some() && !at.hold => {
                    return self.idled();
                }
            }
        }
        let _ = client.stream.shutdown().await;
    }

    /// Handles the whole requests in `buf`, as far as the in-flight bound and a blocking
    /// command allow.
    async fn scan_all(
        &mut self,
        scanner: &mut RequestScanner,
        buf: &mut BytesMut,
        at: &mut Progress,
    ) -> Scanned {
        while !at.stop {
            if at.hold || self.in_flight_full() {
                return Scanned::Done { unscanned: true };
            }
            match scanner.scan(buf) {
                Ok(Some(req)) => {
                    at.handled += 1;
                    match self.handle(req).await {
                        Flow::Continue => {}
                        Flow::Hold => at.hold = true,
                        Flow::Stop => at.stop = true,
                        Flow::Raw(first) => return Scanned::Raw(first),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.metrics.error(&self.service, "client_protocol");
                    self.reply(encode::error(&format!("ERR {e}")));
                    at.stop = true;
                }
            }
        }
        Scanned::Done { unscanned: false }
    }

    /// EOF: what was asked is answered (a client may half-close after its last request),
    /// for a while; a client that left for good must not keep a BLPOP 0 and its connection
    /// alive forever. Redis frees a blocked client that closes: its blocking command is
    /// dropped with its connection (the backend unblocks at once and pops nothing for
    /// nobody), and nothing behind it runs.
    fn client_closed(&mut self, at: &mut Progress) {
        at.eof = true;
        if at.hold {
            if let Some(blocked) = self.pending.pop_back() {
                self.queued = self.queued.saturating_sub(blocked.commands());
            }
            self.muted.pop_back();
            at.stop = true;
        }
        at.give_up = Some(tokio::time::Instant::now() + EOF_LINGER);
    }

    /// No more requests may go out now: `MAX_PENDING` commands are in flight, or fewer
    /// while replies wait for the client to take them (`out` holds only what its socket
    /// did not take).
    fn in_flight_full(&self) -> bool {
        let cap = if self.out.is_empty() {
            MAX_PENDING
        } else {
            BEHIND_COMMANDS
        };
        // Nothing in flight: whatever the count says, there is room (it cannot stall).
        !self.pending.is_empty() && (self.pending.len() >= MAX_PENDING || self.queued >= cap)
    }

    /// `client_idle_timeout` passed with nothing asked: closed, as redis-server closes a
    /// client idle past its `timeout` (silently; the log line and counter are the proxy's).
    fn idled(&mut self) {
        self.metrics.error(&self.service, "client_idle_timeout");
        tracing::info!(
            service = %self.service.key(),
            client = self.state.id,
            "client closed after client_idle_timeout without a whole request"
        );
    }

    /// The client let more reply bytes pile up than `client_output_buffer_limit`: closed, as
    /// Redis closes a client past its output buffer's hard limit.
    fn overflow(&mut self) {
        self.metrics.error(&self.service, "output_buffer_limit");
        tracing::warn!(
            service = %self.service.key(),
            client = self.state.id,
            bytes = self.out.len(),
            "client closed for overcoming of output buffer limits"
        );
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
