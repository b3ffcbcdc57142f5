//! Commands about the client's own connection, answered by the proxy, and per-command
//! metric handles.

use crate::latency::Latency;
use bytes::Bytes;
use throome_resp::Request;

use super::{Client, Flow};
use crate::metrics::RequestLabels;
use crate::redis::local::{self, ClientState};
use crate::redis::{clients, encode};

/// The longest pause kept: a timeout past it is as good as for ever.
const YEAR: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

impl Client {
    /// Commands about the client's own connection. `None`: not handled here after all.
    pub(super) async fn local(&mut self, name: &'static str, req: &Request) -> Option<Flow> {
        let args: Vec<&[u8]> = req.args().collect();
        let auth = self.service.spec.auth.clone();
        let reply = match name {
            "ping" => match args.len() {
                1 => encode::simple("PONG"),
                2 => encode::bulk(args[1]),
                // PING's arity is -1: the command itself refuses more (pingCommand).
                _ => local::wrong_args("ping"),
            },
            // Subscriptions hand the client over to a connection of its own, so a client
            // here has none: Redis answers one frame per channel named, or one for none.
            "unsubscribe" | "punsubscribe" | "sunsubscribe" => {
                // Pub/sub frames are pushes: CLIENT REPLY OFF does not silence them.
                self.mute_now = false;
                local::unsubscribed(name, &args[1..], self.state.resp3)
            }
            "echo" => encode::bulk(args.get(1).copied().unwrap_or_default()),
            "hello" => {
                // Requests after it may go out on a connection of the other protocol
                // version: those before it are answered first, so none is overtaken.
                self.drain().await;
                let was_resp3 = self.state.resp3;
                let reply = match self.hello_login(&args).await {
                    Ok(checked) => local::hello(&mut self.state, auth.as_ref(), &args, checked),
                    Err(refused) => refused,
                };
                if self.state.resp3 != was_resp3 {
                    self.tx_protocol().await;
                }
                // RESP2 and RESP3 clients use different shared connections.
                self.sticky = [None, None];
                let user = args
                    .iter()
                    .skip(2)
                    .position(|a| a.eq_ignore_ascii_case(b"auth"))
                    .and_then(|i| args.get(i + 3).copied());
                clients::update(&self.state, user.filter(|_| !reply.starts_with(b"-")));
                reply
            }
            "auth" => {
                let (user, pass) = match args.len() {
                    2 => (None, args[1]),
                    3 => (Some(args[1]), args[2]),
                    _ => {
                        self.reply(encode::error("ERR syntax error"));
                        return Some(Flow::Continue);
                    }
                };
                self.auth(user, pass).await
            }
            "client" => match args.get(1).map(|s| s.to_ascii_lowercase()).as_deref() {
                Some(b"list") => clients::list(&self.service.key(), &args),
                Some(b"info") => clients::info(self.state.id),
                Some(b"unblock") => return Some(self.client_unblock(req).await),
                Some(b"pause") => self.client_pause(&args),
                Some(b"unpause") => {
                    self.pools.pause.unpause();
                    encode::simple("OK")
                }
                Some(b"reply") => match self.client_reply(args.get(2).copied()) {
                    Some(reply) => reply,
                    None => {
                        self.count(name);
                        return Some(Flow::Continue);
                    }
                },
                Some(b"kill") => {
                    let known = |u: &[u8]| local::user_exists(auth.as_ref(), u);
                    clients::kill(&self.service.key(), self.state.id, &args, &known)
                }
                _ => match self.client_command(req, &args) {
                    Some(Ok(reply)) => reply,
                    Some(Err(flow)) => return Some(flow),
                    None => return None,
                },
            },
            "reset" => {
                self.drain().await;
                // Replies come back on, as `clearClientConnectionState`: RESET's own too
                // after OFF, but not when a SKIP is skipping it.
                self.mute_now &= !self.replies_off;
                (self.replies_off, self.skip_next) = (false, false);
                self.tx_conn = None;
                self.shard_tx = None;
                self.shard_watch = None;
                self.sticky = [None, None];
                self.in_multi = false;
                self.watching = false;
                self.state = ClientState::new(self.state.id, auth.as_ref());
                clients::update(&self.state, Some(b"default"));
                encode::simple("RESET")
            }
            "select" => match args.get(1).copied() {
                Some(b"0") => encode::simple("OK"),
                // Not a number: Redis's error, and nothing changes (no connection of its own).
                Some(db)
                    if std::str::from_utf8(db)
                        .ok()
                        .and_then(|d| d.parse::<i64>().ok())
                        .is_none() =>
                {
                    encode::error("ERR value is not an integer or out of range")
                }
                // Another database is connection state: this client gets its own connection.
                _ => return Some(Flow::Raw(req.frame().clone())),
            },
            _ => return None,
        };
        self.count(name);
        self.reply(reply);
        Some(Flow::Continue)
    }

