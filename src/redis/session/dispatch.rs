//! What the session does with one client request: checks (authentication, arity), then
//! the path its command takes: answered locally, a transaction's or a blocking command's own
//! connection, pub/sub hand-over, the sharded planner, or the shared multiplexed pool.

use throome_resp::Request;
use throome_resp::commands::flag;

use super::{Client, Flow, Lane, local};
use crate::redis::encode;
use crate::redis::pool;

impl Client {
    /// Every path but the shared pool's is boxed where it is taken: a client's task is
    /// allocated at the size of its largest path for its whole life, idle or not, and the
    /// shared path is the common one (`session::tests::connection_tasks_stay_small`).
    pub(super) async fn handle(&mut self, req: Request) -> Flow {
        self.mute_now = self.replies_off || std::mem::take(&mut self.skip_next);
        let top = match &self.last_command {
            Some((raw, spec)) if raw.as_slice() == req.name() => *spec,
            _ => {
                let Some(top) = throome_resp::lookup(req.name()) else {
                    return Box::pin(self.unknown(req)).await;
                };
                if top.subcommands.is_empty() {
                    self.last_command = Some((req.name().to_vec(), top));
                }
                top
            }
        };
        let spec = match top.subcommands.is_empty() {
            true => top,
            false => req
                .arg(1)
                .and_then(|sub| top.subcommand(sub))
                .unwrap_or(top),
        };
        let name = top.name;
        if !self.last_spec.is_some_and(|last| std::ptr::eq(last, spec)) {
            self.last_spec = Some(spec);
            let sub = (!std::ptr::eq(spec, top)).then_some(spec.name);
            self.activity.command(name, sub);
        }
        if !self.state.authenticated && !matches!(name, "auth" | "hello" | "quit" | "reset") {
            self.reply(encode::error("NOAUTH Authentication required."));
            return Flow::Continue;
        }
        if !spec.arity_ok(req.argc()) {
            if self.tx_conn.is_some() {
                // Redis answers it and marks the transaction: EXEC then aborts.
                return Box::pin(self.forward_tx(req, spec.name)).await;
            }
            let full = if std::ptr::eq(spec, top) {
                name.to_string()
            } else {
                format!("{name}|{}", spec.name)
            };
            self.reply(local::wrong_args(&full));
            self.doom_shard_tx();
            return Flow::Continue;
        }
        // CLIENT PAUSE holds the client's next command, as Redis postpones it.
        self.pools.pause.gate(spec).await;
        let in_tx = self.tx_conn.is_some();
        if self.service.spec.sharding.is_some() {
            return Box::pin(self.handle_sharded(req, name, spec)).await;
        }
        match name {
            "quit" => {
                self.reply(encode::simple("OK"));
                return Flow::Stop;
            }
            // PING goes to the backend, so it answers as the backend would (BUSY while a
            // script runs, an error while it is down); a sharded service answers it.
            // RESET runs at once even inside MULTI (Redis never queues it).
            "reset" => {
                if let Some(flow) = Box::pin(self.local(name, &req)).await {
                    return flow;
                }
            }
            "echo" | "hello" | "auth" | "client" | "select" | "unsubscribe" | "punsubscribe"
            | "sunsubscribe"
                if !self.in_multi =>
            {
                if let Some(flow) = Box::pin(self.local(name, &req)).await {
                    return flow;
                }
            }
            "subscribe" | "psubscribe" | "ssubscribe" | "monitor" if !self.in_multi => {
                return Flow::Raw(req.into_frame());
            }
            // Run by EXEC, it would silence the transaction's own connection in the middle
            // of EXEC's reply (Redis itself then writes a truncated array).
            "client" if spec.name == "reply" => {
                self.reply(encode::error(
                    "ERR Throome: CLIENT REPLY inside MULTI is not supported",
                ));
                return Flow::Continue;
            }
            "multi" | "watch" => {
                if name == "multi" {
                    self.in_multi = true;
                    self.activity.multi(0);
                } else {
                    self.watching = true;
                }
                return Box::pin(self.forward_tx(req, spec.name)).await;
            }
            "exec" | "discard" | "unwatch" if in_tx => {
                if name == "unwatch" {
                    self.watching = false;
                } else if self.in_multi {
                    // EXEC or DISCARD without MULTI is an error that keeps the WATCH.
                    self.in_multi = false;
                    self.watching = false;
                    self.activity.multi(-1);
                }
                let flow = Box::pin(self.forward_tx(req, spec.name)).await;
                if !self.in_multi && !self.watching {
                    self.tx_conn = None;
                }
                return flow;
            }
            _ => {}
        }
        if in_tx {
            if self.in_multi {
                self.activity.queued();
            }
            return Box::pin(self.forward_tx(req, spec.name)).await;
        }
        if is_blocking(spec, &req) || interrupts(name, spec) {
            return Box::pin(self.forward_blocking(req, spec.name)).await;
        }
        let read = spec.has(flag::READONLY) && !spec.is_write();
        self.forward_shared(req, Some(spec.name), read).await
    }

