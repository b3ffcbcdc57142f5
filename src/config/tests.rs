use super::*;

/// The example from the gateway-core issue, verbatim: it must load unchanged.
const SEED: &str = r#"cluster_id: "my-cluster"
name: "My Application"
services:
  cache:
    type: redis
    host: localhost
    port: 6379
  database:
    type: postgres
    host: localhost
    port: 5432
    username: user
    password: pass
    database: mydb
routing:
  strategy: "round_robin"
  failover_enabled: true
health:
  enabled: true
  interval: 10
"#;

#[test]
fn seed_example_loads_unchanged() {
    let c = parse_cluster(SEED).expect("seed example");
    assert_eq!(c.cluster_id.value, "my-cluster");
    assert_eq!(c.services.len(), 2);
    let db = &c.services["database"].value;
    assert_eq!(db.kind, ServiceKind::Postgres);
    assert_eq!(db.password.as_ref().map(Secret::expose), Some("pass"));
    assert!(db.listen.is_none());
    assert_eq!(c.routing.strategy, Some(Strategy::RoundRobin));
    assert_eq!(c.health.interval.0.as_secs(), 10);
}

#[test]
fn unknown_key_reports_line_and_column() {
    let text = SEED.replace(
        "    database: mydb\n",
        "    database: mydb\n    databse: typo\n",
    );
    let err = parse_cluster(&text).unwrap_err();
    assert_eq!(err.line, 15, "{err:?}");
    assert_eq!(err.column, 5, "{err:?}");
    assert!(err.message.contains("databse"), "{err:?}");
}

#[test]
fn fractional_interval_and_backends_list() {
    let text = r#"
cluster_id: c1
name: one
services:
  kv:
    type: tcp
    listen: "127.0.0.1:7000"
    routing: { strategy: weighted }
    backends:
      - { host: 127.0.0.1, port: 7001, weight: 3 }
      - { host: 127.0.0.1, port: 7002, role: replica }
health: { interval: 0.5, unhealthy_threshold: 1 }
circuit_breaker: { failure_threshold: 3, cooldown: 1.5 }
"#;
    let c = parse_cluster(text).expect("valid");
    let kv = &c.services["kv"].value;
    assert_eq!(kv.backends.len(), 2);
    assert_eq!(kv.backends[0].weight, 3);
    assert_eq!(kv.backends[1].weight, 1);
    assert_eq!(kv.backends[1].role, Role::Replica);
    assert_eq!(c.health.interval.0.as_millis(), 500);
    assert_eq!(c.circuit_breaker.cooldown.0.as_millis(), 1500);
    assert_eq!(kv.listen.as_ref().map(|l| l.value.0.port()), Some(7000));
}

#[test]
fn bad_values_point_at_the_value() {
    let err = parse_cluster("cluster_id: a\nname: b\nhealth:\n  interval: -1\n").unwrap_err();
    assert_eq!((err.line, err.column), (4, 13), "{err:?}");
    assert!(err.message.contains("seconds"), "{err:?}");

    let err = parse_cluster(
        "cluster_id: a\nname: b\nservices:\n  s:\n    type: tcp\n    host: x\n    port: 1\n    listen: nope\n",
    )
    .unwrap_err();
    assert_eq!(err.line, 8, "{err:?}");
    assert!(err.message.contains("invalid listen address"), "{err:?}");

    let err = parse_cluster("cluster_id: a\nname: b\nrouting: { strategy: magic }\n").unwrap_err();
    assert_eq!(err.line, 3, "{err:?}");
}

#[test]
fn service_shape_errors_name_the_service() {
    let both = "cluster_id: a\nname: b\nservices:\n  s:\n    type: tcp\n    host: x\n    port: 1\n    backends: [{host: y, port: 2}]\n";
    let err = parse_cluster(both).unwrap_err();
    assert_eq!(err.line, 5, "{err:?}");
    assert!(
        err.message.contains("either `host`/`port` or `backends`"),
        "{err:?}"
    );

    let none = "cluster_id: a\nname: b\nservices:\n  s:\n    type: tcp\n";
    assert!(
        parse_cluster(none)
            .unwrap_err()
            .message
            .contains("needs `host`")
    );

    let bad_id = "cluster_id: 'a b'\nname: b\n";
    assert!(
        parse_cluster(bad_id)
            .unwrap_err()
            .message
            .contains("invalid cluster_id")
    );
}

