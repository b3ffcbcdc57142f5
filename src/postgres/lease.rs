//! Lending servers to a client and taking them back: which server (primary, or a replica
//! for read-only work), the client's parameters replayed on it, release at the end of a
//! transaction, and what the client is told when none can be had or one is lost.

use std::sync::Arc;

use bytes::Bytes;

use throome_pgwire::{build, msg};

use super::cancel::Target;
use super::flow::Flow;
use super::params;
use super::pool::{self, LeaseError};
use super::session::PgSession;
use super::upstream::{ServerError, login_credential};
use crate::config::PoolMode;

impl PgSession {
    /// At the end of a transaction: counted, and in transaction mode the server goes back
    /// to the pool once nothing is owed. In session mode the server stays and the
    /// transaction's own time is what SHOW STATS counts (PgBouncer's `total_xact_time`).
    pub(super) fn maybe_release(&mut self) {
        let idle = self.lease.as_ref().is_some_and(|l| {
            l.server.status == b'I' && l.server.wire.buf.is_empty() && self.flow.is_empty()
        });
        if !idle || self.read_back_due() {
            return;
        }
        let served = self.served.take();
        if served.is_some() {
            self.count("transaction");
        }
        if self.state.broken {
            // What the client left on it is unknown: it serves no one else.
            self.drop_server();
            return;
        }
        let pinned = self.state.pin.is_some();
        match self.pool_mode {
            PoolMode::Transaction if !pinned => {
                self.cancel.set(None);
                if let Some(lease) = self.lease.take() {
                    let held = lease.release();
                    self.add_held(held);
                }
            }
            _ => {
                if let Some(began) = served {
                    self.traffic.xact_us += began.elapsed().as_micros() as u64;
                }
            }
        }
    }

    /// Closes the lent server instead of giving it back.
    fn drop_server(&mut self) {
        self.cancel.set(None);
        self.lease = None;
        self.forget_server_state();
    }
    /// Lends this client a server: a replica for read-only work when the service splits
    /// reads, otherwise the primary; then makes its parameters the client's.
    pub(super) async fn acquire(
        &mut self,
        first: Option<throome_pgwire::Frame>,
    ) -> Result<(), LeaseError> {
        let read_only = self.service.spec.pg.read_write_split
            && first
                .as_ref()
                .and_then(|f| super::split::first_sql(f, &self.statements))
                .is_some_and(|sql| super::split::is_read_only(&sql));
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
        let pool = self.pool_of(index);
        let credential = login_credential(&self.service, self.login.credential.as_ref());
        let (mut lease, waited) = pool::lease(
            &self.service,
            &self.pools,
            &pool,
            backend,
            credential.as_ref(),
        )
        .await?;
        self.user_metrics.wait.observe(waited);
        self.traffic.wait_us += (waited * 1e6) as u64;
        let server = &mut lease.server;
        // Clients of one application mostly share their parameters: a server found in
        // step with them needs no comparison (callgrind: 1,000 instructions a transaction).
        let in_step = server.synced.as_deref() == Some(self.wanted.as_slice());
        let sql = if in_step {
            String::new()
        } else {
            params::set_sql(&self.wanted, &server.params, &server.applied)
        };
        if sql.is_empty() {
            if !in_step {
                server.synced = Some(self.wanted.clone());
            }
        } else {
            // Pipelined with the client's first message, unless the session user or role
            // changes: a failure there must stop the client's statements from running
            // with other rights (and at login the client is shown the outcome).
            let identity = self
                .wanted
                .iter()
                .chain(&server.applied)
                .any(|(n, _)| params::is_identity(n));
            if first.is_some() && !identity {
                self.to_server.extend_from_slice(&build::query(&sql));
                self.flow.push(super::flow::Expect::Hidden);
                server.unnamed = None;
            } else {
                super::hidden::run(server, &sql).await?;
            }
            server.record_applied(&self.wanted);
        }
        self.cancel.set(Some(Target::lent(&lease)));
        self.lease = Some(lease);
        Ok(())
    }
    /// The pool of server connections to backend `index` for this client's login, looked up
    /// once per backend.
    fn pool_of(&mut self, index: usize) -> Arc<pool::Pool> {
        if let Some(Some(p)) = self.pool_cache.get(index) {
            return p.clone();
        }
        let (user, database) = self.server_login();
        let key = pool::PoolKey {
            backend: index,
            user,
            database,
        };
        let p = self.pools.pool(&key, &self.service);
        super::maintain::start(&self.service, &p);
        if self.pool_cache.len() <= index {
            self.pool_cache.resize(index + 1, None);
        }
        self.pool_cache[index] = Some(p.clone());
        p
    }

