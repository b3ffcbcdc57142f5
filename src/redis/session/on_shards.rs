//! Requests on a sharded service: a ketama ring over the backends, or a Redis Cluster whose
//! slot map Throome reads and whose MOVED/ASK redirects it follows, so clients never see them.

use bytes::Bytes;
use throome_resp::{CommandSpec, Request};
use tokio::sync::oneshot;

use super::{Client, Flow, Pending, SplitPart};
use crate::redis::cluster::{self, SlotMap};
use crate::redis::encode;
use crate::redis::sharded::{self, Plan};
use crate::redis::upstream::{ReplyResult, Upstream, UpstreamError};

/// Redirects followed for one request before giving up (a cluster in the middle of moving a
/// slot answers ASK once, MOVED at most once per topology change).
pub(super) const MAX_REDIRECTS: u8 = 5;

impl Client {
    /// A sharded service: connection commands stay local; state that would need one backend
    /// connection (transactions, subscriptions, SELECT) is refused; the rest is planned per
    /// key.
    pub(super) async fn handle_sharded(
        &mut self,
        req: Request,
        name: &'static str,
        spec: &'static CommandSpec,
    ) -> Flow {
        match name {
            "quit" => {
                self.reply(encode::simple("OK"));
                return Flow::Stop;
            }
            "ping" | "echo" | "hello" | "auth" | "client" | "reset" | "select" => {
                match self.local(name, &req).await {
                    Some(Flow::Raw(_)) => {
                        let what = String::from_utf8_lossy(
                            &req.args().take(2).collect::<Vec<_>>().join(&b' '),
                        )
                        .to_uppercase();
                        self.reply(encode::error(&format!(
                            "ERR Throome: {what} is not supported on a sharded service"
                        )));
                        return Flow::Continue;
                    }
                    Some(flow) => return flow,
                    None => {}
                }
            }
            _ => {}
        }
        let started = self.now;
        let (plan, map) = match self.pools.ring.clone() {
            Some(ring) => {
                let shards = self.service.backends.len();
                (
                    sharded::plan(
                        sharded::ketama_group(&ring, self.service.spec.hash_tag),
                        shards,
                        spec,
                        &req,
                    ),
                    None,
                )
            }
            None => match self.pools.slot_map(&self.service).await {
                Ok(map) => (
                    sharded::plan(cluster::slot, map.nodes.len(), spec, &req),
                    Some(map),
                ),
                Err(e) => {
                    self.fail(&e);
                    return Flow::Continue;
                }
            },
        };
        match plan {
            Plan::Refuse(err) => {
                self.count(spec.name);
                self.reply(err);
            }
            Plan::One(group) => {
                let target = target(map.as_deref(), group, false);
                match self.target_conn(target).await {
                    Ok(conn) => {
                        let latency = self.count(spec.name);
                        let rx = self.enqueue_bytes(&conn, req.frame()).await;
                        // On a cluster keep the request: a redirect sends it again.
                        let replay = map.is_some().then(|| req.frame().clone());
                        self.pending.push_back(Pending::Wait {
                            rx,
                            started,
                            latency,
                            command: spec.name,
                            replay,
                            redirects: 0,
                        });
                    }
                    Err(e) => self.fail(&e),
                }
            }
            Plan::Split {
                parts,
                kind,
                total,
                every_shard,
            } => {
                let latency = self.count(spec.name);
                let mut receivers = Vec::with_capacity(parts.len());
                for (group, bytes, positions) in parts {
                    let rx = match self
                        .target_conn(target(map.as_deref(), group, every_shard))
                        .await
                    {
                        Ok(conn) => self.enqueue_bytes(&conn, &bytes).await,
                        Err(e) => failed(e),
                    };
                    let replay = map.is_some().then_some(bytes);
                    receivers.push(SplitPart {
                        rx,
                        positions,
                        replay,
                        redirects: 0,
                        reply: None,
                    });
                }
                self.pending.push_back(Pending::Merge {
                    parts: receivers,
                    kind,
                    total,
                    started,
                    latency,
                    redirect: None,
                });
            }
        }
        Flow::Continue
    }

    /// The client's shared connection to a shard or cluster node.
    async fn target_conn(&mut self, target: Target) -> Result<Upstream, UpstreamError> {
        let (host, port) = match target {
            Target::Shard(i) => match self.service.backends.get(i) {
                Some(b) => (b.host.clone(), b.port),
                None => return Err(self.no_backend()),
            },
            Target::Node(host, port) => (host, port),
            Target::Unserved => {
                return Err(UpstreamError::Handshake(
                    "CLUSTERDOWN Hash slot not served".into(),
                ));
            }
        };
        self.node_conn(&host, port).await
    }

