//! The SDKs against a running gateway over real servers: the Rust crate `throome-sdk`
//! (each call, typed errors, binary values), the Python package `throome` (sync and async,
//! installed with pip from the repository), and the examples in `examples/` as they are.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::data::{CACHE_ONLY, OTHER, READER, WRITER, setup};
use serde_json::json;
use throome_sdk::{Client, Error};

fn api_code<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk() {
    let d = setup().await;
    let url = d.gw.url();
    let c = Client::new(&url, "app").token(WRITER);
    let cache = c.cache();
    cache
        .set("rs:bin", [0u8, 255, 1], Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(cache.get("rs:bin").await.unwrap(), Some(vec![0, 255, 1]));
    assert_eq!(cache.get("rs:none").await.unwrap(), None);
    cache.set("rs key/with spaces", "v", None).await.unwrap();
    assert_eq!(
        cache
            .get_string("rs key/with spaces")
            .await
            .unwrap()
            .as_deref(),
        Some("v")
    );
    let mut direct = common::redis_con(d.redis.port);
    let v: String = redis::cmd("GET")
        .arg("rs key/with spaces")
        .query(&mut direct)
        .unwrap();
    assert_eq!(v, "v", "the key as given reached the server");
    assert_eq!(
        cache.command(&["INCRBY", "rs:n", "3"]).await.unwrap(),
        json!(3)
    );
    assert_eq!(
        api_code(cache.command(&["LPUSH", "rs:n", "x"]).await),
        "WRONGTYPE"
    );
    assert!(cache.del("rs:bin").await.unwrap());
    assert!(!cache.del("rs:bin").await.unwrap());

    let db = c.db();
    db.execute(
        "create table rs_users (id serial primary key, name text unique)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        db.execute(
            "insert into rs_users (name) values ($1), ($2)",
            &["a".into(), "b".into()]
        )
        .await
        .unwrap(),
        2
    );
    let rows = db
        .query(
            "select id, name from rs_users where name = $1",
            &["b".into()],
        )
        .await
        .unwrap();
    assert_eq!(rows.get(0, "name"), Some(&json!("b")));
    assert_eq!(rows.fields[0].type_name, "int4");
    let tx = db
        .transaction(&[
            ("insert into rs_users (name) values ($1)", vec![json!("c")]),
            ("insert into rs_users (name) values ($1)", vec![json!("a")]),
        ])
        .await;
    assert_eq!(api_code(tx), "23505");
    assert_eq!(
        db.query("select count(*) from rs_users", &[])
            .await
            .unwrap()
            .rows,
        vec![vec![json!("2")]]
    );

    let q = c.queue();
    let first = q
        .publish_record("events", Some(b"key"), b"\x00one", None)
        .await
        .unwrap();
    let second = q
        .publish_record("events", Some(b"key"), b"two", None)
        .await
        .unwrap();
    assert_eq!(second.partition_id, first.partition_id);
    assert_eq!(second.offset, first.offset + 1);
    let records = q
        .read("events", first.partition_id, first.offset)
        .await
        .unwrap();
    type Pair<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
    let got: Vec<Pair> = records
        .iter()
        .map(|r| (r.key.as_deref(), r.value.as_deref()))
        .collect();
    assert_eq!(
        &got[..2],
        &[
            (Some(&b"key"[..]), Some(&b"\x00one"[..])),
            (Some(&b"key"[..]), Some(&b"two"[..]))
        ]
    );
    assert_eq!(
        api_code(q.publish("nope", b"x").await),
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // Native endpoints: every service of the cluster, or those a token is limited to.
    let ends = c.endpoints().await.unwrap();
    assert_eq!(ends.keys().collect::<Vec<_>>(), ["cache", "db", "queue"]);
    assert_eq!(
        ends["cache"].connect,
        [format!("redis://127.0.0.1:{}", d.ports.0)]
    );
    assert!(
        ends["db"].connect[0].starts_with("postgresql://"),
        "{ends:?}"
    );
    let limited = Client::new(&url, "app")
        .token(CACHE_ONLY)
        .endpoints()
        .await
        .unwrap();
    assert_eq!(limited.keys().collect::<Vec<_>>(), ["cache"]);
    // The cache's native endpoint serves what the SDK wrote.
    let mut native = common::redis_con(d.ports.0);
    let n: i64 = redis::cmd("GET").arg("rs:n").query(&mut native).unwrap();
    assert_eq!(n, 3);

    // Scopes and clusters.
    let reader = Client::new(&url, "app").token(READER);
    assert_eq!(
        reader.cache().get_string("rs:n").await.unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(
        api_code(reader.cache().set("rs:n", "4", None).await),
        "forbidden"
    );
    assert_eq!(
        api_code(reader.db().execute("delete from rs_users", &[]).await),
        "25006"
    );
    assert_eq!(
        api_code(
            Client::new(&url, "app")
                .token(OTHER)
                .cache()
                .get("rs:n")
                .await
        ),
        "unauthorized"
    );
    assert_eq!(
        api_code(
            Client::new(&url, "nope")
                .token(WRITER)
                .cache()
                .get("rs:n")
                .await
        ),
        "cluster_not_found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_installed_with_pip() {
    let d = setup().await;
    let root = env!("CARGO_MANIFEST_DIR");
    // Installed as a user would, from the repository (into a directory of its own, with
    // the venv's setuptools: no network).
    let target = tempfile::tempdir().unwrap();
    let pip = Command::new(format!("{root}/.venv/bin/pip"))
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-build-isolation",
            "--no-deps",
            "--target",
        ])
        .arg(target.path())
        .arg(format!("{root}/sdk/python"))
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "{}",
        String::from_utf8_lossy(&pip.stderr)
    );
    let path = target.path().to_str().unwrap();
    common::run_python_client_with(
        "sdk_python.py",
        &[&d.gw.url(), WRITER, READER, OTHER],
        &[("PYTHONPATH", path)],
    );
}

/// The examples in `examples/`, run as a user would run them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run() {
    let d = setup().await;
    let root = env!("CARGO_MANIFEST_DIR");
    let env = [
        ("THROOME_URL", d.gw.url()),
        ("THROOME_CLUSTER", "app".to_string()),
        ("THROOME_TOKEN", WRITER.to_string()),
        ("PYTHONPATH", format!("{root}/sdk/python")),
    ];
    // Cargo builds the examples for `cargo test`, beside the test binaries.
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let rust = Command::new(examples.join("sdk_quickstart"))
        .envs(env.clone())
        .output()
        .expect(
            "examples/sdk_quickstart.rs not built: `cargo build --examples` (scripts/test.sh does)",
        );
    let python = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/examples/sdk_quickstart.py"))
        .envs(env)
        .output()
        .unwrap();
    for (name, out, users) in [("rust", &rust, 1), ("python", &python, 2)] {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("cache: user:1 = John Doe"), "{name}: {text}");
        assert!(
            text.contains(&format!("db: users named John Doe = {users}")),
            "{name}: {text}"
        );
        assert!(text.contains("queue: events partition"), "{name}: {text}");
        assert!(
            text.contains(&format!(
                "native: cache (redis) redis://127.0.0.1:{}",
                d.ports.0
            )),
            "{name}: {text}"
        );
    }
    assert!(String::from_utf8_lossy(&python.stdout).contains("async cache: user:1 = John Doe"));
}
