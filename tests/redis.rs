//! `type: redis` with real clients (the `redis` crate, redis-cli, redis-benchmark) against
//! real redis-servers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::gateway::cluster_of;
use common::{RedisServer, Throome, eventually, free_port};
use futures_util::StreamExt;

fn redis_gateway(backends: &[(u16, &str, u32)], service_extra: &str) -> (Throome, u16) {
    let listen = free_port();
    let yaml = cluster_of(
        "redis",
        "r",
        "cache",
        listen,
        backends,
        service_extra,
        "health: { interval: 0.3, unhealthy_threshold: 1, healthy_threshold: 1 }\n",
    );
    (Throome::start(&[("r", &yaml)]), listen)
}

use common::redis_cli as cli;

async fn connect(port: u16, resp3: bool) -> redis::aio::MultiplexedConnection {
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/{proto}")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_crate_commands_pipelines_and_transactions_resp2_and_resp3() {
    let backend = RedisServer::start();
    let (gw, listen) =
        tokio::task::spawn_blocking(move || redis_gateway(&[(backend.port, "primary", 1)], ""))
            .await
            .unwrap();
    for resp3 in [false, true] {
        let mut con = connect(listen, resp3).await;
        let _: () = redis::cmd("SET")
            .arg("greeting")
            .arg("hello")
            .query_async(&mut con)
            .await
            .unwrap();
        let got: String = redis::cmd("GET")
            .arg("greeting")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(got, "hello");

        // A 200-command pipeline comes back complete and in order.
        let mut pipe = redis::pipe();
        for i in 0..200 {
            pipe.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
        }
        for i in 0..200 {
            pipe.cmd("GET").arg(format!("k{i}"));
        }
        let values: Vec<i64> = pipe.query_async(&mut con).await.unwrap();
        assert_eq!(values, (0..200).collect::<Vec<i64>>());

        // MULTI/EXEC through redis::pipe().atomic().
        let _: () = redis::cmd("DEL")
            .arg("counter")
            .query_async(&mut con)
            .await
            .unwrap();
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .incr("counter", 1)
            .incr("counter", 41)
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((a, b), (1, 42));

        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("f")
            .arg("v")
            .query_async(&mut con)
            .await
            .unwrap();
        let map: redis::Value = redis::cmd("HGETALL")
            .arg("h")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(
            matches!(map, redis::Value::Map(_)),
            resp3,
            "RESP3 clients get maps: {map:?}"
        );
    }
    let metrics = gw.metrics();
    // 1 + 200 GETs per protocol; pipelined ones answered as a group are each counted and
    // each observed in the latency histogram.
    let labels = "{cluster=\"r\",service=\"cache\",command=\"get\"}";
    assert!(
        metrics.contains(&format!("throome_requests_total{labels} 402\n")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "throome_request_duration_seconds_count{labels} 402\n"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("command=\"hello\""), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_with_the_redis_crate_in_both_protocols() {
    let backend = RedisServer::start();
    let (_gw, listen) =
        tokio::task::spawn_blocking(move || redis_gateway(&[(backend.port, "primary", 1)], ""))
            .await
            .unwrap();
    for (resp3, channel) in [(false, "news2"), (true, "news3")] {
        let proto = if resp3 { "?protocol=resp3" } else { "" };
        let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/{proto}")).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(channel).await.unwrap();
        let mut publisher = connect(listen, false).await;
        let receivers: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg("hi")
            .query_async(&mut publisher)
            .await
            .unwrap();
        assert_eq!(receivers, 1);
        let msg = tokio::time::timeout(Duration::from_secs(10), pubsub.on_message().next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.get_channel_name(), channel);
        assert_eq!(msg.get_payload::<String>().unwrap(), "hi");
    }
}

#[test]
fn redis_cli_pipe_eval_subscribe_and_monitor() {
    let backend = RedisServer::start();
    let (gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");

    let mut input = Vec::new();
    for i in 0..1000 {
        let (k, v) = (format!("mass:{i}"), format!("v{i}"));
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )
        .unwrap();
    }
    let mut pipe = Command::new("redis-cli")
        .args(["-p", &listen.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    pipe.stdin.take().unwrap().write_all(&input).unwrap();
    let out = pipe.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
    assert_eq!(cli(backend.port, &["DBSIZE"]), "1000");

    for proto in ["-2", "-3"] {
        let info = cli(listen, &[proto, "INFO", "server"]);
        assert!(info.starts_with("# Throome"), "{info}");
        assert!(
            info.contains("service:cache") && info.contains("redis_version:"),
            "{info}"
        );
    }

    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        script.path(),
        "return redis.call('INCRBY', KEYS[1], ARGV[1])",
    )
    .unwrap();
    assert_eq!(
        cli(
            listen,
            &[
                "--eval",
                script.path().to_str().unwrap(),
                "evalkey",
                ",",
                "5"
            ]
        ),
        "5"
    );

    // SUBSCRIBE: redis-cli waits for messages; publish through the proxy and read one.
    let mut sub = Command::new("redis-cli")
        .args(["-p", &listen.to_string(), "SUBSCRIBE", "alerts"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || cli(
        listen,
        &["PUBLISH", "alerts", "fire"]
    ) == "1"));
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &listen.to_string(), "MONITOR"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || cli(
        backend.port,
        &["CLIENT", "LIST"]
    )
    .contains("cmd=monitor")));
    cli(listen, &["SET", "watched", "1"]);
    // The subscriber and the monitor are pinned; everyone else shares connections.
    let metrics = gw.metrics();
    assert!(
        metrics.contains(
            "throome_upstream_connections{cluster=\"r\",service=\"cache\",kind=\"dedicated\"} 2"
        ),
        "{metrics}"
    );
    assert!(!metrics.contains("kind=\"shared\"} 0"), "{metrics}");
    common::assert_promtool_accepts(&metrics);
    std::thread::sleep(Duration::from_millis(300));
    let _ = sub.kill();
    let _ = monitor.kill();
    let sub_out = sub.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&sub_out.stdout).contains("fire"));
    let mon_out = monitor.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&mon_out.stdout).contains("\"SET\" \"watched\""),
        "{}",
        String::from_utf8_lossy(&mon_out.stdout)
    );
}

