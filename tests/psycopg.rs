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
    let root = env!("CARGO_MANIFEST_DIR");
    let python = format!("{root}/.venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(format!("{root}/tests/clients/psycopg_client.py"))
        .arg(listen.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}; run scripts/setup.sh"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "OK",
        "{stdout}{stderr}"
    );
}
