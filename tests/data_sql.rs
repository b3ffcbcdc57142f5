//! The data API's SQL route against a real PostgreSQL through the gateway's pool: rows as
//! PostgreSQL returns them (compared with the same queries sent straight to the server),
//! parameters bound (never spliced), transactions all or nothing, read-only tokens,
//! timeouts that cancel the statement, row limits, and errors with their SQLSTATE.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::{Duration, Instant};

use common::data::{READER, WRITER, call, setup};
use serde_json::{Value, json};

const SQL: &str = "/api/v1/clusters/app/sql";

fn sql(port: u16, token: &str, body: Value) -> (u16, Value) {
    call(port, "POST", SQL, Some(token), Some(&body.to_string()))
}

async fn direct(port: u16) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=app"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
}

/// The rows of `query` from the server itself, every value as its text (NULL as null).
async fn direct_rows(c: &tokio_postgres::Client, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for m in c.simple_query(query).await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            let values: Vec<Value> = (0..r.len())
                .map(|i| r.get(i).map_or(Value::Null, |s| Value::String(s.into())))
                .collect();
            rows.push(Value::Array(values));
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_types_and_parameters() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let db = direct(d.pg.port).await;
    let (status, body) = sql(
        p,
        WRITER,
        json!({"query": "select 1::int4 as a, 9007199254740993::int8 as b, 1.10::numeric as c, true as d, 'x'::text as e, null::int as f, '{\"k\": [1]}'::jsonb as g, 1.5::float8 as h"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["command"], "SELECT");
    assert_eq!(body["rowCount"], 1);
    assert_eq!(
        body["rows"],
        json!([[1, "9007199254740993", "1.10", true, "x", null, {"k": [1]}, 1.5]])
    );
    let types: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "int4", "int8", "numeric", "bool", "text", "int4", "jsonb", "float8"
        ]
    );
    // Parameters are bound values: a quote in one is data, not SQL.
    let evil = "o'reilly'); drop table if exists t; --";
    let (status, body) = sql(
        p,
        WRITER,
        json!({"query": "select $1::int + 1 as n, $2::text as t, $3::text is null as z", "params": [41, evil, null]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([[42, evil, true]]));
    // Text results row for row as the server gives them to a direct client.
    for q in [
        "select n::text, md5(n::text) from generate_series(1, 50) n",
        "select now()::date::text, 'a\tb\\c'::text, ''::text, null::text",
        "select relname::text from pg_class where relname like 'pg_am%' order by 1",
    ] {
        let (status, body) = sql(p, WRITER, json!({ "query": q }));
        assert_eq!(status, 200, "{q}: {body}");
        assert_eq!(body["rows"], Value::Array(direct_rows(&db, q).await), "{q}");
    }
    // DDL and DML: the command and its row count.
    let (_, body) = sql(
        p,
        WRITER,
        json!({"query": "create table items (id serial primary key, name text unique)"}),
    );
    assert_eq!(body["command"], "CREATE");
    let (_, body) = sql(
        p,
        WRITER,
        json!({"query": "insert into items (name) values ($1), ($2) returning id", "params": ["a", "b"]}),
    );
    assert_eq!(
        (body["command"].as_str(), &body["rowCount"], &body["rows"]),
        (Some("INSERT"), &json!(2), &json!([[1], [2]]))
    );
    assert_eq!(
        direct_rows(&db, "select name from items order by id").await,
        vec![json!(["a"]), json!(["b"])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_errors_and_limits() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let db = direct(d.pg.port).await;
    db.batch_execute("create table t (id int primary key)")
        .await
        .unwrap();
    // A batch is one transaction: the second insert fails, the first is rolled back.
    let (status, body) = sql(
        p,
        WRITER,
        json!({"queries": [
            {"query": "insert into t values ($1)", "params": [1]},
            {"query": "insert into t values ($1)", "params": [1]},
        ]}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("23505")),
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains("already exists"),
        "{body}"
    );
    assert_eq!(
        direct_rows(&db, "select count(*) from t").await,
        vec![json!(["0"])]
    );
    let (status, body) = sql(
        p,
        WRITER,
        json!({"queries": [
            {"query": "insert into t values (1), (2)"},
            {"query": "select count(*) from t"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["rowCount"], 2);
    assert_eq!(body["results"][1]["rows"], json!([["2"]]));
    // SQL errors with SQLSTATE and position.
    let (status, body) = sql(p, WRITER, json!({"query": "selec 1"}));
    assert_eq!(
        (status, body["code"].as_str(), body["position"].as_str()),
        (400, Some("42601"), Some("1")),
        "{body}"
    );
    let (status, body) = sql(p, WRITER, json!({"query": "select * from nope"}));
    assert_eq!((status, body["code"].as_str()), (400, Some("42P01")));
    // A reader's SQL runs read-only.
    let (status, body) = sql(p, READER, json!({"query": "select count(*) from t"}));
    assert_eq!((status, &body["rows"]), (200, &json!([["2"]])), "{body}");
    let (status, body) = sql(p, READER, json!({"query": "insert into t values (3)"}));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("25006")),
        "{body}"
    );
    // A timeout cancels the statement on the server: PostgreSQL's 57014.
    let started = Instant::now();
    let (status, body) = sql(
        p,
        WRITER,
        json!({"query": "select pg_sleep(20)", "timeout_ms": 300}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("57014")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let running = direct_rows(&db, "select count(*) from pg_stat_activity where query like 'select pg_sleep%' and state = 'active'").await;
    assert_eq!(running, vec![json!(["0"])], "the statement still runs");
    // Row limit.
    let (status, body) = sql(
        p,
        WRITER,
        json!({"query": "select generate_series(1, 100)", "max_rows": 10}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("result_too_large")),
        "{body}"
    );
    // Bad bodies.
    for bad in [
        json!({}),
        json!({"query": "select 1", "queries": []}),
        json!({"query": 1}),
        json!({"queries": []}),
    ] {
        assert_eq!(sql(p, WRITER, bad.clone()).0, 400, "{bad}");
    }
    // Found by schemathesis: a NUL in the SQL, parameters the statement has not.
    let (status, body) = sql(p, WRITER, json!({"query": "select '\u{0}'"}));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = sql(p, WRITER, json!({"query": "select 1", "params": [1, 2]}));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("08P01")),
        "{body}"
    );
    // After all that, the pool serves the next request cleanly (no transaction left open).
    let (status, body) = sql(p, WRITER, json!({"query": "select count(*) from t"}));
    assert_eq!((status, &body["rows"]), (200, &json!([["2"]])), "{body}");
    let idle_in_tx = direct_rows(
        &db,
        "select count(*) from pg_stat_activity where state like 'idle in transaction%'",
    )
    .await;
    assert_eq!(idle_in_tx, vec![json!(["0"])]);
}
