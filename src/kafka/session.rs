//! One client connection: an upstream connection of its own (to a bootstrap broker picked by
//! the router, or to the broker its port stands for), requests forwarded as they came, and
//! responses matched to requests by correlation id (responses carry no API key) so the few
//! that name brokers can be rewritten. A broker that goes away closes the client connection:
//! Kafka clients reconnect and refresh their metadata.

use std::time::Instant;

use bytes::BytesMut;
use throome_kafka::{FrameScanner, FrameSplitter, KafkaError, Piece, RequestHeader};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::connect::{BrokerStream, open_upstream};
use super::exchange::{Exchange, Pending, big_request, whole_request};
use super::idle::{Idle, read_or_idle};
use super::metrics::{KafkaMetrics, UserCounters};
use super::sasl::{Gate, Verdict};
use crate::accepted::Accepted;
use crate::error::ProxyError;
use crate::session::Session;

/// Requests a client may have in flight on one connection before the proxy stops reading
/// from it (Kafka clients default to 5; transactional producers and fetch sessions stay low).
const MAX_IN_FLIGHT: usize = 1024;
/// Reads start small (most connections carry small requests) and grow to `READ_CHUNK` while
/// the peer fills what it is given: fewer system calls for megabyte batches.
const SMALL_CHUNK: usize = 8 * 1024;
const READ_CHUNK: usize = 256 * 1024;

/// Room for the next read; `busy` when the last read filled its room. A buffer that grew
/// keeps its size (at most `READ_CHUNK` plus a held frame): giving it back when a connection
/// went quiet cost ~7% of consume throughput in `benches/kafka_proxy.sh`.
fn make_room(buf: &mut BytesMut, busy: bool) -> usize {
    if buf.capacity() - buf.len() < SMALL_CHUNK / 2 {
        buf.reserve(if busy { READ_CHUNK } else { SMALL_CHUNK });
    }
    buf.capacity() - buf.len()
}

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Io(#[from] ProxyError),
    #[error("client sent a bad frame: {0}")]
    ClientFrame(KafkaError),
    #[error("broker sent a bad frame: {0}")]
    BrokerFrame(KafkaError),
    #[error("response with correlation id {got} where {expected:?} was next")]
    Unmatched { got: i32, expected: Option<i32> },
    #[error("cannot rewrite broker addresses: {0}")]
    Rewrite(String),
    #[error("request (api key {0}) before SASL authentication")]
    Unauthenticated(i16),
}

pub async fn serve(session: Session, client: crate::session::ClientConn) {
    let Some(client) = Accepted::for_session(&session, client).await else {
        return;
    };
    serve_accepted(session, client).await;
}

/// The same for a client whose TLS handshake was done already (a shared listener's, whose
/// server name picked the service).
pub async fn serve_accepted(session: Session, client: Accepted) {
    let service = session.service.clone();
    let upstream = match open_upstream(&session).await {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(cluster = %service.cluster, service = %service.name, node = ?session.node, error = %e, "refusing client");
            session.metrics.error(&service, e.kind());
            return;
        }
    };
    let (stream, guard) = upstream;
    let result = tokio::select! {
        r = run(&session, client, stream) => r,
        () = session.hard_stop.cancelled() => Ok(()),
    };
    if let Err(e) = result {
        tracing::debug!(cluster = %service.cluster, service = %service.name, peer = %session.peer, error = %e, "kafka connection closed");
        let kind = match &e {
            ConnError::Io(io) => io.kind(),
            ConnError::ClientFrame(_) => "client_protocol",
            ConnError::BrokerFrame(_) | ConnError::Unmatched { .. } => "backend_protocol",
            ConnError::Rewrite(_) => "rewrite",
            ConnError::Unauthenticated(_) => "client_auth",
        };
        session.metrics.error(&service, kind);
        if let (ConnError::Io(ProxyError::BackendIo(_)), Some(g)) = (&e, &guard) {
            let t = g
                .backend()
                .record_failure(Instant::now(), service.failure_threshold());
            crate::upstream::log_transition(&service, g.backend(), t);
        }
    }
}

async fn run(session: &Session, client: Accepted, upstream: BrokerStream) -> Result<(), ConnError> {
    match client {
        Accepted::Plain(c) => to_broker(session, c.into_split(), upstream).await,
        Accepted::Tls(c) => to_broker(session, tokio::io::split(*c), upstream).await,
        Accepted::Unix(c) => to_broker(session, c.into_split(), upstream).await,
    }
}

