//! The response side of a connection: the queue of requests awaiting an answer (in order —
//! a broker answers one connection's requests in the order it got them), per-API metrics,
//! and the rewriting of the responses that carry broker addresses or API versions.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prometheus_client::metrics::counter::Counter;
use throome_kafka::{
    Broker, HEAD_MIN, RequestHeader, api, api_name, clamp_api_versions, expects_response,
    needs_api_versions_fallback, response_correlation_id, rewrite_response, rewrites,
    sasl_handshake_v0_refusal, unsupported_api_versions,
};

use super::ports::{PortError, Upstream};
use super::session::ConnError;
use crate::latency::Latency;
use crate::metrics::{RequestLabels, ServiceLabels};
use crate::session::Session;

/// How long a retired broker port lets its open connections finish.
const RETIRE_DRAIN: Duration = Duration::from_secs(30);

pub enum Pending {
    /// Forwarded; the broker will answer.
    Forwarded {
        correlation_id: i32,
        api_key: i16,
        version: i16,
        started: Instant,
    },
    /// Forwarded; the broker will not answer (Produce with acks = 0).
    Unanswered { api_key: i16 },
    /// Answered by the proxy; goes to the client after the responses before it.
    Local(Bytes),
}

impl Pending {
    pub fn forwarded(h: &RequestHeader, answered: bool) -> Pending {
        if !answered {
            return Pending::Unanswered { api_key: h.api_key };
        }
        Pending::Forwarded {
            correlation_id: h.correlation_id,
            api_key: h.api_key,
            version: h.api_version,
            started: Instant::now(),
        }
    }
}

/// What the response side must expect for a whole request frame.
pub fn whole_request(frame: &Bytes) -> Result<Pending, ConnError> {
    let header = RequestHeader::parse(frame).map_err(ConnError::ClientFrame)?;
    if let Some(local) = answer_locally(&header, frame) {
        return Ok(Pending::Local(local));
    }
    let answered = expects_response(&header, frame).map_err(ConnError::ClientFrame)?;
    Ok(Pending::forwarded(&header, answered))
}

/// The same for the start of a big request still arriving, when its first `HEAD_MIN` bytes
/// tell; `None` has it held whole (and then checked as any other).
pub fn big_request(head: &[u8]) -> Option<Pending> {
    let head = Bytes::copy_from_slice(&head[..head.len().min(HEAD_MIN)]);
    let header = RequestHeader::parse(&head).ok()?;
    if header.api_key == api::API_VERSIONS {
        return None;
    }
    let answered = expects_response(&header, &head).ok()?;
    Some(Pending::forwarded(&header, answered))
}

/// A request the proxy answers itself instead of forwarding: ApiVersions v3+ from an old
/// librdkafka gets the KIP-511 "unsupported version, use 0..=2" answer (see
/// `needs_api_versions_fallback`); it retries with a version it can parse. SaslHandshake v0
/// is refused (see `sasl_handshake_v0_refusal`).
fn answer_locally(h: &RequestHeader, frame: &[u8]) -> Option<Bytes> {
    if h.api_key == api::SASL_HANDSHAKE && h.api_version < 1 {
        return Some(sasl_handshake_v0_refusal(h.correlation_id));
    }
    needs_api_versions_fallback(h, frame).then(|| unsupported_api_versions(h.correlation_id, 0, 2))
}

pub struct Exchange<'s> {
    session: &'s Session,
    /// The authenticated user's outgoing bytes, once the request side knows the user.
    user_out: &'s std::sync::OnceLock<Counter>,
    queue: VecDeque<Pending>,
    per_api: HashMap<i16, (Counter, Latency)>,
    bytes_out: Counter,
    /// The request whose response is being passed on as it arrives.
    streaming: Option<(i16, Instant)>,
}

