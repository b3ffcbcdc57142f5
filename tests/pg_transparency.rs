//! asyncpg and psycopg 3 through session- and transaction-mode services: the reproducers of
//! issue 18 (an error in an extended-protocol batch, schema changes under prepared
//! statements, statement names in session mode, parameter spelling, process ids, a
//! server's FATAL error, DROP DATABASE past idle pooled connections).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::Postgres;

#[test]
fn asyncpg_and_psycopg_see_what_the_server_answers() {
    let pg = Postgres::start();
    let modes = common::pg::pool_modes(pg.port);
    let ports = [pg.port, modes.session, modes.transaction].map(|p| p.to_string());
    let args: Vec<&str> = ports.iter().map(String::as_str).collect();
    common::run_python_client("pg_transparency.py", &args);
}