async fn to_broker<CR, CW>(
    session: &Session,
    client: (CR, CW),
    upstream: BrokerStream,
) -> Result<(), ConnError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    match upstream {
        BrokerStream::Plain(s) => relay(session, client, s.into_split()).await,
        BrokerStream::Tls(s) => relay(session, client, tokio::io::split(*s)).await,
    }
}

/// Both directions until either ends.
async fn relay<CR, CW, UR, UW>(
    session: &Session,
    (cr, cw): (CR, CW),
    (ur, uw): (UR, UW),
) -> Result<(), ConnError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    let scanner = FrameScanner::new(session.service.spec.kafka.max_frame);
    let user_out = std::sync::OnceLock::new();
    let mut exchange = Exchange::new(session, &user_out);
    let idle = Idle::new(session.service.spec.client_idle_timeout);
    let requests = forward_requests(session, (cr, uw), tx, (scanner, &idle), &user_out);
    let responses = forward_responses(&mut exchange, ur, cw, rx, (scanner, &idle));
    let result = tokio::select! {
        r = requests => r,
        r = responses => r,
    };
    exchange.unanswered(matches!(
        result,
        Err(ConnError::Io(ProxyError::BackendIo(_)))
    ));
    result
}

/// Client -> broker: frames checked and their headers noted, then passed on as they came.
/// With SASL at the proxy, the authenticated user's counters, the outgoing one shared with
/// the response side through `user_out`.
async fn forward_requests(
    session: &Session,
    (mut cr, mut uw): (impl AsyncRead + Unpin, impl AsyncWrite + Unpin),
    tx: mpsc::Sender<Pending>,
    (scanner, idle): (FrameScanner, &Idle),
    user_out: &std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
) -> Result<(), ConnError> {
    let mut user: Option<UserCounters> = None;
    let mut splitter = FrameSplitter::new(scanner);
    let mut gate = Gate::of(&session.service);
    let bytes_in = session
        .metrics
        .bytes_in
        .get_or_create(&crate::metrics::ServiceLabels::of(&session.service))
        .clone();
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    let mut busy = false;
    loop {
        let want = make_room(&mut buf, busy);
        let Some(read) = read_or_idle(idle, &mut cr, &mut buf).await else {
            session
                .metrics
                .error(&session.service, "client_idle_timeout");
            tracing::info!(service = %session.service.key(), peer = %session.peer, "client closed after client_idle_timeout without a whole request");
            return Ok(());
        };
        let n = read.map_err(ProxyError::ClientIo)?;
        busy = n == want;
        if n == 0 {
            let _ = uw.shutdown().await;
            return Ok(());
        }
        bytes_in.inc_by(n as u64);
        if let Some(u) = &user {
            u.bytes_in.inc_by(n as u64);
        }
        while let Some(piece) = splitter.next(&mut buf).map_err(ConnError::ClientFrame)? {
            let bytes = match piece {
                Piece::Rest(part) => part,
                Piece::Whole(frame) => {
                    if let Some(gate) = gate.as_mut() {
                        let h = RequestHeader::parse(&frame).map_err(ConnError::ClientFrame)?;
                        let verdict = gate.check(&h, &frame);
                        if let Some(user) = gate.take_failure() {
                            KafkaMetrics::of(&session.metrics).auth_failed(&session.service, user);
                        }
                        match verdict {
                            Verdict::Pass => {}
                            Verdict::Answer(answer) => {
                                if tx.send(Pending::Local(answer)).await.is_err() {
                                    return Ok(());
                                }
                                continue;
                            }
                            Verdict::Close => return Err(ConnError::Unauthenticated(h.api_key)),
                        }
                        if user.is_none()
                            && let Some(name) = gate.user()
                        {
                            let counters = UserCounters::of(
                                KafkaMetrics::of(&session.metrics),
                                &session.service,
                                name,
                            );
                            let _ = user_out.set(counters.bytes_out.clone());
                            user = Some(counters);
                        }
                    }
                    if let Some(u) = &user {
                        u.requests.inc();
                    }
                    idle.touch();
                    let pending = whole_request(&frame)?;
                    let local = matches!(pending, Pending::Local(_));
                    if tx.send(pending).await.is_err() {
                        return Ok(());
                    }
                    if local {
                        continue;
                    }
                    frame
                }
                Piece::Big { total } => {
                    if gate.as_ref().is_some_and(|g| !g.authenticated()) {
                        // SASL tokens are small: a big request is not one of them.
                        return Err(ConnError::Unauthenticated(-1));
                    }
                    let Some(pending) = big_request(&buf) else {
                        splitter.hold(&mut buf, total);
                        continue;
                    };
                    if let Some(u) = &user {
                        u.requests.inc();
                    }
                    if tx.send(pending).await.is_err() {
                        return Ok(());
                    }
                    splitter.pass(&mut buf, total)
                }
            };
            forward(&mut uw, &mut out, &bytes)
                .await
                .map_err(ProxyError::BackendIo)?;
        }
        if !out.is_empty() {
            uw.write_all(&out).await.map_err(ProxyError::BackendIo)?;
            reset(&mut out);
        }
        // TLS holds written records until flushed (a no-op on a plain socket).
        uw.flush().await.map_err(ProxyError::BackendIo)?;
    }
}

