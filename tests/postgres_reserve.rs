//! `reserve_pool_size` and `reserve_pool_timeout` (PgBouncer's) with tokio-postgres against a
//! real PostgreSQL: a client that waited the timeout for a full pool gets one of the
//! reserve's extra server connections; once those are taken too, the next client waits out
//! `query_wait_timeout` and gets 53300.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::Postgres;
use common::pg::{SERVER_CONNECTIONS, connect, direct, pg_gateway};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_waited_gets_a_reserve_connection() {
    let pg = Postgres::start();
    let extra = "    pool_size: 1\n    reserve_pool_size: 1\n    reserve_pool_timeout: 0.3\n    query_wait_timeout: 1.5\n";
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], extra).await;
    let a = connect(listen, "alice", "wonderland").await.unwrap();
    a.batch_execute("BEGIN; SELECT 1").await.unwrap();
    // The pool's one server is in a's transaction: b is served from the reserve.
    let b = connect(listen, "alice", "wonderland").await.unwrap();
    b.batch_execute("BEGIN; SELECT 2").await.unwrap();
    let admin = direct(pg.port).await;
    let servers: i64 = admin
        .query_one(SERVER_CONNECTIONS, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(servers, 2, "pool_size plus the reserve");
    // Both taken: c waits for query_wait_timeout and is refused.
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let err = c.batch_execute("SELECT 3").await.unwrap_err();
    assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{err:?}");
    // A transaction ends: its server serves the next one.
    a.batch_execute("COMMIT").await.unwrap();
    c.batch_execute("SELECT 4").await.unwrap();
    b.batch_execute("COMMIT").await.unwrap();
}
