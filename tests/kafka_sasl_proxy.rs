//! SASL ending at the proxy, against the real tansu broker: clients authenticate to Throome
//! (`auth.users`, PLAIN and SCRAM-SHA-256/512) with kafka-python and confluent-kafka
//! (librdkafka 2.16), and Throome logs in to a secured broker with credentials of its own
//! (`username`, `password`, `sasl_mechanism`), which the clients never see.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::kafka::{Tansu, free_broker_port_base, kcat};
use common::{Throome, free_port};

/// Throome in front of `broker` with `extra` service lines: (gateway, bootstrap address).
fn gateway(broker: u16, extra: &str) -> (Throome, String) {
    let (listen, base) = (free_port(), free_broker_port_base());
    let extra = format!("    broker_port_base: {base}\n{extra}");
    let yaml = common::gateway::cluster_of(
        "kafka",
        "k",
        "events",
        listen,
        &[(broker, "primary", 1)],
        &extra,
        "",
    );
    let gw = Throome::start(&[("k", &yaml)]);
    (gw, format!("127.0.0.1:{listen}"))
}

fn client(args: &[&str]) {
    common::run_python_client("kafka_sasl.py", args);
}

const CLIENT_USERS: &str = "    auth:\n      users: { alice: wonderland, bob: builder }\n      mechanisms: [PLAIN, SCRAM-SHA-256, SCRAM-SHA-512]\n";

#[test]
fn clients_authenticate_to_the_proxy() {
    let tansu = Tansu::start();
    tansu.create_topic("t", 1);
    let (gw, bootstrap) = gateway(tansu.port, CLIENT_USERS);
    for (mode, mechanism, user, password, group) in [
        ("roundtrip", "SCRAM-SHA-256", "alice", "wonderland", "g1"),
        ("rd-roundtrip", "SCRAM-SHA-512", "bob", "builder", "g2"),
        ("rd-roundtrip", "PLAIN", "alice", "wonderland", "g3"),
    ] {
        client(&[
            mode, &bootstrap, "t", group, mechanism, user, password, "30",
        ]);
    }
    // Debian's kcat (librdkafka 2.0.2) too, with SCRAM and PLAIN.
    for mechanism in ["SCRAM-SHA-256", "PLAIN"] {
        let sasl = [
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            &format!("sasl.mechanisms={mechanism}"),
            "-X",
            "sasl.username=alice",
            "-X",
            "sasl.password=wonderland",
        ];
        let mut args = vec!["-b", bootstrap.as_str(), "-L", "-m", "10"];
        args.extend(sasl);
        let listed = kcat(&args, None);
        let out = String::from_utf8_lossy(&listed.stdout);
        let err = String::from_utf8_lossy(&listed.stderr);
        assert!(
            listed.status.success() && out.contains("\"t\""),
            "{mechanism}: {out} {err}"
        );
    }
    // A wrong password, an unknown user: librdkafka reports an authentication error.
    client(&["denied", &bootstrap, "SCRAM-SHA-256", "alice", "guess"]);
    client(&["denied", &bootstrap, "SCRAM-SHA-512", "mallory", "builder"]);
    client(&["denied", &bootstrap, "PLAIN", "bob", "wonderland"]);
    // Without SASL nothing but ApiVersions gets through: no metadata for kcat.
    let anonymous = kcat(&["-b", &bootstrap, "-L", "-m", "5"], None);
    assert!(
        !anonymous.status.success(),
        "{}",
        String::from_utf8_lossy(&anonymous.stdout)
    );
    let m = gw.metrics();
    assert!(m.contains("kind=\"client_auth\""), "{m}");
    // Requests and bytes per authenticated user; none for the users that were refused.
    let value = |series: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    for user in ["alice", "bob"] {
        let labels = format!("cluster=\"k\",service=\"events\",user=\"{user}\"");
        assert!(
            value(&format!("throome_kafka_user_requests_total{{{labels}}}")) >= 5,
            "{user}: {m}"
        );
        // Each user produced and consumed at least 30 records of "secret-N" (8+ bytes each).
        let payload = 30 * "secret-0".len() as u64;
        for direction in ["in", "out"] {
            let series =
                format!("throome_kafka_user_bytes_total{{{labels},direction=\"{direction}\"}}");
            assert!(value(&series) > payload, "{user} {direction}: {m}");
        }
    }
    assert!(!m.contains("user=\"mallory\""), "{m}");
    // Failures: alice's wrong password and bob's under their names, mallory's (an unknown
    // name) as `(unknown)`, so a client trying names cannot make a series per name.
    let failures = |user: &str| {
        value(&format!(
            "throome_kafka_auth_failures_total{{cluster=\"k\",service=\"events\",user=\"{user}\"}}"
        ))
    };
    assert!(failures("alice") >= 1, "{m}");
    assert!(failures("bob") >= 1, "{m}");
    assert!(failures("(unknown)") >= 1, "{m}");
    // The broker never saw a SASL request: the proxy answered them all.
    assert_eq!(
        common::kafka::api_requests(&m, "events", "SaslHandshake"),
        0
    );
}

#[test]
fn the_proxy_logs_in_to_a_secured_broker_for_its_clients() {
    let dir = tempfile::tempdir().unwrap();
    let tansu = Tansu::start_secured(dir.path(), &[("svc", "s3cret", "scram512")], &["vault"]);
    let login = "    username: svc\n    password: s3cret\n    sasl_mechanism: SCRAM-SHA-512\n";
    let users = "    auth:\n      users: { carol: c4rol }\n      mechanisms: [PLAIN]\n";
    let (_gw, bootstrap) = gateway(tansu.port, &format!("{login}{users}"));
    // carol is unknown to the broker; the proxy's own login stands behind her connections.
    // (kafka-python first: it expects to read back only its own records.)
    client(&[
        "roundtrip",
        &bootstrap,
        "vault",
        "h",
        "PLAIN",
        "carol",
        "c4rol",
        "30",
    ]);
    client(&[
        "rd-roundtrip",
        &bootstrap,
        "vault",
        "g",
        "PLAIN",
        "carol",
        "c4rol",
        "30",
    ]);

    // With no client users, clients come in without SASL and the proxy's login is theirs.
    let (_open, open) = gateway(tansu.port, login);
    let listed = kcat(&["-b", &open, "-L", "-m", "10"], None);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && out.contains("\"vault\""),
        "{out}"
    );

    // A wrong proxy password: the broker refuses the proxy, the client gets no metadata.
    let wrong = "    username: svc\n    password: nope\n    sasl_mechanism: SCRAM-SHA-512\n";
    let (bad_gw, bad) = gateway(tansu.port, wrong);
    let refused = kcat(&["-b", &bad, "-L", "-m", "5"], None);
    assert!(!refused.status.success());
    assert!(bad_gw.metrics().contains("kind=\"backend_auth\""));
}
