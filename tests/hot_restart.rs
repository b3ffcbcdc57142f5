//! Restart without dropping clients (`crate::handover`): SIGUSR2 starts the binary again,
//! hands it the listening sockets themselves, and the old process drains and exits. While
//! it happens redis-benchmark (a new connection per request) and pgbench (a new connection
//! per transaction) run through the gateway: no connection is refused, no request fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::servers::pg_bin;
use common::{Postgres, RedisServer, Throome, eventually, free_port};

/// Kills the process that took over when the test ends (it is not the harness's child).
struct Successor(Option<u32>);

impl Drop for Successor {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The pid the last old process logged as its successor.
fn successor(log: &str) -> Option<u32> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("took over the listening sockets"))?;
    let at = line.find("pid=")? + 4;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn sigusr2_hands_over_without_refusing_or_failing() {
    let redis = RedisServer::start();
    let pg = Postgres::start();
    let (cache, db) = (free_port(), free_port());
    let yaml = format!(
        "cluster_id: app\nname: app\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{cache}\"\n    host: 127.0.0.1\n    port: {}\n  db:\n    type: postgres\n    listen: \"127.0.0.1:{db}\"\n    host: 127.0.0.1\n    port: {}\n    username: postgres\n    database: postgres\n",
        redis.port, pg.port
    );
    let mut gw = Throome::start(&[("app", &yaml)]);
    let old = gw.pid();
    let script = gw.dir.path().join("select.sql");
    std::fs::write(&script, "select 1;\n").unwrap();

    // Load that opens a new connection for every request, for longer than the upgrade.
    let bench = Command::new("redis-benchmark")
        .args([
            "-p",
            &cache.to_string(),
            "-k",
            "0",
            "-c",
            "4",
            "-n",
            "16000",
            "-t",
            "set,get",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pgbench = Command::new(pg_bin("pgbench"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &db.to_string(),
            "-U",
            "postgres",
            "-n",
            "-C",
            "-c",
            "2",
            "-T",
            "8",
            "-f",
        ])
        .arg(&script)
        .arg("postgres")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let signalled = Instant::now();
    gw.signal("-USR2");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(30)),
        Some(0),
        "the old process did not drain and exit:\n{}",
        gw.log()
    );
    let took = signalled.elapsed();
    let new = successor(&gw.log());
    let _cleanup = Successor(new);
    let new = new.unwrap_or_else(|| panic!("no successor logged:\n{}", gw.log()));
    assert_ne!(new, old);
    assert!(alive(new), "the new process is gone:\n{}", gw.log());

    let bench = bench.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&bench.stdout),
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(
        bench.status.success(),
        "redis-benchmark failed during the upgrade:\n{text}"
    );
    for bad in ["refused", "rror", "reset"] {
        assert!(!text.contains(bad), "redis-benchmark saw {bad}:\n{text}");
    }
    let pgbench = pgbench.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&pgbench.stdout),
        String::from_utf8_lossy(&pgbench.stderr)
    );
    assert!(
        pgbench.status.success(),
        "pgbench failed during the upgrade:\n{text}"
    );
    assert!(text.contains("number of failed transactions: 0"), "{text}");
    let done: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(done > 50, "pgbench ran {done} transactions:\n{text}");

    // The new process serves, on the same ports, the admin API included.
    let mut con = common::redis_con(cache);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    assert!(eventually(Duration::from_secs(5), || {
        common::gateway::http_get(gw.admin_port, "/ready", None).is_ok_and(|r| r.0 == 200)
    }));
    eprintln!("upgrade: old process exited {took:?} after SIGUSR2");

    // Again, asked through the admin API (`throome-cli upgrade`), from the new process.
    let out = Command::new(env!("CARGO_BIN_EXE_throome-cli"))
        .args(["upgrade", "--gateway", &gw.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(30), || !alive(new)),
        "the second process did not hand over:\n{}",
        gw.log()
    );
    let third = successor(&gw.log()).unwrap();
    let _cleanup_third = Successor(Some(third));
    assert!(third != new && alive(third), "{}", gw.log());
    let pong: String = redis::cmd("PING")
        .query(&mut common::redis_con(cache))
        .unwrap();
    assert_eq!(pong, "PONG");
}
