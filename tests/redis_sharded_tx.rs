//! MULTI/EXEC through sharded services, over ketama shards and a real Redis Cluster: a
//! transaction whose keys share a shard (a slot on the cluster) runs atomically there; one
//! that strays gets CROSSSLOT when the stray command is queued and EXECABORT at EXEC, as
//! Redis Cluster answers; DISCARD, nested MULTI, EXEC without MULTI and arity errors answer
//! as Redis does. The redis crate's atomic pipeline (MULTI ... EXEC in one write) works.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::redis_con as con;

fn cmd(c: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

fn text(v: &redis::Value) -> String {
    format!("{v:?}")
}

fn transactions_stay_on_one_shard(listen: u16) {
    let mut c = con(listen);
    assert_eq!(text(&cmd(&mut c, &["MULTI"]).unwrap()), "ok");
    assert!(text(&cmd(&mut c, &["SET", "{u}:a", "1"]).unwrap()).contains("QUEUED"));
    assert!(text(&cmd(&mut c, &["INCR", "{u}:a"]).unwrap()).contains("QUEUED"));
    assert!(text(&cmd(&mut c, &["MGET", "{u}:a", "{u}:b"]).unwrap()).contains("QUEUED"));
    let (set, incr, got): (String, i64, Vec<Option<i64>>) =
        redis::cmd("EXEC").query(&mut c).unwrap();
    assert_eq!((set.as_str(), incr, got), ("OK", 2, vec![Some(2), None]));

    // An atomic pipeline from the redis crate.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("{u}:a", 1)
        .incr("{u}:a", 1)
        .query(&mut c)
        .unwrap();
    assert_eq!((a, b), (3, 4));

    // Keys of many slots: the stray command is refused at once and EXEC aborts.
    cmd(&mut c, &["MULTI"]).unwrap();
    cmd(&mut c, &["SET", "{u}:a", "0"]).unwrap();
    // Well-mixed names: twemproxy's fnv1a_64 puts short look-alike keys ("k0".."k39")
    // on one stretch of the ketama ring, often one shard, whichever ports the servers got.
    let keys: Vec<String> = (0..40u64)
        .map(|i| format!("k{:016x}", (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let mut mset = redis::cmd("MSET");
    keys.iter().for_each(|k| {
        mset.arg(k).arg(1);
    });
    let err = mset.query::<()>(&mut c).unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    let err = cmd(&mut c, &["EXEC"]).unwrap_err();
    assert_eq!(err.code(), Some("EXECABORT"), "{err}");
    let v: i64 = redis::cmd("GET").arg("{u}:a").query(&mut c).unwrap();
    assert_eq!(v, 4, "the aborted transaction wrote nothing");

    // Queueing errors, DISCARD, nesting, stray EXEC.
    cmd(&mut c, &["MULTI"]).unwrap();
    assert!(cmd(&mut c, &["GET"]).is_err(), "wrong arity");
    assert_eq!(
        cmd(&mut c, &["EXEC"]).unwrap_err().code(),
        Some("EXECABORT")
    );
    cmd(&mut c, &["MULTI"]).unwrap();
    let nested = cmd(&mut c, &["MULTI"]).unwrap_err();
    assert!(nested.to_string().contains("nested"), "{nested}");
    cmd(&mut c, &["INCR", "{u}:a"]).unwrap();
    assert_eq!(text(&cmd(&mut c, &["DISCARD"]).unwrap()), "ok");
    let v: i64 = redis::cmd("GET").arg("{u}:a").query(&mut c).unwrap();
    assert_eq!(v, 4, "discarded");
    let stray = cmd(&mut c, &["EXEC"]).unwrap_err();
    assert!(stray.to_string().contains("EXEC without MULTI"), "{stray}");
    watch_makes_exec_check_the_keys(listen, &mut c);
}

/// WATCH: a transaction runs when its watched keys stayed as they were, answers nil when
/// another client changed one, and not at all after UNWATCH's or DISCARD's end of the watch;
/// watched keys of several shards, or a transaction straying from the watched shard, get
/// CROSSSLOT. The redis crate's optimistic `transaction` helper (WATCH, GET, MULTI, EXEC,
/// retried on nil) counts right with a rival writer.
fn watch_makes_exec_check_the_keys(listen: u16, c: &mut redis::Connection) {
    let mut rival = con(listen);
    let set = |c: &mut redis::Connection, v: &str| cmd(c, &["SET", "{w}:k", v]).unwrap();
    set(c, "0");
    assert_eq!(text(&cmd(c, &["WATCH", "{w}:k", "{w}:j"]).unwrap()), "ok");
    let _ = cmd(c, &["GET", "{w}:k"]).unwrap();
    cmd(c, &["MULTI"]).unwrap();
    cmd(c, &["SET", "{w}:k", "1"]).unwrap();
    let done = cmd(c, &["EXEC"]).unwrap();
    assert!(
        matches!(done, redis::Value::Array(ref v) if v.len() == 1),
        "{done:?}"
    );

    cmd(c, &["WATCH", "{w}:k"]).unwrap();
    set(&mut rival, "rival");
    cmd(c, &["MULTI"]).unwrap();
    cmd(c, &["SET", "{w}:k", "mine"]).unwrap();
    assert_eq!(
        cmd(c, &["EXEC"]).unwrap(),
        redis::Value::Nil,
        "the rival's write won"
    );
    let v: String = redis::cmd("GET").arg("{w}:k").query(c).unwrap();
    assert_eq!(v, "rival");

    cmd(c, &["WATCH", "{w}:k"]).unwrap();
    assert_eq!(text(&cmd(c, &["UNWATCH"]).unwrap()), "ok");
    set(&mut rival, "again");
    cmd(c, &["MULTI"]).unwrap();
    cmd(c, &["SET", "{w}:k", "after unwatch"]).unwrap();
    assert!(matches!(cmd(c, &["EXEC"]).unwrap(), redis::Value::Array(_)));

    let spread: Vec<String> = (0..40u64)
        .map(|i| format!("w{:016x}", (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let mut across = redis::cmd("WATCH");
    spread.iter().for_each(|k| {
        across.arg(k);
    });
    let err = across.query::<()>(c).unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    cmd(c, &["WATCH", "{w}:k"]).unwrap();
    cmd(c, &["MULTI"]).unwrap();
    let mut stray = redis::cmd("MSET");
    spread.iter().for_each(|k| {
        stray.arg(k).arg(1);
    });
    assert_eq!(stray.query::<()>(c).unwrap_err().code(), Some("CROSSSLOT"));
    assert_eq!(cmd(c, &["EXEC"]).unwrap_err().code(), Some("EXECABORT"));
    let inside = {
        cmd(c, &["MULTI"]).unwrap();
        let e = cmd(c, &["WATCH", "{w}:k"]).unwrap_err();
        cmd(c, &["DISCARD"]).unwrap();
        e
    };
    assert!(inside.to_string().contains("inside MULTI"), "{inside}");

    // Optimistic increments, a rival writing in between the first attempts.
    set(c, "0");
    let mut tries = 0;
    for _ in 0..5 {
        let (n,): (i64,) = redis::transaction(c, &["{w}:k"], |c, pipe| {
            tries += 1;
            let now: i64 = redis::cmd("GET").arg("{w}:k").query(c)?;
            if tries <= 2 {
                let _: () = redis::cmd("INCRBY")
                    .arg("{w}:k")
                    .arg(100)
                    .query(&mut rival)?;
            }
            pipe.set("{w}:k", now + 1).ignore().get("{w}:k").query(c)
        })
        .unwrap();
        assert!(n >= 1);
    }
    let v: i64 = redis::cmd("GET").arg("{w}:k").query(c).unwrap();
    assert_eq!(v, 200 + 5, "two rival writes, five increments");
    assert_eq!(tries, 7, "the two attempts a rival spoiled were retried");
}

#[test]
fn transactions_on_ketama_shards() {
    let (_servers, _gw, listen) = common::gateway::ketama_trio("tx");
    transactions_stay_on_one_shard(listen);
}

#[test]
fn transactions_on_a_cluster() {
    let nodes = common::servers::redis_cluster(3, 0);
    let backends = [(nodes[0].port, "primary", 1)];
    let (_gw, listen) =
        common::gateway::one_service("redis", "tc", &backends, "    sharding: cluster\n");
    transactions_stay_on_one_shard(listen);
}
