//! Logins through `type: postgres` against a real PostgreSQL whose pg_hba.conf asks for
//! SCRAM-SHA-256, md5 or cleartext passwords: the proxy's own logins to servers, clients
//! logging in to servers as themselves (SCRAM pass-through, md5 hashes), the auth query.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::Postgres;
use common::pg::{connect, direct, service};
use tokio_postgres::{Client, error::SqlState};

/// Makes the server ask for passwords: `scram_user` (SCRAM-SHA-256), `md5_user` (md5) and
/// `clear_user` (cleartext),
/// through pg_hba.conf rules in front of the harness's `trust` default.
async fn require_passwords(admin: &Client) {
    admin
        .batch_execute(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE scram_user LOGIN PASSWORD 'scram-pw'; \
             CREATE ROLE clear_user LOGIN PASSWORD 'clear-pw'; \
             SET password_encryption = 'md5'; \
             CREATE ROLE md5_user LOGIN PASSWORD 'md5-pw';",
        )
        .await
        .unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let old = std::fs::read_to_string(&hba).unwrap();
    let rules =
        "host all scram_user 127.0.0.1/32 scram-sha-256\nhost all md5_user 127.0.0.1/32 md5\n";
    std::fs::write(&hba, format!("{rules}{old}")).unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

/// What the server stores for `role` (`pg_authid.rolpassword`: a SCRAM verifier or an md5
/// hash).
async fn secret_of(admin: &Client, role: &str) -> String {
    let sql = "SELECT rolpassword FROM pg_authid WHERE rolname = $1";
    admin.query_one(sql, &[&role]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_logs_in_to_servers_with_scram_and_md5() {
    let pg = Postgres::start();
    let port = pg.port;
    require_passwords(&direct(port).await).await;
    for (user, password) in [
        ("scram_user", "scram-pw"),
        ("md5_user", "md5-pw"),
        ("clear_user", "clear-pw"),
    ] {
        let extra = format!(
            "    username: {user}\n    password: {password}\n    database: postgres\n    auth:\n      users: {{ alice: wonderland }}\n"
        );
        let (gw, listen) = service("b", &[(port, "primary", 1)], &extra, "").await;
        let c = connect(listen, "alice", "wonderland").await.unwrap();
        let who: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
        drop(gw);
    }
    // A wrong backend password: the client gets the server's own 28P01.
    let extra = "    username: scram_user\n    password: wrong\n    database: postgres\n    auth:\n      users: { alice: wonderland }\n";
    let (_gw, listen) = service("w", &[(port, "primary", 1)], extra, "").await;
    let err = connect(listen, "alice", "wonderland").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}

/// With neither `username` nor `password` in the service, clients log in to servers as
/// themselves: with their password from `auth.users`, or, where that entry is the server's
/// own SCRAM verifier (`pg_authid.rolpassword`), with the key the client's SCRAM proof
/// revealed: no password is stored in the configuration.
#[tokio::test(flavor = "multi_thread")]
async fn clients_log_in_to_servers_as_themselves() {
    let pg = Postgres::start();
    let port = pg.port;
    let admin = direct(port).await;
    require_passwords(&admin).await;
    let verifier = secret_of(&admin, "scram_user").await;
    let users = |scram: &str| {
        format!(
            "    auth:\n      users:\n        scram_user: \"{scram}\"\n        md5_user: md5-pw\n"
        )
    };
    let (_gw, listen) = service("s", &[(port, "primary", 1)], &users(&verifier), "").await;
    for (user, password) in [("scram_user", "scram-pw"), ("md5_user", "md5-pw")] {
        let c = connect(listen, user, password).await.unwrap();
        let sql = "SELECT current_user::text";
        let who: String = c.query_one(sql, &[]).await.unwrap().get(0);
        assert_eq!(who, user);
    }
    let err = connect(listen, "scram_user", "nope").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");

    // The same password under another salt is another secret: the client passes the proxy,
    // but its key does not open the server, and it is told so.
    let other = postgres_protocol::password::scram_sha_256(b"scram-pw");
    let (_gw2, listen) = service("o", &[(port, "primary", 1)], &users(&other), "").await;
    let err = connect(listen, "scram_user", "scram-pw")
        .await
        .err()
        .unwrap();
    let text = err.as_db_error().map(|e| e.message().to_string());
    assert!(
        text.as_deref().is_some_and(|t| t.contains("differs")),
        "{err:?}"
    );
}

/// Users missing from `auth.users` are looked up with the service's auth query (PgBouncer's
/// `auth_query`): their SCRAM verifier checks the client, and the key its proof reveals logs
/// in to servers as that user.
#[tokio::test(flavor = "multi_thread")]
async fn users_are_looked_up_with_the_auth_query() {
    let pg = Postgres::start();
    let port = pg.port;
    require_passwords(&direct(port).await).await;
    let with = |sql: &str| {
        format!(
            "    auth:\n      query:\n        sql: \"{sql} WHERE rolname = $1\"\n        user: postgres\n"
        )
    };
    let extra = with("SELECT rolpassword FROM pg_authid");
    let (_gw, listen) = service("q", &[(port, "primary", 1)], &extra, "").await;
    let c = connect(listen, "scram_user", "scram-pw").await.unwrap();
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "scram_user");
    // A wrong password, no such role, and a role whose secret is an md5 hash (not a
    // verifier): all the same 28P01.
    for (user, password) in [
        ("scram_user", "nope"),
        ("nobody", "scram-pw"),
        ("md5_user", "md5-pw"),
    ] {
        let err = connect(listen, user, password).await.err().unwrap();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_PASSWORD),
            "{user}: {err}"
        );
    }

    // A query that fails: the client is told the lookup failed, not that its password was
    // wrong.
    let extra = with("SELECT no_such_column FROM pg_authid");
    let (_gw2, listen) = service("f", &[(port, "primary", 1)], &extra, "").await;
    let err = connect(listen, "scram_user", "scram-pw")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(&SqlState::CONNECTION_FAILURE), "{err:?}");
}

