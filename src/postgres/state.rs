//! Each client's session state in transaction pooling (`session_state: track`). A client's
//! settings, role and session user are replayed on whichever server it gets (`params.rs`);
//! state that cannot be replayed (temporary tables, session advisory locks, LISTEN,
//! WITH HOLD cursors, SQL PREPARE) keeps the client on its server until it is gone.
//!
//! What the state is, the server says: after a transaction whose text may have changed it
//! (`effects.rs`), and once the server is idle (so `SET LOCAL`, rolled-back `SET`s and
//! failed ones count as PostgreSQL counts them), the proxy reads it back with one query
//! of its own, hidden from the client. Nothing of the state is inferred from the SQL.
//! <https://www.postgresql.org/docs/current/runtime-config-client.html>,
//! <https://www.postgresql.org/docs/current/view-pg-settings.html>.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use prometheus_client::metrics::gauge::Gauge;
use throome_pgwire::{Frame, build, msg};

use super::effects::{self, Effects, Pin, Settings};
use super::flow::Expect;
use super::frontend::Outcome;
use super::pool::Pool;
use super::session::PgSession;
use crate::config::{PoolMode, SessionState};

/// A read-back's rows: (name, value; None for NULL).
type Rows = Vec<(Bytes, Option<Bytes>)>;

/// What the proxy knows of one client's session state.
#[derive(Default)]
pub struct Tracker {
    /// What the current lease may have changed in the session: read back once the server
    /// is idle.
    pub changes: Effects,
    /// Client statements whose text may change state: a Bind of one counts as its text.
    stateful: HashMap<Bytes, Effects>,
    /// The read-back in flight: what it asks, and the rows so far (`failed`: the server
    /// refused it).
    reading: Option<(Effects, Rows)>,
    failed: bool,
    done: bool,
    /// Why the client keeps its server (None: it does not).
    pub pin: Option<Pinned>,
    /// The read-back failed: the server's state is unknown, so it is closed, not pooled.
    pub broken: bool,
    /// The answer to the transaction being read back, held until the state is known: a
    /// client's next message (a LISTEN past `max_pinned`) then finds it settled.
    answer: bytes::BytesMut,
}

/// A client holding its server; counted in its pool (`max_pinned`) and the metrics while
/// it lasts.
pub struct Pinned {
    pub reason: String,
    pool: Arc<Pool>,
    gauge: Gauge,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.pool.pinned.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

impl PgSession {
    /// Whether this client's session state is tracked.
    pub(super) fn tracks(&self) -> bool {
        self.pool_mode == PoolMode::Transaction
            && self.service.spec.pg.session_state == SessionState::Track
    }

    /// Notes what a message on its way to the server may do to the session; a message that
    /// would pin the client past `max_pinned` is answered with an error instead (Some).
    pub(super) fn note_effects(&mut self, frame: &Frame) -> Option<Outcome> {
        let body = frame.body();
        let found = match frame.tag() {
            msg::front::QUERY => msg::query(body).map(effects::scan),
            msg::front::PARSE => msg::parse(body).map(|(name, sql, _)| {
                let found = effects::scan(sql);
                match found.any() && !name.is_empty() {
                    true => {
                        self.state
                            .stateful
                            .insert(Bytes::copy_from_slice(name), found.clone());
                    }
                    false => {
                        self.state.stateful.remove(name);
                    }
                }
                found
            }),
            msg::front::BIND => msg::bind(body)
                .and_then(|(_, name, _)| self.state.stateful.get(name))
                .cloned(),
            // A function call may do anything.
            msg::front::FUNCTION_CALL => Some(Effects {
                settings: Settings::All,
                pin_state: true,
                ..Effects::default()
            }),
            // Closing a portal may end a WITH HOLD cursor.
            msg::front::CLOSE => Some(Effects {
                pin_state: true,
                ..Effects::default()
            }),
            _ => None,
        }?;
        let changes = &mut self.state.changes;
        changes.settings.merge(found.settings);
        changes.pin_state |= found.pin_state;
        changes.pins = changes.pins.or(found.pins);
        let pin = found.pins?;
        if self.state.pin.is_some() {
            return None;
        }
        let pool = self.lease.as_ref()?.pool().clone();
        let max = self.service.spec.pg.max_pinned_for(pool.size());
        if pool.pinned.load(Ordering::Relaxed) < max {
            return None;
        }
        Some(self.refuse_pin(frame.tag(), pin, max))
    }

    /// The error for a statement that would pin one client too many: in a Query the server
    /// raises it (so a transaction block fails as it would on any error), in a Parse the
    /// proxy gives it and the rest of the batch is skipped.
    fn refuse_pin(&mut self, tag: u8, pin: Pin, max: usize) -> Outcome {
        self.metrics.error(&self.service, "max_pinned");
        let text = format!(
            "{} would pin this client to a server, and max_pinned ({max}) clients of its pool \
             are pinned already",
            pin.what()
        );
        if tag == msg::front::QUERY {
            let sql = format!(
                "DO $throome$ BEGIN RAISE EXCEPTION USING ERRCODE = '53300', MESSAGE = {}; \
                 END $throome$",
                super::params::literal(text.as_bytes())
            );
            self.to_server.extend_from_slice(&build::query(&sql));
            self.statements.unnamed = None;
            if let Some(lease) = self.lease.as_mut() {
                lease.server.unnamed = None;
            }
            self.flow.push(Expect::Client {
                ends: super::flow::READY,
                prepares: None,
            });
        } else {
            self.flow.fail(build::error("ERROR", "53300", &text));
        }
        Outcome::Done
    }

