//! The raw hand-over: from a SUBSCRIBE, MONITOR, CLIENT TRACKING (and the like) or SELECT
//! of another database on, the client talks to a connection of its own, byte for byte. That
//! connection takes the client's name, and its id at the backend is kept, so another
//! client's `CLIENT TRACKING ON REDIRECT <proxy id>` can name it
//! ([client-side caching](https://redis.io/docs/latest/develop/reference/client-side-caching/)).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Client;
use crate::redis::upstream::RedisStream;
use crate::redis::{clients, encode, pool};

impl Client {
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
                pool::open_to(&self.service, &node, self.state.resp3, None)
                    .await
                    .map(|stream| (node, stream))
            }
            None => {
                let login = self.state.login.as_deref();
                pool::open_dedicated(&self.pools, &self.service, self.state.resp3, login).await
            }
        };
        let (backend, mut upstream) = match opened {
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
            && ask(&mut upstream, &[b"CLIENT", b"SETNAME", &name])
                .await
                .is_err()
        {
            return;
        }
        let Ok(id) = ask(&mut upstream, &[b"CLIENT", b"ID"]).await else {
            return;
        };
        let own = parse_id(&id).map(|id| (backend.address(), id));
        self.activity.raw_on(own.clone());
        let first = match own {
            Some((address, id)) => self.redirect_to_backend_ids(first, &address, id),
            None => first,
        };
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

    /// `CLIENT TRACKING ... REDIRECT <proxy id>`: the id of that client's own connection at
    /// the backend (this client's own when it names itself). An id the proxy cannot map
    /// goes as it is, and the backend says no such client.
    fn redirect_to_backend_ids(&self, first: Bytes, address: &str, own: i64) -> Bytes {
        let Some(args) = args_of(&first) else {
            return first;
        };
        let tracking = args.len() > 3
            && args[0].eq_ignore_ascii_case(b"client")
            && args[1].eq_ignore_ascii_case(b"tracking");
        let at = args
            .iter()
            .position(|a| a.eq_ignore_ascii_case(b"redirect"));
        let (true, Some(at)) = (tracking, at) else {
            return first;
        };
        let Some(target) = args.get(at + 1).and_then(|a| parse_id(a)) else {
            return first;
        };
        let mapped = match u64::try_from(target) {
            Ok(t) if t == self.state.id => Some(own),
            Ok(t) => clients::raw_of(&self.service.key(), t)
                .filter(|(a, _)| a == address)
                .map(|(_, id)| id),
            Err(_) => None,
        };
        let Some(mapped) = mapped else {
            return first;
        };
        let mapped = mapped.to_string();
        let mut rewritten: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        rewritten[at + 1] = mapped.as_bytes();
        let mut out = Vec::new();
        encode::command(&mut out, &rewritten);
        out.into()
    }
}

/// The arguments of one whole request.
fn args_of(frame: &Bytes) -> Option<Vec<Vec<u8>>> {
    let mut scanner = throome_resp::RequestScanner::new(throome_resp::Limits::default());
    let mut buf = BytesMut::from(&frame[..]);
    let req = scanner.scan(&mut buf).ok()??;
    Some(req.args().map(<[u8]>::to_vec).collect())
}

fn parse_id(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let text = text.trim().trim_start_matches(':');
    text.parse().ok()
}

/// Sends one command of the proxy's own on `upstream` and gives its reply (not the client's).
async fn ask(upstream: &mut RedisStream, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
    let mut request = Vec::new();
    encode::command(&mut request, args);
    upstream.write_all(&request).await?;
    upstream.flush().await?;
    let mut scanner = throome_resp::ReplyScanner::new(throome_resp::ReplyLimits::default());
    let mut buf = BytesMut::new();
    loop {
        match scanner.scan(&mut buf) {
            Ok(Some(reply)) => return Ok(reply.frame().to_vec()),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e)),
        }
        if upstream.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}
