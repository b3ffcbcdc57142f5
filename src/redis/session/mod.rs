//! One Redis client connection, served by one task: it frames requests, answers the ones
//! about the connection itself (`connection.rs`), writes the others in batches onto upstream
//! connections and writes replies back strictly in request order (`replies.rs`); sharded
//! services plan each request per key (`on_shards.rs`).

mod batch;
mod connection;
mod dispatch;
mod drive;
mod io;
mod lanes;
mod login;
mod on_shards;
mod raw;
mod redirect;
mod replies;
mod shard_tx;
mod unblock;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::latency::Latency;
use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use throome_resp::CommandSpec;

use super::encode;
use super::local::{self, ClientState};
use super::merge::MergeKind;
use super::pool::Pools;
use super::upstream::{GroupResult, ReplyResult, Slot, Upstream, UpstreamError};
use crate::accepted::Accepted;
use crate::metrics::Metrics;
use crate::session::Session;
use crate::snapshot::ServiceRuntime;
use redirect::{Hop, Replay};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Requests in flight per client before we stop reading from it (backpressure).
const MAX_PENDING: usize = 4096;
/// The same while the client is behind: replies it has not taken wait in the proxy. A
/// client that never reads then has this many commands out at a time, and reaches
/// `client_output_buffer_limit` as in Redis, instead of thousands of large replies piling
/// up in the backend's output buffer for the shared connection (which redis-server does not
/// bound: a flood of `GET big` made it run out of memory).
const BEHIND_COMMANDS: usize = 2 * MAX_GROUP as usize;
/// How long replies are still awaited after the client closed its side.
const EOF_LINGER: std::time::Duration = std::time::Duration::from_secs(5);
/// Bytes read ahead from a client while its blocking command waits.
const HOLD_READ_LIMIT: usize = 1024 * 1024;
/// Bytes collected for one upstream before they are written.
const MAX_BATCH: usize = 256 * 1024;
/// Requests answered together at most: a long pipeline's first replies are not held back
/// for long, and a group's buffer stays small.
const MAX_GROUP: u32 = 64;

/// Replies owed to the client, in request order.
enum Pending {
    Ready(Bytes),
    /// `n` consecutive requests of one command on one connection, answered together.
    Group {
        rx: oneshot::Receiver<GroupResult>,
        n: u32,
        /// Which batch slot this is, so only the open group of the open batch grows.
        id: u64,
        started: Instant,
        latency: Latency,
        command: &'static str,
        /// Reads sent to a replica (`read_from_replicas`): the requests, sent once more to
        /// the primary if the replica's connection is lost before they are answered.
        replay: Option<Vec<Bytes>>,
    },
    /// A group of reads whose replica went away unanswered, to send to the primary before
    /// anything behind it is answered.
    Regroup {
        frames: Vec<Bytes>,
        started: Instant,
        latency: Latency,
        command: &'static str,
    },
    Wait {
        rx: oneshot::Receiver<ReplyResult>,
        started: Instant,
        latency: Latency,
        /// The command, for the few replies the proxy amends (INFO).
        command: &'static str,
        /// On a Redis Cluster, the request, to send again after a MOVED, ASK or TRYAGAIN.
        replay: Option<Replay>,
        redirects: u8,
    },
    /// A cluster redirect to follow before anything behind it is answered.
    Redirect {
        replay: Replay,
        hop: Hop,
        started: Instant,
        latency: Latency,
        command: &'static str,
        redirects: u8,
    },
    /// A command split across shards: every part's reply, merged.
    Merge {
        parts: Vec<SplitPart>,
        kind: MergeKind,
        total: usize,
        started: Instant,
        latency: Latency,
        /// A cluster redirect for one part, to follow before waiting on.
        redirect: Option<(usize, Hop)>,
    },
}

impl Pending {
    /// How many commands' replies this still waits for (none once it is ready).
    fn commands(&self) -> usize {
        match self {
            Pending::Ready(_) => 0,
            Pending::Group { n, .. } => *n as usize,
            Pending::Regroup { frames, .. } => frames.len(),
            _ => 1,
        }
    }
}

/// One shard's (or slot's) part of a split command.
struct SplitPart {
    rx: oneshot::Receiver<ReplyResult>,
    /// Where its elements go in the merged reply (MGET).
    positions: Vec<usize>,
    /// On a cluster, the part's request, to send again after a MOVED, ASK or TRYAGAIN.
    replay: Option<Replay>,
    redirects: u8,
    reply: Option<throome_resp::Reply>,
}