#[test]
fn kafka_services_check_their_broker_ports() {
    let ok = "cluster_id: a\nname: b\nservices:\n  k:\n    type: kafka\n    host: x\n    port: 1\n    listen: 127.0.0.1:9192\n    broker_ports: { 1: 9300 }\n";
    let svc = parse_cluster(ok).unwrap().services["k"].value.clone();
    assert_eq!(svc.broker_ports.get(&1), Some(&9300));
    let wildcard = "cluster_id: a\nname: b\nservices:\n  k:\n    type: kafka\n    host: x\n    port: 1\n    listen: 0.0.0.0:9192\n";
    let err = parse_cluster(wildcard).unwrap_err();
    assert!(err.message.contains("advertised_host"), "{err:?}");
    let negative = "cluster_id: a\nname: b\nservices:\n  k:\n    type: kafka\n    host: x\n    port: 1\n    broker_ports: { -1: 9300 }\n";
    let err = parse_cluster(negative).unwrap_err();
    assert!(err.message.contains("node id >= 0"), "{err:?}");
    let redis = "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n    broker_port_base: 9000\n";
    let err = parse_cluster(redis).unwrap_err();
    assert!(
        err.message.contains("applies to kafka services only"),
        "{err:?}"
    );
}

/// `auth.hba`: rules that parse are taken; a bad line is named with its number and why;
/// `cert` needs client certificates; `auth.method` beside rules is refused; redis has none.
#[test]
fn hba_rules_are_checked_line_by_line() {
    let pg = "cluster_id: a\nname: b\nservices:\n  d:\n    type: postgres\n    host: x\n    port: 1\n    auth:\n      users: { u: p }\n      hba:\n        - local all all trust\n        - RULE\n";
    let good = pg.replace("RULE", "host all all 10.0.0.0/8 scram-sha-256");
    let c = parse_cluster(&good).expect("valid rules");
    let auth = c.services["d"].value.auth.clone().unwrap_or_default();
    assert_eq!(auth.hba.len(), 2);
    for (rule, why) in [
        ("host all all 10.0.0.0/8 ident", "auth.hba rule 2"),
        ("host all all 10.0.0.0/8 ident", "method `ident`"),
        (
            "host all all 10.0.0.0/8 cert",
            "cert needs tls with client_ca",
        ),
    ] {
        let err = parse_cluster(&pg.replace("RULE", rule)).unwrap_err();
        assert!(err.message.contains(why), "{rule}: {err:?}");
    }
    let both = good.replace("      users:", "      method: md5\n      users:");
    let err = parse_cluster(&both).unwrap_err();
    assert!(err.message.contains("drop auth.method"), "{err:?}");
    let redis = good.replace("type: postgres", "type: redis");
    let err = parse_cluster(&redis).unwrap_err();
    assert!(
        err.message.contains("auth.hba applies to postgres"),
        "{err:?}"
    );
}

/// `user_settings`: a user's pool mode and size; a size out of range or the key on a redis
/// service is refused.
#[test]
fn user_settings_are_checked() {
    let pg = "cluster_id: a\nname: b\nservices:\n  d:\n    type: postgres\n    host: x\n    port: 1\n    user_settings:\n      bob: { pool_mode: session, pool_size: SIZE }\n";
    let c = parse_cluster(&pg.replace("SIZE", "3")).expect("valid settings");
    let bob = &c.services["d"].value.user_settings["bob"];
    assert_eq!(bob.pool_mode, Some(crate::config::PoolMode::Session));
    assert_eq!(bob.pool_size, Some(3));
    let err = parse_cluster(&pg.replace("SIZE", "0")).unwrap_err();
    assert!(
        err.message.contains("user_settings.bob.pool_size"),
        "{err:?}"
    );
    let redis = pg
        .replace("SIZE", "3")
        .replace("type: postgres", "type: redis");
    let err = parse_cluster(&redis).unwrap_err();
    assert!(
        err.message.contains("user_settings applies to postgres"),
        "{err:?}"
    );
    let unknown = pg.replace("pool_size: SIZE", "pool_sise: 3");
    assert!(parse_cluster(&unknown).is_err(), "unknown keys are errors");
}

