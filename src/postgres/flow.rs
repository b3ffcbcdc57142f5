//! Which server message answers which client message. The server answers in order, so a
//! queue of what each sent message expects tells, for every server message, whether it is
//! the client's (forward), the proxy's own (drop: the ParseComplete of a Parse the proxy
//! injected), or where a response the proxy makes up goes (the ParseComplete for a statement
//! the server already has). After an error in the extended protocol the server skips to the
//! next Sync, and so does the queue
//! ([extended query](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY)).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use throome_pgwire::build;

use super::statements::Statement;

/// Server message types that end the answer to a client message.
pub const PARSE: &[u8] = b"1";
pub const BIND: &[u8] = b"2";
pub const CLOSE: &[u8] = b"3";
pub const DESCRIBE: &[u8] = b"Tn";
pub const EXECUTE: &[u8] = b"CIs";
/// Query, FunctionCall: ReadyForQuery (a Sync is `Expect::Sync`).
pub const READY: &[u8] = b"Z";

#[derive(Debug, PartialEq, Eq)]
pub enum Expect {
    /// A client's Sync: ReadyForQuery closes it. After an error in the extended protocol the
    /// server skips everything up to it, Query messages included.
    Sync,
    /// A client message: what the server sends passes through; `ends` closes it. A Parse
    /// the proxy renamed carries the server-side name, to forget if it fails.
    Client {
        ends: &'static [u8],
        prepares: Option<Bytes>,
    },
    /// A Parse the proxy injected so the server has a statement the client prepared
    /// elsewhere: its ParseComplete is dropped.
    Injected { name: Bytes },
    /// A Close the proxy injected to make room for another statement: its CloseComplete is
    /// dropped.
    Evicted { name: Bytes },
    /// A response the proxy makes up, sent when everything before it is answered.
    Made(Bytes),
    /// A client's RESET with the proxy's `set_config` of startup values appended (see
    /// `reset.rs`): the answer up to the first CommandComplete is the client's, the rest
    /// up to ReadyForQuery the proxy's.
    Reset { answered: bool },
    /// What the client's statements were before the message ahead of this entry changed
    /// them (a Parse or Close of a named statement, a DEALLOCATE): if an error makes the
    /// server skip that message, the change is undone.
    Undo(Undo),
    /// The proxy's answer to a simple Query (`DEALLOCATE` of a statement it keeps):
    /// CommandComplete with this tag and ReadyForQuery with the transaction status as of
    /// the answers before it.
    MadeQuery(&'static str),
    /// A Query the proxy sent for itself (the client's settings replayed, its state read
    /// back): everything up to its ReadyForQuery is the proxy's, errors and notices too.
    Hidden,
}

/// A client statement name and the statement it stood for before (None: no statement).
#[derive(Debug, Clone)]
pub struct Undo {
    pub name: Bytes,
    pub previous: Option<Arc<Statement>>,
}

impl PartialEq for Undo {
    fn eq(&self, other: &Undo) -> bool {
        let same = match (&self.previous, &other.previous) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        self.name == other.name && same
    }
}

impl Eq for Undo {}

/// What an ErrorResponse tells about the server's statements: the server skips everything up
/// to the next Sync, so a Parse there never happened, nor did a Close.
#[derive(Debug, PartialEq, Eq)]
pub enum Learned {
    Unprepared(Bytes),
    StillPrepared(Bytes),
    /// A client's change to its statements that the server skipped: to undo (the last
    /// one first).
    Undone(Undo),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    Drop,
}

#[derive(Default)]
pub struct Flow {
    queue: VecDeque<Expect>,
    /// Something went to the server since its last ReadyForQuery: until the next one the
    /// server holds the client's unnamed statement and portal, and may be skipping to Sync.
    open: bool,
    /// The server reported an error in the extended protocol and no Sync has gone to it
    /// since: it ignores everything up to the next Sync, so the client's messages until
    /// then are not sent.
    skipping: bool,
    /// `Expect::Undo` entries queued.
    undos: usize,
    /// Entries queued for messages sent to the server (not made by the proxy): any left
    /// at a ReadyForQuery keep the server `open`.
    bound: usize,
}

impl Flow {
    pub fn push(&mut self, e: Expect) {
        if e == Expect::Sync {
            self.skipping = false;
        }
        self.open |= goes_to_server(&e);
        self.count_in(&e);
        self.queue.push_back(e);
    }

    fn count_in(&mut self, e: &Expect) {
        self.undos += usize::from(matches!(e, Expect::Undo(_)));
        self.bound += usize::from(goes_to_server(e));
    }