/// Empties a write buffer, giving back one that a burst of small frames grew.
fn reset(out: &mut BytesMut) {
    if out.capacity() > READ_CHUNK / 4 {
        *out = BytesMut::new();
    } else {
        out.clear();
    }
}

/// Frames at least this big are written as they are instead of being copied into the
/// write buffer (a produce batch or a fetch answer is often a megabyte).
const DIRECT_WRITE: usize = 16 * 1024;

/// Queues a small frame in `out`; writes a big one straight from its own buffer (after what
/// is queued, to keep the order).
pub(super) async fn forward(
    w: &mut (impl AsyncWrite + Unpin),
    out: &mut BytesMut,
    frame: &[u8],
) -> std::io::Result<()> {
    if frame.len() < DIRECT_WRITE {
        out.extend_from_slice(frame);
        return Ok(());
    }
    if !out.is_empty() {
        w.write_all(out).await?;
        out.clear();
    }
    w.write_all(frame).await
}

/// Broker -> client: each response matched to the oldest request awaiting one, rewritten if
/// it names brokers, and written back; answers made by the proxy go out in their turn.
async fn forward_responses(
    exchange: &mut Exchange<'_>,
    mut ur: impl AsyncRead + Unpin,
    mut cw: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Pending>,
    (scanner, idle): (FrameScanner, &Idle),
) -> Result<(), ConnError> {
    let mut splitter = FrameSplitter::new(scanner);
    let (mut buf, mut out) = (BytesMut::new(), BytesMut::new());
    let (mut requests_open, mut busy) = (true, false);
    loop {
        let want = make_room(&mut buf, busy);
        tokio::select! {
            p = rx.recv(), if requests_open => match p {
                Some(p) => exchange.push(p),
                None => requests_open = false,
            },
            r = ur.read_buf(&mut buf) => {
                let n = r.map_err(ProxyError::BackendIo)?;
                busy = n == want;
                if n == 0 {
                    // An idle connection closed by the broker (connections.max.idle.ms) is
                    // not a failure; one with requests in flight is.
                    if exchange.waiting() {
                        return Err(ProxyError::BackendIo(std::io::ErrorKind::UnexpectedEof.into()).into());
                    }
                    return Ok(());
                }
                while let Ok(p) = rx.try_recv() {
                    exchange.push(p);
                }
                while let Some(piece) = splitter.next(&mut buf).map_err(ConnError::BrokerFrame)? {
                    let bytes = match piece {
                        Piece::Rest(part) => part,
                        Piece::Whole(frame) => {
                            exchange.take_local(&mut out);
                            exchange.response(frame)?
                        }
                        Piece::Big { total } => {
                            exchange.take_local(&mut out);
                            if !exchange.stream_start(&buf)? {
                                splitter.hold(&mut buf, total);
                                continue;
                            }
                            splitter.pass(&mut buf, total)
                        }
                    };
                    forward(&mut cw, &mut out, &bytes).await.map_err(ProxyError::ClientIo)?;
                    exchange.sent(bytes.len());
                    if !splitter.passing() {
                        exchange.stream_done();
                    }
                }
            }
        }
        // Never in the middle of a frame being passed on.
        if !splitter.passing() {
            exchange.take_local(&mut out);
        }
        if !out.is_empty() {
            cw.write_all(&out).await.map_err(ProxyError::ClientIo)?;
            reset(&mut out);
        }
        cw.flush().await.map_err(ProxyError::ClientIo)?;
        if idle.limit.is_some() {
            idle.touch();
            idle.owe(exchange.waiting());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_small_and_grow_while_the_peer_fills_them() {
        let mut buf = BytesMut::new();
        let first = make_room(&mut buf, false);
        assert!((SMALL_CHUNK..READ_CHUNK).contains(&first));
        buf.extend_from_slice(&vec![0; first]);
        drop(buf.split()); // the frames read went on
        assert!(make_room(&mut buf, true) >= READ_CHUNK);
    }
}
