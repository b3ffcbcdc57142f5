//! Looking up a user the configuration does not list (PgBouncer's `auth_user` and
//! `auth_query`): the service's query runs on the primary, as the query's own user, over a
//! pooled server connection, with the user name bound as `$1` through the extended protocol
//! (never spliced into SQL). Its answer is the user's SCRAM verifier, which both checks the
//! client and, through the key the client's proof reveals, logs in to servers as that user.
//! [Extended Query](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use throome_pgwire::{build, msg};

use super::pool::{self, LeaseError, PgPools, PoolKey};
use super::startup::Credential;
use super::upstream::{Server, ServerError};
use crate::config::AuthQuery;
use crate::snapshot::ServiceRuntime;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no server to look the user up on")]
    NoServer,
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("the auth query failed: {0}")]
    Query(String),
}

/// The secret `query` gives for `user` in `database`; `None` for no row or NULL.
pub async fn lookup(
    service: &ServiceRuntime,
    query: &AuthQuery,
    user: &str,
    database: &str,
) -> Result<Option<String>, LookupError> {
    let backend = service
        .choose_tiered(false, &[])
        .ok_or(LookupError::NoServer)?;
    let index = service
        .backends
        .iter()
        .position(|b| Arc::ptr_eq(b, &backend))
        .ok_or(LookupError::NoServer)?;
    let pools = PgPools::of(service);
    let key = PoolKey {
        backend: index,
        user: query.user.clone(),
        database: database.to_string(),
    };
    let pool = pools.pool(&key, service);
    let credential = query
        .password
        .as_ref()
        .map(|p| Credential::from_secret(p.expose()));
    let (mut lease, _) = pool::lease(service, &pools, &pool, backend, credential.as_ref()).await?;
    let found = run(&mut lease.server, &query.sql, user).await;
    // A connection left mid-answer is dropped with the lease instead of going back.
    if found.is_ok() {
        lease.release();
    }
    found
}

/// Parse, Bind (`$1` = `user`, text), Execute, Sync; reads to ReadyForQuery.
async fn run(server: &mut Server, sql: &str, user: &str) -> Result<Option<String>, LookupError> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&build::parse(b"", sql.as_bytes(), &[0, 0]));
    let mut bind = BytesMut::new();
    bind.put_i16(0); // parameter formats: all text
    bind.put_i16(1);
    bind.put_i32(user.len() as i32);
    bind.put_slice(user.as_bytes());
    bind.put_i16(0); // result formats: all text
    out.extend_from_slice(&build::bind(b"", b"", &bind));
    out.extend_from_slice(&execute());
    out.extend_from_slice(&build::sync());
    server.wire.send(&out).await.map_err(ServerError::from)?;
    let (mut found, mut failed) = (None, None);
    loop {
        let frame = server.wire.frame().await.map_err(ServerError::from)?;
        match frame.tag() {
            msg::back::DATA_ROW if found.is_none() => found = Some(first_column(frame.body())),
            msg::back::ERROR_RESPONSE => {
                let text = msg::field(frame.body(), b'M').unwrap_or_default();
                failed = Some(String::from_utf8_lossy(text).into_owned());
            }
            msg::back::READY_FOR_QUERY => {
                server.status = msg::ready_status(frame.body()).unwrap_or(b'E');
                return match failed {
                    Some(text) => Err(LookupError::Query(text)),
                    None => Ok(found.flatten()),
                };
            }
            _ => {}
        }
    }
}

/// Execute of the unnamed portal, all rows.
fn execute() -> Bytes {
    let mut m = BytesMut::with_capacity(10);
    m.put_u8(b'E');
    m.put_i32(9);
    m.put_u8(0);
    m.put_i32(0);
    m.freeze()
}

/// The first column of a DataRow as text; `None` for NULL or a malformed row.
fn first_column(body: &[u8]) -> Option<String> {
    let count = i16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    if count < 1 || len < 0 {
        return None;
    }
    let value = body.get(6..6 + usize::try_from(len).ok()?)?;
    Some(String::from_utf8_lossy(value).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_column_reads_text_null_and_garbage() {
        let row = build::data_row(&[Some("SCRAM-SHA-256$4096:..."), Some("x")]);
        assert_eq!(
            first_column(&row[5..]).as_deref(),
            Some("SCRAM-SHA-256$4096:...")
        );
        assert_eq!(first_column(&build::data_row(&[None])[5..]), None);
        assert_eq!(first_column(&[0, 1, 0, 0, 0, 9, b'a']), None);
        assert_eq!(first_column(&[]), None);
    }

    #[test]
    fn execute_is_a_whole_message() {
        assert_eq!(&execute()[..], &[b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0]);
    }
}
