//! psycopg 3 (Python, libpq-based) through a transaction-pooling postgres service: its
//! statement cache prepares and DEALLOCATEs named statements across pooled servers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::gateway::cluster_of;
use common::{Postgres, Throome, free_port};

#[test]
fn psycopg_prepared_statements_copy_and_transactions() {
    let pg = Postgres::start();
    let listen = free_port();
    let extra =
        "    username: postgres\n    pool_size: 1\n    auth:\n      users: { alice: wonderland }\n";
    let yaml = cluster_of(
        "postgres",
        "py",
        "db",
        listen,
        &[(pg.port, "primary", 1)],
        extra,
        "",
    );
    let _gw = Throome::start(&[("py", &yaml)]);
    common::run_python_client("psycopg_client.py", &[&listen.to_string()]);
}
