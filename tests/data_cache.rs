//! The data API's cache routes against a real redis-server through the gateway: Upstash's
//! command, pipeline and multi-exec endpoints, answered as Redis itself answers (the same
//! commands sent straight to the server give the same replies), plain cache keys, and the
//! errors: Redis's own, refused commands, bad bodies, tokens and scopes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::data::{ADMIN, CACHE_ONLY, OTHER, READER, WRITER, call, setup};
use serde_json::{Value, json};

fn post(port: u16, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(port, "POST", path, Some(token), Some(&body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstash_commands_answer_as_redis_does() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let r = "/api/v1/clusters/app/redis";
    assert_eq!(
        post(p, r, WRITER, json!(["SET", "greeting", "hello", "EX", 60])),
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        post(p, r, WRITER, json!(["GET", "greeting"])),
        (200, json!({"result": "hello"}))
    );
    assert_eq!(
        post(p, r, WRITER, json!(["INCRBY", "n", 5])),
        (200, json!({"result": 5}))
    );
    assert_eq!(
        post(p, r, WRITER, json!(["GET", "missing"])),
        (200, json!({"result": null}))
    );
    assert_eq!(
        post(p, r, WRITER, json!(["RPUSH", "l", "a", "b"])).1,
        json!({"result": 2})
    );
    assert_eq!(
        post(p, r, WRITER, json!(["LRANGE", "l", 0, -1])).1,
        json!({"result": ["a", "b"]})
    );
    // The value is really in the server, for native clients.
    let mut direct = common::redis_con(d.redis.port);
    let v: String = redis::cmd("GET")
        .arg("greeting")
        .query(&mut direct)
        .unwrap();
    assert_eq!(v, "hello");
    let ttl: i64 = redis::cmd("TTL")
        .arg("greeting")
        .query(&mut direct)
        .unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
    // Redis's own error, with its first word as the code.
    let (status, body) = post(p, r, WRITER, json!(["INCR", "l"]));
    assert_eq!(status, 400);
    assert_eq!(body["code"], "WRONGTYPE");
    let direct_err = redis::cmd("INCR")
        .arg("l")
        .query::<i64>(&mut direct)
        .unwrap_err();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(direct_err.detail().unwrap()),
        "{body} vs {direct_err}"
    );
    // Binary values, and base64 on request.
    redis::cmd("SET")
        .arg("bin")
        .arg(&b"\xff\x00"[..])
        .exec(&mut direct)
        .unwrap();
    assert_eq!(
        post(p, r, WRITER, json!(["GET", "bin"])).1,
        json!({"result": "/wA="})
    );
    assert_eq!(
        post(
            p,
            &format!("{r}?encoding=base64"),
            WRITER,
            json!(["GET", "greeting"])
        )
        .1,
        json!({"result": "aGVsbG8="})
    );

    // A pipeline: one entry per command, errors in place.
    let (status, body) = post(
        p,
        "/api/v1/clusters/app/redis/pipeline",
        WRITER,
        json!([
            ["SET", "a", "1"],
            ["INCR", "a"],
            ["INCR", "l"],
            ["GET", "a"]
        ]),
    );
    assert_eq!(status, 200);
    assert_eq!(body[0], json!({"result": "OK"}));
    assert_eq!(body[1], json!({"result": 2}));
    assert!(
        body[2]["error"].as_str().unwrap().starts_with("WRONGTYPE"),
        "{body}"
    );
    assert_eq!(body[3], json!({"result": "2"}));

    // MULTI/EXEC: the results of EXEC; a runtime error stays in its place, as in Redis.
    let tx = "/api/v1/clusters/app/redis/multi-exec";
    let (status, body) = post(
        p,
        tx,
        WRITER,
        json!([["INCR", "t"], ["INCR", "l"], ["INCR", "t"]]),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0], json!({"result": 1}));
    assert!(
        body[1]["error"].as_str().unwrap().starts_with("WRONGTYPE"),
        "{body}"
    );
    assert_eq!(body[2], json!({"result": 2}));
    // A command refused while queueing discards the whole transaction.
    let (status, body) = post(p, tx, WRITER, json!([["INCR", "t"], ["NOSUCHCOMMAND"]]));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("EXECABORT")),
        "{body}"
    );
    let t: i64 = redis::cmd("GET").arg("t").query(&mut direct).unwrap();
    assert_eq!(t, 2, "the aborted transaction ran nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keys_and_ttl() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let k = "/api/v1/clusters/app/cache/user:1";
    assert_eq!(
        call(
            p,
            "PUT",
            &format!("{k}?ttl=30"),
            Some(WRITER),
            Some("\"ada\"")
        ),
        (200, json!({"result": "OK"}))
    );
    assert_eq!(
        call(p, "GET", k, Some(READER), None),
        (200, json!({"result": "ada"}))
    );
    let mut direct = common::redis_con(d.redis.port);
    let ttl: i64 = redis::cmd("TTL").arg("user:1").query(&mut direct).unwrap();
    assert!((1..=30).contains(&ttl), "{ttl}");
    // Binary through base64 both ways.
    let b = "/api/v1/clusters/app/cache/blob?encoding=base64";
    assert_eq!(call(p, "PUT", b, Some(WRITER), Some("\"AAH/\"")).0, 200);
    let raw: Vec<u8> = redis::cmd("GET").arg("blob").query(&mut direct).unwrap();
    assert_eq!(raw, vec![0, 1, 255]);
    assert_eq!(
        call(p, "GET", b, Some(WRITER), None).1,
        json!({"result": "AAH/"})
    );
    assert_eq!(
        call(p, "DELETE", k, Some(WRITER), None),
        (200, json!({"result": 1}))
    );
    let (status, body) = call(p, "GET", k, Some(WRITER), None);
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert_eq!(
        call(p, "DELETE", k, Some(WRITER), None),
        (200, json!({"result": 0}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_tokens_and_scopes() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let r = "/api/v1/clusters/app/redis";
    let code = |(s, b): (u16, Value)| (s, b["code"].as_str().unwrap_or_default().to_string());
    // Tokens: none, wrong, the other cluster's, the admin's way of asking.
    assert_eq!(
        code(call(p, "POST", r, None, Some("[\"PING\"]"))),
        (401, "unauthorized".into())
    );
    assert_eq!(
        code(post(p, r, "not-a-token-of-this-cluster", json!(["PING"]))),
        (401, "unauthorized".into())
    );
    assert_eq!(
        code(post(p, r, OTHER, json!(["PING"]))),
        (401, "unauthorized".into())
    );
    assert_eq!(
        code(post(
            p,
            "/api/v1/clusters/nope/redis",
            WRITER,
            json!(["PING"])
        )),
        (404, "cluster_not_found".into())
    );
    assert_eq!(
        code(post(p, &format!("{r}?service=db"), WRITER, json!(["PING"]))),
        (404, "service_not_found".into())
    );
    // Scopes: a reader reads, does not write; a cache-only token has no database.
    assert_eq!(post(p, r, READER, json!(["GET", "x"])).0, 200);
    assert_eq!(
        code(post(p, r, READER, json!(["SET", "x", "1"]))),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(post(p, r, READER, json!(["EVAL", "return 1", 0]))),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(call(
            p,
            "PUT",
            "/api/v1/clusters/app/cache/x",
            Some(READER),
            Some("\"1\"")
        )),
        (403, "forbidden".into())
    );
    assert_eq!(post(p, r, CACHE_ONLY, json!(["SET", "x", "1"])).0, 200);
    let sql = json!({"query": "select 1"});
    assert_eq!(
        code(post(p, "/api/v1/clusters/app/sql", CACHE_ONLY, sql)),
        (403, "forbidden".into())
    );
    // Bodies: malformed, wrong shape, empty, too large.
    assert_eq!(
        code(call(p, "POST", r, Some(WRITER), Some("[\"GET\""))),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(post(p, r, WRITER, json!({"cmd": "GET"}))),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(post(p, r, WRITER, json!([]))),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(post(p, r, WRITER, json!(["GET", null]))),
        (400, "bad_request".into())
    );
    let huge = format!("[\"SET\", \"k\", \"{}\"]", "x".repeat(5 * 1024 * 1024));
    assert_eq!(
        code(call(p, "POST", r, Some(WRITER), Some(&huge))),
        (413, "body_too_large".into())
    );
    // Commands that need a connection of their own are refused before anything is sent.
    for c in [
        json!(["BLPOP", "q", 0]),
        json!(["SUBSCRIBE", "ch"]),
        json!(["MONITOR"]),
        json!(["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]),
    ] {
        assert_eq!(
            code(post(p, r, WRITER, c.clone())),
            (400, "command_not_supported".into()),
            "{c}"
        );
    }
    let pipe = json!([["SET", "y", "1"], ["BRPOP", "q", 1]]);
    assert_eq!(
        code(post(p, "/api/v1/clusters/app/redis/pipeline", WRITER, pipe)).0,
        400
    );
    let mut direct = common::redis_con(d.redis.port);
    let y: Option<String> = redis::cmd("GET").arg("y").query(&mut direct).unwrap();
    assert_eq!(y, None, "a refused pipeline ran nothing");
    // Nothing leaks between clusters: `other` has its own server and keys.
    post(p, r, WRITER, json!(["SET", "shared-name", "app"]));
    post(
        p,
        "/api/v1/clusters/other/redis",
        OTHER,
        json!(["SET", "shared-name", "other"]),
    );
    assert_eq!(
        post(p, r, WRITER, json!(["GET", "shared-name"])).1,
        json!({"result": "app"})
    );
    let mut other = common::redis_con(d.other_redis.port);
    let v: String = redis::cmd("GET")
        .arg("shared-name")
        .query(&mut other)
        .unwrap();
    assert_eq!(v, "other");
    // The admin token is not a data token, nor a data token an admin one.
    assert_eq!(
        code(post(p, r, ADMIN, json!(["PING"]))),
        (401, "unauthorized".into())
    );
    assert_eq!(
        call(p, "GET", "/api/v1/clusters/app", Some(WRITER), None).0,
        401
    );
    assert_eq!(
        call(p, "GET", "/api/v1/clusters/app", Some(ADMIN), None).0,
        200
    );
    let metrics = d.gw.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("throome_http_requests_total{")
                && l.contains("cluster=\"app\"")
                && l.contains("client=\"http\"")
                && l.contains("route=\"redis\"")
                && l.contains("status=\"200\"")),
        "no http series in:\n{metrics}"
    );
}

/// RESP2 replies read off a socket, as the data API renders them (Upstash's form: a bulk
/// string as text, an error in place as `{"error": ...}`).
fn read_reply(r: &mut impl std::io::BufRead) -> Value {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let (kind, rest) = line.trim_end_matches("\r\n").split_at(1);
    match kind {
        "+" => json!(rest),
        "-" => json!({ "error": rest }),
        ":" => json!(rest.parse::<i64>().unwrap()),
        "$" => match rest.parse::<i64>().unwrap() {
            -1 => Value::Null,
            n => {
                let mut buf = vec![0u8; n as usize + 2];
                r.read_exact(&mut buf).unwrap();
                json!(String::from_utf8(buf[..n as usize].to_vec()).unwrap())
            }
        },
        "*" => match rest.parse::<i64>().unwrap() {
            -1 => Value::Null,
            n => Value::Array((0..n).map(|_| read_reply(r)).collect()),
        },
        other => panic!("unexpected reply type {other}"),
    }
}

/// The same pipeline, errors in the middle included, written whole to a fresh redis-server
/// and sent through `/redis/pipeline` to another: the answers are the same, one for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_answer_as_redis_server_written_whole() {
    use std::io::{BufReader, Write};
    let d = setup().await;
    let reference = common::RedisServer::start();
    let corpus: Vec<Vec<&str>> = vec![
        vec!["SET", "a", "1"],
        vec!["INCR", "a"],
        vec!["INCRBY", "a", "notanumber"],
        vec!["LPUSH", "list", "x", "y", "z"],
        vec!["GET", "list"],
        vec!["LRANGE", "list", "0", "-1"],
        vec!["HSET", "h", "f", "v", "g", "w"],
        vec!["HGETALL", "h"],
        vec!["NOSUCHCOMMAND", "x"],
        vec!["GET", "missing"],
        vec!["SET", "a"],
        vec!["MULTI"],
        vec!["INCR", "a"],
        vec!["LPOP", "a"],
        vec!["EXEC"],
        vec!["DEL", "a", "list", "h", "missing"],
        vec!["EXISTS", "a"],
        vec!["ZADD", "z", "1", "one", "2", "two"],
        vec!["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        vec!["SADD", "s", "m"],
        vec!["SMEMBERS", "s"],
        vec!["ECHO", "done"],
    ];
    // Direct: the whole pipeline written before a reply is read.
    let mut raw = Vec::new();
    for c in &corpus {
        raw.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
        for a in c {
            raw.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", reference.port)).unwrap();
    s.write_all(&raw).unwrap();
    let mut r = BufReader::new(s);
    let direct: Vec<Value> = corpus.iter().map(|_| read_reply(&mut r)).collect();
    // Through the data API.
    let (status, body) = post(
        d.gw.admin_port,
        "/api/v1/clusters/app/redis/pipeline",
        WRITER,
        json!(corpus),
    );
    assert_eq!(status, 200, "{body}");
    let through: Vec<Value> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e.get("result") {
            Some(v) => v.clone(),
            None => json!({ "error": e["error"] }),
        })
        .collect();
    assert_eq!(through.len(), direct.len());
    for ((c, t), want) in corpus.iter().zip(&through).zip(&direct) {
        assert_eq!(t, want, "{c:?}");
    }
}
