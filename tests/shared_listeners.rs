//! The gateway's shared listeners (`listeners:` in throome.yaml): one Redis and one
//! PostgreSQL port for three clusters, where the client names its cluster in its login
//! (`AUTH user@cluster`, `user.cluster`, `options=-c throome.cluster=ID`). Real servers, real
//! clients: redis-cli, the redis crate, redis-py, psql, tokio-postgres; isolation between the
//! clusters and what a reload changes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::gateway::Options;
use common::servers::pg_bin;
use common::{Postgres, RedisServer, Throome, free_port};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

struct Setup {
    gw: Throome,
    /// Where `setup_with("unix")` puts the shared listeners' Unix sockets.
    sockets: tempfile::TempDir,
    redis: u16,
    pg: u16,
    /// The `ops` cluster's redis service, on its own port only (`shared_listener: false`).
    ops: u16,
    _servers: (RedisServer, RedisServer, Postgres),
}

/// Clusters `shop` and `blog`, each a cache (its own redis-server) and a database (one
/// PostgreSQL, databases `shop` and `blog`), and `ops`, kept off the shared listeners.
async fn setup() -> Setup {
    setup_with("").await
}

/// `setup` with `tls` (YAML flow mapping such as `{cert: ..., key: ...}`) on both shared
/// listeners when not empty.
async fn setup_with(tls: &str) -> Setup {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    let pg = Postgres::start();
    let admin = common::pg::direct(pg.port).await;
    for db in ["shop", "blog"] {
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
    }
    let cluster = |id: &str, redis: u16, user: &str, pass: &str| {
        format!(
            "cluster_id: {id}\nname: {id}\nservices:\n  cache:\n    type: redis\n    host: 127.0.0.1\n    port: {redis}\n  db:\n    type: postgres\n    host: 127.0.0.1\n    port: {}\n    database: {id}\n    username: postgres\n    auth:\n      users: {{ {user}: {pass} }}\n      admin_users: [{user}]\n",
            pg.port
        )
    };
    let ops = free_port();
    // A cluster whose cache has a password of its own (`auth:` at the proxy).
    let vault = format!(
        "cluster_id: vault\nname: vault\nservices:\n  cache:\n    type: redis\n    host: 127.0.0.1\n    port: {}\n    auth: {{ password: s3cret }}\n",
        a.port
    );
    let ops_yaml = format!(
        "cluster_id: ops\nname: ops\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{ops}\"\n    shared_listener: false\n    host: 127.0.0.1\n    port: {}\n",
        a.port
    );
    let (redis, pgl) = (free_port(), free_port());
    let sockets = tempfile::tempdir().unwrap();
    let opts = Options {
        extra_gateway: match tls {
            "" => format!(
                "listeners:\n  redis: \"127.0.0.1:{redis}\"\n  postgres: \"127.0.0.1:{pgl}\"\n"
            ),
            "unix" => format!(
                "listeners:\n  redis: {{listen: \"127.0.0.1:{redis}\", unix_socket: \"{}/redis.sock\"}}\n  postgres: {{listen: \"127.0.0.1:{pgl}\", unix_socket: \"{}/.s.PGSQL.{pgl}\"}}\n",
                sockets.path().display(),
                sockets.path().display()
            ),
            tls => format!(
                "listeners:\n  redis: {{listen: \"127.0.0.1:{redis}\", tls: {tls}}}\n  postgres: {{listen: \"127.0.0.1:{pgl}\", tls: {tls}}}\n"
            ),
        },
        ..Options::default()
    };
    let (shop, blog) = (
        cluster("shop", a.port, "alice", "wonderland"),
        cluster("blog", b.port, "bob", "builder") + "max_client_conn: 4\n",
    );
    let gw = tokio::task::spawn_blocking(move || {
        Throome::start_with(
            &[
                ("shop", &shop),
                ("blog", &blog),
                ("ops", &ops_yaml),
                ("vault", &vault),
            ],
            opts,
        )
    })
    .await
    .unwrap();
    Setup {
        gw,
        sockets,
        redis,
        pg: pgl,
        ops,
        _servers: (a, b, pg),
    }
}

/// redis-cli's output for `args` on `port`.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--no-auth-warning", "-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .trim()
    .to_string()
}