#[test]
fn postgres_pooling_keys_belong_to_postgres_services() {
    let pg = "cluster_id: a\nname: b\nservices:\n  d:\n    type: postgres\n    host: x\n    port: 1\n    listen: 127.0.0.1:1\n    pool_mode: session\n    pool_size: 500\n    query_wait_timeout: 0.5\n    auth: { method: md5, users: { u: p } }\n";
    let c = parse_cluster(pg).expect("valid postgres service");
    let svc = &c.services["d"].value;
    assert_eq!(svc.pool_mode, Some(crate::config::PoolMode::Session));
    assert_eq!(
        svc.auth.as_ref().and_then(|a| a.method),
        Some(crate::config::AuthMethod::Md5)
    );
    let redis = "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n    pool_mode: session\n";
    let err = parse_cluster(redis).unwrap_err();
    assert!(
        err.message
            .contains("pool_mode applies to postgres services only"),
        "{err:?}"
    );
    let bad = pg.replace("method: md5", "method: plain");
    let err = parse_cluster(&bad).unwrap_err();
    assert!(err.message.contains("unknown variant"), "{err:?}");

    let query = "auth: { query: { sql: \"SELECT p FROM t WHERE u = $1\", user: a } }";
    let with_query = pg.replace("auth: { method: md5, users: { u: p } }", query);
    let c = parse_cluster(&with_query).expect("auth query");
    let q = c.services["d"]
        .value
        .auth
        .as_ref()
        .and_then(|a| a.query.clone());
    assert_eq!(q.map(|q| q.user), Some("a".to_string()));
    let tls = pg.replace(
        "pool_mode: session",
        "tls: { cert: /no/such.pem, key: /no/key.pem }",
    );
    let err = parse_cluster(&tls).unwrap_err();
    assert!(
        err.message
            .contains("tls: cannot read the certificate chain /no/such.pem"),
        "{err:?}"
    );
    let server_tls = pg.replace("pool_mode: session", "server_tls: { mode: verify-full }");
    let err = parse_cluster(&server_tls).unwrap_err();
    assert!(err.message.contains("verify-full needs `ca`"), "{err:?}");
    let tcp_tls = format!("{redis}    tls: {{ cert: a, key: b }}\n")
        .replace("    pool_mode: session\n", "")
        .replace("type: redis", "type: tcp");
    let err = parse_cluster(&tcp_tls).unwrap_err();
    assert!(
        err.message
            .contains("tls applies to postgres, kafka and redis"),
        "{err:?}"
    );
    let lru = pg.replace("pool_mode: session", "max_prepared_statements: 0");
    let err = parse_cluster(&lru).unwrap_err();
    assert!(err.message.contains("at least 1"), "{err:?}");
    let err = parse_cluster(&with_query.replace("$1", "'x'")).unwrap_err();
    assert!(err.message.contains("must use $1"), "{err:?}");
    let redis = format!("{redis}    {query}\n").replace("    pool_mode: session\n", "");
    let err = parse_cluster(&redis).unwrap_err();
    assert!(
        err.message.contains("auth.query applies to postgres"),
        "{err:?}"
    );
}

#[test]
fn secrets_come_from_the_environment() {
    // SAFETY of the test: a variable name no other test uses.
    let text = "cluster_id: a\nname: b\nservices:\n  d:\n    type: tcp\n    host: x\n    port: 1\n    password: ${THROOME_TEST_UNSET_VAR_1}\n";
    let err = parse_cluster(text).unwrap_err();
    assert_eq!(err.line, 8, "{err:?}");
    assert!(err.message.contains("THROOME_TEST_UNSET_VAR_1"), "{err:?}");
}

