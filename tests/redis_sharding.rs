//! `sharding: ketama` against the real twemproxy (Debian nutcracker) over three real
//! redis-servers: keys land where twemproxy puts them, and commands spanning shards work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::gateway::cluster_of;
use common::{RedisServer, Throome, eventually, free_port};

/// twemproxy, the peer proxy whose key placement we must match.
struct Twemproxy {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Twemproxy {
    fn start(backends: &[u16]) -> Twemproxy {
        let servers: Vec<String> = backends.iter().map(|b| format!("127.0.0.1:{b}")).collect();
        Twemproxy::start_over(&servers, "")
    }

    /// Over `servers` as twemproxy writes them (`host:port` or `/path/to/socket`), weight 1,
    /// with `extra` pool settings (indented by two).
    fn start_over(servers: &[String], extra: &str) -> Twemproxy {
        Twemproxy::start_hashed(servers, "fnv1a_64", "ketama", extra)
    }

    /// With twemproxy's `hash` and `distribution`.
    fn start_hashed(servers: &[String], hash: &str, distribution: &str, extra: &str) -> Twemproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut conf = format!(
            "pool:\n  listen: 127.0.0.1:{port}\n  redis: true\n  hash: {hash}\n  distribution: {distribution}\n  hash_tag: \"{{}}\"\n{extra}  servers:\n"
        );
        for server in servers {
            // A named server (`host:port:weight name`) is given whole.
            match server.contains(' ') {
                true => conf.push_str(&format!("    - {server}\n")),
                false => conf.push_str(&format!("    - {server}:1\n")),
            }
        }
        let path = dir.path().join("nutcracker.yml");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nutcracker")
            .arg("-c")
            .arg(&path)
            .args(["-s", &free_port().to_string(), "-o"])
            .arg(dir.path().join("nutcracker.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nutcracker not found: run scripts/setup.sh");
        assert!(eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        Twemproxy {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain connection: twemproxy closes connections that send `CLIENT SETINFO`, which the
/// redis crate does on connect unless told not to.
fn con(port: u16) -> redis::Connection {
    use redis::IntoConnectionInfo;
    let info = format!("redis://127.0.0.1:{port}/")
        .into_connection_info()
        .unwrap();
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    redis::Client::open(info.set_redis_settings(settings))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Writes `key(i)` = i for `range` through `writer` (twemproxy) and checks `reader`
/// (Throome) finds each where twemproxy put it.
fn written_there_found_here(
    writer: &mut redis::Connection,
    reader: &mut redis::Connection,
    range: std::ops::Range<i64>,
) {
    for i in range.clone() {
        let _: () = redis::cmd("SET").arg(key(i)).arg(i).query(writer).unwrap();
    }
    for i in range {
        let v: Option<i64> = redis::cmd("GET").arg(key(i)).query(reader).unwrap();
        assert_eq!(v, Some(i), "{} is not where twemproxy put it", key(i));
    }
}

/// Varied key names: twemproxy's `fnv1a_64` (32-bit FNV with a small multiplier) bunches
/// sequential names such as `key:0..key:299` onto few shards, in twemproxy as in Throome.
fn key(i: i64) -> String {
    format!("obj-{:08x}", (i as u32).wrapping_mul(2_654_435_761))
}

/// Three redis-servers and a `sharding: ketama` service `cache` over them in cluster `id`,
/// with `service_extra` and `cluster_extra` lines: (servers, listen port, gateway).
fn ketama_over_three(
    id: &str,
    service_extra: &str,
    cluster_extra: &str,
) -> ([RedisServer; 3], u16, Throome) {
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let backends: Vec<(u16, &str, u32)> = servers.iter().map(|s| (s.port, "primary", 1)).collect();
    let listen = free_port();
    let extra = format!("    sharding: ketama\n{service_extra}");
    let yaml = cluster_of(
        "redis",
        id,
        "cache",
        listen,
        &backends,
        &extra,
        cluster_extra,
    );
    let gw = Throome::start(&[(id, &yaml)]);
    (servers, listen, gw)
}

fn dbsize(port: u16) -> i64 {
    redis::cmd("DBSIZE").query(&mut con(port)).unwrap()
}

#[test]
fn keys_land_where_twemproxy_puts_them_and_multi_key_commands_span_shards() {
    let (servers, listen, _gw) = ketama_over_three("sh", "", "");
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let twem = Twemproxy::start(&ports);
    let (mut via_twem, mut via_throome) = (con(twem.port), con(listen));

    // Written through twemproxy, read through Throome.
    written_there_found_here(&mut via_twem, &mut via_throome, 0..300);
    let sizes: Vec<i64> = ports.iter().map(|&p| dbsize(p)).collect();
    assert!(
        sizes.iter().all(|&n| n > 30),
        "keys must spread over the shards: {sizes:?}"
    );

    // Cross-shard MGET comes back in the client's order.
    let keys: Vec<String> = (0..50).map(key).chain(["missing".to_string()]).collect();
    let values: Vec<Option<i64>> = redis::cmd("MGET")
        .arg(&keys)
        .query(&mut via_throome)
        .unwrap();
    let expected: Vec<Option<i64>> = (0..50).map(Some).chain([None]).collect();
    assert_eq!(values, expected);

    // MSET through Throome, read back through twemproxy.
    let mut mset = redis::cmd("MSET");
    for i in 0..40 {
        mset.arg(format!("new:{i}")).arg(format!("v{i}"));
    }
    let _: () = mset.query(&mut via_throome).unwrap();
    for i in 0..40 {
        let v: String = redis::cmd("GET")
            .arg(format!("new:{i}"))
            .query(&mut via_twem)
            .unwrap();
        assert_eq!(v, format!("v{i}"));
    }

    // Counting commands add up across shards; DBSIZE fans out.
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&keys[..50])
        .arg(key(0))
        .query(&mut via_throome)
        .unwrap();
    assert_eq!(exists, 51, "EXISTS counts repeated keys, as Redis does");
    let deleted: i64 = redis::cmd("DEL")
        .arg(&keys[..30])
        .query(&mut via_throome)
        .unwrap();
    assert_eq!(deleted, 30);
    let total: i64 = redis::cmd("DBSIZE").query(&mut via_throome).unwrap();
    assert_eq!(total, ports.iter().map(|&p| dbsize(p)).sum::<i64>());
    assert_eq!(total, 300 - 30 + 40);
    let all: Vec<String> = redis::cmd("KEYS")
        .arg("new:*")
        .query(&mut via_throome)
        .unwrap();
    assert_eq!(all.len(), 40);
}

#[test]
fn hash_tags_keep_related_keys_together_and_other_spans_get_crossslot() {
    let (servers, listen, _gw) = ketama_over_three("tag", "", "");
    let mut c = con(listen);
    let _: () = redis::cmd("SADD")
        .arg("{u1}:a")
        .arg("x")
        .arg("y")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("{u1}:b")
        .arg("y")
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("SINTERSTORE")
        .arg("{u1}:both")
        .arg("{u1}:a")
        .arg("{u1}:b")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);

    // Find two plain keys on different shards, then try a two-key command on them.
    let shard_of = |k: &str| {
        servers.iter().position(|s| {
            redis::cmd("EXISTS")
                .arg(k)
                .query::<i64>(&mut con(s.port))
                .unwrap()
                == 1
        })
    };
    for i in 0..20 {
        let _: () = redis::cmd("SET").arg(key(i)).arg(1).query(&mut c).unwrap();
    }
    let first = shard_of(&key(0));
    let other = (1..20).map(key).find(|k| shard_of(k) != first).unwrap();
    let err = redis::cmd("RENAME")
        .arg(key(0))
        .arg(&other)
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");

    // WATCH of keys on two shards (a single-shard WATCH works: redis_sharded_tx.rs).
    let err = redis::cmd("WATCH")
        .arg(key(0))
        .arg(&other)
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("CROSSSLOT"), "{err}");
    // Keyless, and its reply has no way to combine across shards.
    let err = redis::cmd("SLOWLOG")
        .arg("GET")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("SLOWLOG GET is not supported"),
        "{err}"
    );
    // A numkeys of i64::MAX (found by the fuzzer: finding its keys overflowed) gets Redis's
    // own error, and the connection stays.
    let err = redis::cmd("EVAL")
        .arg("return 1")
        .arg(i64::MAX)
        .arg("a")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Number of keys can't be greater than number of args"),
        "{err}"
    );
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

/// Backends on Unix-domain sockets (`host: /path/redis.sock`, redis's `unixsocket`) shard as
/// twemproxy's `/path/redis.sock:1` servers do: keys written through twemproxy are read back
/// through Throome, which reaches every shard over its socket.
#[test]
fn unix_socket_shards_match_twemproxy() {
    let dir = tempfile::tempdir().unwrap();
    let sockets: Vec<String> = (0..3)
        .map(|i| {
            dir.path()
                .join(format!("redis{i}.sock"))
                .display()
                .to_string()
        })
        .collect();
    let _servers: Vec<RedisServer> = sockets
        .iter()
        .map(|path| {
            let server = RedisServer::start_with(free_port(), &["--unixsocket", path]);
            assert!(eventually(Duration::from_secs(10), || {
                std::path::Path::new(path).exists()
            }));
            server
        })
        .collect();
    let twem = Twemproxy::start_over(&sockets, "");
    let listen = free_port();
    let mut yaml = format!(
        "cluster_id: ux\nname: ux\nservices:\n  cache:\n    type: redis\n    listen: \"127.0.0.1:{listen}\"\n    sharding: ketama\n    backends:\n"
    );
    for path in &sockets {
        yaml.push_str(&format!("      - {{ host: \"{path}\" }}\n"));
    }
    let _gw = Throome::start(&[("ux", &yaml)]);
    let (mut via_twem, mut via_throome) = (con(twem.port), con(listen));
    written_there_found_here(&mut via_twem, &mut via_throome, 0..200);
    // Every shard holds some of them, so every socket was used.
    let sizes: Vec<i64> = _servers.iter().map(|s| dbsize(s.port)).collect();
    assert!(sizes.iter().all(|&n| n > 20), "{sizes:?}");
}

/// Inline commands (telnet, `nc`) are split as Redis splits them before they are routed: a
/// key typed with escapes (`"obj\x2d..."`) goes to the shard of the key Redis stores
/// (`obj-...`), where a multibulk GET finds it.
#[test]
fn inline_commands_route_by_the_key_redis_stores() {
    use std::io::{Read, Write};
    let (_servers, listen, _gw) = ketama_over_three("il", "", "");
    let mut telnet = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    let n = 30;
    let mut lines = String::new();
    for i in 0..n {
        let escaped = key(i).replace('-', "\\x2d");
        lines.push_str(&format!("SET \"{escaped}\" 'v\\'{i}'\r\n"));
    }
    telnet.write_all(lines.as_bytes()).unwrap();
    let mut replies = vec![0u8; 5 * n as usize];
    telnet.read_exact(&mut replies).unwrap();
    assert_eq!(replies, b"+OK\r\n".repeat(n as usize));
    let mut c = con(listen);
    for i in 0..n {
        let v: Option<String> = redis::cmd("GET").arg(key(i)).query(&mut c).unwrap();
        assert_eq!(v, Some(format!("v'{i}")), "{}", key(i));
    }
}

/// `auto_eject_hosts: true`: while a shard is down its keys go where twemproxy, with the same
/// setting, sends them (its continuum rebuilt over the live servers), and once it is back
/// they return to it.
#[test]
fn a_down_shard_is_ejected_as_twemproxy_ejects_it() {
    let health =
        "health: { interval: 0.2, timeout: 0.5, unhealthy_threshold: 1, healthy_threshold: 1 }\n";
    let (mut servers, listen, gw) = ketama_over_three("ej", "    auto_eject_hosts: true\n", health);
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let twem = Twemproxy::start_over(
        &addrs,
        "  auto_eject_hosts: true\n  server_failure_limit: 1\n  server_retry_timeout: 600000\n  timeout: 1000\n",
    );
    servers[1].kill();
    assert!(eventually(Duration::from_secs(10), || {
        gw.backend("ej", "cache", ports[1])["healthy"] == false
    }));
    // twemproxy ejects a server on a failed request: send (keys spread over every shard)
    // until none fails.
    let mut via_twem = con(twem.port);
    let settled = eventually(Duration::from_secs(10), || {
        (0..50).all(|i| {
            redis::cmd("SET")
                .arg(key(10_000 + i))
                .arg(1)
                .query::<()>(&mut via_twem)
                .is_ok()
        })
    });
    assert!(settled, "twemproxy did not eject the dead server");
    let mut via_throome = con(listen);
    written_there_found_here(&mut via_twem, &mut via_throome, 0..200);
    // Back up: its keys route to it again (an empty server: they are gone).
    servers[1].restart();
    assert!(eventually(Duration::from_secs(10), || {
        gw.backend("ej", "cache", ports[1])["healthy"] == true
    }));
    let found = (0..200)
        .filter(|&i| {
            redis::cmd("GET")
                .arg(key(i))
                .query::<Option<i64>>(&mut via_throome)
                .unwrap()
                .is_some()
        })
        .count();
    assert!((100..200).contains(&found), "{found} of 200 still found");
}

/// `database: 3` is twemproxy's `redis_db: 3`: keys written through twemproxy into database
/// 3 of each shard are found through Throome, and none land in database 0.
#[test]
fn a_configured_database_matches_twemproxys_redis_db() {
    let (servers, listen, _gw) = ketama_over_three("db", "    database: 3\n", "");
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let twem = Twemproxy::start_over(&addrs, "  redis_db: 3\n");
    let (mut via_twem, mut via_throome) = (con(twem.port), con(listen));
    written_there_found_here(&mut via_twem, &mut via_throome, 0..100);
    let _: () = redis::cmd("SET")
        .arg(key(500))
        .arg(500)
        .query(&mut via_throome)
        .unwrap();
    let in_db = |db: &str| -> i64 {
        ports
            .iter()
            .map(|p| {
                common::redis_cli(*p, &["-n", db, "DBSIZE"])
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    };
    assert_eq!((in_db("3"), in_db("0")), (101, 0));
}

/// Keys with bytes of 0x80 and above (UTF-8 names, binary keys) hash as twemproxy hashes
/// them: its hash functions read the key as C `char`, signed on x86, so such bytes are
/// sign-extended before they are mixed in.
#[test]
fn non_ascii_keys_land_where_twemproxy_puts_them() {
    let (servers, listen, _gw) = ketama_over_three("na", "", "");
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let twem = Twemproxy::start(&ports);
    let (mut via_twem, mut via_throome) = (con(twem.port), con(listen));
    for i in 0..200 {
        let k = format!("ключ-{i}-é\u{ff}");
        let _: () = redis::cmd("SET")
            .arg(&k)
            .arg(i)
            .query(&mut via_twem)
            .unwrap();
    }
    for i in 0..200 {
        let k = format!("ключ-{i}-é\u{ff}");
        let v: Option<i64> = redis::cmd("GET").arg(&k).query(&mut via_throome).unwrap();
        assert_eq!(v, Some(i), "{k} is not where twemproxy put it");
    }
}

/// Every twemproxy `hash` Throome knows, under `distribution: ketama` and `modula`: keys
/// (ASCII and not) written through nutcracker are found through Throome.
#[test]
fn every_twemproxy_hash_and_distribution_places_keys_alike() {
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let addrs: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let backends: Vec<(u16, &str, u32)> = servers.iter().map(|s| (s.port, "primary", 1)).collect();
    let hashes = [
        "fnv1a_64",
        "fnv1_64",
        "fnv1a_32",
        "fnv1_32",
        "md5",
        "murmur",
        "one_at_a_time",
        "crc16",
        "crc32",
        "crc32a",
    ];
    for distribution in ["ketama", "modula"] {
        for hash in hashes {
            for s in &servers {
                common::redis_cli(s.port, &["FLUSHALL"]);
            }
            let twem = Twemproxy::start_hashed(&addrs, hash, distribution, "");
            let listen = free_port();
            let extra = format!("    sharding: {distribution}\n    hash: {hash}\n");
            let yaml = cluster_of("redis", "hh", "cache", listen, &backends, &extra, "");
            let _gw = Throome::start(&[("hh", &yaml)]);
            let (mut via_twem, mut via_throome) = (con(twem.port), con(listen));
            for i in 0..60 {
                let k = format!("{}-{i}-ключ", key(i));
                let _: () = redis::cmd("SET")
                    .arg(&k)
                    .arg(i)
                    .query(&mut via_twem)
                    .unwrap();
            }
            for i in 0..60 {
                let k = format!("{}-{i}-ключ", key(i));
                let v: Option<i64> = redis::cmd("GET").arg(&k).query(&mut via_throome).unwrap();
                assert_eq!(
                    v,
                    Some(i),
                    "{distribution}/{hash}: {k} is not where twemproxy put it"
                );
            }
        }
    }
}

/// Named servers (`host:port:weight name` in twemproxy, `name:` on a backend here): the ring
/// is built from the names, and keys written through nutcracker are found through Throome.
#[test]
fn named_servers_place_keys_by_name_as_twemproxy_does() {
    let servers = [
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    ];
    let names = ["alpha", "beta", "gamma"];
    let named: Vec<String> = servers
        .iter()
        .zip(names)
        .map(|(s, n)| format!("127.0.0.1:{}:1 {n}", s.port))
        .collect();
    let twem = Twemproxy::start_over(&named, "");
    let listen = free_port();
    // The service's `backends:` list comes last: the named entries follow it.
    let mut yaml = cluster_of(
        "redis",
        "nm",
        "cache",
        listen,
        &[],
        "    sharding: ketama\n",
        "",
    );
    for (s, n) in servers.iter().zip(names) {
        yaml.push_str(&format!(
            "      - {{ host: 127.0.0.1, port: {}, name: {n} }}\n",
            s.port
        ));
    }
    let _gw = Throome::start(&[("nm", &yaml)]);
    written_there_found_here(&mut con(twem.port), &mut con(listen), 0..200);
}