/// The raw replies to `bytes` written at once, read until `lines` lines came.
fn raw(port: u16, bytes: &[u8], lines: usize) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut r = BufReader::new(s);
    let mut out = String::new();
    for _ in 0..lines {
        r.read_line(&mut out).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_clients_name_their_cluster_in_auth() {
    let s = setup().await;
    let port = s.redis;
    // Before a login every command is refused as by a Redis with a password; QUIT is not.
    let before = raw(port, b"GET k\r\nHELLO 3\r\nAUTH onlypass\r\nQUIT\r\n", 4);
    assert_eq!(
        before,
        "-NOAUTH Authentication required.\r\n-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n"
    );
    // The cluster alone as the user; commands pipelined behind the AUTH are served after it.
    let piped = raw(port, b"AUTH shop \"\"\r\nSET k shop-value\r\nGET k\r\n", 4);
    assert_eq!(piped, "+OK\r\n+OK\r\n$10\r\nshop-value\r\n");
    // user@cluster: the backend checks `default` (no password: Redis's own answer).
    assert_eq!(
        redis_cli(port, &["--user", "default@blog", "--pass", "", "GET", "k"]),
        ""
    );
    assert_eq!(
        redis_cli(port, &["--user", "default@shop", "--pass", "", "GET", "k"]),
        "shop-value"
    );
    // HELLO 3 AUTH: RESP3 from the cluster's backend.
    let hello = redis_cli(
        port,
        &["-3", "HELLO", "3", "AUTH", "blog", "", "SETNAME", "b1"],
    );
    assert!(hello.contains("proto 3"), "{hello}");
    // Unknown clusters and services kept off the shared listener look like a wrong password.
    for user in ["nosuch", "default@nosuch", "default@shop/nosuch", "ops"] {
        let reply = raw(port, format!("AUTH {user} x\r\nGET k\r\n").as_bytes(), 2);
        assert_eq!(
            reply,
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n-NOAUTH Authentication required.\r\n",
            "{user}"
        );
    }
    // The cluster alone as the user of a service with a password: the password is checked.
    let refused = raw(port, b"AUTH vault \"\"\r\nGET k\r\n", 2);
    assert_eq!(
        refused,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw(port, b"AUTH vault s3cret\r\nGET k\r\n", 3),
        "+OK\r\n$10\r\nshop-value\r\n"
    );
    // ops is on its own port, as before.
    assert_eq!(redis_cli(s.ops, &["GET", "k"]), "shop-value");
    // A client of one cluster sees only its own cluster's clients.
    let list = redis_cli(port, &["--user", "blog", "--pass", "", "CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 1, "{list}");

    // The redis crate.
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("redis://127.0.0.1:{port}/"))
            .unwrap();
    let settings = info.redis_settings().clone();
    let info = info.set_redis_settings(settings.set_username("default@blog").set_password(""));
    let client = redis::Client::open(info).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SET")
        .arg("k")
        .arg("blog-value")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "blog-value");
    assert_eq!(
        redis_cli(port, &["--user", "shop", "--pass", "", "GET", "k"]),
        "shop-value"
    );

    // The connection strings list-clusters prints work as they are.
    let gw = &s.gw;
    for listed in [
        gw.cli(&["list-clusters"]),
        gw.cli(&["list-clusters", "--gateway", &gw.url()]),
    ] {
        let text = String::from_utf8_lossy(&listed.stdout).to_string();
        let uri = format!("redis://shop%2Fcache:@127.0.0.1:{port}");
        assert!(text.contains(&uri), "{text}");
        assert!(
            text.contains(&format!("postgresql://USER.shop@127.0.0.1:{}/db", s.pg)),
            "{text}"
        );
        assert!(
            !text.contains(&format!("redis://ops%2Fcache:@127.0.0.1:{port}")),
            "{text}"
        );
        assert_eq!(redis_cli(port, &["-u", &uri, "GET", "k"]), "shop-value");
    }

    // redis-py, RESP2 and RESP3.
    common::run_python_client("redis_py_shared.py", &[&port.to_string()]);

    // blog's max_client_conn: 4 clients at once on the shared listeners; shop's unaffected.
    drop(conn);
    let held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(b"AUTH blog \"\"\r\nPING\r\n").unwrap();
            let mut got = [0u8; 12];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"+OK\r\n+PONG\r\n");
            c
        })
        .collect();
    let refused = raw(port, b"AUTH blog \"\"\r\n", 2);
    assert_eq!(refused, "+OK\r\n-ERR max number of clients reached\r\n");
    assert_eq!(
        redis_cli(port, &["--user", "shop", "--pass", "", "PING"]),
        "PONG"
    );
    drop(held);
    let back = common::eventually(Duration::from_secs(5), || {
        redis_cli(port, &["--user", "blog", "--pass", "", "PING"]) == "PONG"
    });
    assert!(back, "blog's slots did not come back");

    let metrics = tokio::task::spawn_blocking(move || s.gw.metrics())
        .await
        .unwrap();
    assert!(
        metrics.contains("cluster=\"blog\",service=\"cache\""),
        "{metrics}"
    );
}

