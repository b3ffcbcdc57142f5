//! One client connection: startup and authentication, then a loop that lends it a server
//! connection when it sends something and takes it back at the end of each transaction
//! (`pool_mode: transaction`) or when it leaves (`pool_mode: session`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::io::Stream;
use bytes::{Bytes, BytesMut};

use throome_pgwire::{build, msg};

use super::cancel::{ClientInfo, Registration};
use super::flow::Flow;
use super::frontend::Outcome;
use super::io::{Wire, WireError};
use super::metrics::{ClientMetrics, PgMetrics, UserLabels};
use super::pool::{Lease, PgPools};
use super::startup::{self, Login, Opening};
use super::statements::Statements;
use super::stats::Tally;
use super::timeouts::{Expired, Read};
use crate::config::PoolMode;
use crate::metrics::Metrics;
use crate::session::Session;
use crate::snapshot::ServiceRuntime;

/// How long a killed client's last error may take to go out.
const FAREWELL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One client connection from accept to close: admitted and logged in, then either the
/// admin console or a pooled session.
pub async fn serve(session: Session, stream: crate::session::ClientConn) {
    let stream = match stream {
        crate::session::ClientConn::Tcp(tcp) => Stream::Plain(tcp),
        crate::session::ClientConn::Unix(unix) => Stream::Unix(unix),
    };
    let client = Wire::over(
        stream,
        BytesMut::with_capacity(8 * 1024),
        throome_pgwire::DEFAULT_MAX_MESSAGE,
    );
    serve_wire(session, client).await;
}

/// The same from a client socket already read from (a shared listener's, which read the
/// startup packet to find the service and put it back).
pub async fn serve_wire(session: Session, mut client: Wire) {
    let service = session.service.clone();
    let pools = PgPools::of(&service);
    let _slot = ClientSlot::take(&pools);
    // Boxed here and below where a path is taken once or is not the idle wait: a client's
    // task is allocated at the size of its largest state for its whole life.
    let Some(login) = Box::pin(admit(&session, &pools, &mut client)).await else {
        return;
    };
    if super::console::is_console(&login.database) {
        return console(&session, &pools, &login, &mut client).await;
    }
    if pools.is_disabled(&login.database) {
        let text = format!(
            "database \"{}\" is not currently accepting connections",
            login.database
        );
        let _ = client.send(&build::error("FATAL", "55000", &text)).await;
        return;
    }
    pooled(session, pools, login, client).await;
}

/// `max_client_conn`, then the startup phase and authentication (within
/// `client_login_timeout`, else closed with PostgreSQL's `authentication_timeout` words);
/// None when the client was refused (and told why) or left.
async fn admit(session: &Session, pools: &PgPools, client: &mut Wire) -> Option<Login> {
    let service = &session.service;
    if pools.clients.load(Ordering::Relaxed) > service.spec.pg.max_client_conn {
        session.metrics.error(service, "max_client_conn");
        let text = "sorry, too many clients already";
        let _ = client.send(&build::error("FATAL", "53300", text)).await;
        return None;
    }
    let limit = service.spec.pg.client_login_timeout;
    let Ok(opened) =
        tokio::time::timeout(limit, startup::open(client, service, &session.peer)).await
    else {
        session.metrics.error(service, "login_timeout");
        tracing::info!(service = %service.key(), peer = %session.peer, "client closed: no login within client_login_timeout");
        let text = "canceling authentication due to timeout";
        let _ = client.send(&build::error("FATAL", "08P01", text)).await;
        return None;
    };
    match opened {
        Ok(Opening::Login(login)) => Some(login),
        Ok(Opening::Refused(error)) => {
            let _ = client.send(&error).await;
            None
        }
        Ok(Opening::AuthFailed { user, error }) => {
            session.metrics.error(service, "auth_failed");
            let labels = UserLabels::of(service, &user);
            PgMetrics::of(&session.metrics)
                .auth_failures
                .get_or_create(&labels)
                .inc();
            let _ = client.send(&error).await;
            None
        }
        _ => None,
    }
}

/// The admin console, for `auth.admin_users` only.
async fn console(session: &Session, pools: &PgPools, login: &Login, client: &mut Wire) {
    let service = &session.service;
    let admin = service
        .spec
        .auth
        .as_ref()
        .is_some_and(|a| a.admin_users.contains(&login.user));
    if !admin {
        let text = format!("user \"{}\" may not use the admin console", login.user);
        let _ = client.send(&build::error("FATAL", "42501", &text)).await;
        return;
    }
    let console = super::console::Console {
        service,
        pools,
        gateway: &session.gateway,
    };
    console.serve(client).await;
}

