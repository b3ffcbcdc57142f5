//! Client messages the proxy answers itself, without a server: preparing and closing named
//! statements between transactions, and SQL `DEALLOCATE` of statements it tracks
//! ([extended query](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY)).

use bytes::Bytes;
use throome_pgwire::{build, msg};

use super::flow::{Expect, Undo};
use super::session::PgSession;

/// Most Parse messages held before the client says what follows them.
const MAX_HELD: usize = 64;

impl PgSession {
    /// Between transactions, preparing named statements and nothing else (Parse..., Sync:
    /// libpq's `PQprepare`, pgbench `-M prepared`) and closing one are answered without a
    /// server: the statement is prepared on a server when first used there. A client that
    /// prepares on one connection while its other connections sit in transactions (one
    /// thread, synchronous calls) does not wait for a server that only it could free. A
    /// statement with an error reports it at first use instead. A Parse followed by
    /// anything but Sync (Describe, Flush, Bind: asyncpg, psycopg) goes to a server, so
    /// its errors come where the server gives them.
    pub(super) fn answer_locally(&mut self, frame: &throome_pgwire::Frame) -> bool {
        let body = frame.body();
        let reply = match frame.tag() {
            msg::front::PARSE => match msg::parse(body) {
                Some((name, _, _)) if !name.is_empty() && self.held.len() < MAX_HELD => {
                    self.held.push(frame.clone());
                    return true;
                }
                _ => return false,
            },
            msg::front::CLOSE if self.held.is_empty() => match msg::target(body) {
                Some((b'S', name)) if !name.is_empty() => {
                    self.statements.close(name);
                    build::close_complete()
                }
                _ => return false,
            },
            msg::front::SYNC => {
                if !self.prepare_held() {
                    return false;
                }
                build::ready_for_query(b'I')
            }
            msg::front::FLUSH if self.held.is_empty() => Bytes::new(),
            _ => return false,
        };
        self.to_client.extend_from_slice(&reply);
        true
    }

    /// Records the held Parse messages and answers each with ParseComplete; false (nothing
    /// answered) when the client has too many statements, which a server then reports.
    /// A name prepared already fails its Parse, as on the server, and what follows it.
    fn prepare_held(&mut self) -> bool {
        for frame in &self.held {
            let Some((name, query, rest)) = msg::parse(frame.body()) else {
                return false;
            };
            if self.statements.get(name).is_some() {
                let error = super::frontend::already_exists(name);
                self.to_client.extend_from_slice(&error);
                break;
            }
            if self.statements.parse(name, query, rest).is_none() {
                return false;
            }
            self.to_client.extend_from_slice(&build::parse_complete());
        }
        self.held.clear();
        true
    }

    /// `DEALLOCATE name` in SQL (psycopg sends it when its statement cache evicts) for a
    /// statement the client prepared through the protocol: it exists on servers under
    /// another name, so the proxy forgets it itself and answers. A name the client never
    /// prepared that way (a SQL `PREPARE`) goes to the server, and so does `DEALLOCATE ALL`
    /// after the proxy forgot the client's statements.
    pub(super) fn deallocate(&mut self, frame: &throome_pgwire::Frame) -> bool {
        if frame.tag() != msg::front::QUERY {
            return false;
        }
        let Some(sql) = msg::query(frame.body()) else {
            return false;
        };
        let Some(target) = super::statements::deallocate_target(sql) else {
            return false;
        };
        match target {
            // The server drops its own too (SQL PREPAREs included): it goes there.
            None => {
                self.statements.clear();
                return false;
            }
            Some(name) if self.statements.get(&name).is_some() => {
                let previous = self.statements.close(&name);
                // In its place among answers still to come; undone if the server skips it.
                self.flow.push(Expect::MadeQuery("DEALLOCATE"));
                self.flow.push(Expect::Undo(Undo {
                    name: name.into(),
                    previous,
                }));
            }
            Some(_) => return false,
        }
        let status = self.lease.as_ref().map_or(b'I', |l| l.server.status);
        self.flow.take_made(&mut self.to_client, status);
        true
    }
}
