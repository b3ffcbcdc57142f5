//! Host-based authentication (`auth.hba`, PgBouncer's `auth_type = hba`) against a real
//! PostgreSQL: clients connect from different loopback addresses (127.0.0.1, .2, .3, bound
//! as source), and the first pg_hba.conf rule matching address, user and database picks the
//! method the proxy asks for, or refuses with PostgreSQL's 28000 and its words.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use std::net::{IpAddr, SocketAddr};

use common::Postgres;
use common::pg::pg_gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const RULES: &str = "      admin_users: [alice]
      hba:
        - host all bob all reject
        - host all alice 127.0.0.2/32 trust
        - host template1 all 127.0.0.1/32 md5   # md5 for this database
        - host all all 127.0.0.1/32 scram-sha-256
";

/// A TCP connection to the proxy from `source`.
async fn from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    let ip: IpAddr = source.parse().unwrap();
    socket.bind(SocketAddr::new(ip, 0)).unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// tokio-postgres logging in from `source`.
async fn login(
    source: &str,
    port: u16,
    user: &str,
    password: &str,
    database: &str,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config.user(user).password(password).dbname(database);
    let (client, conn) = config.connect_raw(from(source, port).await, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// What the proxy answers a StartupMessage with: the authentication request code (0 ok,
/// 5 md5, 10 SASL), or the ErrorResponse's text.
async fn first_answer(source: &str, port: u16, user: &str, database: &str) -> Result<i32, String> {
    let mut s = from(source, port).await;
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for part in ["user", user, "database", database] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    s.write_all(&packet).await.unwrap();
    let tag = s.read_u8().await.unwrap();
    let len = s.read_i32().await.unwrap();
    let mut rest = vec![0; len as usize - 4];
    s.read_exact(&mut rest).await.unwrap();
    match tag {
        b'R' => Ok(i32::from_be_bytes(rest[..4].try_into().unwrap())),
        _ => Err(String::from_utf8_lossy(&rest).to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_matching_rule_picks_the_method_or_refuses() {
    let pg = Postgres::start();
    let (_gw, listen) = pg_gateway(&[(pg.port, "primary", 1)], RULES).await;

    // The method each rule names, as the proxy asks for it.
    assert_eq!(
        first_answer("127.0.0.1", listen, "alice", "postgres").await,
        Ok(10)
    );
    assert_eq!(
        first_answer("127.0.0.1", listen, "alice", "template1").await,
        Ok(5)
    );
    assert_eq!(
        first_answer("127.0.0.2", listen, "alice", "postgres").await,
        Ok(0)
    );
    let rejected = first_answer("127.0.0.1", listen, "bob", "postgres").await;
    assert!(
        rejected.as_ref().is_err_and(|e| e.contains(
            "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"bob\", database \"postgres\", no encryption"
        )),
        "{rejected:?}"
    );
    let unmatched = first_answer("127.0.0.3", listen, "alice", "postgres").await;
    assert!(
        unmatched.as_ref().is_err_and(|e| e.contains(
            "no pg_hba.conf entry for host \"127.0.0.3\", user \"alice\", database \"postgres\""
        )),
        "{unmatched:?}"
    );

    // A real client through each: SCRAM and md5 check the password, trust does not.
    let scram = login("127.0.0.1", listen, "alice", "wonderland", "postgres").await;
    scram.unwrap().simple_query("SELECT 1").await.unwrap();
    let wrong = login("127.0.0.1", listen, "alice", "nope", "postgres").await;
    assert_eq!(
        wrong.err().unwrap().code(),
        Some(&SqlState::INVALID_PASSWORD)
    );
    let md5 = login("127.0.0.1", listen, "alice", "wonderland", "template1").await;
    md5.unwrap().simple_query("SELECT 1").await.unwrap();
    let wrong = login("127.0.0.1", listen, "alice", "nope", "template1").await;
    assert_eq!(
        wrong.err().unwrap().code(),
        Some(&SqlState::INVALID_PASSWORD)
    );
    let trusted = login("127.0.0.2", listen, "alice", "anything", "postgres").await;
    trusted.unwrap().simple_query("SELECT 1").await.unwrap();
    let console = login("127.0.0.1", listen, "alice", "wonderland", "throome").await;
    let config = console.unwrap().simple_query("SHOW CONFIG").await.unwrap();
    let auth_type = config.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) if r.get("key") == Some("auth_type") => {
            r.get("value").map(str::to_string)
        }
        _ => None,
    });
    assert_eq!(auth_type.as_deref(), Some("hba"));
    for (source, user) in [("127.0.0.1", "bob"), ("127.0.0.3", "alice")] {
        let err = login(source, listen, user, "wonderland", "postgres").await;
        let err = err.err().unwrap();
        assert_eq!(
            err.code(),
            Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
            "{err:?}"
        );
    }
}