#[test]
fn redis_benchmark_pipelined_runs_clean() {
    let backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &listen.to_string(),
            "-t",
            "set,get,incr,lpush,mset",
            "-P",
            "16",
            "-n",
            "2000",
            "-c",
            "10",
            "-q",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // Progress lines end in \r; the summary of each test is its last line.
    for t in ["SET", "GET", "INCR", "LPUSH", "MSET"] {
        let done = text
            .split(['\r', '\n'])
            .map(str::trim)
            .any(|l| l.starts_with(t) && l.contains("requests per second"));
        assert!(done, "{t} missing: {text}");
    }
    assert_eq!(
        cli(backend.port, &["GET", "counter:__rand_int__"]),
        "2000",
        "every INCR arrived exactly once"
    );
}

#[test]
fn proxy_auth_and_backend_credentials_are_separate() {
    let mut backend = RedisServer::start();
    assert_eq!(
        cli(
            backend.port,
            &["CONFIG", "SET", "requirepass", "backend-secret"]
        ),
        "OK"
    );
    let service = "    password: backend-secret\n    auth:\n      password: client-secret\n      users: { alice: alice-secret }\n";
    let (gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], service);
    assert_eq!(
        cli(listen, &["GET", "x"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        cli(listen, &["AUTH", "wrong"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        cli(listen, &["-a", "wrong", "--no-auth-warning", "GET", "x"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        cli(
            listen,
            &["-a", "client-secret", "--no-auth-warning", "SET", "x", "1"]
        ),
        "OK"
    );
    assert_eq!(
        cli(
            listen,
            &[
                "--user",
                "alice",
                "--pass",
                "alice-secret",
                "--no-auth-warning",
                "GET",
                "x"
            ]
        ),
        "1"
    );
    // The client password is not the backend's and vice versa.
    assert_eq!(
        cli(listen, &["AUTH", "backend-secret"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    assert_eq!(
        cli(listen, &["HELLO", "3", "AUTH", "alice", "alice-secret"])
            .lines()
            .next(),
        Some("server redis")
    );
    assert_eq!(
        gw.backend("r", "cache", backend.port)["healthy"],
        true,
        "the PING probe authenticates upstream"
    );
    backend.kill();
}

#[test]
fn reads_go_to_replicas_and_writes_to_the_primary() {
    let primary = RedisServer::start();
    // A separate server standing in as the replica, so a read shows where it went.
    let replica = RedisServer::start();
    assert_eq!(cli(replica.port, &["SET", "where", "replica"]), "OK");
    let (_gw, listen) = redis_gateway(
        &[(primary.port, "primary", 1), (replica.port, "replica", 1)],
        "    read_from_replicas: true\n",
    );
    assert_eq!(cli(listen, &["GET", "where"]), "replica");
    assert_eq!(cli(listen, &["SET", "written", "1"]), "OK");
    assert_eq!(cli(primary.port, &["GET", "written"]), "1");
    assert_eq!(cli(replica.port, &["EXISTS", "written"]), "0");
}

#[test]
fn backend_loss_is_an_error_reply_for_that_client_and_recovery_is_automatic() {
    let mut backend = RedisServer::start();
    let (gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut con).unwrap();
    backend.kill();
    let err = redis::cmd("GET")
        .arg("a")
        .query::<String>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("Throome"), "{err}");
    // The same client connection stays usable once the backend is back.
    backend.restart();
    assert!(eventually(Duration::from_secs(15), || redis::cmd("PING")
        .query::<String>(&mut con)
        .is_ok()
        && redis::cmd("SET")
            .arg("b")
            .arg("2")
            .query::<()>(&mut con)
            .is_ok()));
    assert!(eventually(Duration::from_secs(15), || gw.backend(
        "r",
        "cache",
        backend.port
    )["healthy"]
        == true));
}

#[test]
fn protocol_errors_close_only_that_client() {
    use std::io::Read;
    let backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    let mut good = client.get_connection().unwrap();
    let mut bad = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    bad.write_all(b"*1\r\n$-5\r\n").unwrap();
    let mut reply = String::new();
    bad.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "-ERR Protocol error: invalid bulk length\r\n");
    assert_eq!(
        redis::cmd("PING").query::<String>(&mut good).unwrap(),
        "PONG"
    );
}

#[test]
fn probe_marks_a_backend_that_rejects_us_down() {
    let backend = RedisServer::start();
    // No backend credentials configured: PING gets NOAUTH, so the backend is not usable.
    assert_eq!(
        cli(
            backend.port,
            &["CONFIG", "SET", "requirepass", "nobody-told-us"]
        ),
        "OK"
    );
    let (gw, _listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    assert!(eventually(Duration::from_secs(10), || gw.backend(
        "r",
        "cache",
        backend.port
    )["healthy"]
        == false));
}

#[test]
fn killing_the_backend_mid_pipeline_fails_that_pipeline_only_and_never_hangs() {
    let mut backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    con.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut con).unwrap();
    // A pipeline whose head keeps the backend busy; the backend dies while it runs.
    let pipeline = std::thread::spawn(move || {
        let mut pipe = redis::pipe();
        pipe.cmd("DEBUG").arg("SLEEP").arg("2");
        for _ in 0..100 {
            pipe.cmd("GET").arg("a");
        }
        let result: redis::RedisResult<Vec<redis::Value>> = pipe.query(&mut con);
        (result, con)
    });
    std::thread::sleep(Duration::from_millis(300));
    backend.kill();
    let (result, mut con) = pipeline.join().unwrap();
    let err = result.expect_err("the pipeline's requests were lost with the backend");
    assert!(err.to_string().contains("Throome"), "{err}");
    // The client's connection is still open and works again once the backend is back.
    backend.restart();
    assert!(eventually(Duration::from_secs(15), || redis::cmd("GET")
        .arg("a")
        .query::<Option<String>>(&mut con)
        .is_ok()));
}

#[test]
fn select_of_another_database_gets_a_connection_of_its_own() {
    let backend = RedisServer::start();
    let (_gw, listen) = redis_gateway(&[(backend.port, "primary", 1)], "");
    // redis-cli -n 3 sends SELECT 3 first; from then on the client has its own connection.
    assert_eq!(cli(listen, &["-n", "3", "SET", "in3", "yes"]), "OK");
    assert_eq!(cli(backend.port, &["-n", "3", "GET", "in3"]), "yes");
    assert_eq!(cli(backend.port, &["GET", "in3"]), "", "db 0 is untouched");
    // Other clients stay on db 0.
    assert_eq!(cli(listen, &["EXISTS", "in3"]), "0");
    assert_eq!(cli(listen, &["SELECT", "0"]), "OK");
}

#[test]
fn a_backend_that_does_not_answer_times_out_instead_of_hanging() {
    let backend = RedisServer::start();
    // Health checks off: a backend asleep in DEBUG SLEEP also fails its PING probes and would
    // be marked down, which is right but not what this test is about.
    let listen = free_port();
    let yaml = cluster_of(
        "redis",
        "r",
        "cache",
        listen,
        &[(backend.port, "primary", 1)],
        "    request_timeout: 0.3\n",
        "health: { enabled: false }\n",
    );
    let gw = Throome::start(&[("r", &yaml)]);
    let client = redis::Client::open(format!("redis://127.0.0.1:{listen}/")).unwrap();
    let mut con = client.get_connection().unwrap();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // DEBUG SLEEP keeps the backend from answering for 1.5 s.
    let err = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg("1.5")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("did not answer within"), "{err}");
    // BLPOP is exempt: it may wait as long as it asked to.
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg("nothing")
        .arg("0.5")
        .query(&mut con)
        .unwrap();
    assert_eq!(popped, None);
    // Once the backend answers again, so does the connection, replies still in step.
    // (The late reply to DEBUG SLEEP is dropped by the proxy; a GET after a SET proves the
    // replies that follow are still matched to their requests.)
    assert!(eventually(Duration::from_secs(10), || redis::cmd("EXISTS")
        .arg("k")
        .query::<i64>(&mut con)
        .is_ok()));
    assert_eq!(
        redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query::<String>(&mut con)
            .unwrap(),
        "OK"
    );
    assert_eq!(
        redis::cmd("GET")
            .arg("k")
            .query::<String>(&mut con)
            .unwrap(),
        "v"
    );
    assert!(gw.metrics().contains("kind=\"timeout\""));
}

#[test]
fn a_multi_threaded_gateway_serves_the_same() {
    let backend = RedisServer::start();
    let (_gw, listen) = common::gateway::two_workers("mt", backend.port);
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &listen.to_string(),
            "-t",
            "incr",
            "-P",
            "16",
            "-n",
            "4800",
            "-c",
            "20",
            "-q",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // 4800 = 300 pipelines of 16: redis-benchmark rounds a partial last pipeline up.
    assert_eq!(cli(backend.port, &["GET", "counter:__rand_int__"]), "4800");
}
