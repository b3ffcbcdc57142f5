//! TLS for PostgreSQL services: psql (libpq) asks the proxy for it with SSLRequest and checks
//! the certificate the service is configured with (`tls`; `required` refuses clients in
//! clear), and the proxy asks the servers for it (`server_tls`), here a harness server with
//! TLS turned on that refuses logins in clear. Certificates are throwaway ones made with the
//! `openssl` command line.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::servers::{give_to_server_user, pg_bin};
use common::tls::{ca_and_leaf, openssl, signed};
use common::{Postgres, Throome};

/// A self-signed certificate for `localhost` in `dir`: (cert.pem, key.pem). (libpq takes a
/// self-signed certificate as its own root.)
fn certificate(dir: &Path) -> (String, String) {
    let at = |name: &str| dir.join(name).display().to_string();
    let (cert, key) = (at("cert.pem"), at("key.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        &key,
        "-out",
        &cert,
    ]);
    (cert, key)
}

/// A service over `pg`, logging in as postgres, with `tls_lines` (indented YAML) added.
fn gateway(pg: &Postgres, tls_lines: &str) -> (Throome, u16) {
    common::pg::alice_gateway(pg.port, tls_lines)
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
    let tls = format!("    tls: {{ cert: \"{cert}\", key: \"{key}\" }}\n");
    let (_gw, listen) = gateway(&pg, &tls);
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
    let tls = format!("    tls: {{ cert: \"{cert}\", key: \"{key}\", required: true }}\n");
    let (_gw, listen) = gateway(&pg, &tls);
    let out = psql(listen, "sslmode=disable", "SELECT 1");
    assert!(!out.status.success());
    assert!(text(&out).contains("requires TLS"), "{}", text(&out));
    let out = psql(listen, "sslmode=require", "SELECT 1");
    assert!(out.status.success(), "{}", text(&out));
}

/// `auth.hba` tells clients in clear (`hostnossl`) from TLS clients (`hostssl`).
#[test]
fn hba_rules_tell_tls_clients_from_clients_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let pg = Postgres::start();
    let lines = format!(
        "      hba: [\"hostnossl all all all reject\", \"hostssl all all all scram-sha-256\"]\n    tls: {{ cert: \"{cert}\", key: \"{key}\" }}\n"
    );
    let (_gw, listen) = gateway(&pg, &lines);
    let out = psql(listen, "sslmode=disable", "SELECT 1");
    assert!(!out.status.success());
    let refused = "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"alice\", \
                   database \"postgres\", no encryption";
    assert!(text(&out).contains(refused), "{}", text(&out));
    let out = psql(listen, "sslmode=require", "SELECT 1");
    assert!(out.status.success(), "{}", text(&out));
}

/// One query straight at a server as the superuser (in clear); its output.
fn on_server(port: u16, sql: &str) -> String {
    let out = Command::new(pg_bin("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-XAtc",
            sql,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Turns TLS on in `pg` with `cert` and `key`, then refuses TCP logins in clear.
fn require_tls_on(pg: &Postgres, cert: &str, key: &str) {
    let data = on_server(pg.port, "SHOW data_directory");
    for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
        let path = Path::new(&data).join(to);
        std::fs::copy(from, &path).unwrap();
        give_to_server_user(&path);
    }
    let hba = on_server(pg.port, "SHOW hba_file");
    on_server(pg.port, "ALTER SYSTEM SET ssl = on");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("hostnossl all all 127.0.0.1/32 reject\n{old}"),
    )
    .unwrap();
    on_server(pg.port, "SELECT pg_reload_conf()");
}

#[test]
fn the_proxy_reaches_servers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let pg = Postgres::start();
    let on_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(on_server(pg.port, on_tls), "f");
    require_tls_on(&pg, &cert, &key);

    // verify-full: the server's certificate chains to `ca` and names 127.0.0.1; require:
    // encrypted without that check.
    for mode in [format!("verify-full, ca: \"{ca}\""), "require".to_string()] {
        let (_gw, listen) = gateway(&pg, &format!("    server_tls: {{ mode: {mode} }}\n"));
        let out = psql(listen, "sslmode=disable", on_tls);
        assert!(out.status.success(), "{mode}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t", "{mode}");
    }
    // A CA that did not sign the server's certificate: no server, and the client hears why.
    let other = tempfile::tempdir().unwrap();
    let (stranger, _, _) = ca_and_leaf(other.path());
    let tls = format!("    server_tls: {{ mode: verify-full, ca: \"{stranger}\" }}\n");
    let (_gw, listen) = gateway(&pg, &tls);
    let out = psql(listen, "sslmode=disable", "SELECT 1");
    assert!(!out.status.success());
    assert!(text(&out).contains("TLS"), "{}", text(&out));
}

