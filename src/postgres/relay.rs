//! Messages between a client and its lent server: the client's on their way (renamed in
//! transaction mode, as they are in session mode), the server's back (dropped where the
//! proxy asked for itself, errors named in the client's terms), and what the server's
//! answers settle about statements.

use std::time::Instant;

use throome_pgwire::msg;

use super::flow::{Action, Expect, Learned};
use super::frontend::{self, Outcome};
use super::params;
use super::session::PgSession;
use crate::config::PoolMode;

impl PgSession {
    /// Sends one client message to the lent server: renamed statements in transaction mode,
    /// as it is in session mode.
    pub(super) fn forward(&mut self, frame: throome_pgwire::Frame) -> Outcome {
        // Held messages after one that failed are skipped like the rest of the batch.
        if self.flow.skipping() && frame.tag() != msg::front::SYNC {
            return Outcome::Done;
        }
        if matches!(frame.tag(), msg::front::QUERY | msg::front::SYNC) {
            self.count("query");
        }
        if self.lease.is_none() {
            return Outcome::Done;
        }
        self.served.get_or_insert_with(Instant::now);
        if self.tracks()
            && let Some(refused) = self.note_effects(&frame)
        {
            return refused;
        }
        if frame.tag() == msg::front::QUERY
            && let Some(query) = msg::query(frame.body())
                .and_then(|sql| super::reset::rewrite(sql, &self.login.params))
        {
            self.flow.push(Expect::Reset { answered: false });
            self.to_server.extend_from_slice(&query);
            self.statements.unnamed = None;
            if let Some(lease) = self.lease.as_mut() {
                lease.server.unnamed = None;
            }
            return Outcome::Done;
        }
        let Some(lease) = self.lease.as_mut() else {
            return Outcome::Done;
        };
        let outcome = match self.pool_mode {
            PoolMode::Transaction => frontend::translate(
                frame,
                &mut lease.server,
                &mut self.statements,
                &mut self.flow,
                &mut self.to_server,
            ),
            PoolMode::Session => frontend::pass(&frame, &mut self.flow, &mut self.to_server),
        };
        self.flow
            .take_made(&mut self.to_client, lease.server.status);
        outcome
    }

    /// Passes on (or drops) the whole server messages read so far; releases the server at
    /// the end of a transaction.
    pub(super) fn on_server_frames(&mut self) {
        let mut learned = Vec::new();
        while let Some(lease) = self.lease.as_mut() {
            let frame = match lease.server.wire.try_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return self.server_lost(None),
            };
            let body = frame.body();
            match frame.tag() {
                // FATAL or PANIC: the server is going away (shutdown, pg_terminate_backend);
                // see `server_lost` for what the client is told.
                msg::back::ERROR_RESPONSE
                    if matches!(msg::field(body, b'V'), Some(b"FATAL" | b"PANIC")) =>
                {
                    return self.server_lost(Some(frame.into_bytes()));
                }
                msg::back::PARAMETER_STATUS => {
                    if let Some((name, value)) = msg::parameter_status(body) {
                        lease.server.set_param(name, value);
                        params::remember(&mut self.wanted, name, value);
                    }
                }
                msg::back::READY_FOR_QUERY => {
                    lease.server.status = msg::ready_status(body).unwrap_or(b'E');
                }
                _ => {}
            }
            let status = lease.server.status;
            let server_pid = lease.server.pid;
            if self.flow.hidden_ahead() {
                self.on_read_back(&frame);
            }
            if self.flow.on_server(frame.tag(), &mut learned) == Action::Forward {
                let renamed = match frame.tag() {
                    msg::back::ERROR_RESPONSE => self.statements.in_client_terms(frame.bytes()),
                    msg::back::NOTIFICATION_RESPONSE => {
                        own_notification(frame.bytes(), server_pid, self.cancel.pid())
                    }
                    _ => None,
                };
                self.to_client
                    .extend_from_slice(renamed.as_deref().unwrap_or(frame.bytes()));
            }
            self.flow.take_made(&mut self.to_client, status);
        }
        self.apply_read_back();
        let Some(lease) = self.lease.as_mut() else {
            return;
        };
        let mut undone = Vec::new();
        for change in learned {
            match change {
                // An unnamed Parse that failed (or was skipped) leaves none.
                Learned::Unprepared(name) if name.is_empty() => {
                    lease.server.unnamed = None;
                    self.statements.unnamed = None;
                }
                Learned::Unprepared(name) => lease.server.prepared.remove(&name),
                Learned::StillPrepared(name) if name.is_empty() => {}
                Learned::StillPrepared(name) => lease.server.prepared.restore(name),
                Learned::Undone(undo) => undone.push(undo),
            }
        }
        for undo in undone.into_iter().rev() {
            self.statements.undo(undo);
        }
        // The answer is in: its time ends before the server's lease does.
        self.clock_query();
        self.maybe_release();
    }
}

/// A NotificationResponse the client's own session sent (its NOTIFY, on its lent server)
/// names the process id the client was shown, as PostgreSQL names the listener's own
/// backend: drivers tell their own notifications apart by it.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTIFICATIONRESPONSE>
fn own_notification(message: &[u8], server_pid: i32, shown: i32) -> Option<bytes::Bytes> {
    let pid = i32::from_be_bytes(message.get(5..9)?.try_into().ok()?);
    if pid != server_pid || pid == shown {
        return None;
    }
    let mut out = message.to_vec();
    out[5..9].copy_from_slice(&shown.to_be_bytes());
    Some(out.into())
}

/// The client statement a message names: a named Parse's, Bind's, Describe's or Close's,
/// or a SQL `DEALLOCATE`'s.
pub(super) fn statement_named(frame: &throome_pgwire::Frame) -> Option<&[u8]> {
    let body = frame.body();
    let name = match frame.tag() {
        msg::front::PARSE => msg::parse(body)?.0,
        msg::front::BIND => msg::bind(body)?.1,
        msg::front::DESCRIBE | msg::front::CLOSE => match msg::target(body)? {
            (b'S', name) => name,
            _ => return None,
        },
        _ => return None,
    };
    (!name.is_empty()).then_some(name)
}
