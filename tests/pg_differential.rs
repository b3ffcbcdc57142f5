//! Differential tests for PostgreSQL: every script of `tests/pg_corpus/` runs against a
//! server directly and through Throome in session and in transaction mode (each on a
//! database of its own on the same server), written three ways (message by message, whole
//! before reading, one byte at a time), and the answers are compared message by message.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::Postgres;
use common::pg_diff::{self, Script, Writes};
use proptest::prelude::*;

/// One server; a gateway with a session-mode and a transaction-mode service over it. The
/// services log in to the server as the client's own user (trust), as a client directly
/// would.
struct Setup {
    pg: Postgres,
    modes: common::pg::Modes,
}

impl Setup {
    fn start() -> Setup {
        let pg = Postgres::start();
        let modes = common::pg::pool_modes(pg.port);
        let setup = Setup { pg, modes };
        // Roles are the server's, not a database's: made once for every script.
        setup.admin("postgres", "CREATE ROLE r1; CREATE ROLE r2; GRANT r2 TO r1");
        setup
    }

    /// The port of a Throome pool mode a script names.
    fn port(&self, mode: &str) -> u16 {
        match mode {
            "session" => self.modes.session,
            "transaction" => self.modes.transaction,
            "shared" => self.modes.shared,
            other => panic!("unknown mode {other}"),
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
        self.compare_with(name, script, writes);
    }

    /// The script written each way of `writes`, directly and through each mode it names.
    fn compare_with(&self, name: &str, script: &Script, writes: &[Writes]) {
        let targets: Vec<(&str, u16)> = script
            .modes
            .iter()
            .map(|m| (m.as_str(), self.port(m)))
            .collect();
        for &w in writes {
            let direct_db = format!("{name}_direct");
            self.fresh(&direct_db);
            let direct = pg_diff::run(self.pg.port, &direct_db, script, w);
            for &(mode, port) in &targets {
                let db = format!("{name}_{mode}");
                self.fresh(&db);
                let proxied = pg_diff::run(port, &db, script, w);
                let how = format!("{mode} mode, {w:?}");
                let text: Vec<&str> = script.lines.iter().map(|l| l.text.as_str()).collect();
                let text = match name {
                    "random" => format!("script:\n{}\n", text.join("\n")),
                    _ => String::new(),
                };
                pg_diff::assert_same_in(name, &how, &direct, &proxied, &text);
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
        let port = setup.port(mode);
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
    batches,
    batches_query,
    batches_same_text,
    schema_change,
    deallocate,
    deallocate_tx,
    copy_cursor,
    settings,
    settings_options,
    notify,
    cancel,
    state_settings,
    state_pins,
    state_replay,
    state_unnamed,
);

/// SQL for random batches: results, errors of each kind, transaction control.
const SQL: [&str; 12] = [
    "SELECT 1",
    "SELECT $1::int + 1",
    "SELECT generate_series(1, 3)",
    "SELECT 1/0",
    "SELECT * FROM nosuch",
    "INSERT INTO t VALUES ($1)",
    "SELECT count(*) FROM t",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT a",
    "syntax error",
];

/// One random protocol message. Named statements get valid SQL only: a lone Parse and
/// Sync between transactions is answered by the proxy and its error comes at first use (a
/// documented difference).
fn message() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["-", "s1", "s2"]);
    let portal = prop::sample::select(vec!["-", "p1"]);
    let sql = prop::sample::select(SQL.to_vec());
    let valid = prop::sample::select(vec!["SELECT 1", "SELECT $1::int + 1", "BEGIN"]);
    let args = prop::sample::select(vec!["", " 1", " x"]);
    prop_oneof![
        3 => sql.clone().prop_map(|q| format!("Q {q}")),
        2 => sql.prop_map(|q| format!("P - {q}")),
        2 => (name.clone(), valid).prop_map(|(n, q)| format!("P {n} {q}")),
        3 => (portal.clone(), name.clone(), args).prop_map(|(p, n, a)| format!("B {p} {n}{a}")),
        1 => name.clone().prop_map(|n| format!("D S {n}")),
        1 => portal.clone().prop_map(|p| format!("D P {p}")),
        3 => (portal, 0..3i32).prop_map(|(p, r)| format!("E {p} {r}")),
        1 => name.prop_map(|n| format!("C S {n}")),
        1 => Just("H".to_string()),
        3 => Just("S".to_string()),
    ]
}

/// The random batches come from a fixed seed, so CI runs the same ones each time; set
/// `THROOME_PG_RANDOM_SEED` to another number to explore other batches.
fn random_seed() -> proptest::test_runner::RngSeed {
    let seed = std::env::var("THROOME_PG_RANDOM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(18);
    proptest::test_runner::RngSeed::Fixed(seed)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, failure_persistence: None, rng_seed: random_seed(), ..ProptestConfig::default() })]

    /// Random extended-protocol batches (errors anywhere, Flush, Sync or none) written
    /// whole: the same answers directly and in both modes.
    #[test]
    fn random_batches_match_the_server(messages in prop::collection::vec(message(), 1..30)) {
        thread_local!(static SETUP: Setup = Setup::start());
        let mut text = String::from("Q CREATE TABLE t (v int)\n");
        for m in messages {
            text.push_str(&m);
            text.push('\n');
        }
        text.push_str("S\nQ SELECT 'end'\n");
        let script = pg_diff::parse(&text);
        SETUP.with(|s| s.compare_with("random", &script, &[Writes::Whole]));
    }
}
