//! Batching requests per upstream connection: a client's requests to one connection go out
//! in one write, and a run of one command shares one group of replies (one wake-up for
//! the run instead of one per reply).

use throome_resp::Request;
use tokio::sync::oneshot;

use super::{Batch, Client, MAX_BATCH, MAX_GROUP, Pending};
use crate::redis::upstream::{ReplyResult, Slot, Upstream};

/// The largest batch buffer a client keeps between batches.
const SPARE_CAPACITY: usize = 16 * 1024;

impl Client {
    pub(super) async fn flush_batch(&mut self) {
        if let Some(mut b) = self.batch.take() {
            b.conn.send_batch(&b.bytes, &mut b.slots).await;
            // Keep the buffers for the next batch, unless a big one grew them.
            if b.bytes.capacity() <= SPARE_CAPACITY {
                b.bytes.clear();
                self.spare = Some((b.bytes, b.slots));
            }
        }
    }

    /// Adds a request to the batch for `conn` and owes the client its reply. Requests of the
    /// same command in a row share one group of replies. A `replica_read` is kept to be sent
    /// to the primary if the replica's connection is lost before it is answered.
    pub(super) async fn enqueue(
        &mut self,
        conn: &Upstream,
        req: Request,
        name: &'static str,
        replica_read: bool,
    ) {
        if self.batch.as_ref().is_some_and(|b| !b.conn.same(conn)) {
            self.flush_batch().await;
        }
        if self.join_group(&req, name) {
            self.count_again(name);
        } else {
            let latency = self.count(name);
            let (tx, rx) = oneshot::channel();
            self.next_group += 1;
            let id = self.next_group;
            let batch = self.batch_for(conn);
            batch.slots.push(Slot::Group(1, tx));
            // INFO's reply is amended alone.
            batch.open_group = (name != "info").then_some(id);
            batch.bytes.extend_from_slice(req.frame());
            self.owe(Pending::Group {
                rx,
                n: 1,
                id,
                started: self.now,
                latency,
                command: name,
                replay: replica_read.then(|| vec![req.frame().clone()]),
            });
        }
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.bytes.len() >= MAX_BATCH)
        {
            self.flush_batch().await;
        }
    }

    /// Adds the request to the open group when it is the last thing owed and has the same
    /// command.
    fn join_group(&mut self, req: &Request, name: &'static str) -> bool {
        let Some(batch) = self.batch.as_mut() else {
            return false;
        };
        let (Some(open), Some(Slot::Group(n, _))) = (batch.open_group, batch.slots.last_mut())
        else {
            return false;
        };
        let Some(Pending::Group {
            n: owed,
            id,
            command,
            replay,
            ..
        }) = self.pending.back_mut()
        else {
            return false;
        };
        let same_muting = self.muted.back() == Some(&self.mute_now);
        if *id != open || !std::ptr::eq(*command, name) || *n >= MAX_GROUP || !same_muting {
            return false;
        }
        *n += 1;
        *owed += 1;
        self.queued += 1;
        batch.bytes.extend_from_slice(req.frame());
        if let Some(frames) = replay {
            frames.push(req.frame().clone());
        }
        true
    }

    fn batch_for(&mut self, conn: &Upstream) -> &mut Batch {
        let spare = &mut self.spare;
        self.batch.get_or_insert_with(|| {
            let (bytes, slots) = spare.take().unwrap_or_default();
            Batch {
                conn: conn.clone(),
                bytes,
                slots,
                open_group: None,
            }
        })
    }

    /// Adds whole request bytes to the batch for `conn`; the receiver gets the reply.
    pub(super) async fn enqueue_bytes(
        &mut self,
        conn: &Upstream,
        bytes: &[u8],
    ) -> oneshot::Receiver<ReplyResult> {
        if self.batch.as_ref().is_some_and(|b| !b.conn.same(conn)) {
            self.flush_batch().await;
        }
        let (tx, rx) = oneshot::channel();
        let batch = self.batch_for(conn);
        batch.bytes.extend_from_slice(bytes);
        batch.slots.push(Slot::One(tx));
        batch.open_group = None;
        if batch.bytes.len() >= MAX_BATCH {
            self.flush_batch().await;
        }
        rx
    }

    /// Sends a group of reads whose replica was lost to the primary, as one group in the
    /// same place of the queue (counted as a `replica_lost` redirect).
    pub(super) async fn follow_regroup(&mut self) {
        let Some(Pending::Regroup { .. }) = self.pending.front() else {
            return;
        };
        let Some(Pending::Regroup {
            frames,
            started,
            latency,
            command,
        }) = self.pending.pop_front()
        else {
            return;
        };
        self.metrics
            .redirects
            .get_or_create(&crate::metrics::ErrorLabels {
                cluster: self.service.cluster.clone(),
                service: self.service.name.clone(),
                kind: "replica_lost",
            })
            .inc();
        let n = u32::try_from(frames.len()).unwrap_or(u32::MAX);
        let slot = usize::try_from(self.state.id).unwrap_or_default();
        let primary = crate::redis::pool::route(
            &self.pools,
            &self.service,
            false,
            (self.state.resp3, self.state.login.as_ref()),
            slot,
        );
        let (tx, rx) = oneshot::channel();
        match primary.await {
            Ok((_, conn)) => {
                if self.batch.as_ref().is_some_and(|b| !b.conn.same(&conn)) {
                    self.flush_batch().await;
                }
                let batch = self.batch_for(&conn);
                batch.slots.push(Slot::Group(n, tx));
                batch.open_group = None;
                frames.iter().for_each(|f| batch.bytes.extend_from_slice(f));
                self.flush_batch().await;
            }
            Err(e) => {
                self.metrics.error(&self.service, e.kind());
                let _ = tx.send(Err(e));
            }
        }
        self.next_group += 1;
        self.pending.push_front(Pending::Group {
            rx,
            n,
            id: self.next_group,
            started,
            latency,
            command,
            replay: None,
        });
    }
}
