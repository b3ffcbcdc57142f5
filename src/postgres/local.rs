//! Client messages the proxy answers itself, without a server: preparing and closing named
//! statements between transactions, and SQL `DEALLOCATE` of statements it tracks
//! ([extended query](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY)).

use bytes::Bytes;
use throome_pgwire::{build, msg};

use super::session::PgSession;

impl PgSession {
    /// Between transactions, preparing a named statement (Parse, Sync: libpq's `PQprepare`,
    /// pgbench `-M prepared`) and closing one are answered without a server: the statement is
    /// prepared on a server when first used there. A client that prepares on one connection
    /// while its other connections sit in transactions (one thread, synchronous calls) does
    /// not wait for a server that only it could free. A statement with an error reports it
    /// at first use instead.
    pub(super) fn answer_locally(&mut self, frame: &throome_pgwire::Frame) -> bool {
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

    /// `DEALLOCATE name` / `DEALLOCATE ALL` in SQL (psycopg sends it when its statement cache
    /// evicts) for statements the client prepared through the protocol: they exist on servers
    /// under other names, so the proxy forgets them itself and answers. A name the client
    /// never prepared that way (a SQL `PREPARE`) goes to the server.
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
        let tag = match target {
            None => {
                self.statements.clear();
                "DEALLOCATE ALL"
            }
            Some(name) if self.statements.get(&name).is_some() => {
                self.statements.close(&name);
                "DEALLOCATE"
            }
            Some(_) => return false,
        };
        let status = self.lease.as_ref().map_or(b'I', |l| l.server.status);
        self.to_client
            .extend_from_slice(&build::command_complete(tag));
        self.to_client
            .extend_from_slice(&build::ready_for_query(status));
        true
    }
}