#[test]
fn duplicate_ids_and_listens_across_files() {
    let mk = |id: &str, listen: &str, file: &str| {
        LoadedCluster {
        path: file.into(),
        config: parse_cluster(&format!(
            "cluster_id: {id}\nname: n\nservices:\n  s:\n    type: tcp\n    host: x\n    port: 1\n    listen: \"{listen}\"\n    unix_socket: /run/t.sock\n"
        ))
        .unwrap(),
    }
    };
    let set = [
        mk("a", "127.0.0.1:1", "a.yaml"),
        mk("a", "127.0.0.1:1", "b.yaml"),
    ];
    let errs: Vec<String> = validate_set(&set).iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with("b.yaml:1:13: cluster_id `a` is already used"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("b.yaml:9:18: unix_socket /run/t.sock is already used"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("b.yaml:8:13: listen address 127.0.0.1:1"),
        "{errs:?}"
    );
}

#[test]
fn gateway_file_defaults_and_unknown_keys() {
    let g = parse_gateway("server:\n  port: 9100\n").unwrap();
    assert_eq!(g.server.port, 9100);
    assert_eq!(g.server.host, "127.0.0.1");
    assert_eq!(g.monitoring.metrics_path, "/metrics");
    let err = parse_gateway("server:\n  prot: 1\n").unwrap_err();
    assert_eq!((err.line, err.column), (2, 3), "{err:?}");
}

#[test]
fn json_bodies_parse_too() {
    let c = parse_cluster(
        r#"{"cluster_id":"j","name":"J","services":{"s":{"type":"tcp","host":"h","port":5}}}"#,
    )
    .unwrap();
    assert_eq!(c.cluster_id.value, "j");
}

#[test]
fn unix_socket_backends_per_protocol() {
    let with = |kind: &str, backend: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  s:\n    type: {kind}\n    backends: [{backend}]\n"
        )
    };
    // Redis: the socket file, no port; PostgreSQL: the directory and the server's port.
    assert!(parse_cluster(&with("redis", "{host: /run/redis.sock}")).is_ok());
    assert!(parse_cluster(&with("postgres", "{host: /run/postgresql, port: 5432}")).is_ok());
    let no_port = parse_cluster(&with("postgres", "{host: /run/postgresql}")).unwrap_err();
    assert!(no_port.message.contains(".s.PGSQL.<port>"), "{no_port:?}");
    let kafka = parse_cluster(&with("kafka", "{host: /run/k.sock}")).unwrap_err();
    assert!(kafka.message.contains("Unix-domain socket"), "{kafka:?}");
    // A network host still needs its port.
    let tcp = parse_cluster(&with("redis", "{host: cache.internal}")).unwrap_err();
    assert!(tcp.message.contains("non-zero port"), "{tcp:?}");
    // The shorthand too.
    let short =
        "cluster_id: a\nname: b\nservices:\n  s:\n    type: redis\n    host: /run/redis.sock\n";
    assert!(parse_cluster(short).is_ok());
}

#[test]
fn unix_socket_listeners() {
    let with = |kind: &str, extra: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  s:\n    type: {kind}\n    host: x\n    port: 1\n{extra}"
        )
    };
    let ok = with(
        "postgres",
        "    unix_socket: /run/throome/.s.PGSQL.6432\n    unix_socket_mode: \"0770\"\n",
    );
    assert!(parse_cluster(&ok).is_ok());
    let kafka = parse_cluster(&with("kafka", "    unix_socket: /run/k.sock\n")).unwrap_err();
    assert!(
        kafka
            .message
            .contains("cannot listen on a Unix-domain socket"),
        "{kafka:?}"
    );
    let relative = parse_cluster(&with("redis", "    unix_socket: run/r.sock\n")).unwrap_err();
    assert!(relative.message.contains("absolute path"), "{relative:?}");
    let mode = parse_cluster(&with(
        "redis",
        "    unix_socket: /r.sock\n    unix_socket_mode: \"0999\"\n",
    ))
    .unwrap_err();
    assert!(mode.message.contains("octal"), "{mode:?}");
    let alone = parse_cluster(&with("redis", "    unix_socket_mode: \"0700\"\n")).unwrap_err();
    assert!(alone.message.contains("without unix_socket"), "{alone:?}");
    let long = format!("    unix_socket: /{}\n", "d".repeat(120));
    assert!(
        parse_cluster(&with("redis", &long))
            .unwrap_err()
            .message
            .contains("107")
    );
}

#[test]
fn cert_auth_needs_a_client_ca() {
    let text = "cluster_id: a\nname: b\nservices:\n  d:\n    type: postgres\n    host: x\n    port: 1\n    auth: { method: cert }\n";
    let err = parse_cluster(text).unwrap_err();
    assert!(err.message.contains("client_ca"), "{err:?}");
}

#[test]
fn auto_eject_hosts_needs_ketama() {
    let text = |extra: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n{extra}"
        )
    };
    assert!(parse_cluster(&text("    sharding: ketama\n    auto_eject_hosts: true\n")).is_ok());
    let err = parse_cluster(&text("    auto_eject_hosts: true\n")).unwrap_err();
    assert!(err.message.contains("sharding: ketama"), "{err:?}");
}

