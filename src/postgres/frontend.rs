//! Client messages on their way to the server. In session mode they go as they are. In
//! transaction mode named statements are renamed to their server-side names, prepared on the
//! server first when it lacks them or holds a copy older than the client's Parse (after
//! closing its least recently used one when it holds `max_prepared_statements`), and Close
//! of a statement is answered by the proxy.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use throome_pgwire::{Frame, build, msg};

use super::flow::{self, Expect, Flow, Undo};
use super::statements::{Statement, Statements, destroys_statements};
use super::upstream::Server;

/// What one client message needs from the session.
pub enum Outcome {
    /// Sent (or answered); go on.
    Done,
    /// The client ends the session (Terminate).
    Terminate,
    /// A malformed message: this ErrorResponse, then the connection closes.
    Violation(bytes::Bytes),
}

/// The server messages that end its answer to a client message of type `tag`; None for
/// Sync (see `Expect::Sync`) and messages without an answer of their own (Flush, CopyData,
/// CopyDone, CopyFail).
fn ends_of(tag: u8) -> Option<&'static [u8]> {
    match tag {
        msg::front::QUERY | msg::front::FUNCTION_CALL => Some(flow::READY),
        msg::front::PARSE => Some(flow::PARSE),
        msg::front::BIND => Some(flow::BIND),
        msg::front::DESCRIBE => Some(flow::DESCRIBE),
        msg::front::CLOSE => Some(flow::CLOSE),
        msg::front::EXECUTE => Some(flow::EXECUTE),
        _ => None,
    }
}

fn client(ends: &'static [u8]) -> Expect {
    Expect::Client {
        ends,
        prepares: None,
    }
}

/// Session mode: the client owns its server, so its messages, statement names included, go
/// through untouched (as PgBouncer passes them); only their answers are counted.
pub fn pass(frame: &Frame, flow: &mut Flow, to_server: &mut BytesMut) -> Outcome {
    if frame.tag() == msg::front::TERMINATE {
        return Outcome::Terminate;
    }
    match frame.tag() {
        msg::front::SYNC => flow.push(Expect::Sync),
        tag => {
            if let Some(ends) = ends_of(tag) {
                flow.push(client(ends));
            }
        }
    }
    to_server.extend_from_slice(frame.bytes());
    Outcome::Done
}

/// Translates one client message for `server`, appending what to send to `to_server` and
/// what the server will answer (or the proxy answers) to `flow`.
pub fn translate(
    frame: Frame,
    server: &mut Server,
    statements: &mut Statements,
    flow: &mut Flow,
    to_server: &mut BytesMut,
) -> Outcome {
    let body = frame.body();
    match frame.tag() {
        msg::front::TERMINATE => return Outcome::Terminate,
        msg::front::QUERY => {
            // A simple Query destroys the unnamed statement.
            statements.unnamed = None;
            server.unnamed = None;
            if !msg::query(body).is_some_and(destroys_statements) {
                return pass(&frame, flow, to_server);
            }
            server.prepared.clear();
            // DISCARD ALL drops the client's statements too (DEALLOCATE ALL is seen to
            // before, see `local.rs`).
            if msg::query(body).is_some_and(super::statements::discards_all) {
                statements.clear();
            }
        }
        msg::front::PARSE => {
            let Some((name, query, rest)) = msg::parse(body) else {
                return violation('P');
            };
            if !name.is_empty() {
                return parse_named(name, query, rest, server, statements, flow, to_server);
            }
            if statements.unnamed.as_deref() != Some(&frame.bytes()[..]) {
                statements.unnamed = Some(Bytes::copy_from_slice(frame.bytes()));
            }
            server.unnamed.clone_from(&statements.unnamed);
            if destroys_statements(query) {
                server.prepared.clear();
            }
            // If it fails, the client has no unnamed statement (see `relay.rs`).
            flow.push(Expect::Client {
                ends: flow::PARSE,
                prepares: Some(Bytes::new()),
            });
            to_server.extend_from_slice(frame.bytes());
            return Outcome::Done;
        }
        msg::front::BIND => {
            let Some((portal, statement, rest)) = msg::bind(body) else {
                return violation('B');
            };
            flow.push(client(flow::BIND));
            if statement.is_empty() {
                own_unnamed(server, statements, flow, to_server);
            }
            if let Some(st) = prepare(statement, server, statements, flow, to_server) {
                to_server.extend_from_slice(&build::bind(portal, &st.name, rest));
                if st.destroys {
                    server.prepared.clear();
                }
            } else {
                to_server.extend_from_slice(frame.bytes());
            }
            return Outcome::Done;
        }
        msg::front::DESCRIBE | msg::front::CLOSE => {
            let Some((kind, name)) = msg::target(body) else {
                return violation(frame.tag() as char);
            };
            if kind == b'S' && name.is_empty() {
                match frame.tag() {
                    msg::front::CLOSE => {
                        statements.unnamed = None;
                        server.unnamed = None;
                    }
                    _ => {
                        flow.push(client(flow::DESCRIBE));
                        own_unnamed(server, statements, flow, to_server);
                        to_server.extend_from_slice(frame.bytes());
                        return Outcome::Done;
                    }
                }
            }
            if kind == b'S' && !name.is_empty() {
                if frame.tag() == msg::front::CLOSE {
                    // The server keeps it for whoever prepares the same statement next.
                    let previous = statements.close(name);
                    flow.push(Expect::Made(build::close_complete()));
                    flow.push(Expect::Undo(Undo {
                        name: Bytes::copy_from_slice(name),
                        previous,
                    }));
                    return Outcome::Done;
                }
                flow.push(client(flow::DESCRIBE));
                if let Some(st) = prepare(name, server, statements, flow, to_server) {
                    to_server.extend_from_slice(&build::target(b'D', b'S', &st.name));
                } else {
                    to_server.extend_from_slice(frame.bytes());
                }
                return Outcome::Done;
            }
        }
        _ => {}
    }
    pass(&frame, flow, to_server)
}

