//! Named prepared statements in transaction pooling (PgBouncer >= 1.21 semantics): a client's
//! statement is known to the proxy by the client's name, and prepared on a server under a name
//! derived from its text and parameter types, so any client's identical statement reuses it
//! and any server can be given it again before the client uses it there.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use throome_pgwire::build;

/// Most statements one client may keep prepared (a bound on proxy memory per client).
pub const MAX_PER_CLIENT: usize = 10_000;

pub struct Statement {
    /// The server-side name.
    pub name: Bytes,
    /// The Parse message under that name, ready to send to any server.
    pub parse: Bytes,
}

#[derive(Default)]
pub struct Statements {
    by_client_name: HashMap<Bytes, Arc<Statement>>,
}

impl Statements {
    /// Records the client's Parse; returns the statement as the server knows it.
    pub fn parse(
        &mut self,
        client_name: &[u8],
        query: &[u8],
        rest: &[u8],
    ) -> Option<Arc<Statement>> {
        if self.by_client_name.len() >= MAX_PER_CLIENT
            && !self.by_client_name.contains_key(client_name)
        {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(query);
        hash.update([0]);
        hash.update(rest);
        let digest = hash.finalize();
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let name = Bytes::from(format!("throome_{hex}"));
        let statement = Arc::new(Statement {
            parse: build::parse(&name, query, rest),
            name,
        });
        self.by_client_name
            .insert(Bytes::copy_from_slice(client_name), statement.clone());
        Some(statement)
    }

    pub fn get(&self, client_name: &[u8]) -> Option<Arc<Statement>> {
        self.by_client_name.get(client_name).cloned()
    }

    /// Close of a statement: the client's name goes; the server keeps its copy for reuse.
    pub fn close(&mut self, client_name: &[u8]) {
        self.by_client_name.remove(client_name);
    }
}
