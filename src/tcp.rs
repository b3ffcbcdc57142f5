//! `type: tcp`: a plain L4 pass-through (HAProxy's TCP mode). One upstream connection per
//! client connection, bytes copied both ways until either side closes.

use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::ProxyError;
use crate::session::Session;
use crate::upstream;

const BUF: usize = 16 * 1024;

/// The pass-through as the core sees it (`crate::protocol`).
pub struct Adapter;

impl crate::protocol::Protocol for Adapter {
    fn kind(&self) -> crate::config::ServiceKind {
        crate::config::ServiceKind::Tcp
    }

    fn serve(
        &self,
        session: Session,
        client: crate::session::ClientConn,
    ) -> crate::protocol::BoxFuture<'static, ()> {
        Box::pin(serve(session, client))
    }

    /// A backend that accepts a connection is up.
    fn probe<'a>(
        &'a self,
        _service: &'a crate::snapshot::ServiceRuntime,
        backend: &'a crate::backend::BackendState,
    ) -> crate::protocol::BoxFuture<'a, bool> {
        Box::pin(async move {
            TcpStream::connect((backend.host.as_str(), backend.port))
                .await
                .is_ok()
        })
    }
}

pub async fn serve(session: Session, client: crate::session::ClientConn) {
    let service = &session.service;
    let labels = crate::metrics::ServiceLabels::of(service);
    let request = crate::metrics::RequestLabels {
        cluster: labels.cluster.clone(),
        service: labels.service.clone(),
        command: "connection".into(),
    };
    session.metrics.requests.get_or_create(&request).inc();
    let started = Instant::now();
    let (mut upstream, guard) = match upstream::connect(service).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(cluster = %service.cluster, service = %service.name, error = %e, "refusing client");
            session.metrics.error(service, e.kind());
            // Reset rather than close: to the client this looks like a refused connection,
            // the closest TCP has to "no backend".
            if let crate::session::ClientConn::Tcp(tcp) = &client {
                let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
            }
            return;
        }
    };
    let bytes_in = session.metrics.bytes_in.get_or_create(&labels).clone();
    let bytes_out = session.metrics.bytes_out.get_or_create(&labels).clone();
    let copy = async {
        match client {
            crate::session::ClientConn::Tcp(mut tcp) => {
                splice(&mut tcp, &mut upstream, &bytes_in, &bytes_out).await
            }
            crate::session::ClientConn::Unix(unix) => {
                splice_with(unix, &mut upstream, &bytes_in, &bytes_out).await
            }
        }
    };
    let result = tokio::select! {
        r = copy => r,
        () = session.hard_stop.cancelled() => Ok(()),
    };
    let backend = guard.backend();
    if let Err(e) = result {
        session.metrics.error(service, e.kind());
        if let ProxyError::BackendIo(_) = e {
            let t = backend.record_failure(Instant::now(), service.failure_threshold());
            upstream::log_transition(service, backend, t);
        }
    }
    let lifetime = started.elapsed().as_secs_f64();
    session
        .metrics
        .duration
        .get_or_create(&request)
        .observe(lifetime);
}

/// Copies both directions; when one side finishes writing, the other side's write half is shut
/// down (half-close) and the other direction runs to its end.
pub(crate) async fn splice(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    bytes_in: &Counter,
    bytes_out: &Counter,
) -> Result<(), ProxyError> {
    let (cr, cw) = client.split();
    let (ur, uw) = upstream.split();
    both_ways((cr, cw), (ur, uw), bytes_in, bytes_out).await
}

/// `splice` with sides of any kind (TLS on either).
pub(crate) async fn splice_with<C, U>(
    client: C,
    upstream: U,
    bytes_in: &Counter,
    bytes_out: &Counter,
) -> Result<(), ProxyError>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    both_ways(
        tokio::io::split(client),
        tokio::io::split(upstream),
        bytes_in,
        bytes_out,
    )
    .await
}

/// Copies each way until both are done (the first error ends it).
async fn both_ways<CR, CW, UR, UW>(
    (mut cr, mut cw): (CR, CW),
    (mut ur, mut uw): (UR, UW),
    bytes_in: &Counter,
    bytes_out: &Counter,
) -> Result<(), ProxyError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let to_upstream = pump(&mut cr, &mut uw, bytes_in, Dir::ToBackend);
    let to_client = pump(&mut ur, &mut cw, bytes_out, Dir::ToClient);
    tokio::pin!(to_upstream, to_client);
    tokio::select! {
        r = &mut to_upstream => { r?; to_client.await }
        r = &mut to_client => { r?; to_upstream.await }
    }
}

#[derive(Clone, Copy)]
enum Dir {
    ToBackend,
    ToClient,
}

type Blame = fn(std::io::Error) -> ProxyError;

impl Dir {
    /// Which side a read error and a write error come from, in this direction.
    fn blame(self) -> (Blame, Blame) {
        match self {
            Dir::ToBackend => (ProxyError::ClientIo, ProxyError::BackendIo),
            Dir::ToClient => (ProxyError::BackendIo, ProxyError::ClientIo),
        }
    }
}

async fn pump<R, W>(r: &mut R, w: &mut W, counter: &Counter, dir: Dir) -> Result<(), ProxyError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (read_err, write_err) = dir.blame();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = r.read(&mut buf).await.map_err(read_err)?;
        if n == 0 {
            let _ = w.shutdown().await;
            return Ok(());
        }
        w.write_all(&buf[..n]).await.map_err(write_err)?;
        // A TLS side holds records until flushed (a no-op on a plain socket).
        w.flush().await.map_err(write_err)?;
        counter.inc_by(n as u64);
    }
}
