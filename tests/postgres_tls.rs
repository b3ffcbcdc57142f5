//! TLS termination for PostgreSQL clients: psql (libpq) asks with SSLRequest and checks the
//! certificate the service is configured with; `required` refuses clients in clear. The
//! certificate is a throwaway one made with the `openssl` command line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::gateway::cluster_of;
use common::servers::pg_bin;
use common::{Postgres, Throome, free_port};

/// A self-signed certificate for `localhost` in `dir`: (cert.pem, key.pem).
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl not found");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn gateway(pg: &Postgres, tls: &str) -> (Throome, u16) {
    let listen = free_port();
    let extra = format!(
        "    username: postgres\n    auth:\n      users: {{ alice: wonderland }}\n    tls: {tls}\n"
    );
    let yaml = cluster_of(
        "postgres",
        "p",
        "db",
        listen,
        &[(pg.port, "primary", 1)],
        &extra,
        "",
    );
    (Throome::start(&[("p", &yaml)]), listen)
}

/// psql as alice with connection options `conninfo`, running `sql`.
fn psql(port: u16, conninfo: &str, sql: &str) -> Output {
    let dsn = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} user=alice dbname=postgres {conninfo}"
    );
    Command::new(pg_bin("psql"))
        .args([&dsn, "-XAt", "-c", sql])
        .env("PGPASSWORD", "wonderland")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn psql_verifies_the_certificate_and_talks_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let pg = Postgres::start();
    let (_gw, listen) = gateway(&pg, &format!("{{ cert: \"{cert}\", key: \"{key}\" }}"));
    // verify-full: TLS, a certificate signed by `cert` (itself), for the host name asked.
    let verified = format!("sslmode=verify-full sslrootcert={cert}");
    let out = psql(listen, &verified, "SELECT 40 + 2");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    // Not required: a client in clear still gets in.
    let out = psql(listen, "sslmode=disable", "SELECT 1");
    assert!(out.status.success(), "{}", text(&out));
    // Another certificate is not trusted by a verifying client.
    let other = tempfile::tempdir().unwrap();
    let (stranger, _) = certificate(other.path());
    let out = psql(
        listen,
        &format!("sslmode=verify-full sslrootcert={stranger}"),
        "SELECT 1",
    );
    assert!(!out.status.success(), "{}", text(&out));
}

#[test]
fn required_tls_refuses_clients_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let pg = Postgres::start();
    let tls = format!("{{ cert: \"{cert}\", key: \"{key}\", required: true }}");
    let (_gw, listen) = gateway(&pg, &tls);
    let out = psql(listen, "sslmode=disable", "SELECT 1");
    assert!(!out.status.success());
    assert!(text(&out).contains("requires TLS"), "{}", text(&out));
    let out = psql(listen, "sslmode=require", "SELECT 1");
    assert!(out.status.success(), "{}", text(&out));
}
