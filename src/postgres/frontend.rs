//! Client messages on their way to the server: most go as they are; named statements are
//! renamed to their server-side names, prepared on the server first when it lacks them (after
//! closing its least recently used one when it holds `max_prepared_statements`), and Close of
//! a statement is answered by the proxy.

use std::sync::Arc;

use bytes::BytesMut;

use throome_pgwire::{Frame, build, msg};

use super::flow::{self, Expect, Flow};
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
    let client = |ends| Expect::Client {
        ends,
        prepares: None,
    };
    match frame.tag() {
        msg::front::TERMINATE => return Outcome::Terminate,
        msg::front::QUERY => {
            if msg::query(body).is_some_and(destroys_statements) {
                server.prepared.clear();
            }
            flow.push(client(flow::READY));
        }
        msg::front::SYNC | msg::front::FUNCTION_CALL => flow.push(client(flow::READY)),
        msg::front::PARSE => {
            let Some((name, query, rest)) = msg::parse(body) else {
                return violation('P');
            };
            if !name.is_empty() {
                let Some(st) = statements.parse(name, query, rest) else {
                    return Outcome::Violation(build::error(
                        "FATAL",
                        "53400",
                        "too many prepared statements on this connection",
                    ));
                };
                if server.prepared.touch(&st.name) {
                    flow.push(Expect::Made(build::parse_complete()));
                } else {
                    if let Some(old) = server.prepared.insert(st.name.clone()) {
                        to_server.extend_from_slice(&build::target(b'C', b'S', &old));
                        flow.push(Expect::Evicted { name: old });
                    }
                    flow.push(Expect::Client {
                        ends: flow::PARSE,
                        prepares: Some(st.name.clone()),
                    });
                    to_server.extend_from_slice(&st.parse);
                }
                return Outcome::Done;
            }
            if destroys_statements(query) {
                server.prepared.clear();
            }
            flow.push(client(flow::PARSE));
        }
        msg::front::BIND => {
            let Some((portal, statement, rest)) = msg::bind(body) else {
                return violation('B');
            };
            flow.push(client(flow::BIND));
            if let Some(st) = prepare(statement, server, statements, flow, to_server) {
                to_server.extend_from_slice(&build::bind(portal, &st.name, rest));
                if st.destroys {
                    server.prepared.clear();
                }
                return Outcome::Done;
            }
        }
        msg::front::DESCRIBE | msg::front::CLOSE => {
            let Some((kind, name)) = msg::target(body) else {
                return violation(frame.tag() as char);
            };
            let close = frame.tag() == msg::front::CLOSE;
            if kind == b'S' && !name.is_empty() {
                if close {
                    // The server keeps it for whoever prepares the same statement next.
                    statements.close(name);
                    flow.push(Expect::Made(build::close_complete()));
                    return Outcome::Done;
                }
                flow.push(client(flow::DESCRIBE));
                if let Some(st) = prepare(name, server, statements, flow, to_server) {
                    to_server.extend_from_slice(&build::target(b'D', b'S', &st.name));
                    return Outcome::Done;
                }
            } else {
                flow.push(client(if close { flow::CLOSE } else { flow::DESCRIBE }));
            }
        }
        msg::front::EXECUTE => flow.push(client(flow::EXECUTE)),
        // Flush, CopyData, CopyDone, CopyFail: no answer of their own.
        _ => {}
    }
    to_server.extend_from_slice(frame.bytes());
    Outcome::Done
}

/// The server-side name for a client's statement, injecting its Parse (before the message
/// being translated, whose expectation is already queued last) when `server` lacks it.
/// `None` for the unnamed statement or a name the client never prepared (the server then
/// reports the error itself).
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
    if !server.prepared.touch(&st.name) {
        if let Some(old) = server.prepared.insert(st.name.clone()) {
            flow.insert_before_last(Expect::Evicted { name: old.clone() });
            to_server.extend_from_slice(&build::target(b'C', b'S', &old));
        }
        flow.insert_before_last(Expect::Injected {
            name: st.name.clone(),
        });
        to_server.extend_from_slice(&st.parse);
    }
    Some(st)
}

fn violation(tag: char) -> Outcome {
    Outcome::Violation(build::error(
        "FATAL",
        "08P01",
        &format!("invalid frontend message {tag:?}"),
    ))
}