/// A certificate renewed in place (same paths, as cert-manager or certbot do) is served to
/// the next client without a reload.
#[test]
fn a_renewed_certificate_is_served_without_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, cert, key) = ca_and_leaf(dir.path());
    let pg = Postgres::start();
    let tls = format!("    tls: {{ cert: \"{cert}\", key: \"{key}\" }}\n");
    let (_gw, listen) = gateway(&pg, &tls);
    let verified = |ca: &str| {
        psql(
            listen,
            &format!("sslmode=verify-full sslrootcert={ca}"),
            "SELECT 1",
        )
    };
    assert!(verified(&old_ca).status.success());

    let renewed = tempfile::tempdir().unwrap();
    let (new_ca, new_cert, new_key) = ca_and_leaf(renewed.path());
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    let out = verified(&new_ca);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !verified(&old_ca).status.success(),
        "the old certificate is still served"
    );
}

/// `client_ca`: clients must present a certificate that CA signed (mutual TLS).
#[test]
fn client_certificates_are_required_with_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let clients = tempfile::tempdir().unwrap();
    let (client_ca, client_cert, client_key) = ca_and_leaf(clients.path());
    // libpq wants a private key readable by its owner alone.
    use std::os::unix::fs::PermissionsExt;
    for k in [&client_key, &key] {
        std::fs::set_permissions(k, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let pg = Postgres::start();
    let tls =
        format!("    tls: {{ cert: \"{cert}\", key: \"{key}\", client_ca: \"{client_ca}\" }}\n");
    let (_gw, listen) = gateway(&pg, &tls);
    let verified = format!("sslmode=verify-full sslrootcert={ca}");
    let with_cert = format!("{verified} sslcert={client_cert} sslkey={client_key}");
    let out = psql(listen, &with_cert, "SELECT 1");
    assert!(out.status.success(), "{}", text(&out));
    let out = psql(listen, &verified, "SELECT 1");
    assert!(
        !out.status.success(),
        "a client without a certificate got in"
    );
    // A certificate from another CA is no better.
    let out = psql(
        listen,
        &format!("{verified} sslcert={cert} sslkey={key}"),
        "SELECT 1",
    );
    assert!(
        !out.status.success(),
        "a certificate the client CA did not sign got in"
    );
}

/// `auth.method: cert` (PgBouncer's `auth_type = cert`): the Common Name of the certificate
/// the client presents is its user name; no password is asked, and servers are logged in
/// to with the service's credentials.
#[test]
fn client_certificates_name_the_user_with_cert_auth() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = ca_and_leaf(dir.path());
    let clients = tempfile::tempdir().unwrap();
    let (client_ca, _, _) = ca_and_leaf(clients.path());
    let (alice_cert, alice_key) = signed(clients.path(), "alice", "alice");
    let pg = Postgres::start();
    let extra = format!(
        "    username: postgres\n    auth:\n      method: cert\n    tls: {{ cert: \"{cert}\", key: \"{key}\", client_ca: \"{client_ca}\" }}\n"
    );
    let (_gw, listen) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::pg::service(
            "c",
            &[(pg.port, "primary", 1)],
            &extra,
            "",
        ));
    let as_user = |user: &str, options: &str| {
        let dsn = format!(
            "host=localhost hostaddr=127.0.0.1 port={listen} user={user} dbname=postgres {options}"
        );
        Command::new(pg_bin("psql"))
            .args([&dsn, "-XAt", "-c", "SELECT current_user"])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap()
    };
    let alice =
        format!("sslmode=verify-full sslrootcert={ca} sslcert={alice_cert} sslkey={alice_key}");
    let out = as_user("alice", &alice);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");

    // Alice's certificate does not make its holder bob.
    let out = as_user("bob", &alice);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("certificate authentication failed for user \"bob\""),
        "{}",
        text(&out)
    );
    // Without TLS there is no certificate to go by.
    let out = as_user("alice", "sslmode=disable");
    assert!(
        text(&out).contains("connection requires a valid client certificate"),
        "{}",
        text(&out)
    );
}