/// A logged-in client's session until it leaves, the gateway stops, or the console's KILL
/// or KILL_CLIENT ends it (the client is then told so, as PostgreSQL tells it).
async fn pooled(session: Session, pools: Arc<PgPools>, login: Login, mut client: Wire) {
    let service = session.service.clone();
    let kill = session.hard_stop.child_token();
    // With `auth` the user is known; without, only once a server has accepted it.
    let user_metrics = match service.spec.auth {
        Some(_) => ClientMetrics::of(
            PgMetrics::of(&session.metrics),
            &UserLabels::of(&service, &login.user),
        ),
        None => ClientMetrics::detached(),
    };
    let mut s = PgSession {
        user_metrics,
        metrics: session.metrics.clone(),
        cancel: Registration::new(
            ClientInfo {
                service: service.key(),
                user: login.user.clone(),
                database: login.database.clone(),
                peer: session.peer,
                since: std::time::SystemTime::now(),
                pinned: Default::default(),
            },
            kill.clone(),
        ),
        wanted: Vec::new(),
        statements: Statements::default(),
        state: Default::default(),
        held: Vec::new(),
        parked: None,
        flow: Flow::default(),
        lease: None,
        to_client: BytesMut::new(),
        to_server: BytesMut::new(),
        skip_to_sync: false,
        lost: None,
        closing: false,
        counters: [None, None],
        traffic: Tally::default(),
        query: None,
        active_at: Instant::now(),
        pool_cache: Vec::new(),
        served: None,
        pool_mode: service.spec.pg.pool_mode_for(&login.user),
        service,
        pools,
        login,
    };
    let killed = tokio::select! {
        // A killed client is not served one more message first.
        biased;
        () = kill.cancelled() => !session.hard_stop.is_cancelled(),
        () = s.run(&mut client) => false,
    };
    s.finish().await;
    if killed && !client.cut_off() {
        // PostgreSQL's own words and code for pg_terminate_backend, which drivers know; a
        // client that reads nothing does not hold its task.
        let text = "terminating connection due to administrator command";
        let fatal = build::error("FATAL", "57P01", text);
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, client.send(&fatal)).await;
    }
}

/// Counts the client against `max_client_conn` while it is connected.
struct ClientSlot(Arc<PgPools>);

impl ClientSlot {
    fn take(pools: &Arc<PgPools>) -> ClientSlot {
        pools.clients.fetch_add(1, Ordering::Relaxed);
        ClientSlot(pools.clone())
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) struct PgSession {
    pub(super) service: Arc<ServiceRuntime>,
    /// The service's `pool_mode`, or the one `user_settings` gives this client's user.
    pub(super) pool_mode: crate::config::PoolMode,
    pub(super) pools: Arc<PgPools>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) login: Login,
    pub(super) cancel: Registration,
    /// The tracked parameters as this client knows them.
    pub(super) wanted: Vec<(Bytes, Bytes)>,
    pub(super) statements: Statements,
    /// Session state beyond the tracked parameters (transaction mode).
    pub(super) state: super::state::Tracker,
    /// Named Parse messages between transactions, not yet answered: a Sync next answers
    /// them without a server (see `answer_locally`), anything else sends them on.
    pub(super) held: Vec<throome_pgwire::Frame>,
    /// A client message waiting for the server's answers (see `Flow::unsettled`); the
    /// client's later messages wait behind it.
    pub(super) parked: Option<throome_pgwire::Frame>,
    pub(super) flow: Flow,
    pub(super) lease: Option<Lease>,
    pub(super) to_client: BytesMut,
    pub(super) to_server: BytesMut,
    /// After a failure in the extended protocol: drop client messages up to Sync.
    pub(super) skip_to_sync: bool,
    /// The server went away while the client had nothing outstanding: the error it is
    /// told with its next message.
    pub(super) lost: Option<Bytes>,
    /// The client's session ends once what it is owed went out (its server was lost in
    /// session mode).
    pub(super) closing: bool,
    /// Per-user counters and wait histogram.
    pub(super) user_metrics: ClientMetrics,
    /// The lease carried client messages (a transaction to count when it is released).
    pub(super) served: Option<Instant>,
    /// The pools this client used, by backend index.
    pub(super) pool_cache: Vec<Option<Arc<super::pool::Pool>>>,
    /// `throome_requests_total` for queries and transactions.
    pub(super) counters: [Option<prometheus_client::metrics::counter::Counter>; 2],
    /// Not yet added to the totals (they are between transactions).
    pub(super) traffic: Tally,
    /// While a server answer is outstanding: when it was asked (for SHOW STATS'
    /// `total_query_time` and `query_timeout`), and whether it was cancelled already.
    pub(super) query: Option<(Instant, bool)>,
    /// The last whole client message or server answer: the idle limits count from it, so
    /// a client trickling the bytes of one message (slowloris) is not busy.
    pub(super) active_at: Instant,
}

