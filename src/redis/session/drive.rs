//! The client loop: read requests, hand them out, write replies back in order, with the
//! socket read and written at once (`io.rs`), until the client or the proxy ends it.

use bytes::{Bytes, BytesMut};
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use throome_resp::RequestScanner;

use super::{Client, EOF_LINGER, Flow, HOLD_READ_LIMIT, MAX_PENDING, Pending, io, replies};
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
}

/// What scanning the read bytes left.
enum Scanned {
    /// Whether whole requests are left unread for want of room.
    Done { unscanned: bool },
    /// The client goes to a raw connection of its own, starting with this request.
    Raw(Bytes),
}

impl Client {
    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, client: S) {
        let mut client = io::ClientIo::new(client);
        let mut scanner = RequestScanner::new(self.service.spec.limits);
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut at = Progress::default();
        loop {
            if at.hold && self.pending.is_empty() {
                at.hold = false;
                self.activity.unblocked();
            }
            // Every whole request read so far is handled before waiting on anything: a
            // client that wrote its whole pipeline sends nothing more until it is answered.
            let unscanned = match self.scan_all(&mut scanner, &mut buf, &mut at).await {
                Scanned::Done { unscanned } => unscanned,
                Scanned::Raw(first) => return self.hand_over(client.stream, first, buf).await,
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
            let room = (!at.hold || self.pending.is_empty()) && self.pending.len() < MAX_PENDING;
            if unscanned && room {
                continue;
            }
            let waiting = matches!(
                self.pending.front(),
                Some(Pending::Wait { .. } | Pending::Group { .. } | Pending::Merge { .. })
            );
            let full =
                self.pending.len() >= MAX_PENDING || (at.hold && buf.len() >= HOLD_READ_LIMIT);
            let readable = !at.stop && !at.eof && !full;
            let linger = at
                .give_up
                .unwrap_or_else(|| tokio::time::Instant::now() + EOF_LINGER);
            tokio::select! {
                () = replies::wait_front(&mut self.pending, &self.metrics, &self.service), if waiting => {}
                turn = client.turn(&mut self.out, &mut buf, readable) => match turn {
                    io::Io::Wrote => {}
                    io::Io::Read => {
                        self.now = Instant::now();
                        self.activity.touched(self.since, self.now);
                    }
                    io::Io::Closed => self.client_closed(&mut at),
                    io::Io::Failed => return,
                },
                () = tokio::time::sleep_until(linger), if at.give_up.is_some() => return,
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
            if at.hold || self.pending.len() >= MAX_PENDING {
                return Scanned::Done { unscanned: true };
            }
            match scanner.scan(buf) {
                Ok(Some(req)) => match self.handle(req).await {
                    Flow::Continue => {}
                    Flow::Hold => at.hold = true,
                    Flow::Stop => at.stop = true,
                    Flow::Raw(first) => return Scanned::Raw(first),
                },
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
            self.pending.pop_back();
            self.muted.pop_back();
            at.stop = true;
        }
        at.give_up = Some(tokio::time::Instant::now() + EOF_LINGER);
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
