//! Replies owed to the client, in request order: waited for, merged, rendered.

use std::collections::VecDeque;
use std::time::Instant;

use crate::latency::Latency;
use bytes::Bytes;
use tokio::sync::oneshot;

use super::{Client, Pending};

use crate::metrics::Metrics;
use crate::redis::encode;
use crate::redis::merge::{self, Part};
use crate::redis::upstream::{GroupResult, ReplyResult, UpstreamError};
use crate::snapshot::ServiceRuntime;

impl Client {
    /// Moves every reply that is already in, from the front, to the output buffer.
    pub(super) fn collect_ready(&mut self) {
        // One clock reading for every reply collected now.
        let now = Instant::now();
        while let Some(front) = self.pending.front_mut() {
            let commands = front.commands();
            let bytes = match front {
                Pending::Ready(b) => std::mem::take(b),
                Pending::Group { rx, .. } => {
                    let result = match rx.try_recv() {
                        Ok(r) => Ok(r),
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        Err(oneshot::error::TryRecvError::Closed) => Err(()),
                    };
                    if regroup(front, &result) {
                        break;
                    }
                    resolve_group(front, result, &self.metrics, &self.service, now)
                }
                Pending::Regroup { .. } => break,
                Pending::Merge { .. } => break,
                Pending::Redirect { .. } => break,
                Pending::Wait { rx, .. } => {
                    let result = match rx.try_recv() {
                        Ok(r) => Ok(r),
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        Err(oneshot::error::TryRecvError::Closed) => Err(()),
                    };
                    if !resolve(front, result, &self.metrics, &self.service, now) {
                        break;
                    }
                    match front {
                        Pending::Ready(b) => std::mem::take(b),
                        _ => break,
                    }
                }
            };
            if !self.muted.pop_front().unwrap_or(false) {
                self.out.extend_from_slice(&bytes);
            }
            self.pending.pop_front();
            self.queued = self.queued.saturating_sub(commands);
        }
    }

    /// Waits for every request sent so far to be answered, so the next one may go out on
    /// another connection without overtaking them.
    pub(super) async fn drain(&mut self) {
        self.flush_batch().await;
        loop {
            self.settle().await;
            if self.pending.is_empty() {
                return;
            }
            let n = wait_front_counted(&mut self.pending, &self.metrics, &self.service).await;
            self.queued = self.queued.saturating_sub(n);
        }
    }

    /// Moves what is ready to the output, following cluster redirects at the front first.
    pub(super) async fn settle(&mut self) {
        loop {
            self.collect_ready();
            match self.pending.front() {
                // Rare paths, boxed: their state would otherwise be part of every client's
                // task, idle or not.
                Some(Pending::Redirect { .. }) => Box::pin(self.follow_redirect()).await,
                Some(Pending::Regroup { .. }) => Box::pin(self.follow_regroup()).await,
                Some(Pending::Merge {
                    redirect: Some(_), ..
                }) => Box::pin(self.follow_part_redirect()).await,
                _ => return,
            }
        }
    }
}

/// `wait_front`, returning how many commands' replies came in.
pub(super) async fn wait_front_counted(
    pending: &mut VecDeque<Pending>,
    metrics: &Metrics,
    service: &ServiceRuntime,
) -> usize {
    let before = pending.front().map_or(0, Pending::commands);
    wait_front(pending, metrics, service).await;
    before.saturating_sub(pending.front().map_or(0, Pending::commands))
}

/// Waits for the reply at the front and puts its bytes in its place.
async fn wait_front(pending: &mut VecDeque<Pending>, metrics: &Metrics, service: &ServiceRuntime) {
    let Some(front) = pending.front_mut() else {
        return;
    };
    let bytes = match front {
        Pending::Ready(_) => return,
        Pending::Redirect { .. } | Pending::Regroup { .. } => return,
        Pending::Group {
            rx,
            started,
            command,
            ..
        } => {
            let result = within(request_limit(service, command), *started, rx).await;
            if regroup(front, &result) {
                return;
            }
            resolve_group(front, result, metrics, service, Instant::now())
        }
        Pending::Wait {
            rx,
            started,
            command,
            ..
        } => {
            let result = within(request_limit(service, command), *started, rx).await;
            resolve(front, result, metrics, service, Instant::now());
            return;
        }
        Pending::Merge {
            parts,
            kind,
            total,
            started,
            latency,
            redirect,
        } => {
            let limit = request_limit(service, "");
            let mut failed = None;
            for (i, part) in parts.iter_mut().enumerate() {
                if part.reply.is_some() {
                    continue;
                }
                let result = within(limit, *started, &mut part.rx).await;
                let lost = part.replay.as_mut().and_then(|r| r.after_lost(&result));
                if let Some(hop) = lost {
                    *redirect = Some((i, hop));
                    return;
                }
                match result {
                    Ok(Ok(reply)) => {
                        // A cluster part redirected: Client::settle sends it again, then we wait
                        // for the rest.
                        if let Some(replay) = &part.replay
                            && part.redirects < super::redirect::MAX_HOPS
                            && reply.is_error()
                            && let Some(hop) = super::redirect::hop_of(reply.frame(), replay)
                        {
                            *redirect = Some((i, hop));
                            return;
                        }
                        part.reply = Some(reply);
                    }
                    other => {
                        failed = Some(other.map_err(|_| ()));
                        break;
                    }
                }
            }
            let now = Instant::now();
            match failed {
                Some(result) => render(result, *started, latency, metrics, service, now),
                None => {
                    latency.observe(now.saturating_duration_since(*started).as_secs_f64());
                    let replies = parts
                        .iter_mut()
                        .filter_map(|p| {
                            p.reply.take().map(|reply| Part {
                                reply,
                                positions: std::mem::take(&mut p.positions),
                            })
                        })
                        .collect();
                    merge::merge(*kind, *total, replies)
                }
            }
        }
    };
    *front = Pending::Ready(bytes);
}

