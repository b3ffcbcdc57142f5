//! Keyless commands through a sharded service, over ketama shards and over a real Redis
//! Cluster: SCAN walks every shard (`redis-cli --scan`, which loops on the cursor until it
//! is 0, finds every key exactly once, with MATCH and COUNT passed on to each shard), and
//! SCRIPT, FUNCTION and RANDOMKEY go to every shard with their replies combined as Redis's
//! command tips say.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{redis_cli as cli, redis_con as con};

/// 300 `user:...` and 100 `other:...` keys through the proxy.
fn write_keys(listen: u16) -> BTreeSet<String> {
    let mut c = con(listen);
    let mut all = BTreeSet::new();
    for i in 0..400 {
        // Varied names: twemproxy's hash bunches sequential ones onto few shards.
        let name = (i as u32).wrapping_mul(2_654_435_761);
        let key = match i < 300 {
            true => format!("user:{name:08x}"),
            false => format!("other:{name:08x}"),
        };
        let _: () = redis::cmd("SET").arg(&key).arg(i).query(&mut c).unwrap();
        all.insert(key);
    }
    all
}

/// What `redis-cli --scan` with `args` lists through the proxy; every key once.
fn scanned(listen: u16, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &listen.to_string(), "--scan"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let keys: BTreeSet<String> = lines.iter().cloned().collect();
    assert_eq!(keys.len(), lines.len(), "a key listed twice");
    keys
}

/// Every key, and with MATCH only the matching ones, whatever the COUNT.
fn scan_finds_everything(listen: u16, nodes: &[u16]) {
    let all = write_keys(listen);
    for port in nodes {
        let held: usize = cli(*port, &["DBSIZE"]).parse().unwrap();
        assert!(held > 0, "every shard holds some of the keys");
    }
    assert_eq!(scanned(listen, &[]), all);
    let users: BTreeSet<String> = all
        .iter()
        .filter(|k| k.starts_with("user:"))
        .cloned()
        .collect();
    assert_eq!(scanned(listen, &["--pattern", "user:*"]), users);
    // The scan loop by hand with COUNT (this redis-cli has no --count): many calls, each
    // answered by one shard, together every user key once.
    let mut c = con(listen);
    let (mut cursor, mut calls, mut found) = (0u64, 0, Vec::new());
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("user:*")
            .arg("COUNT")
            .arg(7)
            .query(&mut c)
            .unwrap();
        found.extend(keys);
        calls += 1;
        cursor = next;
        if cursor == 0 || calls > 1000 {
            break;
        }
    }
    // About 400 keys / COUNT 7 calls; three would do if the shards ignored COUNT.
    assert!(calls > 20, "{calls} calls");
    assert_eq!(found.len(), users.len());
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), users);
    let err = redis::cmd("SCAN")
        .arg("nope")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("invalid cursor"), "{err}");
    scripts_reach_every_shard(&mut c, &all);
}

/// A script loaded once through the proxy runs by its SHA on keys of every shard; SCRIPT
/// EXISTS and FLUSH see all shards; a function library too; RANDOMKEY finds a key.
fn scripts_reach_every_shard(c: &mut redis::Connection, keys: &BTreeSet<String>) {
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return redis.call('GET', KEYS[1])")
        .query(c)
        .unwrap();
    for key in keys {
        let v: Option<i64> = redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(1)
            .arg(key)
            .query(c)
            .unwrap();
        assert!(v.is_some(), "{key}");
    }
    let exists = |c: &mut redis::Connection| -> Vec<i64> {
        redis::cmd("SCRIPT")
            .arg("EXISTS")
            .arg(&sha)
            .arg("0000000000000000000000000000000000000000")
            .query(c)
            .unwrap()
    };
    assert_eq!(exists(c), [1, 0]);
    let library = "#!lua name=proxied\nredis.register_function('getit', function(keys) return redis.call('GET', keys[1]) end)";
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(library)
        .query(c)
        .unwrap();
    assert_eq!(name, "proxied");
    for key in keys.iter().take(50) {
        let v: Option<i64> = redis::cmd("FCALL")
            .arg("getit")
            .arg(1)
            .arg(key)
            .query(c)
            .unwrap();
        assert!(v.is_some(), "{key}");
    }
    // Without keys a script runs on one shard.
    let n: i64 = redis::cmd("EVAL").arg("return 7").arg(0).query(c).unwrap();
    assert_eq!(n, 7);
    let random: Option<String> = redis::cmd("RANDOMKEY").query(c).unwrap();
    assert!(random.is_some_and(|k| keys.contains(&k)));
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(c).unwrap();
    assert_eq!(exists(c), [0, 0]);
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query(c).unwrap();
}

#[test]
fn scan_walks_every_ketama_shard() {
    let (servers, _gw, listen) = common::gateway::ketama_trio("sk");
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    scan_finds_everything(listen, &ports);
    let info = common::redis_cli(listen, &["INFO", "server"]);
    assert!(info.contains("sharding:ketama"), "{info}");
}

#[test]
fn scan_walks_every_cluster_master() {
    let nodes = common::servers::redis_cluster(3, 0);
    let backends = [(nodes[0].port, "primary", 1)];
    let (_gw, listen) =
        common::gateway::one_service("redis", "sc", &backends, "    sharding: cluster\n");
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    scan_finds_everything(listen, &ports);
    let info = common::redis_cli(listen, &["INFO", "server"]);
    assert!(info.contains("sharding:cluster"), "{info}");
}