    /// A command unknown to Redis 7 (or a module's): the backend answers (once the client
    /// has authenticated, as for any command), on the transaction's connection while one is open, so a bad command aborts EXEC as in Redis.
    /// A sharded transaction is queued by the proxy, which answers as Redis does.
    async fn unknown(&mut self, req: Request) -> Flow {
        if !self.state.authenticated {
            self.reply(encode::error("NOAUTH Authentication required."));
            return Flow::Continue;
        }
        if self.tx_conn.is_some() {
            return Box::pin(self.forward_tx(req, "unknown")).await;
        }
        if self.shard_tx.is_some() {
            self.reply(local::unknown_command(&req));
            self.doom_shard_tx();
            return Flow::Continue;
        }
        self.forward_shared(req, None, false).await
    }

    async fn forward_shared(
        &mut self,
        req: Request,
        name: Option<&'static str>,
        read: bool,
    ) -> Flow {
        self.switch_lane(Lane::Shared).await;
        let class = usize::from(read && self.service.spec.read_from_replicas);
        let cooldown = self.service.spec.thresholds.cooldown;
        let cached = self.sticky[class]
            .as_ref()
            .filter(|(b, c)| !c.is_closed() && b.is_available(self.now, cooldown))
            .map(|(_, c)| c.clone());
        let conn = match cached {
            Some(c) => c,
            None => {
                let slot = usize::try_from(self.state.id).unwrap_or_default();
                match pool::route(
                    &self.pools,
                    &self.service,
                    class == 1,
                    (self.state.resp3, self.state.login.as_ref()),
                    slot,
                )
                .await
                {
                    Ok(routed) => {
                        let conn = routed.1.clone();
                        self.sticky[class] = Some(routed);
                        conn
                    }
                    Err(e) => {
                        self.fail(&e);
                        return Flow::Continue;
                    }
                }
            }
        };
        self.enqueue(&conn, req, name.unwrap_or("unknown"), class == 1)
            .await;
        Flow::Continue
    }
}

/// SCRIPT KILL, FUNCTION KILL and SHUTDOWN stop what a busy server is doing: on a shared
/// connection they would wait behind the very script they are meant to stop, so they get
/// a connection of their own, at once.
fn interrupts(name: &str, spec: &throome_resp::CommandSpec) -> bool {
    name == "shutdown" || (matches!(name, "script" | "function") && spec.name == "kill")
}

/// BLPOP and friends block; XREAD/XREADGROUP only with BLOCK; WAIT/WAITAOF always.
fn is_blocking(spec: &throome_resp::CommandSpec, req: &Request) -> bool {
    if !spec.has(flag::BLOCKING) {
        return false;
    }
    match spec.name {
        "xread" | "xreadgroup" => req.args().any(|a| a.eq_ignore_ascii_case(b"block")),
        _ => true,
    }
}
