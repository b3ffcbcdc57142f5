//! The data API's queue routes against a real broker (tansu) through the gateway: records
//! produced over HTTP are what kcat reads through the gateway's Kafka listener, records
//! kcat produces are what HTTP reads, and the errors carry Kafka's error names.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::data::{READER, WRITER, call, setup};
use common::kafka::kcat;
use serde_json::{Value, json};

fn post(port: u16, path: &str, token: &str, body: Value) -> (u16, Value) {
    call(port, "POST", path, Some(token), Some(&body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_read_records() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let records = "/api/v1/clusters/app/topics/events/records";
    // One record to a chosen partition, with a header.
    let (status, body) = post(
        p,
        records,
        WRITER,
        json!({
            "partition_id": 1, "key": "user-1", "value": {"type": "JSON", "data": {"clicks": 3}},
            "headers": [{"name": "source", "value": "aHR0cA=="}],
        }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["partition_id"].as_i64(), body["offset"].as_i64()),
        (Some(1), Some(0))
    );
    // A batch: offsets in order, a keyed record's partition the same each time.
    let (status, body) = post(
        p,
        records,
        WRITER,
        json!({"records": [
            {"partition_id": 1, "value": "second"},
            {"partition_id": 1, "value": {"type": "BINARY", "data": "AP8="}},
            {"key": "k", "value": "keyed"},
            {"key": "k", "value": "keyed again"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let offsets = body["offsets"].as_array().unwrap();
    assert_eq!(offsets[0], json!({"partition_id": 1, "offset": 1}));
    assert_eq!(offsets[1], json!({"partition_id": 1, "offset": 2}));
    assert_eq!(offsets[2]["partition_id"], offsets[3]["partition_id"]);
    // What a native client reads through the gateway.
    let bootstrap = format!("127.0.0.1:{}", d.ports.2);
    let consumed = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "events",
            "-p",
            "1",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k=%s;%h\n",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&consumed.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"user-1={\"clicks\":3};source=http"),
        "{text}"
    );
    assert_eq!(lines.get(1), Some(&"=second;"), "{text}");
    // And over HTTP, values as text, binary in base64.
    let read = "/api/v1/clusters/app/topics/events/partitions/1/records?offset=0";
    let (status, body) = call(p, "GET", read, Some(READER), None);
    assert_eq!(status, 200, "{body}");
    let got: Vec<(&Value, &Value)> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["offset"], &r["value"]))
        .collect();
    assert_eq!(
        got,
        vec![
            (&json!(0), &json!("{\"clicks\":3}")),
            (&json!(1), &json!("second")),
            (&json!(2), &json!("AP8="))
        ]
    );
    assert_eq!(
        body["records"][0]["headers"],
        json!([{"name": "source", "value": "aHR0cA=="}])
    );
    assert_eq!(body["records"][0]["key"], "user-1");
    assert_eq!(body["high_watermark"], 3);
    // From an offset on.
    let (_, body) = call(
        p,
        "GET",
        &read.replace("offset=0", "offset=2"),
        Some(READER),
        None,
    );
    assert_eq!(body["records"].as_array().unwrap().len(), 1);
    // A record a native client produced, read over HTTP.
    let produced = kcat(
        &[
            "-b", &bootstrap, "-P", "-t", "events", "-p", "2", "-k", "native",
        ],
        Some("from kcat\n"),
    );
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let (_, body) = call(
        p,
        "GET",
        "/api/v1/clusters/app/topics/events/partitions/2/records",
        Some(READER),
        None,
    );
    let values: Vec<&Value> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert!(values.contains(&&json!("from kcat")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_errors() {
    let d = setup().await;
    let p = d.gw.admin_port;
    let code = |(s, b): (u16, Value)| (s, b["code"].as_str().unwrap_or_default().to_string());
    let nope = "/api/v1/clusters/app/topics/nope/records";
    assert_eq!(
        code(post(p, nope, WRITER, json!({"value": "x"}))),
        (404, "UNKNOWN_TOPIC_OR_PARTITION".into())
    );
    let events = "/api/v1/clusters/app/topics/events/records";
    assert_eq!(
        code(post(p, events, READER, json!({"value": "x"}))),
        (403, "forbidden".into())
    );
    assert_eq!(
        code(post(p, events, WRITER, json!({"records": []}))),
        (400, "bad_request".into())
    );
    assert_eq!(
        code(post(
            p,
            events,
            WRITER,
            json!({"value": {"type": "AVRO", "data": 1}})
        )),
        (400, "bad_request".into())
    );
    let seven = json!({"partition_id": 7, "value": "x"});
    assert_eq!(
        code(post(p, events, WRITER, seven)),
        (404, "UNKNOWN_TOPIC_OR_PARTITION".into())
    );
    let (status, body) = call(
        p,
        "GET",
        "/api/v1/clusters/app/topics/events/partitions/7/records",
        Some(READER),
        None,
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("UNKNOWN_TOPIC_OR_PARTITION")),
        "{body}"
    );
    let (status, body) = call(
        p,
        "GET",
        "/api/v1/clusters/app/topics/events/partitions/0/records?offset=99",
        Some(READER),
        None,
    );
    // The broker's own answer: tansu gives no records past the end (Apache Kafka answers
    // OFFSET_OUT_OF_RANGE, which the route gives as a 416 with that code).
    assert_eq!(
        (status, &body["records"], &body["high_watermark"]),
        (200, &json!([]), &json!(0)),
        "{body}"
    );
    let (status, _) = call(
        p,
        "GET",
        "/api/v1/clusters/app/topics/events/partitions/x/records",
        Some(READER),
        None,
    );
    assert_eq!(status, 400);
    // Found by schemathesis: the last offset there is, with the longest wait, answers in time.
    let started = std::time::Instant::now();
    let far = format!(
        "/api/v1/clusters/app/topics/events/partitions/1/records?offset={}&max_wait_ms=99999",
        i64::MAX
    );
    let (status, body) = call(p, "GET", &far, Some(READER), None);
    assert!(status == 200 || status == 416, "{status} {body}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(8), "{took:?}");
}
