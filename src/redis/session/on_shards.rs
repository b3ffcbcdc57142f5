//! Requests on a sharded service: a ketama ring over the backends, or a Redis Cluster whose
//! slot map Throome reads and whose MOVED/ASK redirects it follows, so clients never see them.

use throome_resp::commands::flag;
use throome_resp::{CommandSpec, Request};
use tokio::sync::oneshot;

use super::redirect::Replay;
use super::shard_tx::TxStep;
use super::{Client, Flow, Pending, SplitPart};
use crate::redis::cluster::{self, SlotMap};
use crate::redis::encode;
use crate::redis::sharded::{self, Plan, Split};
use crate::redis::upstream::{ReplyResult, Upstream, UpstreamError};

impl Client {
    /// A sharded service: connection commands stay local; MULTI/EXEC are queued by the proxy
    /// and WATCH holds a connection to its keys' shard (`shard_tx`), subscriptions get a
    /// connection to their channels' node, SELECT of another database is refused; the rest
    /// is planned per key.
    pub(super) async fn handle_sharded(
        &mut self,
        req: Request,
        name: &'static str,
        spec: &'static CommandSpec,
    ) -> Flow {
        if let Some(flow) = self.local_on_shards(name, &req).await {
            return flow;
        }
        let started = self.now;
        let ring = self
            .pools
            .ring
            .as_ref()
            .map(|r| r.current(&self.service, self.now));
        let map = match ring {
            Some(_) => None,
            None => match self.pools.slot_map(&self.service).await {
                Ok(map) => Some(map),
                Err(e) => {
                    self.fail(&e);
                    return Flow::Continue;
                }
            },
        };
        let on_ring;
        let group_of: &(dyn Fn(&[u8]) -> usize + Sync) = match &ring {
            Some(ring) => {
                on_ring = sharded::ketama_group(
                    ring,
                    self.service.spec.key_hash,
                    self.service.spec.hash_tag,
                );
                &on_ring
            }
            None => &cluster::slot,
        };
        match self.in_shard_tx(name, spec, &req, group_of) {
            Some(TxStep::Done) => return Flow::Continue,
            Some(TxStep::Exec(None)) => {
                self.reply(encode::error("ERR EXEC without MULTI"));
                return Flow::Continue;
            }
            Some(TxStep::Exec(Some(tx))) => {
                let node = self.node_address(target(map.as_deref(), tx.group(), false));
                return self.exec_on(tx, node).await;
            }
            Some(TxStep::Watch(group)) => {
                let node = self.node_address(target(map.as_deref(), group, false));
                return self.watch_on(group, node, &req).await;
            }
            None => {}
        }
        let shards = map
            .as_ref()
            .map_or(self.service.backends.len(), |m| m.nodes.len());
        let plan = match sharded::pubsub(&group_of, map.is_some(), spec, &req) {
            Some(p) => p,
            None => sharded::plan(group_of, shards, spec, &req),
        };
        let map = map.as_deref();
        match plan {
            Plan::Subscribe(group) => return self.subscribe_on(target(map, group, false), req),
            Plan::Refuse(err) => {
                self.count(spec.name);
                self.reply(err);
            }
            Plan::One(group) => self.send_one(map, spec, group, &req, started).await,
            Plan::Split(split) => self.send_split(map, spec, split, started).await,
        }
        Flow::Continue
    }

    /// QUIT and the connection commands the proxy answers itself (outside a queued
    /// transaction); a form of them that would need one node's connection is refused.
    async fn local_on_shards(&mut self, name: &'static str, req: &Request) -> Option<Flow> {
        match name {
            "quit" => {
                self.reply(encode::simple("OK"));
                Some(Flow::Stop)
            }
            "ping" | "echo" | "hello" | "auth" | "client" | "reset" | "select" | "unsubscribe"
            | "punsubscribe" | "sunsubscribe"
                if self.shard_tx.is_none() || name == "reset" =>
            {
                match self.local(name, req).await {
                    Some(Flow::Raw(_)) => {
                        let what = String::from_utf8_lossy(
                            &req.args().take(2).collect::<Vec<_>>().join(&b' '),
                        )
                        .to_uppercase();
                        self.reply(encode::error(&format!(
                            "ERR Throome: {what} is not supported on a sharded service"
                        )));
                        Some(Flow::Continue)
                    }
                    flow => flow,
                }
            }
            _ => None,
        }
    }