    /// At the end of a transaction that may have changed the session's state: the query
    /// that reads it back is sent, and the server stays with the client until it is
    /// answered (true).
    pub(super) fn read_back_due(&mut self) -> bool {
        if !self.state.changes.any() || !self.tracks() {
            return false;
        }
        let mut asked = std::mem::take(&mut self.state.changes);
        // Pin state is asked after what may make it, or drop it while the client has some.
        asked.pin_state &= asked.pins.is_some() || self.state.pin.is_some();
        if !asked.any() {
            return false;
        }
        let sql = super::readback::query(&asked);
        self.state.reading = Some((asked, Vec::new()));
        self.state.answer = std::mem::take(&mut self.to_client);
        self.to_server.extend_from_slice(&build::query(&sql));
        self.flow.push(Expect::Hidden);
        if let Some(lease) = self.lease.as_mut() {
            lease.server.unnamed = None;
        }
        true
    }

    /// One message answering the read-back.
    pub(super) fn on_read_back(&mut self, frame: &Frame) {
        let Some((_, rows)) = self.state.reading.as_mut() else {
            // The replay of the client's settings (`acquire`): had it failed, the server
            // would hold other settings than the proxy believes, so it is not reused.
            if frame.tag() == msg::back::ERROR_RESPONSE {
                self.metrics.error(&self.service, "replay_failed");
                self.state.broken = true;
            }
            return;
        };
        match frame.tag() {
            msg::back::DATA_ROW => {
                if let Some([Some(name), value]) = msg::data_row(frame.body()).as_deref() {
                    let value = value.map(Bytes::copy_from_slice);
                    rows.push((Bytes::copy_from_slice(name), value));
                }
            }
            msg::back::ERROR_RESPONSE => self.state.failed = true,
            msg::back::READY_FOR_QUERY => {
                self.state.done = true;
                // What came while the state was read (notices, notifications) goes after.
                let during = std::mem::take(&mut self.to_client);
                self.to_client = std::mem::take(&mut self.state.answer);
                self.to_client.extend_from_slice(&during);
            }
            _ => {}
        }
    }

    /// Takes in a finished read-back: the client's settings become what the server has,
    /// the server's record of what the proxy set there too, and the pin follows the state.
    pub(super) fn apply_read_back(&mut self) {
        if !std::mem::take(&mut self.state.done) {
            return;
        }
        let Some((asked, rows)) = self.state.reading.take() else {
            return;
        };
        if std::mem::take(&mut self.state.failed) {
            // Its state unknown, the server serves no one else; a pinned client keeps it.
            self.state.broken = self.state.pin.is_none();
            return;
        }
        let login_user = self.server_login().0;
        let pin = super::readback::apply(&asked, rows, &mut self.wanted, &login_user);
        if let Some(lease) = self.lease.as_mut() {
            lease.server.record_applied(&self.wanted);
        }
        if let Some(pin) = pin {
            self.pin_for(&pin);
        }
    }

    /// Pins the client for `reason`, or unpins it when empty.
    fn pin_for(&mut self, reason: &str) {
        self.cancel.set_pinned(reason);
        if reason.is_empty() {
            self.state.pin = None;
            return;
        }
        if let Some(pinned) = self.state.pin.as_mut() {
            reason.clone_into(&mut pinned.reason);
            return;
        }
        let Some(lease) = self.lease.as_ref() else {
            return;
        };
        let pool = lease.pool().clone();
        pool.pinned.fetch_add(1, Ordering::Relaxed);
        let first = reason.split(", ").next().unwrap_or(reason);
        let labels = super::metrics::PinLabels {
            cluster: self.service.cluster.clone(),
            service: self.service.name.clone(),
            reason: first.to_string(),
        };
        let gauge = super::metrics::PgMetrics::of(&self.metrics)
            .pinned
            .get_or_create(&labels)
            .clone();
        gauge.inc();
        self.state.pin = Some(Pinned {
            reason: reason.to_string(),
            pool,
            gauge,
        });
    }

    /// The client's server is gone, and with it whatever pinned the client.
    pub(super) fn forget_server_state(&mut self) {
        if self.state.pin.take().is_some() {
            self.cancel.set_pinned("");
        }
        self.state.reading = None;
        let answer = std::mem::take(&mut self.state.answer);
        self.to_client.extend_from_slice(&answer);
        self.state.changes = Effects::default();
        self.state.failed = false;
        self.state.done = false;
        self.state.broken = false;
    }
}