/// The bytes the client gets for an upstream outcome: the reply as the backend sent it, or
/// an error naming what went wrong.
pub(super) fn render(
    result: Result<ReplyResult, ()>,
    started: Instant,
    latency: &Latency,
    metrics: &Metrics,
    service: &ServiceRuntime,
    now: Instant,
) -> Bytes {
    match result {
        Ok(Ok(reply)) => {
            latency.observe(now.saturating_duration_since(started).as_secs_f64());
            reply.into_frame()
        }
        Ok(Err(e)) => failure(Some(&e), metrics, service),
        Err(()) => failure(None, metrics, service),
    }
}

/// The error a client gets, counted, when a reply will not come: what went wrong upstream,
/// or (no error: the reply's sender went away) a lost connection.
fn failure(e: Option<&UpstreamError>, metrics: &Metrics, service: &ServiceRuntime) -> Bytes {
    match e {
        Some(e) => {
            metrics.error(service, e.kind());
            encode::error(&format!("ERR Throome: {e}"))
        }
        None => {
            metrics.error(service, "backend_io");
            encode::error("ERR Throome: backend connection lost")
        }
    }
}

/// INFO gets a `# Throome` section in front of the backend's own sections.
fn amend(command: &str, reply: Bytes, service: &ServiceRuntime) -> Bytes {
    if command != "info" {
        return reply;
    }
    crate::redis::local::with_proxy_info(reply, service)
}

/// Turns a finished `Wait` at the front into `Ready` bytes, or into a `Redirect` to follow
/// when a cluster answered MOVED/ASK/TRYAGAIN for a request we may send again. True when
/// ready.
fn resolve(
    front: &mut Pending,
    result: Result<ReplyResult, ()>,
    metrics: &Metrics,
    service: &ServiceRuntime,
    now: Instant,
) -> bool {
    let Pending::Wait {
        started,
        latency,
        command,
        replay,
        redirects,
        ..
    } = front
    else {
        return false;
    };
    let hop = match (&result, replay.as_mut()) {
        (Ok(Ok(reply)), Some(replay)) if reply.is_error() => {
            super::redirect::hop_of(reply.frame(), replay)
        }
        (_, Some(replay)) => replay.after_lost(&result),
        _ => None,
    };
    if let (Some(hop), Some(replay)) = (hop, replay.as_ref())
        && *redirects < super::redirect::MAX_HOPS
    {
        *front = Pending::Redirect {
            replay: replay.clone(),
            hop,
            started: *started,
            latency: latency.clone(),
            command,
            redirects: *redirects,
        };
        return false;
    }
    let bytes = amend(
        command,
        render(result, *started, latency, metrics, service, now),
        service,
    );
    *front = Pending::Ready(bytes);
    true
}

/// The service's `request_timeout`, except for blocking commands, which wait by design.
/// Without a timeout (the default) no command lookup is made: this runs for every reply.
fn request_limit(service: &ServiceRuntime, command: &str) -> Option<std::time::Duration> {
    let limit = service.spec.request_timeout?;
    let blocking = throome_resp::lookup(command.as_bytes())
        .is_some_and(|c| c.has(throome_resp::commands::flag::BLOCKING));
    (!blocking).then_some(limit)
}

/// Waits for a reply, up to `limit` after the request was sent. A late reply still arrives
/// on its connection and is dropped there, so replies stay matched to requests.
async fn within<T>(
    limit: Option<std::time::Duration>,
    started: Instant,
    rx: &mut oneshot::Receiver<Result<T, UpstreamError>>,
) -> Result<Result<T, UpstreamError>, ()> {
    match limit {
        None => rx.await.map_err(|_| ()),
        Some(t) => match tokio::time::timeout_at((started + t).into(), rx).await {
            Ok(r) => r.map_err(|_| ()),
            Err(_) => Ok(Err(UpstreamError::Timeout(t))),
        },
    }
}

/// A group of replica reads whose connection was lost before it answered becomes a
/// `Regroup`, for its requests to go to the primary; true if so.
fn regroup(front: &mut Pending, result: &Result<GroupResult, ()>) -> bool {
    if !matches!(result, Err(()) | Ok(Err(UpstreamError::Lost))) {
        return false;
    }
    let Pending::Group {
        replay,
        started,
        latency,
        command,
        ..
    } = front
    else {
        return false;
    };
    let Some(frames) = replay.take() else {
        return false;
    };
    *front = Pending::Regroup {
        frames,
        started: *started,
        latency: latency.clone(),
        command,
    };
    true
}

/// The bytes for a finished group: the backend's replies, or one error per request.
fn resolve_group(
    front: &mut Pending,
    result: Result<GroupResult, ()>,
    metrics: &Metrics,
    service: &ServiceRuntime,
    now: Instant,
) -> Bytes {
    let Pending::Group {
        n,
        started,
        latency,
        command,
        ..
    } = front
    else {
        return Bytes::new();
    };
    let error = match result {
        Ok(Ok(bytes)) => {
            let took = now.saturating_duration_since(*started).as_secs_f64();
            latency.observe_n(took, u64::from(*n));
            return amend(command, bytes, service);
        }
        Ok(Err(e)) => failure(Some(&e), metrics, service),
        Err(()) => failure(None, metrics, service),
    };
    error.repeat(*n as usize).into()
}