    /// A WATCH's connection lives on after HELLO changed the protocol: it is switched too,
    /// so the transaction's replies come in the client's protocol (the reply is the proxy's).
    async fn tx_protocol(&mut self) {
        let Some(conn) = self.tx_conn.clone() else {
            return;
        };
        let hello: &[u8] = match self.state.resp3 {
            true => b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n",
            false => b"*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n",
        };
        drop(self.enqueue_bytes(&conn, hello).await);
        self.flush_batch().await;
    }

    /// `CLIENT PAUSE timeout [WRITE|ALL]`, checked as `clientCommand` in networking.c.
    fn client_pause(&self, args: &[&[u8]]) -> Bytes {
        let all = match args.get(3).map(|m| m.to_ascii_lowercase()).as_deref() {
            None | Some(b"all") => true,
            Some(b"write") => false,
            Some(_) => return encode::error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
        };
        let ms = args
            .get(2)
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| t.parse::<i64>().ok());
        match ms {
            None => encode::error("ERR timeout is not an integer or out of range"),
            Some(ms) if ms < 0 => encode::error("ERR timeout is negative"),
            Some(ms) => {
                let for_ms = std::time::Duration::from_millis(ms.unsigned_abs());
                let until = tokio::time::Instant::now()
                    .checked_add(for_ms)
                    .unwrap_or_else(|| tokio::time::Instant::now() + YEAR);
                self.pools.pause.pause(until, all);
                encode::simple("OK")
            }
        }
    }

    /// `CLIENT REPLY ON|OFF|SKIP` (`clientCommand` in networking.c): the proxy drops the
    /// replies the client turned off. OFF and SKIP are not answered (`None`); SKIP while OFF
    /// changes nothing.
    fn client_reply(&mut self, mode: Option<&[u8]>) -> Option<Bytes> {
        match mode.map(<[u8]>::to_ascii_lowercase).as_deref() {
            Some(b"on") => {
                self.replies_off = false;
                self.skip_next = false;
                self.mute_now = false;
                Some(encode::simple("OK"))
            }
            Some(b"off") => {
                self.replies_off = true;
                None
            }
            Some(b"skip") => {
                self.skip_next = !self.replies_off;
                None
            }
            _ => Some(encode::error("ERR syntax error")),
        }
    }

    /// The other CLIENT subcommands: a reply from the proxy (SETNAME, GETNAME, ID, ...),
    /// TRACKING on a connection of the client's own (`Err`), or `None`: a backend's.
    fn client_command(&mut self, req: &Request, args: &[&[u8]]) -> Option<Result<Bytes, Flow>> {
        match local::client(&mut self.state, args) {
            Some(r) => {
                clients::update(&self.state, None);
                Some(Ok(r))
            }
            // State of the client's own connection: a connection of its own from here on.
            None if args.get(1).is_some_and(|s| {
                [&b"tracking"[..], b"no-evict", b"no-touch", b"caching"]
                    .iter()
                    .any(|c| s.eq_ignore_ascii_case(c))
            }) =>
            {
                Some(Err(Flow::Raw(req.frame().clone())))
            }
            None => None,
        }
    }

    /// Counts one more request of the command counted last, without a histogram handle.
    pub(super) fn count_again(&mut self, name: &'static str) {
        match &self.last_counted {
            Some((last, counter, _)) if std::ptr::eq(*last, name) => {
                counter.inc();
            }
            _ => drop(self.count(name)),
        }
    }

    pub(super) fn count(&mut self, name: &'static str) -> Latency {
        if let Some((last, counter, latency)) = &self.last_counted
            && std::ptr::eq(*last, name)
        {
            counter.inc();
            return latency.clone();
        }
        // A client uses few distinct commands: a short list, searched by the name's address
        // (the command table's), costs less memory per connection than a hash map.
        let found = self
            .per_command
            .iter()
            .find(|(n, ..)| std::ptr::eq(*n, name));
        let (counter, latency) = match found {
            Some((_, counter, latency)) => (counter.clone(), latency.clone()),
            None => {
                let labels = RequestLabels {
                    cluster: self.service.cluster.clone(),
                    service: self.service.name.clone(),
                    command: name.to_string(),
                };
                let counter = self.metrics.requests.get_or_create(&labels).clone();
                let latency = self.metrics.duration.get_or_create(&labels).clone();
                self.per_command
                    .push((name, counter.clone(), latency.clone()));
                (counter, latency)
            }
        };
        counter.inc();
        self.last_counted = Some((name, counter, latency.clone()));
        latency
    }
}
