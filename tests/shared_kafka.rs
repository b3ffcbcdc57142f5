//! The gateway's shared Kafka listener (`listeners: {kafka: ...}`): the TLS server name
//! names the cluster and the broker, as Kroxylicious's SNI routing. Real clients:
//! kafka-python and confluent-kafka against two tansu brokers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::Command;

use common::gateway::Options;
use common::{Throome, free_port};

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