    /// The user and database the proxy logs in to servers with for this client.
    pub(super) fn server_login(&self) -> (String, String) {
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
    pub(super) fn refuse(&mut self, e: &LeaseError, tag: u8) {
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
    /// The server connection ended; `fatal` is the server's own last word (FATAL from
    /// `pg_terminate_backend`, `idle_in_transaction_session_timeout`, a shutdown), if any.
    /// In session mode the client owned that server: it gets that error (or 08006) and is
    /// closed, as the server closes it. In transaction mode the client stays: the server's
    /// error, as an ERROR, takes the place of each answer owed, and the next message gets
    /// another server; a client with nothing outstanding hears of it with its next message
    /// (an unsolicited error would make drivers drop the connection).
    pub(super) fn server_lost(&mut self, fatal: Option<Bytes>) {
        self.metrics.error(&self.service, "backend_io");
        self.lease = None;
        self.forget_server_state();
        self.served = None;
        self.cancel.set(None);
        let owed = self.flow.pending_ready();
        self.flow = Flow::default();
        if self.pool_mode == PoolMode::Session {
            let error = fatal.unwrap_or_else(|| lost_error("FATAL"));
            self.to_client.extend_from_slice(&error);
            self.closing = true;
            return;
        }
        let error = fatal.map_or_else(|| lost_error("ERROR"), |e| as_error(&e));
        if owed == 0 {
            self.lost = Some(error);
            return;
        }
        // Every batch still owed an answer gets the error: a Query or Sync pipelined behind
        // the first would otherwise get a bare ReadyForQuery, and a driver takes that for
        // success (a COMMIT the server never saw, acknowledged).
        for _ in 0..owed {
            self.to_client.extend_from_slice(&error);
            self.to_client
                .extend_from_slice(&build::ready_for_query(b'I'));
        }
    }
    /// The deferred report of a lost server, in place of the answer to `tag`.
    pub(super) fn report_lost(&mut self, error: Bytes, tag: u8) {
        self.to_client.extend_from_slice(&error);
        match tag {
            msg::front::QUERY | msg::front::SYNC => {
                self.to_client
                    .extend_from_slice(&build::ready_for_query(b'I'));
            }
            _ => self.skip_to_sync = true,
        }
    }
    /// The client left: a server in a clean state goes back (after `DISCARD ALL` in session
    /// mode); one mid-transaction or mid-reply is closed, so nothing leaks to the next client.
    pub(super) async fn finish(&mut self) {
        self.cancel.set(None);
        self.give_back().await;
        self.flush_traffic();
    }

    async fn give_back(&mut self) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let clean = lease.server.status == b'I' && self.flow.is_empty();
        if !clean {
            // Closing the connection does not stop a running query (PostgreSQL notices only
            // when it next writes): cancel it so the server is not busy for nobody.
            if self.flow.owes() {
                let target = Target::of(&lease.server);
                tokio::spawn(async move { super::cancel::send(&target).await });
            }
            return;
        }
        // A tracked client that may have left state beyond settings (which the next
        // client's replay puts right) has it all discarded.
        let leftover = self.state.pin.is_some() || self.state.changes.any();
        let reset = match self.pool_mode {
            PoolMode::Session => self.service.spec.pg.server_reset_query.clone(),
            PoolMode::Transaction if leftover && self.tracks() => "DISCARD ALL".into(),
            PoolMode::Transaction => String::new(),
        };
        self.forget_server_state();
        if !reset.trim().is_empty() {
            if super::hidden::run(&mut lease.server, &reset).await.is_err() {
                return;
            }
            // What the proxy knows of the server must stay true: it forgets only what the
            // reset query dropped.
            let (prepared, settings) = reset_drops(&reset);
            if prepared {
                lease.server.prepared.clear();
            }
            if settings {
                lease.server.forget_applied();
            }
        }
        let held = lease.release();
        match self.pool_mode {
            PoolMode::Transaction => self.add_held(held),
            // Its transactions' time is counted already.
            PoolMode::Session => {
                self.user_metrics.server_time.inc_by(held.as_secs_f64());
            }
        }
    }

    /// `held`: how long the client just held a server.
    fn add_held(&mut self, held: std::time::Duration) {
        self.traffic.xact_us += held.as_micros() as u64;
        self.user_metrics.server_time.inc_by(held.as_secs_f64());
    }

    /// Adds the bytes this client moved and the time it waited, since the last call, to
    /// the service's totals and its user's counters (between transactions, once the
    /// answer went out).
    pub(super) fn flush_traffic(&mut self) {
        let tally = std::mem::take(&mut self.traffic);
        self.pools.totals.add(tally);
        self.user_metrics.received.inc_by(tally.received);
        self.user_metrics.sent.inc_by(tally.sent);
        if tally.query_us > 0 {
            self.user_metrics
                .query_time
                .inc_by(tally.query_us as f64 / 1e6);
        }
    }
}

fn lost_error(severity: &str) -> Bytes {
    build::error(
        severity,
        "08006",
        "server connection lost; the transaction, if any, is gone",
    )
}

/// A server's FATAL (or PANIC) ErrorResponse with severity ERROR, code and text kept: the
/// client's connection goes on.
fn as_error(fatal: &[u8]) -> Bytes {
    let fields = msg::fields(fatal.get(5..).unwrap_or_default()).map(|(kind, value)| match kind {
        b'S' | b'V' => (kind, &b"ERROR"[..]),
        _ => (kind, value),
    });
    build::fields(b'E', fields)
}
pub(super) fn lease_error(e: &LeaseError) -> Bytes {
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

/// Whether a reset query drops the server's prepared statements (`DISCARD ALL`,
/// `DEALLOCATE ALL`) and its session settings (`DISCARD ALL`, `RESET ALL`).
fn reset_drops(query: &str) -> (bool, bool) {
    let q = query.to_ascii_uppercase();
    let has = |words: &str| {
        let words: Vec<&str> = words.split(' ').collect();
        let all: Vec<&str> = q
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        all.windows(words.len()).any(|w| w == words.as_slice())
    };
    let discard = has("DISCARD ALL");
    (
        discard || has("DEALLOCATE ALL"),
        discard || has("RESET ALL"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_a_reset_query_drops() {
        assert_eq!(super::reset_drops("DISCARD ALL"), (true, true));
        assert_eq!(super::reset_drops("discard  all;"), (true, true));
        assert_eq!(
            super::reset_drops("RESET ALL; DEALLOCATE ALL"),
            (true, true)
        );
        assert_eq!(super::reset_drops("RESET ALL"), (false, true));
        assert_eq!(super::reset_drops("DEALLOCATE ALL"), (true, false));
        assert_eq!(super::reset_drops("SELECT 1"), (false, false));
        assert_eq!(super::reset_drops(""), (false, false));
    }
}
