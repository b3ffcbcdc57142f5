//! The gateway's shared Redis listener (`listeners: {redis: ...}`): clients name their cluster
//! in `AUTH user@cluster` / `HELLO 3 AUTH`, the cluster ID alone, or the TLS server name;
//! before a login it answers as redis-server with a password, byte for byte. Real clients:
//! redis-cli, the redis crate, redis-py.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::time::Duration;

use common::RedisServer;
use common::shared::{raw, redis_cli, setup};

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
