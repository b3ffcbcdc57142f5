//! TLS on Kafka services. To the brokers (`server_tls`): tansu speaks no TLS itself, so
//! HAProxy terminates TLS in front of it with a throwaway certificate and tansu advertises
//! HAProxy's port; Throome talks TLS to every broker connection and to its health probe,
//! verifying the certificate against the CA. From the clients (`tls`): kafka-python speaks
//! TLS to the bootstrap address and every broker port, verifying Throome's certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::kafka::{TANSU_NODE, Tansu, free_broker_port_base, kafka_cluster, kcat};
use common::tls::ca_and_leaf;
use common::{Throome, eventually, free_port, run_python_client_with};

/// HAProxy terminating TLS on `port` with `pem` (certificate then key) in front of `to`.
struct TlsTerminator(Child);

impl TlsTerminator {
    /// With `client_ca`, clients must present a certificate it signed.
    fn start(
        dir: &std::path::Path,
        port: u16,
        pem: &str,
        to: u16,
        client_ca: Option<&str>,
    ) -> TlsTerminator {
        let config = dir.join("haproxy.cfg");
        let verify = client_ca.map_or(String::new(), |ca| format!(" ca-file {ca} verify required"));
        let text = format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
             frontend tls\n  bind 127.0.0.1:{port} ssl crt {pem}{verify}\n  default_backend broker\n\
             backend broker\n  server b 127.0.0.1:{to}\n"
        );
        std::fs::write(&config, text).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy not found: run scripts/setup.sh");
        let up = eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "haproxy did not come up");
        TlsTerminator(child)
    }
}

/// A kafka service over the broker at `port`, with `lines` (indented YAML) added; (gateway,
/// listen port, broker port base).
fn service_with(id: &str, port: u16, lines: &str) -> (Throome, u16, u16) {
    let (listen, base) = (free_port(), free_broker_port_base());
    let yaml = kafka_cluster(id, id, listen, base, &[port]).replace(
        "    broker_port_base:",
        &format!("{lines}    broker_port_base:"),
    );
    (Throome::start(&[(id, &yaml)]), listen, base)
}

/// kcat gets no metadata through `listen`.
fn assert_no_metadata(listen: u16) {
    let out = kcat(
        &["-b", &format!("127.0.0.1:{listen}"), "-L", "-m", "5"],
        None,
    );
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// HAProxy's `crt` file: the certificate, then its key.
fn haproxy_pem(dir: &std::path::Path, cert: &str, key: &str) -> String {
    let pem = dir.join("haproxy.pem");
    let both = std::fs::read_to_string(cert).unwrap() + &std::fs::read_to_string(key).unwrap();
    std::fs::write(&pem, both).unwrap();
    pem.display().to_string()
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn brokers_are_reached_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let pem = haproxy_pem(dir.path(), &cert, &key);
    let tls_port = free_port();
    let tansu = Tansu::start_advertising(tls_port);
    tansu.create_topic("sealed", 1);
    let _haproxy = TlsTerminator::start(dir.path(), tls_port, &pem, tansu.port, None);

    let server_tls = format!("    server_tls: {{ mode: verify-full, ca: \"{ca}\" }}\n");
    let (_gw, listen, base) = service_with("k", tls_port, &server_tls);
    let broker_port = (base + TANSU_NODE).to_string();
    common::run_python_client(
        "kafka_client.py",
        &[
            "roundtrip",
            &format!("127.0.0.1:{listen}"),
            "sealed",
            "g",
            "50",
            &broker_port,
        ],
    );

    // A CA that did not sign HAProxy's certificate: no broker connection, so no metadata.
    let other = tempfile::tempdir().unwrap();
    let (stranger, _, _) = ca_and_leaf(other.path());
    let server_tls = format!("    server_tls: {{ mode: verify-full, ca: \"{stranger}\" }}\n");
    let (_gw2, listen, _) = service_with("u", tls_port, &server_tls);
    assert_no_metadata(listen);
}

#[test]
fn clients_reach_the_proxy_over_verified_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let tansu = Tansu::start();
    tansu.create_topic("inbound", 1);
    let tls = format!("    tls: {{ cert: \"{cert}\", key: \"{key}\" }}\n");
    let (gw, listen, base) = service_with("k", tansu.port, &tls);
    let broker_port = (base + TANSU_NODE).to_string();
    let bootstrap = format!("127.0.0.1:{listen}");
    let args = ["roundtrip", &bootstrap, "inbound", "g", "50", &broker_port];
    run_python_client_with("kafka_client.py", &args, &[("KAFKA_SSL_CAFILE", &ca)]);

    // A client in clear gets no answer it can read, and the failed handshake is counted.
    assert_no_metadata(listen);
    assert!(
        gw.metrics().contains("kind=\"client_tls\""),
        "{}",
        gw.metrics()
    );
}

/// A broker that asks for a client certificate (mutual TLS): Throome presents
/// `server_tls.cert`; without one it gets no metadata.
#[test]
fn a_client_certificate_is_presented_to_brokers_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let pem = haproxy_pem(dir.path(), &cert, &key);
    let ours = tempfile::tempdir().unwrap();
    let (client_ca, client_cert, client_key) = ca_and_leaf(ours.path());
    let tls_port = free_port();
    let tansu = Tansu::start_advertising(tls_port);
    tansu.create_topic("mutual", 1);
    let _haproxy = TlsTerminator::start(dir.path(), tls_port, &pem, tansu.port, Some(&client_ca));

    let service = |id: &str, identity: &str| {
        let tls = format!("    server_tls: {{ mode: verify-full, ca: \"{ca}\"{identity} }}\n");
        service_with(id, tls_port, &tls)
    };
    let identity = format!(", cert: \"{client_cert}\", key: \"{client_key}\"");
    let (_gw, listen, base) = service("m", &identity);
    let broker_port = (base + TANSU_NODE).to_string();
    let bootstrap = format!("127.0.0.1:{listen}");
    let args = ["roundtrip", &bootstrap, "mutual", "g", "20", &broker_port];
    common::run_python_client("kafka_client.py", &args);

    let (_gw2, listen, _) = service("n", "");
    assert_no_metadata(listen);
}