    /// The request as the client sent it, to its group's node; kept on a cluster, where a
    /// redirect sends it again.
    async fn send_one(
        &mut self,
        map: Option<&SlotMap>,
        spec: &'static CommandSpec,
        group: usize,
        req: &Request,
        started: std::time::Instant,
    ) {
        let target = self.for_read(map, spec, group, false);
        let fallback = target.fallback();
        match self.target_conn(target).await {
            Ok(conn) => {
                let latency = self.count(spec.name);
                let rx = self.enqueue_bytes(&conn, req.frame()).await;
                let replay = map.is_some().then(|| Replay {
                    bytes: req.frame().clone(),
                    slot: Some(group),
                    fallback,
                });
                self.owe(Pending::Wait {
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

    /// Each part to its group's node; the replies are merged in the client's order when all
    /// are in.
    async fn send_split(
        &mut self,
        map: Option<&SlotMap>,
        spec: &'static CommandSpec,
        split: Split,
        started: std::time::Instant,
    ) {
        let latency = self.count(spec.name);
        let mut receivers = Vec::with_capacity(split.parts.len());
        for (group, bytes, positions) in split.parts {
            let target = self.for_read(map, spec, group, split.every_shard);
            let fallback = target.fallback();
            let rx = match self.target_conn(target).await {
                Ok(conn) => self.enqueue_bytes(&conn, &bytes).await,
                Err(e) => failed(e),
            };
            // A part of a fan-out (DBSIZE, KEYS) is a node's, not a slot's.
            let slot = (!split.every_shard).then_some(group);
            let replay = map.is_some().then_some(Replay {
                bytes,
                slot,
                fallback,
            });
            receivers.push(SplitPart {
                rx,
                positions,
                replay,
                redirects: 0,
                reply: None,
            });
        }
        self.owe(Pending::Merge {
            parts: receivers,
            kind: split.kind,
            total: split.total,
            started,
            latency,
            redirect: None,
        });
    }

    /// Where a planned group goes: its shard or slot owner, or with `read_from_replicas` on
    /// a cluster, a read-only command's slot goes to one of the owner's replicas that is
    /// available (the client's id picks which, so its reads of a slot stay on one replica),
    /// with the owner to fall back on.
    fn for_read(
        &self,
        map: Option<&SlotMap>,
        spec: &CommandSpec,
        group: usize,
        every_shard: bool,
    ) -> Target {
        let owner = target(map, group, every_shard);
        let read = self.service.spec.read_from_replicas
            && spec.has(flag::READONLY)
            && !spec.is_write()
            && !every_shard;
        let (Some(map), true, Target::Node(host, port)) = (map, read, &owner) else {
            return owner;
        };
        let cooldown = self.service.spec.thresholds.cooldown;
        let available: Vec<&(String, u16)> = map
            .replicas_of(group)
            .iter()
            .filter(|(h, p)| {
                let node = self.pools.node(&self.service, h, *p);
                node.is_available(self.now, cooldown)
            })
            .collect();
        if available.is_empty() {
            return owner;
        }
        let pick = usize::try_from(self.state.id).unwrap_or_default() % available.len();
        let (replica_host, replica_port) = available[pick].clone();
        Target::Replica {
            replica: (replica_host, replica_port),
            owner: (host.clone(), *port),
        }
    }

    /// A subscriber's connection of its own to the shard or node its channels live on.
    fn subscribe_on(&mut self, target: Target, req: Request) -> Flow {
        let Some(node) = self.node_address(target) else {
            self.reply(encode::error("CLUSTERDOWN Hash slot not served"));
            return Flow::Continue;
        };
        self.raw_to = Some(node);
        Flow::Raw(req.into_frame())
    }

    /// The address of a shard or of a slot's owner.
    fn node_address(&self, target: Target) -> Option<(String, u16)> {
        match target {
            Target::Shard(i) => self
                .service
                .backends
                .get(i)
                .map(|b| (b.host.clone(), b.port)),
            Target::Node(host, port)
            | Target::Replica {
                owner: (host, port),
                ..
            } => Some((host, port)),
            Target::Unserved => None,
        }
    }

    /// The client's shared connection to a shard or cluster node.
    async fn target_conn(&mut self, target: Target) -> Result<Upstream, UpstreamError> {
        let (host, port) = match target {
            Target::Shard(i) => match self.service.backends.get(i) {
                Some(b) => (b.host.clone(), b.port),
                None => return Err(self.no_backend()),
            },
            Target::Node(host, port) => (host, port),
            Target::Replica { replica, owner } => {
                return match self.node_conn(&replica.0, replica.1).await {
                    Ok(conn) => Ok(conn),
                    Err(_) => self.node_conn(&owner.0, owner.1).await,
                };
            }
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

    pub(super) fn no_backend(&self) -> UpstreamError {
        UpstreamError::NoBackend(self.service.key())
    }
}

/// Where a planned group goes.
enum Target {
    Shard(usize),
    Node(String, u16),
    /// A read on a replica, or on the slot's owner if the replica cannot be reached.
    Replica {
        replica: (String, u16),
        owner: (String, u16),
    },
    Unserved,
}

impl Target {
    /// For a read on a replica, the slot's owner.
    fn fallback(&self) -> Option<(String, u16)> {
        match self {
            Target::Replica { owner, .. } => Some(owner.clone()),
            _ => None,
        }
    }
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

pub(super) fn failed(e: UpstreamError) -> oneshot::Receiver<ReplyResult> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(e));
    rx
}