/// md5 hashes as PostgreSQL stores them (`md5...` from `pg_authid`, the format of PgBouncer's
/// auth_file) check md5 clients and log in to md5 servers with no password anywhere; under
/// `method: md5` a user whose entry is a SCRAM verifier is asked for SCRAM instead.
#[tokio::test(flavor = "multi_thread")]
async fn md5_hashes_check_clients_and_log_in_to_servers() {
    let pg = Postgres::start();
    let port = pg.port;
    let admin = direct(port).await;
    require_passwords(&admin).await;
    let (md5, scram) = (
        secret_of(&admin, "md5_user").await,
        secret_of(&admin, "scram_user").await,
    );
    assert!(md5.starts_with("md5"), "{md5}");
    let users = format!(
        "    auth:\n      method: md5\n      users:\n        md5_user: \"{md5}\"\n        scram_user: \"{scram}\"\n"
    );
    let (_gw, listen) = service("m", &[(port, "primary", 1)], &users, "").await;
    for (user, password) in [("md5_user", "md5-pw"), ("scram_user", "scram-pw")] {
        let c = connect(listen, user, password).await.unwrap();
        let who: String = c
            .query_one("SELECT current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(who, user);
    }
    let err = connect(listen, "md5_user", "nope").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");

    // The hash as the service's own backend password.
    let backend = format!(
        "    username: md5_user\n    password: \"{md5}\"\n    database: postgres\n    auth:\n      users: {{ alice: wonderland }}\n"
    );
    let (_gw2, listen) = service("h", &[(port, "primary", 1)], &backend, "").await;
    let c = connect(listen, "alice", "wonderland").await.unwrap();
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "md5_user");

    // An auth query that answers with the md5 hash.
    let query = "    auth:\n      method: md5\n      query:\n        sql: \"SELECT rolpassword FROM pg_authid WHERE rolname = $1\"\n        user: postgres\n";
    let (_gw3, listen) = service("q", &[(port, "primary", 1)], query, "").await;
    let c = connect(listen, "md5_user", "md5-pw").await.unwrap();
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    let err = connect(listen, "md5_user", "nope").await.err().unwrap();
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
}