    fn pop(&mut self) -> Option<Expect> {
        let e = self.queue.pop_front()?;
        self.undos -= usize::from(matches!(e, Expect::Undo(_)));
        self.bound -= usize::from(goes_to_server(&e));
        Some(e)
    }

    /// Whether what the client's statement `name` stands for hangs on a message the server
    /// has not answered, in a batch that a Sync ended: whether that message is skipped
    /// (an error before it) decides, so a message naming `name` after that Sync waits for
    /// the answer. Inside one batch it need not: an error skips both.
    pub fn unsettled(&self, name: &[u8]) -> bool {
        if self.undos == 0 {
            return false;
        }
        let mut pending = false;
        for e in &self.queue {
            match e {
                Expect::Undo(undo) if undo.name == name => pending = true,
                Expect::Sync if pending => return true,
                _ => {}
            }
        }
        false
    }

    /// An error the proxy gives in place of the server's, in the extended protocol: it
    /// comes when everything before it is answered, and the client's messages up to its
    /// next Sync are skipped, as the server skips them after an error of its own.
    pub fn fail(&mut self, error: Bytes) {
        self.push(Expect::Made(error));
        self.skipping = true;
    }

    /// The server ignores what the client sends before its next Sync (see `skipping`).
    pub fn skipping(&self) -> bool {
        self.skipping
    }

    /// Queues `e` before the last entry (an injected Parse goes before the message that
    /// needs it).
    pub fn insert_before_last(&mut self, e: Expect) {
        let at = self.queue.len().saturating_sub(1);
        self.count_in(&e);
        self.queue.insert(at, e);
    }

    /// Nothing is owed in either direction and the server sent ReadyForQuery last: only
    /// then may it serve another client.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && !self.open
    }

    /// An answer from the server is outstanding.
    pub fn owes(&self) -> bool {
        !self.queue.is_empty()
    }

    /// ReadyForQuery messages still owed to the client.
    pub fn pending_ready(&self) -> usize {
        self.queue
            .iter()
            .filter(|e| ends_in_ready(e) && **e != Expect::Hidden)
            .count()
    }

    /// Moves made-up responses that are now due to `out`; `status` is the server's
    /// transaction status as of the last ReadyForQuery.
    pub fn take_made(&mut self, out: &mut BytesMut, status: u8) {
        while let Some(Expect::Made(_) | Expect::MadeQuery(_) | Expect::Undo(_)) =
            self.queue.front()
        {
            match self.pop() {
                Some(Expect::Made(bytes)) => out.extend_from_slice(&bytes),
                Some(Expect::MadeQuery(tag)) => {
                    out.extend_from_slice(&build::command_complete(tag));
                    out.extend_from_slice(&build::ready_for_query(status));
                }
                _ => {}
            }
        }
    }

    /// Decides about one server message of type `tag`; what it tells about server-side
    /// statements goes to `learned`.
    pub fn on_server(&mut self, tag: u8, learned: &mut Vec<Learned>) -> Action {
        match tag {
            // What the proxy's query changes (ParameterStatus) is its own affair.
            b'E' | b'N' | b'S' if self.hidden_ahead() => Action::Drop,
            // NoticeResponse, NotificationResponse, ParameterStatus: asynchronous.
            b'N' | b'A' | b'S' => Action::Forward,
            b'E' => {
                self.on_error(learned);
                Action::Forward
            }
            _ => match self.queue.front_mut() {
                Some(Expect::Hidden) => {
                    if tag == b'Z' {
                        self.pop();
                        self.open = self.bound > 0;
                    }
                    Action::Drop
                }
                Some(Expect::Injected { .. }) if tag == b'1' => {
                    self.pop();
                    Action::Drop
                }
                Some(Expect::Evicted { .. }) if tag == b'3' => {
                    self.pop();
                    Action::Drop
                }
                Some(Expect::Reset { answered }) => match tag {
                    b'Z' => {
                        self.pop();
                        self.open = self.bound > 0;
                        Action::Forward
                    }
                    b'C' if !*answered => {
                        *answered = true;
                        Action::Forward
                    }
                    _ if *answered => Action::Drop,
                    _ => Action::Forward,
                },
                Some(Expect::Sync) => {
                    if tag == b'Z' {
                        self.pop();
                        self.open = self.bound > 0;
                    }
                    Action::Forward
                }
                Some(Expect::Client { ends, .. }) => {
                    if ends.contains(&tag) {
                        self.pop();
                        if tag == b'Z' {
                            self.open = self.bound > 0;
                        }
                    }
                    Action::Forward
                }
                _ => Action::Forward,
            },
        }
    }

