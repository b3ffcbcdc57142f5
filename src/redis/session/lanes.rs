//! Connections of a client's own: a transaction (MULTI/WATCH until EXEC, DISCARD or
//! UNWATCH), a blocking command for its one reply, and the raw hand-over of a subscriber,
//! MONITOR or SELECT of another database for the rest of the connection.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use throome_resp::Request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::{Client, Flow, Lane};
use crate::backend::BackendState;
use crate::redis::encode;
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

    /// From here on the client talks to a connection of its own, byte for byte.
    pub(super) async fn hand_over<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut client: S,
        first: Bytes,
        rest: BytesMut,
    ) {
        self.tx_conn = None;
        self.drain().await;
        if !self.out.is_empty()
            && (client.write_all(&self.out).await.is_err() || client.flush().await.is_err())
        {
            return;
        }
        let _counted = self.pools.dedicated();
        let opened = match self.raw_to.take() {
            Some((host, port)) => {
                let node = self.pools.node(&self.service, &host, port);
                pool::open_to(&self.service, &node, self.state.resp3, None).await
            }
            None => {
                let login = self.state.login.as_deref();
                pool::open_dedicated(&self.pools, &self.service, self.state.resp3, login)
                    .await
                    .map(|(_, stream)| stream)
            }
        };
        let mut upstream = match opened {
            Ok(s) => s,
            Err(e) => {
                self.metrics.error(&self.service, e.kind());
                let _ = client
                    .write_all(&encode::error(&format!("ERR Throome: {e}")))
                    .await;
                return;
            }
        };
        if let Some(name) = self.state.name.clone()
            && carry_name(&mut upstream, &name).await.is_err()
        {
            return;
        }
        let sent = async {
            upstream.write_all(&first).await?;
            upstream.write_all(&rest).await?;
            upstream.flush().await
        };
        if sent.await.is_err() {
            return;
        }
        let labels = crate::metrics::ServiceLabels::of(&self.service);
        let bytes_in = self.metrics.bytes_in.get_or_create(&labels).clone();
        let bytes_out = self.metrics.bytes_out.get_or_create(&labels).clone();
        let _ = crate::tcp::splice_with(client, upstream, &bytes_in, &bytes_out).await;
    }
}

/// Names the client's own connection as the client named itself at the proxy (CLIENT
/// SETNAME, HELLO SETNAME), so CLIENT GETNAME there answers the same; the reply is the
/// proxy's, not the client's.
async fn carry_name(
    upstream: &mut crate::redis::upstream::RedisStream,
    name: &[u8],
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::new();
    encode::command(&mut request, &[b"CLIENT", b"SETNAME", name]);
    upstream.write_all(&request).await?;
    upstream.flush().await?;
    let mut scanner = throome_resp::ReplyScanner::new(throome_resp::ReplyLimits::default());
    let mut buf = BytesMut::new();
    loop {
        match scanner.scan(&mut buf) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        if upstream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}
