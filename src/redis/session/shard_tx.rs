//! MULTI/EXEC on a sharded service, as Redis Cluster runs them: every key of the
//! transaction must live on one shard (one slot on a cluster). The proxy queues the
//! commands itself (answering `+QUEUED`, or `-CROSSSLOT` for a command whose keys go
//! elsewhere, which dooms the transaction as any queueing error does), and at EXEC sends
//! MULTI, the commands and EXEC back to back on a connection of the transaction's own to
//! that shard; the client gets EXEC's answer. WATCH would need a connection held from
//! before MULTI and is not offered.

use bytes::Bytes;
use throome_resp::{CommandSpec, Request};

use super::{Client, Flow, Lane, Pending};
use crate::redis::encode;

/// A transaction being queued.
#[derive(Default)]
pub(super) struct ShardTx {
    frames: Vec<Bytes>,
    /// The group (shard or slot) every key so far lives in.
    group: Option<usize>,
    /// A command failed to queue: EXEC answers EXECABORT.
    doomed: bool,
}

const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

impl Client {
    /// Inside MULTI: queues `req` (or answers MULTI, EXEC, DISCARD, WATCH). `group_of` gives
    /// a key's shard or slot. `None` when no transaction is open and `req` is not MULTI.
    pub(super) fn in_shard_tx(
        &mut self,
        name: &str,
        spec: &CommandSpec,
        req: &Request,
        group_of: &dyn Fn(&[u8]) -> usize,
    ) -> Option<TxStep> {
        match (name, self.shard_tx.is_some()) {
            ("multi", false) => {
                self.shard_tx = Some(ShardTx::default());
                self.reply(encode::simple("OK"));
                return Some(TxStep::Done);
            }
            ("multi", true) => {
                self.reply(encode::error("ERR MULTI calls can not be nested"));
                return Some(TxStep::Done);
            }
            ("exec", _) => return Some(TxStep::Exec(self.shard_tx.take())),
            ("discard", _) => {
                let reply = match self.shard_tx.take() {
                    Some(_) => encode::simple("OK"),
                    None => encode::error("ERR DISCARD without MULTI"),
                };
                self.reply(reply);
                return Some(TxStep::Done);
            }
            ("watch", _) => {
                let text = "ERR Throome: WATCH is not supported on a sharded service";
                self.reply(encode::error(text));
                return Some(TxStep::Done);
            }
            (_, false) => return None,
            (_, true) => {}
        }
        let args: Vec<&[u8]> = req.args().collect();
        let mut keys = Vec::new();
        spec.keys(&args, &mut keys);
        let tx = self.shard_tx.as_mut()?;
        let mut groups = keys.iter().map(|&k| group_of(args[k]));
        let first = groups.next().or(tx.group);
        let together =
            groups.all(|g| Some(g) == first) && (tx.group.is_none() || tx.group == first);
        let reply = match together {
            true => {
                tx.group = first;
                tx.frames.push(req.frame().clone());
                encode::simple("QUEUED")
            }
            false => {
                tx.doomed = true;
                Bytes::from_static(CROSSSLOT)
            }
        };
        self.reply(reply);
        Some(TxStep::Done)
    }

    /// A command that could not be queued (wrong arity, unknown) dooms the transaction.
    pub(super) fn doom_shard_tx(&mut self) {
        if let Some(tx) = self.shard_tx.as_mut() {
            tx.doomed = true;
        }
    }

    /// EXEC: MULTI, the queued commands and EXEC on a connection of their own to `node`.
    pub(super) async fn exec_on(&mut self, tx: ShardTx, node: Option<(String, u16)>) -> Flow {
        if tx.doomed {
            let text = "EXECABORT Transaction discarded because of previous errors.";
            self.reply(encode::error(text));
            return Flow::Continue;
        }
        if tx.frames.is_empty() {
            self.reply(Bytes::from_static(b"*0\r\n"));
            return Flow::Continue;
        }
        let Some((host, port)) = node else {
            self.reply(encode::error("CLUSTERDOWN Hash slot not served"));
            return Flow::Continue;
        };
        self.next_lane += 1;
        self.switch_lane(Lane::Dedicated(self.next_lane)).await;
        let backend = self.pools.node(&self.service, &host, port);
        let stream =
            match crate::redis::pool::open_to(&self.service, &backend, self.state.resp3).await {
                Ok(s) => s,
                Err(e) => {
                    self.fail(&e);
                    return Flow::Continue;
                }
            };
        let guard = self.pools.dedicated();
        let conn = crate::redis::upstream::spawn(stream, move || drop(guard));
        let latency = self.count("exec");
        let started = self.now;
        // The answers to MULTI and to each queued command (+OK, +QUEUED) are not the
        // client's: it had them from the proxy. Their receivers are dropped.
        drop(self.enqueue_bytes(&conn, b"*1\r\n$5\r\nMULTI\r\n").await);
        for frame in &tx.frames {
            drop(self.enqueue_bytes(&conn, frame).await);
        }
        let rx = self.enqueue_bytes(&conn, b"*1\r\n$4\r\nEXEC\r\n").await;
        self.flush_batch().await;
        // Dropping the handle closes the connection once EXEC's answer is in.
        self.pending.push_back(Pending::Wait {
            rx,
            started,
            latency,
            command: "exec",
            replay: None,
            redirects: 0,
        });
        Flow::Continue
    }
}

/// What a transaction command asks of the session.
pub(super) enum TxStep {
    /// Answered.
    Done,
    /// EXEC, with the transaction if one was open.
    Exec(Option<ShardTx>),
}

impl ShardTx {
    /// The shard or slot the transaction's keys live in (the first shard if it has none).
    pub(super) fn group(&self) -> usize {
        self.group.unwrap_or(0)
    }
}