/// Requests for one upstream connection, written together.
struct Batch {
    conn: Upstream,
    bytes: BytesMut,
    slots: Vec<Slot>,
    /// The group the last slot is, while the next request of its command may join it.
    open_group: Option<u64>,
}

/// Which upstream connection the previous request used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Shared,
    Dedicated(u64),
}

enum Flow {
    Continue,
    /// A blocking command went out: nothing behind it is handled until it is answered, as
    /// Redis runs nothing else of a blocked client, while the client is still watched so a
    /// client that leaves frees the backend at once.
    Hold,
    Stop,
    /// Hand the client over to a raw pass-through, starting with this request.
    Raw(Bytes),
}

pub async fn serve(session: Session, client: crate::session::ClientConn) {
    let Some(client) = Accepted::for_session(&session, client).await else {
        return;
    };
    serve_accepted(session, client, BytesMut::new()).await;
}

/// The same for a client whose first bytes were read already (`read`, handled before any
/// more is read): a shared listener's, which read its login to find the service.
pub async fn serve_accepted(session: Session, client: Accepted, read: BytesMut) {
    let service = session.service.clone();
    let pools = Pools::of(&service);
    let Some(_slot) = pools.client_slot(service.spec.pg.max_client_conn) else {
        session.metrics.error(&service, "max_client_conn");
        client
            .refuse(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // CLIENT KILL ends this session; so does the gateway's hard stop.
    let kill = session.hard_stop.child_token();
    let (fd, laddr) = client.socket_info();
    let activity = Arc::new(super::clients::Activity::default());
    let socket = super::clients::Socket {
        addr: session.peer.to_string(),
        laddr,
        fd,
    };
    let _listed = super::clients::Registration::new(
        id,
        service.key(),
        socket,
        activity.clone(),
        kill.clone(),
    );
    let mut state = ClientState::new(id, service.spec.auth.as_ref());
    state.authenticated |= matches!(session.peer, crate::session::Peer::Internal);
    let mut c = Client {
        state,
        pools,
        service,
        metrics: session.metrics.clone(),
        pending: VecDeque::new(),
        queued: 0,
        muted: VecDeque::new(),
        mute_now: false,
        replies_off: false,
        skip_next: false,
        out: BytesMut::new(),
        batch: None,
        spare: None,
        lane: Lane::Shared,
        next_lane: 0,
        tx_conn: None,
        in_multi: false,
        watching: false,
        per_command: Vec::new(),
        sticky: [None, None],
        shard_conns: HashMap::new(),
        raw_to: None,
        shard_tx: None,
        shard_watch: None,
        now: Instant::now(),
        last_command: None,
        last_counted: None,
        next_group: 0,
        activity,
        since: Instant::now(),
        last_spec: None,
    };
    tokio::select! {
        // A killed client is not served one more request first.
        biased;
        () = kill.cancelled() => {}
        // One copy of the loop per stream type: no dispatch per read and write on plain TCP.
        // Each boxed, so a plain connection's task is not the size of a TLS one's.
        () = async {
            match client {
                Accepted::Plain(tcp) => Box::pin(c.run(tcp, read)).await,
                Accepted::Tls(tls) => Box::pin(c.run(*tls, read)).await,
                Accepted::Unix(unix) => Box::pin(c.run(unix, read)).await,
            }
        } => {}
    }
}

/// Reply queues kept per worker thread for the next client owed a reply.
const KEEP_QUEUES: usize = 128;

type Queues = (VecDeque<Pending>, VecDeque<bool>);

thread_local! {
    static FREE_QUEUES: std::cell::RefCell<Vec<Queues>> = const { std::cell::RefCell::new(Vec::new()) };
}

static QUEUES: crate::bufpool::FreeList<Queues> =
    crate::bufpool::FreeList::new(&FREE_QUEUES, KEEP_QUEUES);

struct Client {
    state: ClientState,
    service: Arc<ServiceRuntime>,
    pools: Arc<Pools>,
    metrics: Arc<Metrics>,
    pending: VecDeque<Pending>,
    /// Commands whose replies `pending` owes (a group counts its requests).
    queued: usize,
    /// Per entry of `pending`: its reply is dropped (CLIENT REPLY OFF or SKIP).
    muted: VecDeque<bool>,
    /// Replies of the request being handled are dropped; CLIENT REPLY's state.
    mute_now: bool,
    replies_off: bool,
    skip_next: bool,
    out: BytesMut,
    batch: Option<Batch>,
    /// The last batch's emptied buffers, reused for the next.
    spare: Option<(BytesMut, Vec<Slot>)>,
    lane: Lane,
    next_lane: u64,
    /// The client's own connection while a transaction (MULTI/WATCH) is open.
    tx_conn: Option<Upstream>,
    in_multi: bool,
    watching: bool,
    per_command: Vec<(
        &'static str,
        prometheus_client::metrics::counter::Counter,
        Latency,
    )>,
    /// The shared connections this client uses, for writes and for reads (they differ with
    /// `read_from_replicas`); kept while alive and their backend stays available, so routing
    /// is not redone for every request and a client's requests stay in order.
    sticky: [Option<(Arc<crate::backend::BackendState>, Upstream)>; 2],
    /// Sharded services: the shared connection to each shard or node this client has used.
    shard_conns: HashMap<(String, u16), Upstream>,
    /// Sharded services: the node a raw hand-over (SUBSCRIBE and friends) goes to.
    raw_to: Option<(String, u16)>,
    /// Sharded services: the transaction being queued since MULTI.
    shard_tx: Option<shard_tx::ShardTx>,
    /// WATCH on a sharded service: the connection the transaction will run on.
    shard_watch: Option<shard_tx::ShardWatch>,
    /// One clock reading per batch of requests read (timestamps are a hot-path cost).
    now: Instant,
    /// The last command seen, by its exact bytes: pipelines mostly repeat one command, so
    /// this skips the table lookup (container commands such as CONFIG are not cached).
    last_command: Option<(Vec<u8>, &'static CommandSpec)>,
    /// Numbers groups of replies (`Pending::Group::id`).
    next_group: u64,
    /// What CLIENT LIST shows of this client's work, and since when it is connected.
    activity: Arc<super::clients::Activity>,
    since: Instant,
    /// The command last reported to `activity`.
    last_spec: Option<&'static CommandSpec>,
    /// The metric handles of the last command counted.
    last_counted: Option<(
        &'static str,
        prometheus_client::metrics::counter::Counter,
        Latency,
    )>,
}

impl Client {
    fn reply(&mut self, bytes: Bytes) {
        self.owe(Pending::Ready(bytes));
    }

    /// Owes the client a reply (or a group of them), dropped on arrival when the client
    /// turned replies off (CLIENT REPLY OFF or SKIP).
    fn owe(&mut self, p: Pending) {
        if self.pending.capacity() == 0 {
            self.lend_queues();
        }
        self.queued += p.commands();
        self.pending.push_back(p);
        self.muted.push_back(self.mute_now);
    }

    /// Reply queues from the worker's pool, for a client that is owed its first reply
    /// since it was last idle.
    fn lend_queues(&mut self) {
        if let Some((pending, muted)) = QUEUES.take() {
            self.pending = pending;
            self.muted = muted;
        }
    }

    /// Gives the empty reply queues back to the worker's pool: a client owed nothing holds
    /// none (memory per idle connection). Queues grown by a long pipeline are freed.
    fn return_queues(&mut self) {
        if !self.pending.is_empty() || !self.muted.is_empty() || self.pending.capacity() == 0 {
            return;
        }
        let queues = (
            std::mem::take(&mut self.pending),
            std::mem::take(&mut self.muted),
        );
        if queues.0.capacity() > 64 {
            return;
        }
        QUEUES.give(queues);
    }

    async fn switch_lane(&mut self, lane: Lane) {
        if self.lane != lane {
            self.drain().await;
            self.lane = lane;
        }
    }

    fn fail(&mut self, e: &UpstreamError) {
        self.metrics.error(&self.service, e.kind());
        self.reply(encode::error(&format!("ERR Throome: {e}")));
    }
}
#[cfg(test)]
mod size_tests {
    /// A plain TCP client's loop is boxed on its own and allocated at its largest state for
    /// the connection's life: every path but the shared pool's is boxed where taken
    /// (`dispatch.rs`), so it stays near the idle wait's size. Debug-build bound.
    #[test]
    fn the_plain_client_loop_stays_small() {
        fn size<'a, F: 'a>(
            _: impl FnOnce(&'a mut super::Client, tokio::net::TcpStream) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        let run = size(|c: &mut super::Client, s| c.run(s, bytes::BytesMut::new()));
        assert!(
            run <= 1_536,
            "the Redis client loop is {run} bytes (bound 1536)"
        );
    }
}