#[test]
fn max_server_connections_is_postgres_only_and_positive() {
    let text = |kind: &str, n: u32| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  s:\n    type: {kind}\n    host: x\n    port: 1\n    max_server_connections: {n}\n"
        )
    };
    assert!(parse_cluster(&text("postgres", 10)).is_ok());
    assert!(
        parse_cluster(&text("postgres", 0))
            .unwrap_err()
            .message
            .contains("at least 1")
    );
    assert!(
        parse_cluster(&text("redis", 10))
            .unwrap_err()
            .message
            .contains("postgres services only")
    );
}

#[test]
fn replica_reads_are_refused_on_ketama_but_not_on_a_cluster() {
    let text = |sharding: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n    sharding: {sharding}\n    read_from_replicas: true\n"
        )
    };
    let err = parse_cluster(&text("ketama")).unwrap_err();
    assert!(err.message.contains("read_from_replicas"), "{err:?}");
    assert!(parse_cluster(&text("cluster")).is_ok());
}

#[test]
fn kafka_sasl_settings_are_checked() {
    let kafka = |extra: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  k:\n    type: kafka\n    host: x\n    port: 1\n{extra}"
        )
    };
    let login = "    username: u\n    password: p\n    sasl_mechanism: SCRAM-SHA-512\n";
    let users = "    auth:\n      users: { alice: x }\n      mechanisms: [PLAIN]\n";
    assert!(parse_cluster(&kafka(&format!("{login}{users}"))).is_ok());
    let half = parse_cluster(&kafka("    username: u\n    password: p\n")).unwrap_err();
    assert!(half.message.contains("sasl_mechanism"), "{half:?}");
    let shared = parse_cluster(&kafka("    auth: { password: x }\n")).unwrap_err();
    assert!(shared.message.contains("auth.users"), "{shared:?}");
    let bad = parse_cluster(&kafka(
        "    username: u\n    password: p\n    sasl_mechanism: GSSAPI\n",
    ));
    assert!(bad.is_err());
    let redis = "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n    sasl_mechanism: PLAIN\n";
    let err = parse_cluster(redis).unwrap_err();
    assert!(err.message.contains("kafka services only"), "{err:?}");
}

#[test]
fn a_redis_database_is_a_number() {
    let redis = |extra: &str| {
        format!(
            "cluster_id: a\nname: b\nservices:\n  r:\n    type: redis\n    host: x\n    port: 1\n{extra}"
        )
    };
    let ok = parse_cluster(&redis("    database: 3\n")).unwrap();
    assert_eq!(ok.services["r"].value.database.as_deref(), Some("3"));
    let err = parse_cluster(&redis("    database: app\n")).unwrap_err();
    assert!(err.message.contains("database number"), "{err:?}");
    let err = parse_cluster(&redis("    database: 2\n    sharding: cluster\n")).unwrap_err();
    assert!(err.message.contains("database 0 only"), "{err:?}");
}

#[test]
fn api_token_errors_name_the_token_line() {
    let base = "cluster_id: a\nname: b\nservices:\n  cache: { type: redis, host: x, port: 1 }\napi_tokens:\n  - { name: one, token: a-long-enough-token }\n";
    let c = parse_cluster(base).expect("valid tokens");
    assert_eq!(
        c.api_tokens[0].value.scopes,
        [ApiScope::Read, ApiScope::Write]
    );
    for (extra, message) in [
        (
            "  - { name: one, token: another-long-token }\n",
            "used twice",
        ),
        ("  - { name: two, token: short }\n", "at least 16"),
        (
            "  - { name: two, token: \"sha256:abc\" }\n",
            "64 hex digits",
        ),
        (
            "  - { name: two, token: another-long-token, services: [db] }\n",
            "no service `db`",
        ),
    ] {
        let err = parse_cluster(&format!("{base}{extra}")).unwrap_err();
        assert_eq!(err.line, 7, "{err:?}");
        assert!(err.message.contains(message), "{err:?}");
    }
    let err = parse_cluster(&format!(
        "{base}  - {{ name: two, token: another-long-token, scopes: [admin] }}\n"
    ))
    .unwrap_err();
    assert_eq!(err.line, 7, "{err:?}");
}
