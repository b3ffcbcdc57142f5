//! `CLIENT UNBLOCK id [TIMEOUT|ERROR]` with the ids the proxy gives: a blocked client of the
//! proxy waits on a connection of its own, whose id at the backend was asked when the
//! blocking command went out; the backend is told to unblock that one, so the command ends
//! there exactly as Redis ends it (a timeout's reply, or `-UNBLOCKED`), and nothing it
//! would have popped is lost ([CLIENT UNBLOCK](https://redis.io/docs/latest/commands/client-unblock/)).

use throome_resp::Request;

use super::{Client, Flow, Pending};
use crate::redis::{clients, encode};

impl Client {
    pub(super) async fn client_unblock(&mut self, req: &Request) -> Flow {
        let args: Vec<&[u8]> = req.args().collect();
        let reason = match args.get(3).map(|r| r.to_ascii_lowercase()).as_deref() {
            None => None,
            Some(b"timeout") => Some(&b"TIMEOUT"[..]),
            Some(b"error") => Some(&b"ERROR"[..]),
            Some(_) => {
                self.reply(encode::error(
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                ));
                return Flow::Continue;
            }
        };
        let id = args
            .get(2)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| a.parse::<i64>().ok());
        let Some(id) = id else {
            self.reply(encode::error("ERR value is not an integer or out of range"));
            return Flow::Continue;
        };
        let target = u64::try_from(id)
            .ok()
            .and_then(|id| clients::blocked(&self.service.key(), id));
        let Some(blocked) = target else {
            self.count("client");
            self.reply(encode::integer(0));
            return Flow::Continue;
        };
        let latency = self.count("client");
        // Sent on another connection than this client's requests so far: they come first.
        self.drain().await;
        let slot = usize::try_from(self.state.id).unwrap_or_default();
        let conn = match self
            .pools
            .get(&self.service, &blocked.backend, self.state.resp3, slot)
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                self.fail(&e);
                return Flow::Continue;
            }
        };
        let backend_id = blocked.id.to_string();
        let mut unblock: Vec<&[u8]> = vec![b"CLIENT", b"UNBLOCK", backend_id.as_bytes()];
        unblock.extend(reason);
        let mut bytes = Vec::new();
        encode::command(&mut bytes, &unblock);
        let rx = self.enqueue_bytes(&conn, &bytes).await;
        self.owe(Pending::Wait {
            rx,
            started: self.now,
            latency,
            command: "client",
            replay: None,
            redirects: 0,
        });
        Flow::Continue
    }
}