    /// The next server message answers a query of the proxy's own.
    pub fn hidden_ahead(&self) -> bool {
        self.queue.front() == Some(&Expect::Hidden)
    }

    /// An ErrorResponse: a simple Query goes on to its ReadyForQuery; in the extended
    /// protocol the server ignores everything up to the next Sync (Query messages too:
    /// they get no answer), so that is dropped here.
    fn on_error(&mut self, learned: &mut Vec<Learned>) {
        if self.queue.front().is_some_and(ends_in_ready) {
            return;
        }
        while let Some(front) = self.queue.front() {
            // Whether the client's latest batch is skipped is that batch's own affair.
            if *front == Expect::Sync {
                return;
            }
            match self.pop() {
                // Closed and prepared again, both skipped: the old copy is still there.
                Some(Expect::Client {
                    prepares: Some(name),
                    ..
                })
                | Some(Expect::Injected { name })
                    if learned.last() == Some(&Learned::StillPrepared(name.clone())) => {}
                // Prepared again by a later batch already sent: that one settles it.
                Some(Expect::Client {
                    prepares: Some(name),
                    ..
                })
                | Some(Expect::Injected { name })
                    if self.queue.iter().any(|e| prepares(e, &name)) => {}
                Some(Expect::Client {
                    prepares: Some(name),
                    ..
                })
                | Some(Expect::Injected { name }) => learned.push(Learned::Unprepared(name)),
                Some(Expect::Evicted { name }) => learned.push(Learned::StillPrepared(name)),
                Some(Expect::Undo(undo)) => learned.push(Learned::Undone(undo)),
                _ => {}
            }
        }
        // No Sync queued: the server skips what the client sends next, too.
        self.skipping = true;
    }
}

/// Whether `e` prepares the server-side statement `name`.
fn prepares(e: &Expect, name: &Bytes) -> bool {
    match e {
        Expect::Client {
            prepares: Some(n), ..
        }
        | Expect::Injected { name: n } => n == name,
        _ => false,
    }
}

/// Whether the server answers `e` (a Query, Sync or FunctionCall) with ReadyForQuery.
fn ends_in_ready(e: &Expect) -> bool {
    match e {
        Expect::Client { ends, .. } => *ends == READY,
        Expect::Reset { .. } | Expect::Sync | Expect::Hidden => true,
        _ => false,
    }
}