impl PgSession {
    async fn run(&mut self, client: &mut Wire) {
        if !Box::pin(self.welcome(client)).await {
            return;
        }
        if self.service.spec.auth.is_none() {
            // Unchecked names logging in as the service's `username` count as that user.
            let user = self
                .service
                .spec
                .username
                .as_ref()
                .unwrap_or(&self.login.user);
            let labels = UserLabels::of(&self.service, user);
            self.user_metrics = ClientMetrics::of(PgMetrics::of(&self.metrics), &labels);
        }
        loop {
            match self.on_client_frames(client).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
            self.clock_query();
            if !self.to_client.is_empty() {
                if client.send(&self.to_client).await.is_err() {
                    return;
                }
                self.traffic.sent += self.to_client.len() as u64;
                self.to_client.clear();
                if self.lease.is_none() {
                    self.flush_traffic();
                }
            }
            if self.closing {
                return;
            }
            let limit = self.idle_limit();
            let read = async {
                match self.lease.as_mut() {
                    Some(lease) => tokio::select! {
                        r = client.fill() => Read::Client(r),
                        r = lease.server.wire.fill() => Read::Server(r),
                    },
                    None => Read::Client(client.fill().await),
                }
            };
            let read = match limit {
                Some((limit, then)) => tokio::time::timeout(limit, read)
                    .await
                    .unwrap_or(Read::Timeout(then)),
                None => read.await,
            };
            match read {
                Read::Server(Ok(())) => {
                    self.active_at = Instant::now();
                    self.on_server_frames();
                }
                Read::Server(Err(_)) => self.server_lost(None),
                Read::Client(Ok(())) => {}
                Read::Client(Err(_)) => return,
                Read::Timeout(Expired::Close((code, text))) => {
                    // `finish` then closes a server left mid-transaction (PostgreSQL rolls
                    // it back) and gives back a clean one.
                    let kind = if code == "25P03" {
                        "idle_transaction_timeout"
                    } else {
                        "client_idle_timeout"
                    };
                    self.metrics.error(&self.service, kind);
                    tracing::info!(service = %self.service.key(), reason = kind, "client closed for idling");
                    let _ = client.send(&build::error("FATAL", code, text)).await;
                    return;
                }
                Read::Timeout(Expired::Cancel) => self.cancel_query(),
                Read::Timeout(Expired::Abandon) => self.abandon_query(),
            }
        }
    }

    /// Handles every whole client message read so far; false when the client is done.
    async fn on_client_frames(&mut self, client: &mut Wire) -> Result<bool, WireError> {
        if self.closing {
            return Ok(true);
        }
        loop {
            let frame = match self.parked.take() {
                Some(parked) => parked,
                None => match client.try_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        let text = format!("invalid message: {e}");
                        let _ = client.send(&build::error("FATAL", "08P01", &text)).await;
                        return Ok(false);
                    }
                },
            };
            if self.skip_to_sync {
                if frame.tag() == msg::front::SYNC {
                    self.skip_to_sync = false;
                    self.to_client
                        .extend_from_slice(&build::ready_for_query(b'I'));
                }
                continue;
            }
            if self.pool_mode == PoolMode::Transaction
                && super::relay::statement_named(&frame)
                    .is_some_and(|name| self.flow.unsettled(name))
            {
                // Back when the server has answered what it hangs on.
                self.parked = Some(frame);
                break;
            }
            self.traffic.received += frame.bytes().len() as u64;
            self.active_at = Instant::now();
            if frame.tag() == msg::front::TERMINATE {
                return Ok(false);
            }
            if let Some(error) = self.lost.take() {
                self.report_lost(error, frame.tag());
                continue;
            }
            // The server skips to Sync after an error, and so does the client's batch.
            if self.flow.skipping() && frame.tag() != msg::front::SYNC {
                continue;
            }
            if self.pool_mode == PoolMode::Transaction {
                if self.deallocate(&frame) {
                    continue;
                }
                if self.lease.is_none() && self.flow.is_empty() && self.answer_locally(&frame) {
                    continue;
                }
            }
            if let Some(database) = super::dbops::needs_alone(&frame) {
                self.pools.reconnect(Some(&database));
            }
            let held = std::mem::take(&mut self.held);
            if self.lease.is_none() {
                let first = held.first().unwrap_or(&frame).clone();
                if let Err(e) = self.acquire(Some(first)).await {
                    self.refuse(&e, frame.tag());
                    continue;
                }
            }
            for frame in held.into_iter().chain([frame]) {
                match self.forward(frame) {
                    Outcome::Done => {}
                    Outcome::Terminate => return Ok(false),
                    Outcome::Violation(error) => {
                        let _ = client.send(&error).await;
                        return Ok(false);
                    }
                }
            }
        }
        if !self.to_server.is_empty()
            && let Some(lease) = self.lease.as_mut()
        {
            if lease.server.wire.send(&self.to_server).await.is_err() {
                self.server_lost(None);
            }
            self.to_server.clear();
        }
        Ok(true)
    }

    /// Counts a query or a transaction (`throome_requests_total{command}`); the handles are
    /// looked up once per client.
    pub(super) fn count(&mut self, what: &'static str) {
        let slot = usize::from(what == "transaction");
        match slot {
            1 => {
                self.traffic.xacts += 1;
                self.user_metrics.transactions.inc()
            }
            _ => {
                self.traffic.queries += 1;
                self.user_metrics.queries.inc()
            }
        };
        let counter = self.counters[slot].get_or_insert_with(|| {
            let labels = crate::metrics::RequestLabels {
                cluster: self.service.cluster.clone(),
                service: self.service.name.clone(),
                command: what.to_string(),
            };
            self.metrics.requests.get_or_create(&labels).clone()
        });
        counter.inc();
    }
}
