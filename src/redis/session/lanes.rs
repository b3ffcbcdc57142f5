//! Connections of a client's own: a transaction (MULTI/WATCH until EXEC, DISCARD or
//! UNWATCH) and a blocking command for its one reply (the raw hand-over is `raw.rs`).

use std::sync::Arc;

use throome_resp::Request;

use super::{Client, Flow, Lane};
use crate::backend::BackendState;
use crate::redis::pool;
use crate::redis::upstream::{Upstream, UpstreamError};

impl Client {
    /// MULTI/WATCH and everything until the transaction ends: the client's own connection.
    pub(super) async fn forward_tx(&mut self, req: Request, name: &'static str) -> Flow {
        let conn = match &self.tx_conn {
            Some(c) if !c.is_closed() => c.clone(),
            Some(_) => {
                // The connection died mid-transaction: the transaction is gone with it.
                self.tx_conn = None;
                self.in_multi = false;
                self.watching = false;
                self.fail(&UpstreamError::Lost);
                return Flow::Continue;
            }
            None => match self.dedicated_lane().await {
                Ok((_, conn)) => {
                    self.tx_conn = Some(conn.clone());
                    conn
                }
                Err(e) => {
                    self.in_multi = false;
                    self.watching = false;
                    self.fail(&e);
                    return Flow::Continue;
                }
            },
        };
        self.enqueue(&conn, req, name, false).await;
        Flow::Continue
    }

    /// A new connection of the client's own, after everything sent so far is answered; counted
    /// in the dedicated-connections gauge while it lives.
    pub(super) async fn dedicated_lane(
        &mut self,
    ) -> Result<(Arc<BackendState>, Upstream), UpstreamError> {
        self.next_lane += 1;
        self.switch_lane(Lane::Dedicated(self.next_lane)).await;
        let login = self.state.login.as_deref();
        let (backend, stream) =
            pool::open_dedicated(&self.pools, &self.service, self.state.resp3, login).await?;
        let guard = self.pools.dedicated();
        let conn = crate::redis::upstream::spawn(stream, move || drop(guard));
        Ok((backend, conn))
    }

    /// A blocking command gets a connection for its one reply, so it blocks nobody else.
    /// The backend's id for that connection is asked in the same write, so CLIENT UNBLOCK
    /// of this client can be passed on to it.
    pub(super) async fn forward_blocking(&mut self, req: Request, name: &'static str) -> Flow {
        match self.dedicated_lane().await {
            Ok((backend, conn)) => {
                let id = self
                    .enqueue_bytes(&conn, b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n")
                    .await;
                self.activity.blocking_on(backend, id);
                self.enqueue(&conn, req, name, false).await;
                // Dropping the handle closes the connection once the reply is in, or once
                // nobody waits for it.
                Flow::Hold
            }
            Err(e) => {
                self.fail(&e);
                Flow::Continue
            }
        }
    }
}
