//! Pub/sub through sharded services: over a real Redis Cluster, SUBSCRIBE and PSUBSCRIBE
//! reach messages published on any slot (the cluster relays classic messages to every
//! node) and SSUBSCRIBE those of its shard channel; over ketama shards, a channel lives on
//! the shard its name hashes to, for PUBLISH and SUBSCRIBE alike.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::redis_cli as cli;

/// A raw RESP2 connection that sent `command channels...` and read its confirmations.
fn subscriber(listen: u16, command: &str, channels: &[&str]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "*{}\r\n${}\r\n{command}\r\n",
        channels.len() + 1,
        command.len()
    );
    for c in channels {
        req.push_str(&format!("${}\r\n{c}\r\n", c.len()));
    }
    s.write_all(req.as_bytes()).unwrap();
    let confirmed = read_until(&mut s, channels.last().unwrap());
    assert!(confirmed.contains(&command.to_lowercase()), "{confirmed}");
    s
}

/// Reads until `needle` has arrived (or the read times out, failing the test).
fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = s.read(&mut buf).expect("the message never came");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn cluster_subscribers_get_messages_from_any_slot() {
    let nodes = common::servers::redis_cluster(3, 0);
    let backends = [(nodes[0].port, "primary", 1)];
    let (_gw, listen) =
        common::gateway::one_service("redis", "ps", &backends, "    sharding: cluster\n");
    // "news" and "sports" hash to different slots, most likely on different nodes.
    let mut sub = subscriber(listen, "SUBSCRIBE", &["news"]);
    let mut psub = subscriber(listen, "PSUBSCRIBE", &["spo*"]);
    let mut ssub = subscriber(listen, "SSUBSCRIBE", &["{user1}:feed"]);
    for (command, channel, message) in [
        ("PUBLISH", "news", "headline"),
        ("PUBLISH", "sports", "score"),
        ("SPUBLISH", "{user1}:feed", "post"),
    ] {
        cli(listen, &[command, channel, message]);
    }
    assert!(read_until(&mut sub, "headline").contains("news"));
    assert!(read_until(&mut psub, "score").contains("sports"));
    assert!(read_until(&mut ssub, "post").contains("smessage"));
    // PUBSUB introspection sees every node's subscribers.
    let channels = cli(listen, &["PUBSUB", "CHANNELS"]);
    assert_eq!(channels, "news");
    let numsub = cli(listen, &["PUBSUB", "NUMSUB", "news", "sports"]);
    assert_eq!(
        numsub.split_whitespace().collect::<Vec<_>>(),
        ["news", "1", "sports", "0"]
    );
    assert_eq!(cli(listen, &["PUBSUB", "NUMPAT"]), "1");
    assert_eq!(cli(listen, &["PUBSUB", "SHARDCHANNELS"]), "{user1}:feed");
    // Shard channels of different slots cannot share one subscription.
    let out = cli(listen, &["SSUBSCRIBE", "{a}x", "{b}y"]);
    assert!(out.contains("CROSSSLOT"), "{out}");
}

#[test]
fn ketama_channels_live_on_their_shard() {
    let (_servers, _gw, listen) = common::gateway::ketama_trio("pk");
    let mut subs: Vec<(String, TcpStream)> = (0..6)
        .map(|i| {
            let channel = format!("channel-{i:x}-{}", i * 7919);
            let s = subscriber(listen, "SUBSCRIBE", &[&channel]);
            (channel, s)
        })
        .collect();
    for (channel, _) in &subs {
        let receivers = cli(listen, &["PUBLISH", channel, &format!("to-{channel}")]);
        assert_eq!(
            receivers, "1",
            "{channel}: the subscriber is on the channel's shard"
        );
    }
    for (channel, s) in &mut subs {
        read_until(s, &format!("to-{channel}"));
    }
    // Each channel's subscriber is counted once, on whichever shard it is.
    let names: Vec<&str> = subs.iter().map(|(c, _)| c.as_str()).collect();
    let mut args = vec!["PUBSUB", "NUMSUB"];
    args.extend(&names);
    let counts = cli(listen, &args);
    let counts: Vec<&str> = counts.split_whitespace().skip(1).step_by(2).collect();
    assert_eq!(counts, ["1"; 6]);
    // Patterns span shards.
    let out = cli(listen, &["PSUBSCRIBE", "channel-*"]);
    assert!(out.contains("not supported"), "{out}");
}