impl<'s> Exchange<'s> {
    pub fn new(session: &'s Session, user_out: &'s std::sync::OnceLock<Counter>) -> Self {
        let bytes_out = session
            .metrics
            .bytes_out
            .get_or_create(&ServiceLabels::of(&session.service))
            .clone();
        Exchange {
            session,
            user_out,
            queue: VecDeque::new(),
            per_api: HashMap::new(),
            bytes_out,
            streaming: None,
        }
    }

    pub fn push(&mut self, p: Pending) {
        if let Pending::Unanswered { api_key } = p {
            self.api(api_key).0.inc();
        } else {
            self.queue.push_back(p);
        }
    }

    /// Moves the proxy's own answers that are next in line to `out`.
    pub fn take_local(&mut self, out: &mut BytesMut) {
        while let Some(Pending::Local(_)) = self.queue.front() {
            if let Some(Pending::Local(b)) = self.queue.pop_front() {
                out.extend_from_slice(&b);
                self.sent(b.len());
            }
        }
    }

    /// Matches one response frame to the oldest request awaiting an answer; returns what the
    /// client gets. Answers of the proxy's own that come first must be taken before.
    pub fn response(&mut self, frame: Bytes) -> Result<Bytes, ConnError> {
        let (api_key, version, started) = self.matched(&frame)?;
        self.answered(api_key, started);
        self.transform(api_key, version, frame).inspect_err(|_| {
            self.api_error(api_key, "rewrite");
        })
    }

    /// The start of a big response still arriving: when it answers the oldest request and
    /// passes unchanged, that request is taken off the queue and the caller passes the
    /// response on as it arrives (true); one the proxy rewrites must be held whole (false).
    pub fn stream_start(&mut self, head: &[u8]) -> Result<bool, ConnError> {
        let Some(Pending::Forwarded { api_key, .. }) = self.queue.front() else {
            return Ok(false);
        };
        if *api_key == api::API_VERSIONS || rewrites(*api_key) {
            return Ok(false);
        }
        let (api_key, _, started) = self.matched(head)?;
        self.streaming = Some((api_key, started));
        Ok(true)
    }

    /// The response being passed on has gone out whole.
    pub fn stream_done(&mut self) {
        if let Some((api_key, started)) = self.streaming.take() {
            self.answered(api_key, started);
        }
    }

    /// Takes the oldest request awaiting an answer off the queue if `frame` (or its start)
    /// carries its correlation id.
    fn matched(&mut self, frame: &[u8]) -> Result<(i16, i16, Instant), ConnError> {
        let got = response_correlation_id(frame).map_err(ConnError::BrokerFrame)?;
        let Some(Pending::Forwarded {
            correlation_id,
            api_key,
            version,
            started,
        }) = self.queue.front()
        else {
            return Err(ConnError::Unmatched {
                got,
                expected: None,
            });
        };
        let (expected, api_key, version, started) = (*correlation_id, *api_key, *version, *started);
        if got != expected {
            self.api_error(api_key, "unmatched");
            return Err(ConnError::Unmatched {
                got,
                expected: Some(expected),
            });
        }
        self.queue.pop_front();
        Ok((api_key, version, started))
    }

    fn answered(&mut self, api_key: i16, started: Instant) {
        let (count, latency) = self.api(api_key);
        count.inc();
        latency.observe(started.elapsed().as_secs_f64());
    }

    /// Whether any forwarded request still awaits its response.
    pub fn waiting(&self) -> bool {
        self.streaming.is_some()
            || self
                .queue
                .iter()
                .any(|p| matches!(p, Pending::Forwarded { .. }))
    }

    pub fn sent(&self, n: usize) {
        self.bytes_out.inc_by(n as u64);
        if let Some(user) = self.user_out.get() {
            user.inc_by(n as u64);
        }
    }

    /// Counts the requests still waiting when the broker connection was lost.
    pub fn unanswered(&mut self, broker_lost: bool) {
        if !broker_lost {
            return;
        }
        let cut_short = self.streaming.take().map(|(k, _)| k);
        let keys: Vec<i16> = cut_short
            .into_iter()
            .chain(self.queue.iter().filter_map(|p| match p {
                Pending::Forwarded { api_key, .. } => Some(*api_key),
                _ => None,
            }))
            .collect();
        for k in keys {
            self.api_error(k, "broker_lost");
        }
    }

