//! Differential tests for PostgreSQL: every script of `tests/pg_corpus/` runs against a
//! server directly and through Throome in session and in transaction mode (each on a
//! database of its own on the same server), written three ways (message by message, whole
//! before reading, one byte at a time), and the answers are compared message by message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::gateway::cluster_of;
use common::pg_diff::{self, Script, Writes};
use common::{Postgres, Throome, free_port};

/// One server; a gateway with a session-mode and a transaction-mode service over it. The
/// services log in to the server as the client's own user (trust), as a client directly
/// would.
struct Setup {
    pg: Postgres,
    _gw: Throome,
    session: u16,
    transaction: u16,
}

impl Setup {
    fn start() -> Setup {
        let pg = Postgres::start();
        let (session, transaction) = (free_port(), free_port());
        let yaml = |id: &str, listen: u16, mode: &str| {
            let extra = format!("    pool_mode: {mode}\n    pool_size: 2\n");
            cluster_of(
                "postgres",
                id,
                "db",
                listen,
                &[(pg.port, "primary", 1)],
                &extra,
                "",
            )
        };
        let gw = Throome::start(&[
            ("s", &yaml("s", session, "session")),
            ("t", &yaml("t", transaction, "transaction")),
        ]);
        Setup {
            pg,
            _gw: gw,
            session,
            transaction,
        }
    }

    /// Runs `sql` on the server directly, in `database`.
    fn admin(&self, database: &str, sql: &str) {
        let out = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                database,
                "-qAtX",
                "-v",
                "ON_ERROR_STOP=1",
            ])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {out:?}");
    }

    /// The script directly and through each mode it names, compared.
    fn compare(&self, name: &str, script: &Script) {
        let single = script.lines.iter().all(|l| l.conn == 1)
            && !script
                .lines
                .iter()
                .any(|l| l.text == "cancel" || l.text.starts_with("sleep"));
        let writes: &[Writes] = match single {
            true => &[Writes::Stream, Writes::Whole, Writes::ByteByByte],
            // Several connections are ordered by reading each answer before going on.
            false => &[Writes::Stream],
        };
        let targets: Vec<(&str, u16)> = script
            .modes
            .iter()
            .map(|m| match m.as_str() {
                "session" => ("session", self.session),
                "transaction" => ("transaction", self.transaction),
                other => panic!("unknown mode {other}"),
            })
            .collect();
        for &w in writes {
            let direct_db = format!("{name}_direct");
            self.fresh(&direct_db);
            let direct = pg_diff::run(self.pg.port, &direct_db, script, w);
            for &(mode, port) in &targets {
                let db = format!("{name}_{mode}");
                self.fresh(&db);
                let proxied = pg_diff::run(port, &db, script, w);
                pg_diff::assert_same(name, &format!("{mode} mode, {w:?}"), &direct, &proxied);
            }
        }
    }

    /// `database` as new: created the first time, its schema emptied afterwards (pooled
    /// server connections to it may stay open meanwhile).
    fn fresh(&self, database: &str) {
        let exists = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.pg.port.to_string()])
            .args(["-U", "postgres", "-d", database, "-qAtX", "-c", "SELECT 1"])
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            self.admin("postgres", &format!("CREATE DATABASE {database}"));
        } else {
            self.admin(database, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
        }
    }
}

/// A psql session (`tests/pg_corpus/<name>.sql`) directly and through each mode, its whole
/// output (echoed input, results, errors) compared. `-- env: NAME=value ...` sets libpq's
/// environment (`PGTZ`, `PGDATESTYLE`, `PGOPTIONS`, `PGAPPNAME`); `-- modes: ...` as in
/// scripts.
fn psql(name: &str) {
    let path = format!("{}/tests/pg_corpus/{name}.sql", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let header = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
    };
    let env: Vec<(String, String)> = header("-- env:")
        .unwrap_or_default()
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.replace("\\s", " "))
        })
        .collect();
    let modes = header("-- modes:").unwrap_or_else(|| "session transaction".into());
    let setup = Setup::start();
    let run = |port: u16, database: &str| {
        setup.fresh(database);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "psql -X -a -h 127.0.0.1 -p {port} -U postgres -d {database} -f {path} 2>&1"
            ))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let direct = run(setup.pg.port, &format!("{name}_direct"));
    for mode in modes.split_whitespace() {
        let port = match mode {
            "session" => setup.session,
            _ => setup.transaction,
        };
        let proxied = run(port, &format!("{name}_{mode}"));
        let lines = |s: &str| s.lines().map(without_pid).collect::<Vec<_>>();
        pg_diff::assert_same(
            name,
            &format!("psql, {mode} mode"),
            &lines(&direct),
            &lines(&proxied),
        );
    }
}

/// psql's line for a notification names the sending server process.
fn without_pid(line: &str) -> String {
    match line.split_once("server process with PID ") {
        Some((before, _)) => format!("{before}server process with PID N."),
        None => line.to_string(),
    }
}

macro_rules! psql_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            psql(stringify!($name));
        })*
    };
}

psql_tests!(psql_session, psql_dates);

fn corpus(name: &str) {
    let path = format!("{}/tests/pg_corpus/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    Setup::start().compare(name, &pg_diff::parse(&text));
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            corpus(stringify!($name));
        })*
    };
}

corpus_tests!(
    simple,
    extended_errors,
    schema_change,
    deallocate,
    deallocate_tx,
    copy_cursor,
    settings,
    settings_options,
    notify,
    cancel,
);
