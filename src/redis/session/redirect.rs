//! Following Redis Cluster redirects inside the proxy, so clients see a plain Redis:
//! `MOVED` (the slot has a new owner), `ASK` (the slot is being imported by another node:
//! send there once, after `ASKING`) and `TRYAGAIN` (a multi-key command whose keys are split
//! between the two nodes of a migrating slot: wait and send it again). See the
//! [cluster spec](https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#ask-redirection)
//! and [multi-key operations during resharding](https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#multiple-keys-operations).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::on_shards::failed;
use super::{Client, Pending};
use crate::redis::cluster;
use crate::redis::upstream::{ReplyResult, UpstreamError};

/// Hops (redirects and retries) for one request before the client gets the last answer: a
/// slot being moved answers ASK once and MOVED once per topology change; TRYAGAIN lasts
/// until the migration has moved the rest of the command's keys.
pub(super) const MAX_HOPS: u8 = 16;

/// The pause before a request answered TRYAGAIN goes again (about 0.4 s in all, after which
/// the client gets the TRYAGAIN, as it would from the cluster), and before a third and later
/// MOVED is followed: while a migration's last `CLUSTER SETSLOT ... NODE` reaches the nodes
/// one by one, two of them may send a request back and forth.
const PAUSE: Duration = Duration::from_millis(25);

/// Redirects followed at once; later ones wait `PAUSE` first.
const QUICK_HOPS: u8 = 2;

/// A request kept on a cluster to be sent again, with the slot it was routed by (`None` for
/// a part of a fan-out to every node).
#[derive(Clone)]
pub(super) struct Replay {
    pub bytes: Bytes,
    pub slot: Option<usize>,
    /// A read sent to a replica: the slot's owner, where it goes again (once) if the
    /// replica's connection is lost before it answers. Reads are safe to send twice.
    pub fallback: Option<(String, u16)>,
}

impl Replay {
    /// The hop to the slot's owner for a read whose replica went away without answering;
    /// the replay then has no fallback left.
    pub(super) fn after_lost(&mut self, result: &Result<ReplyResult, ()>) -> Option<Hop> {
        if !matches!(result, Err(()) | Ok(Err(UpstreamError::Lost))) {
            return None;
        }
        let (host, port) = self.fallback.take()?;
        Some(Hop::Owner(host, port))
    }
}

/// Where a redirected request goes next.
pub(super) enum Hop {
    /// The slot's new owner, recorded in the slot map.
    Moved(usize, String, u16),
    /// The node importing the slot, once, after `ASKING`.
    Ask(String, u16),
    /// The slot's owner again, after a pause.
    Again(usize),
    /// The slot's owner, for a read its replica did not answer.
    Owner(String, u16),
}

/// The hop a reply asks for, if the reply is one the client must not see.
pub(super) fn hop_of(reply: &Bytes, replay: &Replay) -> Option<Hop> {
    let line = reply.strip_prefix(b"-")?.strip_suffix(b"\r\n")?;
    if line.starts_with(b"TRYAGAIN") {
        return replay.slot.map(Hop::Again);
    }
    let (ask, slot, host, port) = cluster::redirect(line)?;
    Some(match ask {
        true => Hop::Ask(host, port),
        false => Hop::Moved(slot, host, port),
    })
}

impl Client {
    /// Sends the request at the front of the queue again where its hop says.
    pub(super) async fn follow_redirect(&mut self) {
        let Some(Pending::Redirect { .. }) = self.pending.front() else {
            return;
        };
        let Some(Pending::Redirect {
            replay,
            hop,
            started,
            latency,
            command,
            redirects,
        }) = self.pending.pop_front()
        else {
            return;
        };
        let rx = self.resend(&replay.bytes, hop, redirects).await;
        let next = Pending::Wait {
            rx,
            started,
            latency,
            command,
            replay: Some(replay),
            redirects: redirects + 1,
        };
        self.pending.push_front(next);
    }