/// Whether `e` stands for a message sent to the server (not an answer the proxy makes).
fn goes_to_server(e: &Expect) -> bool {
    !matches!(e, Expect::Made(_) | Expect::MadeQuery(_) | Expect::Undo(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ends: &'static [u8]) -> Expect {
        Expect::Client {
            ends,
            prepares: None,
        }
    }

    fn run(flow: &mut Flow, tags: &[u8]) -> (Vec<Action>, Vec<Learned>) {
        let mut gone = Vec::new();
        let actions = tags.iter().map(|&t| flow.on_server(t, &mut gone)).collect();
        (actions, gone)
    }

    #[test]
    fn an_injected_parse_is_hidden_and_the_rest_passes() {
        let mut f = Flow::default();
        f.push(Expect::Injected {
            name: Bytes::from_static(b"T1"),
        });
        for e in [BIND, EXECUTE] {
            f.push(client(e));
        }
        f.push(Expect::Sync);
        let (actions, _) = run(&mut f, b"12DDCZ");
        use Action::*;
        assert_eq!(actions, [Drop, Forward, Forward, Forward, Forward, Forward]);
        assert!(f.is_empty());
    }

    #[test]
    fn made_up_replies_wait_for_what_comes_before() {
        let mut f = Flow::default();
        f.push(client(BIND));
        f.push(Expect::Made(Bytes::from_static(b"3...")));
        f.push(Expect::Sync);
        let mut out = BytesMut::new();
        f.take_made(&mut out, b'I');
        assert!(out.is_empty(), "the BindComplete comes first");
        run(&mut f, b"2");
        f.take_made(&mut out, b'I');
        assert_eq!(&out[..], b"3...");
        assert_eq!(f.pending_ready(), 1);
    }

    #[test]
    fn an_error_skips_to_sync_and_forgets_failed_prepares() {
        let mut f = Flow::default();
        f.push(Expect::Client {
            ends: PARSE,
            prepares: Some(Bytes::from_static(b"T9")),
        });
        f.push(client(BIND));
        f.push(Expect::Made(Bytes::from_static(b"x")));
        f.push(Expect::Sync);
        let (actions, gone) = run(&mut f, b"EZ");
        assert_eq!(actions, [Action::Forward, Action::Forward]);
        assert_eq!(gone, [Learned::Unprepared(Bytes::from_static(b"T9"))]);
        assert!(f.is_empty());
    }

    #[test]
    fn an_eviction_close_is_hidden_or_undone_by_an_error() {
        let evicted = || Expect::Evicted {
            name: Bytes::from_static(b"T1"),
        };
        let injected = || Expect::Injected {
            name: Bytes::from_static(b"T2"),
        };
        let mut f = Flow::default();
        for e in [evicted(), injected(), client(BIND), Expect::Sync] {
            f.push(e);
        }
        let (actions, gone) = run(&mut f, b"312Z");
        use Action::*;
        assert_eq!(actions, [Drop, Drop, Forward, Forward]);
        assert!(gone.is_empty() && f.is_empty());

        // An error before the Close: neither it nor the Parse happened.
        for e in [
            client(EXECUTE),
            evicted(),
            injected(),
            client(BIND),
            Expect::Sync,
        ] {
            f.push(e);
        }
        let (_, gone) = run(&mut f, b"EZ");
        let (t1, t2) = (Bytes::from_static(b"T1"), Bytes::from_static(b"T2"));
        assert_eq!(gone, [Learned::StillPrepared(t1), Learned::Unprepared(t2)]);
    }

    #[test]
    fn a_query_of_the_proxys_own_is_hidden_errors_and_all() {
        let mut f = Flow::default();
        f.push(Expect::Hidden);
        f.push(client(READY));
        let (actions, _) = run(&mut f, b"TDCNEZACZ");
        use Action::*;
        let hidden = [Drop; 6];
        assert_eq!(actions[..6], hidden);
        assert_eq!(actions[6..], [Forward, Forward, Forward]);
        assert!(f.is_empty() && !f.skipping());
    }

    #[test]
    fn a_simple_query_error_waits_for_ready() {
        let mut f = Flow::default();
        f.push(client(READY));
        let (actions, _) = run(&mut f, b"ECZ");
        assert_eq!(actions.len(), 3);
        assert!(f.is_empty());
    }

    #[test]
    fn an_error_before_sync_skips_until_the_clients_sync() {
        let mut f = Flow::default();
        f.push(client(DESCRIBE));
        let (_, _) = run(&mut f, b"E");
        assert!(
            f.skipping(),
            "the server ignores what comes before the next Sync"
        );
        assert!(
            !f.is_empty(),
            "the server is mid-batch: not to be given to another client"
        );
        f.push(Expect::Sync);
        assert!(!f.skipping());
        run(&mut f, b"Z");
        assert!(f.is_empty() && !f.skipping());
    }

    #[test]
    fn a_batch_answered_before_its_sync_keeps_the_server() {
        let mut f = Flow::default();
        f.push(client(PARSE));
        f.push(client(BIND));
        run(&mut f, b"12");
        assert!(!f.owes() && !f.is_empty());
        f.push(Expect::Sync);
        run(&mut f, b"Z");
        assert!(f.is_empty());
    }

    #[test]
    fn a_skipped_close_and_parse_of_one_name_leave_the_old_copy() {
        let name = Bytes::from_static(b"T1");
        let mut f = Flow::default();
        f.push(client(EXECUTE));
        f.push(Expect::Evicted { name: name.clone() });
        f.push(Expect::Client {
            ends: PARSE,
            prepares: Some(name.clone()),
        });
        f.push(Expect::Sync);
        let (_, gone) = run(&mut f, b"EZ");
        assert_eq!(gone, [Learned::StillPrepared(name)]);
    }

    #[test]
    fn an_error_in_an_earlier_batch_leaves_a_later_batchs_failure_standing() {
        let mut f = Flow::default();
        f.push(client(EXECUTE));
        f.push(Expect::Sync);
        f.fail(Bytes::from_static(b"E..."));
        assert!(f.skipping());
        run(&mut f, b"E");
        assert!(
            f.skipping(),
            "the proxy's error still skips the latest batch"
        );
        f.push(Expect::Sync);
        assert!(!f.skipping());
    }

    #[test]
    fn a_skipped_parse_prepared_again_by_a_later_batch_stays_known() {
        let name = Bytes::from_static(b"T1");
        let parse = || Expect::Client {
            ends: PARSE,
            prepares: Some(Bytes::from_static(b"T1")),
        };
        let mut f = Flow::default();
        f.push(client(EXECUTE));
        f.push(parse());
        f.push(Expect::Sync);
        f.push(Expect::Evicted { name: name.clone() });
        f.push(parse());
        f.push(Expect::Sync);
        let (_, gone) = run(&mut f, b"EZ");
        assert!(gone.is_empty(), "the second batch prepares it: {gone:?}");
    }
}
