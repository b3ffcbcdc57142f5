//! MULTI/EXEC on a sharded service, as Redis Cluster runs them: every key of the
//! transaction must live on one shard (one slot on a cluster). The proxy queues the
//! commands itself (answering `+QUEUED`, or `-CROSSSLOT` for a command whose keys go
//! elsewhere, which dooms the transaction as any queueing error does), and at EXEC sends
//! MULTI, the commands and EXEC back to back on a connection of the transaction's own to
//! that shard; the client gets EXEC's answer. WATCH opens that connection early: its keys
//! must share one shard (slot), it is watched there, and the transaction then runs on that
//! connection, so a change to a watched key by anyone makes EXEC answer nil, as in Redis.

use bytes::Bytes;
use throome_resp::{CommandSpec, Request};

use super::{Client, Flow, Lane, Pending};
use crate::redis::encode;
use crate::redis::upstream::{Upstream, UpstreamError};

/// WATCH on a sharded service: the connection the keys were watched on and their group.
pub(super) struct ShardWatch {
    group: usize,
    conn: Upstream,
    lane: u64,
}

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
                self.shard_tx = Some(ShardTx {
                    group: self.shard_watch.as_ref().map(|w| w.group),
                    ..ShardTx::default()
                });
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
                self.shard_watch = None;
                self.reply(reply);
                return Some(TxStep::Done);
            }
            ("watch", true) => {
                self.reply(encode::error("ERR WATCH inside MULTI is not allowed"));
                return Some(TxStep::Done);
            }
            ("watch", false) => return Some(self.watch_group(spec, req, group_of)),
            ("unwatch", false) => {
                // Closing the connection unwatches its keys.
                self.shard_watch = None;
                self.reply(encode::simple("OK"));
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

    /// WATCH's keys must share a group, the one already watched if any: `Watch(group)`, or
    /// answered with CROSSSLOT.
    fn watch_group(
        &mut self,
        spec: &CommandSpec,
        req: &Request,
        group_of: &dyn Fn(&[u8]) -> usize,
    ) -> TxStep {
        let args: Vec<&[u8]> = req.args().collect();
        let mut keys = Vec::new();
        spec.keys(&args, &mut keys);
        let mut groups = keys.iter().map(|&k| group_of(args[k]));
        let watched = self.shard_watch.as_ref().map(|w| w.group);
        match groups.next().or(watched) {
            Some(first) if groups.all(|g| g == first) && watched.is_none_or(|w| w == first) => {
                TxStep::Watch(first)
            }
            _ => {
                self.reply(Bytes::from_static(CROSSSLOT));
                TxStep::Done
            }
        }
    }

    /// WATCH on the connection of the transaction to come, opened to `node` (the group's)
    /// now if it is not open yet; the client gets the node's answer.
    pub(super) async fn watch_on(
        &mut self,
        group: usize,
        node: Option<(String, u16)>,
        req: &Request,
    ) -> Flow {
        if self.shard_watch.is_none() {
            let Some((host, port)) = node else {
                self.reply(encode::error("CLUSTERDOWN Hash slot not served"));
                return Flow::Continue;
            };
            self.next_lane += 1;
            let lane = self.next_lane;
            self.switch_lane(Lane::Dedicated(lane)).await;
            match self.open_dedicated(&host, port).await {
                Ok(conn) => self.shard_watch = Some(ShardWatch { group, conn, lane }),
                Err(e) => {
                    self.fail(&e);
                    return Flow::Continue;
                }
            }
        }
        let Some(watch) = self.shard_watch.as_ref() else {
            return Flow::Continue;
        };
        let (conn, lane) = (watch.conn.clone(), watch.lane);
        self.switch_lane(Lane::Dedicated(lane)).await;
        let latency = self.count("watch");
        let started = self.now;
        let rx = self.enqueue_bytes(&conn, req.frame()).await;
        self.flush_batch().await;
        self.owe(Pending::Wait {
            rx,
            started,
            latency,
            command: "watch",
            replay: None,
            redirects: 0,
        });
        Flow::Continue
    }

    /// A connection of the client's own to a node, counted as dedicated while it is open.
    async fn open_dedicated(&mut self, host: &str, port: u16) -> Result<Upstream, UpstreamError> {
        let backend = self.pools.node(&self.service, host, port);
        let stream =
            crate::redis::pool::open_to(&self.service, &backend, self.state.resp3, None).await?;
        let guard = self.pools.dedicated();
        Ok(crate::redis::upstream::spawn(stream, move || drop(guard)))
    }

    /// A command that could not be queued (wrong arity, unknown) dooms the transaction.
    pub(super) fn doom_shard_tx(&mut self) {
        if let Some(tx) = self.shard_tx.as_mut() {
            tx.doomed = true;
        }
    }

    /// EXEC: MULTI, the queued commands and EXEC on a connection of their own to `node`.
    /// With WATCH, on the connection the keys were watched on (EXEC ends the watch either
    /// way, as in Redis).
    pub(super) async fn exec_on(&mut self, tx: ShardTx, node: Option<(String, u16)>) -> Flow {
        let watch = self.shard_watch.take();
        if tx.doomed {
            let text = "EXECABORT Transaction discarded because of previous errors.";
            self.reply(encode::error(text));
            return Flow::Continue;
        }
        if tx.frames.is_empty() && watch.is_none() {
            self.reply(Bytes::from_static(b"*0\r\n"));
            return Flow::Continue;
        }
        let conn = match watch {
            Some(w) => {
                self.switch_lane(Lane::Dedicated(w.lane)).await;
                w.conn
            }
            None => {
                let Some((host, port)) = node else {
                    self.reply(encode::error("CLUSTERDOWN Hash slot not served"));
                    return Flow::Continue;
                };
                self.next_lane += 1;
                self.switch_lane(Lane::Dedicated(self.next_lane)).await;
                match self.open_dedicated(&host, port).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        self.fail(&e);
                        return Flow::Continue;
                    }
                }
            }
        };
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
        self.owe(Pending::Wait {
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
    /// WATCH of keys of this group.
    Watch(usize),
}

impl ShardTx {
    /// The shard or slot the transaction's keys live in (the first shard if it has none).
    pub(super) fn group(&self) -> usize {
        self.group.unwrap_or(0)
    }
}