    /// Sends one part of a split command again where its hop says.
    pub(super) async fn follow_part_redirect(&mut self) {
        let Some(Pending::Merge {
            parts, redirect, ..
        }) = self.pending.front_mut()
        else {
            return;
        };
        let Some((i, hop)) = redirect.take() else {
            return;
        };
        let Some((bytes, done)) = parts
            .get(i)
            .and_then(|p| Some((p.replay.as_ref()?.bytes.clone(), p.redirects)))
        else {
            return;
        };
        let rx = self.resend(&bytes, hop, done).await;
        if let Some(Pending::Merge { parts, .. }) = self.pending.front_mut()
            && let Some(part) = parts.get_mut(i)
        {
            part.rx = rx;
            part.redirects += 1;
        }
    }

    /// Sends a request where `hop` points (recording a MOVED in the slot map, counting the
    /// hop by kind), `done` hops after its first sending; the receiver gets its new reply.
    async fn resend(&mut self, bytes: &[u8], hop: Hop, done: u8) -> oneshot::Receiver<ReplyResult> {
        let (kind, ask, host, port) = match hop {
            Hop::Moved(slot, host, port) => {
                if done >= QUICK_HOPS {
                    tokio::time::sleep(PAUSE).await;
                }
                self.pools.moved(slot, &host, port);
                ("moved", false, host, port)
            }
            Hop::Ask(host, port) => ("ask", true, host, port),
            Hop::Owner(host, port) => ("replica_lost", false, host, port),
            Hop::Again(slot) => {
                tokio::time::sleep(PAUSE).await;
                let owner = match self.pools.slot_map(&self.service).await {
                    Ok(map) => map.node_of(slot).cloned(),
                    Err(e) => return failed(e),
                };
                let Some((host, port)) = owner else {
                    return failed(self.no_backend());
                };
                ("tryagain", false, host, port)
            }
        };
        let labels = crate::metrics::ErrorLabels {
            cluster: self.service.cluster.clone(),
            service: self.service.name.clone(),
            kind,
        };
        self.metrics.redirects.get_or_create(&labels).inc();
        match self.node_conn(&host, port).await {
            Ok(conn) => {
                if ask {
                    // ASKING and the command go out back to back on one connection. Its +OK
                    // is not the client's: the receiver is dropped and the reply discarded.
                    drop(self.enqueue_bytes(&conn, b"*1\r\n$6\r\nASKING\r\n").await);
                }
                let rx = self.enqueue_bytes(&conn, bytes).await;
                self.flush_batch().await;
                rx
            }
            Err(e) => failed(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(slot: Option<usize>) -> Replay {
        Replay {
            bytes: Bytes::from_static(b"*3\r\n$4\r\nMGET\r\n$4\r\n{t}a\r\n$4\r\n{t}b\r\n"),
            slot,
            fallback: None,
        }
    }

    #[test]
    fn replies_that_ask_for_a_hop() {
        let r = replay(Some(7));
        let hop = |line: &'static [u8]| hop_of(&Bytes::from_static(line), &r);
        assert!(
            matches!(hop(b"-MOVED 3999 127.0.0.1:6381\r\n"), Some(Hop::Moved(3999, h, 6381)) if h == "127.0.0.1")
        );
        assert!(
            matches!(hop(b"-ASK 3999 127.0.0.1:6381\r\n"), Some(Hop::Ask(h, 6381)) if h == "127.0.0.1")
        );
        let again = b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n";
        assert!(matches!(hop(again), Some(Hop::Again(7))));
        // Errors the client must see, and a fan-out part, which has no slot to retry by.
        assert!(hop(b"-ERR wrong number of arguments\r\n").is_none());
        assert!(hop(b"-CROSSSLOT Keys in request don't hash to the same slot\r\n").is_none());
        assert!(hop_of(&Bytes::from_static(again), &replay(None)).is_none());
    }

    #[test]
    fn a_read_lost_on_a_replica_goes_to_the_owner_once() {
        let mut r = replay(Some(7));
        r.fallback = Some(("127.0.0.1".into(), 7000));
        let timeout = Ok(Err(UpstreamError::Timeout(std::time::Duration::from_secs(
            1,
        ))));
        assert!(r.after_lost(&timeout).is_none(), "only a lost connection");
        assert!(
            matches!(r.after_lost(&Ok(Err(UpstreamError::Lost))), Some(Hop::Owner(h, 7000)) if h == "127.0.0.1")
        );
        assert!(r.after_lost(&Err(())).is_none(), "once");
    }
}
