//! Time limits on a client session, PgBouncer's: `query_timeout` cancels a query that runs
//! too long; `idle_transaction_timeout` and `client_idle_timeout` close a client that sits
//! silent inside a transaction or between them, with the errors PostgreSQL's own
//! `idle_in_transaction_session_timeout` and `idle_session_timeout` give.

use std::time::Instant;

use super::cancel::Target;
use super::io::WireError;
use super::session::PgSession;

/// (SQLSTATE, message) for a client closed for idling.
pub(super) type IdleError = (&'static str, &'static str);

/// What the session loop woke up for.
pub(super) enum Read {
    Client(Result<(), WireError>),
    Server(Result<(), WireError>),
    Timeout(Expired),
}

/// What a passed time limit does.
pub(super) enum Expired {
    /// The client is closed with this error.
    Close(IdleError),
    /// The running query is cancelled.
    Cancel,
    /// The cancel did not end the query either (a frozen or unreachable server): the server
    /// is given up, the client gets an error and, in transaction mode, a new server next.
    Abandon,
}

impl PgSession {
    /// `query_timeout` passed: the server gets a CancelRequest (the client then sees
    /// PostgreSQL's own 57014) once per query.
    pub(super) fn cancel_query(&mut self) {
        if let Some(query) = self.query.as_mut() {
            query.1 = true;
        }
        if let Some(lease) = &self.lease {
            let target = Target::of(&lease.server);
            tokio::spawn(async move { super::cancel::send(&target).await });
        }
    }

    /// The server did not end the query after its cancel (frozen, or its postmaster
    /// unreachable): closed, so the client is not held for ever.
    pub(super) fn abandon_query(&mut self) {
        self.metrics.error(&self.service, "query_timeout");
        tracing::warn!(service = %self.service.key(), "server did not answer a cancel within query_timeout: closed");
        let text = "canceling statement due to query_timeout: the server did not answer its cancel request";
        self.query = None;
        self.server_lost(Some(throome_pgwire::build::error("FATAL", "57014", text)));
    }

    /// Starts the query clock when an answer becomes outstanding and adds the time to the
    /// client's totals when none is (PgBouncer's `total_query_time`: the server busy on
    /// this client's behalf, a pipelined run counting as one stretch).
    pub(super) fn clock_query(&mut self) {
        match (!self.flow.owes(), self.query) {
            (false, None) => self.query = Some((Instant::now(), false)),
            (true, Some((started, _))) => {
                self.traffic.query_us += started.elapsed().as_micros() as u64;
                self.query = None;
            }
            _ => {}
        }
    }

    /// How long the loop may wait now, and what happens then. With a server answer
    /// outstanding: `query_timeout` from when the query went out (a cancel). Otherwise the
    /// client is the one expected to speak: `idle_transaction_timeout` inside a
    /// transaction, `client_idle_timeout` otherwise (a close, with the error PostgreSQL's
    /// own idle timeouts give), counted from the last whole message either way. A query
    /// still running `query_timeout` after its cancel is abandoned with its server.
    pub(super) fn idle_limit(&mut self) -> Option<(std::time::Duration, Expired)> {
        let pg = &self.service.spec.pg;
        if self.flow.owes() {
            let limit = pg.query_timeout?;
            let (started, cancelled) = self.query?;
            if cancelled {
                // The cancel gets as long again to work.
                let left = (limit * 2).saturating_sub(started.elapsed());
                return Some((left, Expired::Abandon));
            }
            let left = limit.saturating_sub(started.elapsed());
            return Some((left, Expired::Cancel));
        }
        let idle = self.active_at.elapsed();
        match self.lease.as_ref().map(|l| l.server.status) {
            Some(b'T' | b'E') => pg.idle_transaction_timeout.map(|t| {
                let text = "terminating connection due to idle-in-transaction timeout";
                (t.saturating_sub(idle), Expired::Close(("25P03", text)))
            }),
            _ => pg.client_idle_timeout.map(|t| {
                let text = "terminating connection due to idle-session timeout";
                (t.saturating_sub(idle), Expired::Close(("57P05", text)))
            }),
        }
    }
}
