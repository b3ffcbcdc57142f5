//! The gateway's shared PostgreSQL listener (`listeners: {postgres: ...}`): clients name
//! their cluster by `user.cluster`, `options=-c throome.cluster=ID` or the TLS server name;
//! reloads, TLS and Unix sockets of the shared listeners. Real clients: psql, pgbench,
//! tokio-postgres, redis-cli.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::servers::pg_bin;
use common::shared::{current_database, pg_connect, redis_cli, setup, setup_with};
use tokio_postgres::error::SqlState;

#[tokio::test(flavor = "multi_thread")]
async fn postgres_clients_name_their_cluster_in_the_user_name() {
    let s = setup().await;
    let port = s.pg;
    // user.cluster, the database naming the service (or its `database`).
    let shop = "user=alice.shop password=wonderland dbname=db";
    assert_eq!(current_database(port, shop).await, "shop");
    let blog = "user=bob.blog password=builder dbname=blog";
    assert_eq!(current_database(port, blog).await, "blog");
    // options=-c throome.cluster=ID, with another option kept.
    let opt =
        "user=bob password=builder dbname=db options='-c throome.cluster=blog -c search_path=x'";
    let c = pg_connect(port, opt).await.unwrap();
    let row = c
        .query_one(
            "SELECT current_database(), current_setting('search_path')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("blog".into(), "x".into())
    );
    // Each cluster's own users: alice is not a user of blog.
    let err = pg_connect(port, "user=alice.blog password=wonderland dbname=db")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    // Unknown cluster: asked for a password and refused, as a wrong password is.
    let err = pg_connect(port, "user=alice.nosuch password=wonderland dbname=db")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    let err = pg_connect(port, "user=alice password=wonderland dbname=db")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    // A startup packet without a user, as PostgreSQL answers it.
    let no_user = {
        use std::io::{Read, Write};
        let body = [&196608i32.to_be_bytes()[..], b"database\0db\0\0"].concat();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&[&((body.len() + 4) as i32).to_be_bytes()[..], &body].concat())
            .unwrap();
        let mut out = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    assert!(
        no_user.starts_with('E')
            && no_user.contains("C28000")
            && no_user.contains("no PostgreSQL user name specified in startup packet"),
        "{no_user:?}"
    );
    // A known cluster without that database.
    let err = pg_connect(port, "user=alice.shop password=wonderland dbname=blog")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");
    // Data stays in its cluster's database.
    let c = pg_connect(port, shop).await.unwrap();
    c.batch_execute("CREATE TABLE only_shop (x int)")
        .await
        .unwrap();
    let b = pg_connect(port, blog).await.unwrap();
    let err = b
        .batch_execute("SELECT * FROM only_shop")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::UNDEFINED_TABLE), "{err}");

    // pgbench, initialised and run through the shared listener.
    let bench = |args: &[&str]| {
        let out = Command::new(pg_bin("pgbench"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "alice.shop",
            ])
            .args(args)
            .env("PGPASSWORD", "wonderland")
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{all}");
        all
    };
    bench(&["-i", "-s", "1", "-q", "db"]);
    let run = bench(&["-M", "extended", "-c", "4", "-j", "2", "-t", "25", "db"]);
    assert!(
        run.contains("number of transactions actually processed: 100/100"),
        "{run}"
    );
    // The console of the cluster's service shows that service's clients only.
    let console = pg_connect(port, "user=alice.shop password=wonderland dbname=pgbouncer")
        .await
        .unwrap();
    let _blog_client = pg_connect(port, blog).await.unwrap();
    let rows = console.simple_query("SHOW CLIENTS").await.unwrap();
    let clients: Vec<(String, String)> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((r.get("user")?.to_string(), r.get("database")?.to_string()))
            }
            _ => None,
        })
        .collect();
    assert!(
        clients.iter().all(|(user, _)| user == "alice"),
        "{clients:?}"
    );
    let databases: Vec<&String> = clients.iter().map(|(_, d)| d).collect();
    assert!(
        !databases.is_empty() && databases.iter().all(|d| *d == "db" || *d == "pgbouncer"),
        "{databases:?}"
    );

    // psql, with the password from the environment.
    let out = Command::new(pg_bin("psql"))
        .args([
            // The form list-clusters prints.
            &format!("postgresql://alice.shop@127.0.0.1:{port}/db"),
            "-XAt",
            "-c",
            "SELECT current_database(), current_user",
        ])
        .env("PGPASSWORD", "wonderland")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "shop|postgres",
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_which_clusters_the_shared_listeners_admit() {
    let s = setup().await;
    let (redis, pg) = (s.redis, s.pg);
    let blog = "user=bob.blog password=builder dbname=db";
    let open = pg_connect(pg, blog).await.unwrap();
    std::fs::remove_dir_all(s.gw.cluster_path("blog").parent().unwrap()).unwrap();
    let gone = common::eventually(Duration::from_secs(10), || {
        redis_cli(redis, &["--user", "blog", "--pass", "", "PING"]).contains("WRONGPASS")
    });
    assert!(gone, "blog still admitted: {}", s.gw.log());
    let err = pg_connect(pg, blog).await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    assert_eq!(
        redis_cli(redis, &["--user", "shop", "--pass", "", "PING"]),
        "PONG"
    );
    // A client of the removed cluster is closed once the drain time has passed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        open.simple_query("SELECT 1").await.is_err(),
        "the removed cluster's client still works"
    );
    // A new cluster is admitted without a restart.
    let news = s.gw.cluster_path("shop");
    let text = std::fs::read_to_string(&news)
        .unwrap()
        .replace("shop", "news");
    s.gw.write_cluster("news", &text);
    let admitted = common::eventually(Duration::from_secs(10), || {
        redis_cli(redis, &["--user", "news", "--pass", "", "PING"]) == "PONG"
    });
    assert!(admitted, "{}", s.gw.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_the_server_name_names_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca, cert, key) = common::tls::ca_and_leaf(dir.path());
    let s = setup_with(&format!("{{cert: \"{cert}\", key: \"{key}\"}}")).await;
    // redis-cli over TLS with SNI shop.<anything>: served at once, no AUTH.
    let tls_cli = |sni: &str, args: &[&str]| {
        let mut all = vec!["--tls", "--insecure", "--sni", sni];
        all.extend_from_slice(args);
        redis_cli(s.redis, &all)
    };
    assert_eq!(
        tls_cli("shop.cache.example", &["SET", "k", "tls-shop"]),
        "OK"
    );
    assert_eq!(tls_cli("blog.cache.example", &["GET", "k"]), "");
    // An unknown server name: the client still has to log in, and may name the cluster then.
    assert_eq!(
        tls_cli("nosuch.example", &["GET", "k"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        tls_cli(
            "nosuch.example",
            &["--user", "shop", "--pass", "", "GET", "k"]
        ),
        "tls-shop"
    );
    // psql sends the host name as SNI: the plain user name of cluster `blog`.
    let out = Command::new(pg_bin("psql"))
        .args([
            &format!(
                "host=blog.db.example hostaddr=127.0.0.1 port={} user=bob dbname=db sslmode=require",
                s.pg
            ),
            "-XAt",
            "-c",
            "SELECT current_database(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ])
        .env("PGPASSWORD", "builder")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    // The proxy's own connection to PostgreSQL is not TLS: `f` from the server's view.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "blog|f",
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_listeners_on_unix_sockets() {
    let s = setup_with("unix").await;
    let dir = s.sockets.path().display().to_string();
    let redis = Command::new("redis-cli")
        .args(["--no-auth-warning", "-s", &format!("{dir}/redis.sock")])
        .args(["--user", "shop", "--pass", "", "SET", "k", "via-unix"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&redis.stdout).trim(),
        "OK",
        "{redis:?}"
    );
    assert_eq!(
        redis_cli(s.redis, &["--user", "shop", "--pass", "", "GET", "k"]),
        "via-unix"
    );
    let out = Command::new(pg_bin("psql"))
        .args([
            "-h",
            &dir,
            "-p",
            &s.pg.to_string(),
            "-U",
            "bob.blog",
            "-d",
            "db",
        ])
        .args(["-XAt", "-c", "SELECT current_database()"])
        .env("PGPASSWORD", "builder")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "blog",
        "{out:?}"
    );
}
