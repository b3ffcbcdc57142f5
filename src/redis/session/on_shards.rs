//! Requests on a sharded service.

use std::time::Instant;

use throome_resp::{CommandSpec, Request};
use tokio::sync::oneshot;

use super::{Client, Flow, Pending};
use crate::redis::encode;
use crate::redis::shard::Continuum;
use crate::redis::sharded::{self, Plan};
use crate::redis::upstream::{Upstream, UpstreamError};

impl Client {
    /// A sharded service: connection commands stay local; state that would need one backend
    /// connection (transactions, subscriptions, SELECT) is refused; the rest is planned per
    /// key.
    pub(super) async fn handle_sharded(
        &mut self,
        ring: &Continuum,
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
                        self.reply(encode::error(&format!(
                            "ERR Throome: {} is not supported on a sharded service",
                            String::from_utf8_lossy(
                                &req.args().take(2).collect::<Vec<_>>().join(&b' ')
                            )
                            .to_uppercase()
                        )));
                        return Flow::Continue;
                    }
                    Some(flow) => return flow,
                    None => {}
                }
            }
            _ => {}
        }
        let shards = self.service.backends.len();
        let started = Instant::now();
        match sharded::plan(ring, self.service.spec.hash_tag, shards, spec, &req) {
            Plan::Refuse(err) => {
                self.count(spec.name);
                self.reply(err);
            }
            Plan::One(shard) => match self.shard_conn(shard).await {
                Ok(conn) => self.enqueue(&conn, req, spec.name).await,
                Err(e) => self.fail(&e),
            },
            Plan::Split { parts, kind, total } => {
                let latency = self.count(spec.name);
                let mut receivers = Vec::with_capacity(parts.len());
                for (shard, bytes, positions) in parts {
                    let rx = match self.shard_conn(shard).await {
                        Ok(conn) => self.enqueue_bytes(&conn, &bytes).await,
                        Err(e) => {
                            let (tx, rx) = oneshot::channel();
                            let _ = tx.send(Err(e));
                            rx
                        }
                    };
                    receivers.push((rx, positions));
                }
                self.pending.push_back(Pending::Merge {
                    parts: receivers,
                    kind,
                    total,
                    started,
                    latency,
                });
            }
        }
        Flow::Continue
    }

    /// The client's shared connection to one shard.
    pub(super) async fn shard_conn(&mut self, shard: usize) -> Result<Upstream, UpstreamError> {
        if let Some(c) = self.shard_conns.get(&shard)
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let backend = self.service.backends.get(shard).cloned().ok_or_else(|| {
            UpstreamError::NoBackend(format!("{}/{}", self.service.cluster, self.service.name))
        })?;
        let slot = usize::try_from(self.state.id).unwrap_or_default();
        let conn = self
            .pools
            .get(&self.service, &backend, self.state.resp3, slot)
            .await?;
        self.shard_conns.insert(shard, conn.clone());
        Ok(conn)
    }
}