    /// Broker addresses point at the proxy; ApiVersions never offers a version of a
    /// rewritten API the proxy cannot decode. Everything else passes unchanged.
    fn transform(&mut self, api_key: i16, version: i16, frame: Bytes) -> Result<Bytes, ConnError> {
        if api_key == api::API_VERSIONS {
            let clamped = clamp_api_versions(version, &frame).map_err(ConnError::BrokerFrame)?;
            return Ok(clamped.unwrap_or(frame));
        }
        if !rewrites(api_key) {
            return Ok(frame);
        }
        let mut failure = None;
        let mut map = |b: &Broker| match self.proxy_address(b) {
            Ok(a) => a,
            Err(e) => {
                failure.get_or_insert(e);
                (String::new(), -1)
            }
        };
        let rewritten = rewrite_response(api_key, version, &frame, &mut map)
            .map_err(|e| ConnError::Rewrite(e.to_string()))?;
        if let Some(e) = failure {
            return Err(ConnError::Rewrite(e.to_string()));
        }
        if rewritten.complete && !rewritten.brokers.is_empty() {
            let alive: Vec<i32> = rewritten.brokers.iter().map(|b| b.node_id).collect();
            let s = self.session;
            s.shared
                .ext
                .get::<super::BrokerPorts>()
                .retain(&s.service, &alive, RETIRE_DRAIN);
        }
        Ok(rewritten.frame)
    }

    /// The proxy port for an upstream broker, opening its listener if it is new. A port that
    /// cannot be bound is still advertised (that broker is unreachable, the others work); a
    /// node with no port at all fails the response.
    fn proxy_address(&self, b: &Broker) -> Result<(String, i32), PortError> {
        let s = self.session;
        let port = u16::try_from(b.port).map_err(|_| PortError::NoPort(b.node_id))?;
        let upstream = Upstream {
            host: b.host.clone(),
            port,
        };
        if let Some(named) = super::by_cluster::advertised(s, b.node_id) {
            s.shared
                .ext
                .get::<super::BrokerPorts>()
                .remember(&s.service, b.node_id, upstream);
            return Ok(named);
        }
        match s
            .shared
            .ext
            .get::<super::BrokerPorts>()
            .ensure(&s.shared, &s.service, b.node_id, upstream)
        {
            Ok((host, port)) => Ok((host, i32::from(port))),
            Err(e @ PortError::Bind { .. }) => {
                tracing::error!(cluster = %s.service.cluster, service = %s.service.name, error = %e, "broker port unavailable");
                let spec = &s.service.spec.kafka;
                let port = spec
                    .port_of(b.node_id)
                    .ok_or(PortError::NoPort(b.node_id))?;
                Ok((spec.advertised_host.clone(), i32::from(port)))
            }
            Err(e) => Err(e),
        }
    }

    fn api(&mut self, api_key: i16) -> &(Counter, Latency) {
        let s = self.session;
        self.per_api.entry(api_key).or_insert_with(|| {
            let labels = RequestLabels {
                cluster: s.service.cluster.clone(),
                service: s.service.name.clone(),
                command: api_name(api_key).to_string(),
            };
            let count = s.metrics.requests.get_or_create(&labels).clone();
            let latency = s.metrics.duration.get_or_create(&labels).clone();
            (count, latency)
        })
    }

    fn api_error(&self, api_key: i16, kind: &'static str) {
        let s = self.session;
        let labels = crate::kafka::metrics::ApiErrorLabels {
            cluster: s.service.cluster.clone(),
            service: s.service.name.clone(),
            api: api_name(api_key),
            kind,
        };
        super::metrics::KafkaMetrics::of(&s.metrics)
            .api_errors
            .get_or_create(&labels)
            .inc();
    }
}