/// A client's named Parse: recorded under a server-side name and always sent, so the client
/// learns of errors and gets a description as of now; a copy the server holds is closed
/// first.
fn parse_named(
    name: &[u8],
    query: &[u8],
    rest: &[u8],
    server: &mut Server,
    statements: &mut Statements,
    flow: &mut Flow,
    to_server: &mut BytesMut,
) -> Outcome {
    if statements.get(name).is_some() {
        flow.fail(already_exists(name));
        return Outcome::Done;
    }
    let Some(st) = statements.parse(name, query, rest) else {
        return Outcome::Violation(build::error(
            "FATAL",
            "53400",
            "too many prepared statements on this connection",
        ));
    };
    make_room(&st.name, server, flow, to_server, Flow::push);
    flow.push(Expect::Client {
        ends: flow::PARSE,
        prepares: Some(st.name.clone()),
    });
    flow.push(Expect::Undo(Undo {
        name: Bytes::copy_from_slice(name),
        previous: None,
    }));
    to_server.extend_from_slice(&st.parse);
    Outcome::Done
}

/// Before `name` is prepared on `server`: closes the server's older copy of it, or when
/// it has none and is full, its least recently used statement. `queue` places the
/// expectation of that Close.
fn make_room(
    name: &Bytes,
    server: &mut Server,
    flow: &mut Flow,
    to_server: &mut BytesMut,
    queue: fn(&mut Flow, Expect),
) {
    let had = server.prepared.touch(name).is_some();
    let evicted = server.prepared.insert(name.clone());
    if let Some(old) = evicted.or(had.then(|| name.clone())) {
        to_server.extend_from_slice(&build::target(b'C', b'S', &old));
        queue(flow, Expect::Evicted { name: old });
    }
}

/// The server-side name for a client's statement, injecting its Parse (before the message
/// being translated, whose expectation is already queued last) when `server` lacks it or
/// holds a copy older than the client's Parse. `None` for the unnamed statement or a name
/// the client never prepared (the server then reports the error itself).
fn prepare(
    client_name: &[u8],
    server: &mut Server,
    statements: &Statements,
    flow: &mut Flow,
    to_server: &mut BytesMut,
) -> Option<Arc<Statement>> {
    if client_name.is_empty() {
        return None;
    }
    let st = statements.get(client_name)?;
    if server
        .prepared
        .touch(&st.name)
        .is_none_or(|born| born < st.born)
    {
        make_room(&st.name, server, flow, to_server, Flow::insert_before_last);
        flow.insert_before_last(Expect::Injected {
            name: st.name.clone(),
        });
        to_server.extend_from_slice(&st.parse);
    }
    Some(st)
}

/// Before a Bind or Describe of the unnamed statement: the server's must be the client's,
/// which outlived the client's last transaction in PostgreSQL's terms but stayed on the
/// server that transaction ran on. The client's Parse goes first (its ParseComplete
/// dropped); a client without one has the server's closed, so it gets the server's own
/// "does not exist" rather than another client's statement.
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY>
fn own_unnamed(
    server: &mut Server,
    statements: &Statements,
    flow: &mut Flow,
    to_server: &mut BytesMut,
) {
    if server.unnamed == statements.unnamed {
        return;
    }
    let unnamed = Bytes::new();
    match &statements.unnamed {
        Some(parse) => {
            flow.insert_before_last(Expect::Injected { name: unnamed });
            to_server.extend_from_slice(parse);
        }
        None => {
            flow.insert_before_last(Expect::Evicted { name: unnamed });
            to_server.extend_from_slice(&build::target(b'C', b'S', b""));
        }
    }
    server.unnamed.clone_from(&statements.unnamed);
}

/// The server's error for a Parse of a name the client has prepared already.
pub fn already_exists(name: &[u8]) -> Bytes {
    let text = format!(
        "prepared statement \"{}\" already exists",
        String::from_utf8_lossy(name)
    );
    build::error("ERROR", "42P05", &text)
}

fn violation(tag: char) -> Outcome {
    Outcome::Violation(build::error(
        "FATAL",
        "08P01",
        &format!("invalid frontend message {tag:?}"),
    ))
}
