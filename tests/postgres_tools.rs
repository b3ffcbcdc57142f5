//! `type: postgres` driven by PostgreSQL's own tools: psql (meta-commands, COPY, multi-statement
//! queries, errors in transactions) and pgbench in every query mode through a small
//! transaction pool.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::gateway::cluster_of;
use common::servers::pg_bin;
use common::{Postgres, Throome, free_port};

fn gateway(pg: &Postgres, pool_size: usize) -> (Throome, u16) {
    common::pg::alice_gateway(pg.port, &format!("    pool_size: {pool_size}\n"))
}

/// A PostgreSQL client tool (`psql`, `pgbench`) set up to connect to `port` as `user`.
fn client(name: &str, port: u16, user: &str, password: &str) -> Command {
    let mut cmd = Command::new(pg_bin(name));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// One query straight at a server as the superuser; its unaligned output.
fn on_server(port: u16, sql: &str) -> String {
    let out = client("psql", port, "postgres", "")
        .args(["-At", "-c", sql])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `name` through Throome as alice, with `stdin`.
fn tool(name: &str, port: u16, args: &[&str], stdin: &str) -> Output {
    let mut child = client(name, port, "alice", "wonderland")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn psql_meta_commands_copy_multi_statements_and_errors() {
    let pg = Postgres::start();
    let (_gw, listen) = gateway(&pg, 2);
    let script = "\
CREATE TABLE items (id int PRIMARY KEY, name text);
COPY items FROM STDIN;
1\tapple
2\tpear
\\.
COPY items TO STDOUT;
SELECT count(*) AS n FROM items; SELECT 'second' AS s;
BEGIN;
SELECT 1/0;
SELECT 1;
ROLLBACK;
\\d items
SELECT 'still here' AS after_error;
";
    let out = tool("psql", listen, &["-d", "postgres", "-X"], script);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("COPY 2"), "{all}");
    assert!(all.contains("1\tapple\n2\tpear"), "COPY TO STDOUT: {all}");
    assert!(all.contains("second"), "both statements answered: {all}");
    assert!(all.contains("division by zero"), "{all}");
    assert!(all.contains("current transaction is aborted"), "{all}");
    assert!(all.contains("Table \"public.items\""), "\\d works: {all}");
    assert!(all.contains("still here"), "{all}");
}

#[test]
fn pgbench_in_every_query_mode_through_four_server_connections() {
    let pg = Postgres::start();
    let (gw, listen) = gateway(&pg, 4);
    let init = tool("pgbench", listen, &["-i", "-s", "1", "-q", "postgres"], "");
    assert!(init.status.success(), "{}", text(&init));
    for mode in ["simple", "extended", "prepared"] {
        let run = tool(
            "pgbench",
            listen,
            &["-M", mode, "-c", "20", "-j", "2", "-t", "25", "postgres"],
            "",
        );
        let all = text(&run);
        assert!(run.status.success(), "-M {mode}: {all}");
        assert!(
            all.contains("number of transactions actually processed: 500/500"),
            "-M {mode}: {all}"
        );
        assert!(
            all.contains("number of failed transactions: 0 "),
            "-M {mode}: {all}"
        );
    }
    // 20 clients never had more than 4 server connections.
    let servers: usize = on_server(
        pg.port,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .parse()
    .unwrap();
    assert!((1..=4).contains(&servers), "{servers} server connections");
    let metrics = gw.metrics();
    assert!(metrics.contains("command=\"transaction\""), "{metrics}");
    // The pool gauges: the four server connections are idle now, nobody waits.
    let gauge = |name: &str| -> i64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let idle = gauge("throome_upstream_connections{cluster=\"p\",service=\"db\",kind=\"idle\"}");
    assert_eq!(idle, servers as i64);
    assert_eq!(
        gauge("throome_pool_clients{cluster=\"p\",service=\"db\",kind=\"waiting\"}"),
        0
    );
    common::assert_promtool_accepts(&metrics);
}

#[test]
fn the_admin_console_shows_pools_and_pauses() {
    let pg = Postgres::start();
    let listen = free_port();
    let extra = "    username: postgres\n    pool_size: 3\n    stats_period: 1\n    auth:\n      users: { alice: wonderland, bob: builder }\n      admin_users: [alice]\n";
    let yaml = cluster_of(
        "postgres",
        "p",
        "db",
        listen,
        &[(pg.port, "primary", 1)],
        extra,
        "",
    );
    // No file watching: only the console's RELOAD reads the changed file.
    let opts = common::gateway::Options {
        watch: false,
        ..Default::default()
    };
    let gw = Throome::start_with(&[("p", &yaml)], opts);
    let run = tool(
        "psql",
        listen,
        &["-d", "postgres", "-X", "-c", "SELECT 1"],
        "",
    );
    assert!(run.status.success(), "{}", text(&run));
    let console = |args: &[&str]| {
        let mut all = vec!["-d", "throome", "-X", "-A", "-F", ","];
        all.extend_from_slice(args);
        tool("psql", listen, &all, "")
    };
    let pools = console(&["-c", "SHOW POOLS"]);
    let out = text(&pools);
    assert!(pools.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "postgres,postgres,0,0,0,1,0,0,transaction,127.0.0.1:{}",
            pg.port
        )),
        "{out}"
    );
    let config = text(&console(&["-c", "SHOW CONFIG"]));
    assert!(config.contains("default_pool_size,3,yes"), "{config}");
    assert!(config.contains("auth_type,scram-sha-256,yes"), "{config}");
    let stats = text(&console(&["-c", "SHOW STATS"]));
    let row: Vec<u64> = stats
        .lines()
        .find_map(|l| l.strip_prefix("db,"))
        .unwrap_or_else(|| panic!("{stats}"))
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    // One transaction and one query; bytes both ways and time holding the server.
    assert_eq!(row[..2], [1, 1], "{stats}");
    assert!(row[2] > 0 && row[3] > 0 && row[4] > 0, "{stats}");
    stats_over_a_period(listen);
    let databases = text(&console(&["-c", "SHOW DATABASES"]));
    assert!(
        databases.contains(&format!(
            "db,127.0.0.1,{},,postgres,3,0,0,transaction,1,0",
            pg.port
        )),
        "{databases}"
    );
    let lists = text(&console(&["-c", "SHOW LISTS"]));
    assert!(
        lists.contains("pools,1") && lists.contains("free_servers,1"),
        "{lists}"
    );
    let users = text(&console(&["-c", "SHOW USERS"]));
    assert!(users.contains("alice,3,0,transaction,"), "{users}");
    // PgBouncer's monitoring tools ask for the database `pgbouncer`.
    let version = tool(
        "psql",
        listen,
        &["-d", "pgbouncer", "-XAt", "-c", "SHOW VERSION"],
        "",
    );
    assert!(text(&version).starts_with("Throome "), "{}", text(&version));
    let bad = text(&console(&["-c", "DROP TABLE x"]));
    assert!(bad.contains("unknown console command"), "{bad}");
    // SHOW CLIENTS and SHOW SERVERS while a client runs a query: linked to each other.
    let sleeper = std::thread::spawn(move || {
        tool(
            "psql",
            listen,
            &["-d", "postgres", "-X", "-c", "SELECT pg_sleep(3)"],
            "",
        )
    });
    let active = common::eventually(std::time::Duration::from_secs(10), || {
        text(&console(&["-c", "SHOW CLIENTS"])).contains("C,alice,postgres,active,127.0.0.1,")
    });
    assert!(active, "{}", text(&console(&["-c", "SHOW CLIENTS"])));
    let servers = text(&console(&["-c", "SHOW SERVERS"]));
    assert!(
        servers.contains(&format!("S,alice,postgres,active,127.0.0.1,{},", pg.port)),
        "{servers}"
    );
    assert!(sleeper.join().unwrap().status.success());
    // PAUSE: a query waits (here until psql's statement gives up); RESUME lets it through.
    assert!(console(&["-c", "PAUSE"]).status.success());
    let waiting = std::thread::spawn(move || {
        tool(
            "psql",
            listen,
            &["-d", "postgres", "-X", "-At", "-c", "SELECT 'after resume'"],
            "",
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!waiting.is_finished(), "paused: the query waits");
    let pools = text(&console(&["-c", "SHOW POOLS"]));
    assert!(
        pools.contains("postgres,postgres,0,1,"),
        "counted as waiting: {pools}"
    );
    assert!(console(&["-c", "RESUME"]).status.success());
    let done = waiting.join().unwrap();
    assert!(text(&done).contains("after resume"), "{}", text(&done));
    // RELOAD: the changed file is read (new connections see it); a broken one is refused
    // and the running configuration stays.
    gw.write_cluster("p", &yaml.replace("pool_size: 3", "pool_size: 5"));
    let reload = console(&["-c", "RELOAD"]);
    assert!(text(&reload).contains("RELOAD"), "{}", text(&reload));
    let config = text(&console(&["-c", "SHOW CONFIG"]));
    assert!(config.contains("default_pool_size,5,yes"), "{config}");
    gw.write_cluster("p", &yaml.replace("pool_size: 3", "pool_size: many"));
    let broken = text(&console(&["-c", "RELOAD"]));
    assert!(broken.contains("reload failed"), "{broken}");
    assert!(text(&console(&["-c", "SHOW CONFIG"])).contains("default_pool_size,5,yes"));
    // Only admin users get in.
    let mut bob = client("psql", listen, "bob", "builder")
        .args(["-d", "throome", "-c", "SHOW POOLS"])
        .output()
        .unwrap();
    bob.stdout.extend_from_slice(&bob.stderr);
    let out = String::from_utf8_lossy(&bob.stdout);
    assert!(
        !bob.status.success() && out.contains("may not use the admin console"),
        "{out}"
    );
}

#[test]
fn psql_ctrl_c_cancels_the_running_query() {
    let pg = Postgres::start();
    let (_gw, listen) = gateway(&pg, 2);
    let psql = client("psql", listen, "alice", "wonderland")
        .args(["-d", "postgres", "-X", "-c", "SELECT pg_sleep(30)"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Ctrl-C once the server runs it.
    let running = common::eventually(std::time::Duration::from_secs(10), || {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'";
        on_server(pg.port, sql) == "1"
    });
    assert!(running);
    let _ = Command::new("kill")
        .args(["-INT", &psql.id().to_string()])
        .status();
    let started = std::time::Instant::now();
    let out = psql.wait_with_output().unwrap();
    let all = text(&out);
    assert!(
        all.contains("canceling statement due to user request"),
        "{all}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "cancelled, not finished"
    );
}

/// PGOPTIONS (libpq's `options`) reaches the server through the pool; a replication
/// connection (pg_basebackup, logical decoding clients) is refused with a clear error.
#[test]
fn psql_with_pgoptions_and_a_refused_replication_connection() {
    let pg = Postgres::start();
    let (_gw, listen) = gateway(&pg, 1);
    let out = client("psql", listen, "alice", "wonderland")
        .args(["-d", "postgres", "-XAt", "-c", "SHOW work_mem"])
        .env("PGOPTIONS", "-c work_mem=7MB")
        .output()
        .unwrap();
    assert_eq!(text(&out).trim(), "7MB");
    let out = client("psql", listen, "alice", "wonderland")
        .args([
            "-d",
            "dbname=postgres replication=database",
            "-XAt",
            "-c",
            "IDENTIFY_SYSTEM",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("replication connections are not supported"),
        "{}",
        text(&out)
    );
}

/// The `db` row of a console SHOW, as numbers.
fn stats_row(listen: u16, command: &str) -> Vec<u64> {
    let out = tool(
        "psql",
        listen,
        &["-d", "throome", "-XA", "-F", ",", "-c", command],
        "",
    );
    let out = text(&out);
    out.lines()
        .find_map(|l| l.strip_prefix("db,"))
        .unwrap_or_else(|| panic!("{out}"))
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect()
}

/// After a 0.2 s query (and the one before): the time servers spent on queries, and once
/// `stats_period` (1 s) has passed, averages over it.
fn stats_over_a_period(listen: u16) {
    let sleep = tool(
        "psql",
        listen,
        &["-d", "postgres", "-X", "-c", "SELECT pg_sleep(0.2)"],
        "",
    );
    assert!(sleep.status.success(), "{}", text(&sleep));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let stats = stats_row(listen, "SHOW STATS");
    let [xacts, queries, _, _, xact_us, query_us, _] = stats[..7] else {
        panic!("{stats:?}")
    };
    assert_eq!((xacts, queries), (2, 2), "{stats:?}");
    assert!(
        (200_000..=xact_us).contains(&query_us),
        "query time within the held time: {stats:?}"
    );
    // avg_recv, avg_sent, avg_xact_time, avg_query_time: the whole run is the first period.
    let avg = &stats[7..];
    assert!(avg[2] > 0 && avg[3] > 0, "{stats:?}");
    assert!(avg[4] >= 100_000 && avg[5] >= 100_000, "{stats:?}");
    assert_eq!(
        stats_row(listen, "SHOW STATS_TOTALS"),
        stats[..7],
        "{stats:?}"
    );
    assert_eq!(
        stats_row(listen, "SHOW STATS_AVERAGES"),
        stats[7..],
        "{stats:?}"
    );
}

/// In session mode each transaction is counted and timed from its first message to its
/// ReadyForQuery (PgBouncer's way), though the client holds its server throughout.
#[test]
fn session_mode_stats_count_transactions() {
    let pg = Postgres::start();
    let extra = "      admin_users: [alice]\n    pool_mode: session\n";
    let (_gw, listen) = common::pg::alice_gateway(pg.port, extra);
    let args = [
        "-d",
        "postgres",
        "-X",
        "-c",
        "SELECT 1",
        "-c",
        "SELECT pg_sleep(0.1)",
    ];
    let mut args = args.to_vec();
    args.extend([
        "-c",
        "BEGIN",
        "-c",
        "SELECT 2",
        "-c",
        "COMMIT",
        "-c",
        "SELECT pg_sleep(0.3)",
    ]);
    let run = tool("psql", listen, &args, "");
    assert!(run.status.success(), "{}", text(&run));
    let stats = stats_row(listen, "SHOW STATS");
    let [xacts, queries, _, _, xact_us, query_us, _] = stats[..7] else {
        panic!("{stats:?}")
    };
    // SELECT 1, sleep, BEGIN..COMMIT, sleep: four transactions of six queries.
    assert_eq!((xacts, queries), (4, 6), "{stats:?}");
    assert!(query_us >= 400_000 && query_us <= xact_us, "{stats:?}");
}

/// Column names and order of PgBouncer 1.18's console (read off the Debian package's
/// `psql -d pgbouncer -c 'SHOW ...'`), which monitoring tools look columns up by.
/// CLIENTS' last two are PgBouncer 1.23's, which added KILL_CLIENT and the `id` it takes;
/// USERS' are PgBouncer 1.24's (1.18 had name and pool_mode only).
const PGBOUNCER_COLUMNS: [(&str, &str); 12] = [
    (
        "STATS",
        "database,total_xact_count,total_query_count,total_received,total_sent,total_xact_time,total_query_time,total_wait_time,avg_xact_count,avg_query_count,avg_recv,avg_sent,avg_xact_time,avg_query_time,avg_wait_time",
    ),
    (
        "POOLS",
        "database,user,cl_active,cl_waiting,cl_active_cancel_req,cl_waiting_cancel_req,sv_active,sv_active_cancel,sv_being_canceled,sv_idle,sv_used,sv_tested,sv_login,maxwait,maxwait_us,pool_mode",
    ),
    (
        "DATABASES",
        "name,host,port,database,force_user,pool_size,min_pool_size,reserve_pool,pool_mode,max_connections,current_connections,paused,disabled",
    ),
    ("LISTS", "list,items"),
    (
        "STATS_TOTALS",
        "database,xact_count,query_count,bytes_received,bytes_sent,xact_time,query_time,wait_time",
    ),
    (
        "STATS_AVERAGES",
        "database,xact_count,query_count,bytes_received,bytes_sent,xact_time,query_time,wait_time",
    ),
    (
        "CLIENTS",
        "type,user,database,state,addr,port,local_addr,local_port,connect_time,request_time,wait,wait_us,close_needed,ptr,link,remote_pid,tls,application_name,prepared_statements,id",
    ),
    (
        "SERVERS",
        "type,user,database,state,addr,port,local_addr,local_port,connect_time,request_time,wait,wait_us,close_needed,ptr,link,remote_pid,tls,application_name",
    ),
    ("CONFIG", "key,value,default,changeable"),
    (
        "USERS",
        "name,pool_size,reserve_pool_size,pool_mode,max_user_connections,current_connections,max_user_client_connections,current_client_connections",
    ),
    ("VERSION", "version"),
    ("STATE", "key,value"),
];

/// Every console table's columns are PgBouncer's, in PgBouncer's order (Throome leaves out
/// the ones it has no true value for and adds `server` to POOLS and `pid` to CLIENTS, last).
#[test]
fn console_columns_are_pgbouncers() {
    let pg = Postgres::start();
    // (continues the `auth:` block alice_gateway opens)
    let (_gw, listen) = common::pg::alice_gateway(pg.port, "      admin_users: [alice]\n");
    for (command, theirs) in PGBOUNCER_COLUMNS {
        let out = tool(
            "psql",
            listen,
            &[
                "-d",
                "pgbouncer",
                "-X",
                "-A",
                "-F",
                ",",
                "-c",
                &format!("SHOW {command}"),
            ],
            "",
        );
        let header = text(&out).lines().next().unwrap_or_default().to_string();
        let ours: Vec<&str> = header
            .split(',')
            // Throome's own, after PgBouncer's.
            .filter(|c| {
                !matches!(
                    (command, *c),
                    ("POOLS", "server" | "pinned") | ("CLIENTS", "pid" | "pinned")
                )
            })
            .collect();
        let mut theirs = theirs.split(',');
        let in_order = ours.iter().all(|c| theirs.any(|t| t == *c));
        assert!(in_order, "SHOW {command}: {header}");
    }
}