    pub(super) async fn node_conn(
        &mut self,
        host: &str,
        port: u16,
    ) -> Result<Upstream, UpstreamError> {
        let key = (host.to_string(), port);
        if let Some(c) = self.shard_conns.get(&key)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let backend = self.pools.node(&self.service, host, port);
        let slot = usize::try_from(self.state.id).unwrap_or_default();
        let conn = self
            .pools
            .get(&self.service, &backend, self.state.resp3, slot)
            .await?;
        self.shard_conns.insert(key, conn.clone());
        Ok(conn)
    }

    fn no_backend(&self) -> UpstreamError {
        UpstreamError::NoBackend(format!("{}/{}", self.service.cluster, self.service.name))
    }

    /// Sends the request at the front of the queue again where the cluster says its slot
    /// lives (MOVED), or once with ASKING where it is being imported (ASK).
    pub(super) async fn follow_redirect(&mut self) {
        let Some(Pending::Redirect { .. }) = self.pending.front() else {
            return;
        };
        let Some(Pending::Redirect {
            bytes,
            ask,
            slot,
            host,
            port,
            started,
            latency,
            command,
            redirects,
        }) = self.pending.pop_front()
        else {
            return;
        };
        let rx = self.resend(&bytes, ask, slot, &host, port).await;
        let next = Pending::Wait {
            rx,
            started,
            latency,
            command,
            replay: Some(bytes),
            redirects: redirects + 1,
        };
        self.pending.push_front(next);
    }
}

impl Client {
    /// Sends one part of a split command again where a redirect points.
    pub(super) async fn follow_part_redirect(&mut self) {
        let Some(Pending::Merge {
            parts, redirect, ..
        }) = self.pending.front_mut()
        else {
            return;
        };
        let Some((i, ask, slot, host, port)) = redirect.take() else {
            return;
        };
        let Some(bytes) = parts.get(i).and_then(|p| p.replay.clone()) else {
            return;
        };
        let rx = self.resend(&bytes, ask, slot, &host, port).await;
        if let Some(Pending::Merge { parts, .. }) = self.pending.front_mut()
            && let Some(part) = parts.get_mut(i)
        {
            part.rx = rx;
            part.redirects += 1;
        }
    }

    /// Sends a request to the node a MOVED or ASK names (recording a MOVED in the slot map
    /// and counting the redirect); the receiver gets its new reply.
    async fn resend(
        &mut self,
        bytes: &[u8],
        ask: bool,
        slot: usize,
        host: &str,
        port: u16,
    ) -> oneshot::Receiver<ReplyResult> {
        if !ask {
            self.pools.moved(slot, host, port);
        }
        let kind = if ask { "ask" } else { "moved" };
        let labels = crate::metrics::ErrorLabels {
            cluster: self.service.cluster.clone(),
            service: self.service.name.clone(),
            kind,
        };
        self.metrics.redirects.get_or_create(&labels).inc();
        match self.node_conn(host, port).await {
            Ok(conn) => {
                if ask {
                    // ASKING and the command go out back to back on one connection. Its +OK
                    // is not the client's: the receiver is dropped and the reply discarded.
                    drop(self.enqueue_bytes(&conn, b"*1\r\n$6\r\nASKING\r\n").await);
                }
                let rx = self.enqueue_bytes(&conn, bytes).await;
                self.flush_batch().await;
                rx
            }
            Err(e) => failed(e),
        }
    }
}

/// Where a planned group goes.
enum Target {
    Shard(usize),
    Node(String, u16),
    Unserved,
}

fn target(map: Option<&SlotMap>, group: usize, every_shard: bool) -> Target {
    match map {
        None => Target::Shard(group),
        Some(m) => {
            let node = if every_shard {
                m.nodes.get(group)
            } else {
                m.node_of(group)
            };
            node.map_or(Target::Unserved, |(h, p)| Target::Node(h.clone(), *p))
        }
    }
}

fn failed(e: UpstreamError) -> oneshot::Receiver<ReplyResult> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(e));
    rx
}

/// A redirect in a reply the client must not see: (ask, slot, host, port).
pub(super) fn redirect_of(reply: &Bytes) -> Option<(bool, usize, String, u16)> {
    let line = reply.strip_prefix(b"-")?.strip_suffix(b"\r\n")?;
    cluster::redirect(line)
}
