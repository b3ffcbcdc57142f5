//! One client connection: startup and authentication, then a loop that lends it a server
//! connection when it sends something and takes it back at the end of each transaction
//! (`pool_mode: transaction`) or when it leaves (`pool_mode: session`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;

use throome_pgwire::{build, msg};

use super::cancel::{Registration, Target};
use super::flow::{Action, Flow};
use super::frontend::{self, Outcome};
use super::io::{Wire, WireError};
use super::params;
use super::pool::{self, Lease, LeaseError, PgPools};
use super::startup::{self, Login, Opening};
use super::statements::Statements;
use super::upstream::ServerError;
use crate::config::PoolMode;
use crate::metrics::Metrics;
use crate::session::Session;
use crate::snapshot::ServiceRuntime;

const LOGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn serve(session: Session, stream: TcpStream) {
    let service = session.service.clone();
    let pools = PgPools::of(&service);
    let _ = stream.set_nodelay(true);
    let mut client = Wire::new(stream, throome_pgwire::DEFAULT_MAX_MESSAGE);
    let _slot = ClientSlot::take(&pools);
    if pools.clients.load(Ordering::Relaxed) > service.spec.pg.max_client_conn {
        session.metrics.error(&service, "max_client_conn");
        let _ = client
            .send(&build::error(
                "FATAL",
                "53300",
                "sorry, too many clients already",
            ))
            .await;
        return;
    }
    let login =
        match tokio::time::timeout(LOGIN_TIMEOUT, startup::open(&mut client, &service)).await {
            Ok(Ok(Opening::Login(login))) => login,
            Ok(Ok(Opening::Refused(error))) => {
                if error.windows(5).any(|w| w == b"28P01") {
                    session.metrics.error(&service, "auth_failed");
                }
                let _ = client.send(&error).await;
                return;
            }
            _ => return,
        };
    let mut s = PgSession {
        metrics: session.metrics.clone(),
        cancel: Registration::new(),
        wanted: Vec::new(),
        statements: Statements::default(),
        flow: Flow::default(),
        lease: None,
        to_client: BytesMut::new(),
        to_server: BytesMut::new(),
        skip_to_sync: false,
        service,
        pools,
        login,
    };
    tokio::select! {
        () = s.run(&mut client) => {}
        () = session.hard_stop.cancelled() => {}
    }
    s.finish().await;
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

struct PgSession {
    service: Arc<ServiceRuntime>,
    pools: Arc<PgPools>,
    metrics: Arc<Metrics>,
    login: Login,
    cancel: Registration,
    /// The tracked parameters as this client knows them.
    wanted: Vec<(Bytes, Bytes)>,
    statements: Statements,
    flow: Flow,
    lease: Option<Lease>,
    to_client: BytesMut,
    to_server: BytesMut,
    /// After a failure in the extended protocol: drop client messages up to Sync.
    skip_to_sync: bool,
}

impl PgSession {
    async fn run(&mut self, client: &mut Wire) {
        if !self.welcome(client).await {
            return;
        }
        loop {
            match self.on_client_frames(client).await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
            if !self.to_client.is_empty() {
                if client.send(&self.to_client).await.is_err() {
                    return;
                }
                self.to_client.clear();
            }
            let read = match self.lease.as_mut() {
                Some(lease) => tokio::select! {
                    r = client.fill() => r.map(|()| false),
                    r = lease.server.wire.fill() => match r {
                        Ok(()) => Ok(true),
                        Err(_) => { self.server_lost(); continue; }
                    },
                },
                None => client.fill().await.map(|()| false),
            };
            match read {
                Ok(true) => self.on_server_frames(),
                Ok(false) => {}
                Err(_) => return,
            }
        }
    }

    /// Authentication is done: AuthenticationOk went out; now the server parameters, our
    /// BackendKeyData and ReadyForQuery. A first server connection supplies the parameters
    /// (and proves the database exists).
    async fn welcome(&mut self, client: &mut Wire) -> bool {
        for (k, v) in &self.login.params {
            if params::is_tracked(k.as_bytes()) {
                self.wanted
                    .push((Bytes::from(k.clone()), Bytes::from(v.clone())));
            }
        }
        let (user, database) = self.server_login();
        let server_params = match self.pools.welcome(&user, &database) {
            Some(p) => p,
            None => {
                if let Err(e) = self.acquire(None).await {
                    let _ = client.send(&lease_error(&e)).await;
                    return false;
                }
                match &self.lease {
                    Some(lease) => lease.server.params.clone(),
                    None => return false,
                }
            }
        };
        // The client's own startup values win over the server's defaults; they are applied
        // on every server it is given.
        let mut shown = server_params;
        for (name, value) in &self.wanted {
            match shown.iter_mut().find(|(n, _)| n == name) {
                Some(p) => p.1 = value.clone(),
                None => shown.push((name.clone(), value.clone())),
            }
        }
        let mut out = BytesMut::new();
        params::announce(&shown, &mut out);
        self.wanted = shown
            .iter()
            .filter(|(n, _)| params::is_tracked(n))
            .cloned()
            .collect();
        out.extend_from_slice(&build::backend_key_data(self.cancel.pid, &self.cancel.key));
        out.extend_from_slice(&build::ready_for_query(b'I'));
        self.maybe_release();
        client.send(&out).await.is_ok()
    }

    /// Handles every whole client message read so far; false when the client is done.
    async fn on_client_frames(&mut self, client: &mut Wire) -> Result<bool, WireError> {
        while let Some(frame) = match client.try_frame() {
            Ok(f) => f,
            Err(e) => {
                let text = format!("invalid message: {e}");
                let _ = client.send(&build::error("FATAL", "08P01", &text)).await;
                return Ok(false);
            }
        } {
            if self.skip_to_sync {
                if frame.tag() == msg::front::SYNC {
                    self.skip_to_sync = false;
                    self.to_client
                        .extend_from_slice(&build::ready_for_query(b'I'));
                }
                continue;
            }
            if frame.tag() == msg::front::TERMINATE {
                return Ok(false);
            }
            if self.lease.is_none() && self.flow.is_empty() && self.answer_locally(&frame) {
                continue;
            }
            if self.lease.is_none()
                && let Err(e) = self.acquire(Some(frame.clone())).await
            {
                self.refuse(&e, frame.tag());
                continue;
            }
            if matches!(frame.tag(), msg::front::QUERY | msg::front::SYNC) {
                self.count("query");
            }
            let Some(lease) = self.lease.as_mut() else {
                continue;
            };
            let outcome = frontend::translate(
                frame,
                &mut lease.server,
                &mut self.statements,
                &mut self.flow,
                &mut self.to_server,
            );
            self.flow.take_made(&mut self.to_client);
            match outcome {
                Outcome::Done => {}
                Outcome::Terminate => return Ok(false),
                Outcome::Violation(error) => {
                    let _ = client.send(&error).await;
                    return Ok(false);
                }
            }
        }
        if !self.to_server.is_empty()
            && let Some(lease) = self.lease.as_mut()
        {
            if lease.server.wire.send(&self.to_server).await.is_err() {
                self.server_lost();
            }
            self.to_server.clear();
        }
        Ok(true)
    }

    /// Between transactions, preparing a named statement (Parse, Sync: libpq's `PQprepare`,
    /// pgbench `-M prepared`) and closing one are answered without a server: the statement is
    /// prepared on a server when first used there. A client that prepares on one connection
    /// while its other connections sit in transactions (one thread, synchronous calls) does
    /// not wait for a server that only it could free. A statement with an error reports it
    /// at first use instead.
    fn answer_locally(&mut self, frame: &throome_pgwire::Frame) -> bool {
        let body = frame.body();
        let reply = match frame.tag() {
            msg::front::PARSE => match msg::parse(body) {
                Some((name, query, rest)) if !name.is_empty() => {
                    if self.statements.parse(name, query, rest).is_none() {
                        return false;
                    }
                    build::parse_complete()
                }
                _ => return false,
            },
            msg::front::CLOSE => match msg::target(body) {
                Some((b'S', name)) if !name.is_empty() => {
                    self.statements.close(name);
                    build::close_complete()
                }
                _ => return false,
            },
            msg::front::SYNC => build::ready_for_query(b'I'),
            msg::front::FLUSH => Bytes::new(),
            _ => return false,
        };
        self.to_client.extend_from_slice(&reply);
        true
    }

    /// Passes on (or drops) the whole server messages read so far; releases the server at
    /// the end of a transaction.
    fn on_server_frames(&mut self) {
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        let mut unprepared = Vec::new();
        loop {
            let frame = match lease.server.wire.try_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return self.server_lost(),
            };
            let body = frame.body();
            match frame.tag() {
                msg::back::PARAMETER_STATUS => {
                    if let Some((name, value)) = msg::parameter_status(body) {
                        lease.server.set_param(name, value);
                        remember(&mut self.wanted, name, value);
                    }
                }
                msg::back::READY_FOR_QUERY => {
                    lease.server.status = msg::ready_status(body).unwrap_or(b'E');
                }
                _ => {}
            }
            if self.flow.on_server(frame.tag(), &mut unprepared) == Action::Forward {
                self.to_client.extend_from_slice(frame.bytes());
            }
            self.flow.take_made(&mut self.to_client);
        }
        for name in unprepared {
            lease.server.prepared.remove(&name);
        }
        self.maybe_release();
    }

    /// In transaction mode, an idle server goes back to the pool once nothing is owed.
    fn maybe_release(&mut self) {
        let idle = self.lease.as_ref().is_some_and(|l| {
            l.server.status == b'I' && l.server.wire.buf.is_empty() && self.flow.is_empty()
        });
        if idle && self.service.spec.pg.pool_mode == PoolMode::Transaction {
            self.cancel.set(None);
            if let Some(lease) = self.lease.take() {
                self.count("transaction");
                lease.release();
            }
        }
    }

    /// Lends this client a server: a replica for read-only work when the service splits
    /// reads, otherwise the primary; then makes its parameters the client's.
    async fn acquire(&mut self, first: Option<throome_pgwire::Frame>) -> Result<(), LeaseError> {
        let read_only = self.service.spec.pg.read_write_split
            && first.as_ref().is_some_and(super::split::is_read_only);
        let Some(backend) = self.service.choose_tiered(read_only, &[]) else {
            return Err(LeaseError::Server(ServerError::Connect(
                self.service.name.clone(),
                "no server available".into(),
            )));
        };
        let index = self
            .service
            .backends
            .iter()
            .position(|b| Arc::ptr_eq(b, &backend))
            .unwrap_or_default();
        let (user, database) = self.server_login();
        let mut lease = pool::lease(
            &self.service,
            &self.pools,
            (index, backend),
            &user,
            &database,
        )
        .await?;
        let sql = params::set_sql(&self.wanted, &lease.server.params);
        if !sql.is_empty() {
            super::hidden::run(&mut lease.server, &sql).await?;
        }
        self.cancel.set(Some(Target {
            host: lease.server.backend.host.clone(),
            port: lease.server.backend.port,
            pid: lease.server.pid,
            key: lease.server.key.clone(),
        }));
        self.lease = Some(lease);
        Ok(())
    }

    /// The user and database the proxy logs in to servers with for this client.
    fn server_login(&self) -> (String, String) {
        let spec = &self.service.spec;
        (
            spec.username
                .clone()
                .unwrap_or_else(|| self.login.user.clone()),
            spec.database
                .clone()
                .unwrap_or_else(|| self.login.database.clone()),
        )
    }

    /// No server for this message: the client gets an error where its answer would be.
    fn refuse(&mut self, e: &LeaseError, tag: u8) {
        self.metrics.error(&self.service, lease_error_kind(e));
        self.to_client.extend_from_slice(&lease_error(e));
        match tag {
            msg::front::QUERY | msg::front::SYNC => {
                self.to_client
                    .extend_from_slice(&build::ready_for_query(b'I'));
            }
            _ => self.skip_to_sync = true,
        }
    }

    /// The server connection broke: the client's transaction ends with 08006 and its
    /// slot is freed; the next message gets another server.
    fn server_lost(&mut self) {
        self.metrics.error(&self.service, "backend_io");
        self.lease = None;
        self.cancel.set(None);
        self.to_client.extend_from_slice(&build::error(
            "ERROR",
            "08006",
            "server connection lost; the transaction, if any, is gone",
        ));
        for _ in 0..self.flow.pending_ready().max(1) {
            self.to_client
                .extend_from_slice(&build::ready_for_query(b'I'));
        }
        self.flow = Flow::default();
    }

    /// The client left: a server in a clean state goes back (after `DISCARD ALL` in session
    /// mode); one mid-transaction or mid-reply is closed, so nothing leaks to the next client.
    async fn finish(&mut self) {
        self.cancel.set(None);
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let clean = lease.server.status == b'I' && self.flow.is_empty();
        if !clean {
            return;
        }
        if self.service.spec.pg.pool_mode == PoolMode::Session {
            if super::hidden::run(&mut lease.server, "DISCARD ALL")
                .await
                .is_err()
            {
                return;
            }
            lease.server.prepared.clear();
        }
        lease.release();
    }

    fn count(&self, what: &'static str) {
        let labels = crate::metrics::RequestLabels {
            cluster: self.service.cluster.clone(),
            service: self.service.name.clone(),
            command: what.to_string(),
        };
        self.metrics.requests.get_or_create(&labels).inc();
    }
}

/// A tracked parameter the server reports changed (the client ran SET) is the client's now.
fn remember(wanted: &mut Vec<(Bytes, Bytes)>, name: &[u8], value: &[u8]) {
    if !params::is_tracked(name) {
        return;
    }
    match wanted.iter_mut().find(|(n, _)| n == name) {
        Some(p) => p.1 = Bytes::copy_from_slice(value),
        None => wanted.push((Bytes::copy_from_slice(name), Bytes::copy_from_slice(value))),
    }
}

fn lease_error(e: &LeaseError) -> Bytes {
    match e {
        LeaseError::WaitTimeout(_) => build::error("ERROR", "53300", &e.to_string()),
        LeaseError::Server(ServerError::Refused(error)) => error.clone(),
        LeaseError::Server(e) => build::error("ERROR", "08006", &e.to_string()),
    }
}

fn lease_error_kind(e: &LeaseError) -> &'static str {
    match e {
        LeaseError::WaitTimeout(_) => "pool_timeout",
        LeaseError::Server(ServerError::Refused(_)) => "backend_refused",
        LeaseError::Server(ServerError::Auth(_) | ServerError::AuthMethod(_)) => "backend_auth",
        LeaseError::Server(_) => "connect",
    }
}