async fn pg_connect(
    port: u16,
    conninfo: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio_postgres::connect(&format!("host=127.0.0.1 port={port} {conninfo}"), NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn current_database(port: u16, conninfo: &str) -> String {
    let c = pg_connect(port, conninfo).await.unwrap();
    c.query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0)
}

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

/// Everything a connection gets for `bytes` (written whole, or one byte at a time), until
/// the peer closes (`<closed>`) or is quiet for a second.
fn transcript(port: u16, bytes: &[u8], bytewise: bool) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    if bytewise {
        for b in bytes {
            // The peer may close part way (a protocol error); what it said is read below.
            if s.write_all(&[*b]).is_err() {
                break;
            }
        }
    } else {
        s.write_all(bytes).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                out.extend_from_slice(b"<closed>");
                break;
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn before_a_login_the_shared_listener_answers_as_a_redis_with_a_password() {
    let s = setup().await;
    let server = RedisServer::start();
    assert_eq!(
        redis_cli(server.port, &["CONFIG", "SET", "requirepass", "pw"]),
        "OK"
    );
    let sessions: [&[u8]; 6] = [
        b"PING\r\nECHO x\r\nCLIENT SETNAME a\r\nAUTH a b c\r\nAUTH\r\nHELLO 3 AUTH\r\nHELLO 4\r\nHELLO x\r\nHELLO\r\nHELLO 3\r\nHELLO 2 SETNAME x\r\nHELLO 3 FOO\r\nHELLO 3 SETNAME\r\nQUIT\r\nPING\r\n",
        b"*11\r\n$1\r\na\r\n",
        b"*2\r\n$3\r\nGET\r\n$20000\r\n",
        b"AUTH nosuch x\r\nAUTH x\r\nHELLO 3 AUTH nosuch x\r\nGET k\r\nQUIT\r\n",
        b"get k\r\nquit\r\n",
        b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nQUIT\r\n",
    ];
    let (proxy, direct) = (s.redis, server.port);
    tokio::task::spawn_blocking(move || {
        for bytes in sessions {
            for bytewise in [false, true] {
                assert_eq!(
                    transcript(proxy, bytes, bytewise),
                    transcript(direct, bytes, bytewise),
                    "{} (one byte at a time: {bytewise})",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    })
    .await
    .unwrap();
}

#[test]
fn kafka_clients_name_cluster_and_broker_by_the_tls_server_name() {
    use common::kafka::{TANSU_NODE, Tansu, free_broker_port_base, kafka_cluster};
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = common::tls::ca_and_leaf(dir.path());
    let (shop, blog) = (Tansu::start(), Tansu::start());
    shop.create_topic("orders", 1);
    shop.create_topic("receipts", 1);
    let port = free_port();
    let cluster = |id: &str, broker: u16| {
        kafka_cluster(
            id,
            "events",
            free_port(),
            free_broker_port_base(),
            &[broker],
        )
    };
    let opts = Options {
        extra_gateway: format!(
            "listeners:\n  kafka: {{listen: \"127.0.0.1:{port}\", sni_domain: kafka.test, tls: {{cert: \"{cert}\", key: \"{key}\"}}}}\n"
        ),
        ..Options::default()
    };
    let gw = Throome::start_with(
        &[
            ("shop", &cluster("shop", shop.port)),
            ("blog", &cluster("blog", blog.port)),
        ],
        opts,
    );
    let (port_s, node) = (port.to_string(), TANSU_NODE.to_string());
    let args = [
        port_s.as_str(),
        "kafka.test",
        &ca,
        "shop",
        &node,
        "orders",
        "blog",
    ];
    common::run_python_client("kafka_sni.py", &args);
    // librdkafka resolves names in C: it gets a hosts file of its own (a mount namespace),
    // as a wildcard DNS record for the domain would resolve them.
    let hosts = dir.path().join("hosts");
    let names = format!("shop.bootstrap.kafka.test shop.broker-{node}.kafka.test");
    std::fs::write(&hosts, format!("127.0.0.1 localhost {names}\n")).unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount --bind \"$0\" /etc/hosts && exec \"$@\"",
        ])
        .arg(&hosts)
        .arg(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/tests/clients/confluent_sni.py"))
        .args([
            port_s.as_str(),
            "kafka.test",
            &ca,
            "shop",
            &node,
            "receipts",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
    let metrics = gw.metrics();
    assert!(
        metrics.contains("cluster=\"shop\",service=\"events\""),
        "{metrics}"
    );
    let listed = String::from_utf8_lossy(&gw.cli(&["list-clusters"]).stdout).to_string();
    assert!(
        listed.contains(&format!("shop.bootstrap.kafka.test:{port}")),
        "{listed}"
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
