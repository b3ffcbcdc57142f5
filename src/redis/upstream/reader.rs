//! The reader task of a shared upstream connection: frames replies and hands each to the
//! slot registered first (Redis answers in order), grouping a client's consecutive replies.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

use throome_resp::{ReplyLimits, ReplyScanner};

use super::{GroupResult, ReplyResult, Shared, Slot, UpstreamError};

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

/// Reads replies until the connection ends, or until no handle is left and nobody is owed a
/// reply; then fails whatever is still owed.
pub(super) async fn read_loop(
    mut rd: super::stream::ReadSide,
    shared: &Shared,
    on_failure: impl FnOnce(),
) {
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting: VecDeque<Owed> = VecDeque::new();
    let failure = loop {
        match scanner.measure(&buf) {
            Ok(Some((len, kind))) => {
                if kind == b'>' {
                    buf.advance(len); // a push answers nothing on a shared connection
                    continue;
                }
                if waiting.is_empty() {
                    take_slots(shared, &mut waiting);
                }
                if waiting.is_empty() {
                    // Slots are registered before their requests are written.
                    break Some(UpstreamError::Unsolicited);
                }
                deliver(&mut waiting, &mut buf, (len, kind));
                continue;
            }
            Ok(None) => {}
            Err(e) => break Some(UpstreamError::Protocol(e)),
        }
        let gone = shared.handles_gone.load(Ordering::Acquire);
        if gone {
            take_slots(shared, &mut waiting);
            if waiting.is_empty() {
                break None;
            }
        }
        let read = tokio::select! {
            // A short read tells tokio the socket is drained: no wasted EAGAIN read.
            r = rd.read_buf(&mut buf) => r,
            () = shared.reader_wake.notified(), if !gone => continue,
            // No handle can send any more and every client still owed a reply is gone (say,
            // one that left during BLPOP 0): close, so Redis frees what it was blocked on.
            () = all_abandoned(&mut waiting), if gone => break None,
        };
        if !matches!(read, Ok(n) if n > 0) {
            // EOF or error: a failure only if someone is still owed a reply.
            take_slots(shared, &mut waiting);
            break (!waiting.is_empty()).then_some(UpstreamError::Lost);
        }
    };
    if let Ok(mut outbox) = shared.outbox.lock() {
        outbox.closed = true;
    }
    take_slots(shared, &mut waiting);
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

/// Moves the slots registered so far, in order, behind those already waiting.
fn take_slots(shared: &Shared, waiting: &mut VecDeque<Owed>) {
    if let Ok(mut outbox) = shared.outbox.lock() {
        waiting.extend(outbox.slots.drain(..).map(Owed::from));
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
        Some(Owed::Group { left: 1, bytes, .. }) if bytes.is_empty() => {
            // A group of one (an unpipelined client): the reply itself, no copy.
            if let Some(Owed::Group { tx, .. }) = waiting.pop_front() {
                let _ = tx.send(Ok(ReplyScanner::split(buf, measured).into_frame()));
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
                let _ = tx.send(Ok(bytes.freeze()));
            }
        }
        None => buf.advance(measured.0),
    }
}

/// Resolves once every waiting reply slot's receiver has been dropped.
async fn all_abandoned(waiting: &mut VecDeque<Owed>) {
    for slot in waiting.iter_mut() {
        slot.abandoned().await;
    }
}
