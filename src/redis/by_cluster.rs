//! Redis on the gateway's shared listener: the client names its cluster in the ACL user name
//! of its login, `AUTH user@cluster pass` or `HELLO 3 AUTH user@cluster pass`
//! (`user@cluster/service` picks one of several redis services; the cluster ID alone is the
//! user of a cluster without users), or in the TLS server name `ID.<anything>`. Until then
//! every other command gets `-NOAUTH`, as from a Redis with a password
//! ([AUTH](https://redis.io/docs/latest/commands/auth/)). The login goes on to the session
//! with the cluster taken out of the user name, so the service's own `auth:` or the backend
//! checks it as on the service's own port.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use throome_resp::{Limits, Request, RequestScanner};

use super::encode;
use crate::accepted::Accepted;
use crate::by_cluster::{self, Lookup};
use crate::config::ServiceKind;
use crate::protocol::Arrival;
use crate::session::ClientConn;
use crate::snapshot::ServiceRuntime;

/// Redis's limits for a client that has not logged in (`networking.c`: a multibulk of more
/// than 10 arguments, or an argument over 16 KiB, is a protocol error).
const UNAUTHENTICATED: Limits = Limits {
    max_bulk_len: 16 * 1024,
    max_args: 10,
    max_inline_len: 16 * 1024,
    max_request_len: 64 * 1024,
};

/// How long a client may take to log in before it is closed.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

pub async fn serve(arrival: Arrival, client: ClientConn) {
    let tls = arrival.listen.tls().cloned();
    let mut client = match client {
        ClientConn::Unix(unix) => Accepted::Unix(unix),
        ClientConn::Tcp(tcp) => match Accepted::accept(tcp, tls.as_ref(), LOGIN_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(peer = %arrival.peer, error = %e, "TLS handshake with a client of the shared listener failed");
                return;
            }
        },
    };
    let mut buf = BytesMut::new();
    let (service, login) = match by_sni(&client, &arrival) {
        // The TLS server name named the cluster: served at once, as on its own port.
        Some(service) => (service, Vec::new()),
        None => {
            let routed =
                tokio::time::timeout(LOGIN_TIMEOUT, route(&mut client, &mut buf, &arrival));
            match routed.await {
                Ok(Some(routed)) => routed,
                _ => return,
            }
        }
    };
    // The login as the service sees it goes first, then what the client sent after it.
    let mut read = BytesMut::from(&login[..]);
    read.extend_from_slice(&buf);
    let Some(_slot) = by_cluster::admit(&arrival.shared, &service) else {
        client
            .refuse(b"-ERR max number of clients reached\r\n")
            .await;
        return;
    };
    let session = arrival.into_session(service);
    let _counted = crate::session::Counted::new(&session);
    super::session::serve_accepted(session, client, read).await;
}

/// The redis service of the cluster a TLS client's server name (`ID.<anything>`) names.
fn by_sni(client: &Accepted, arrival: &Arrival) -> Option<std::sync::Arc<ServiceRuntime>> {
    let (cluster, _) = client.server_name()?.split_once('.')?;
    let snapshot = arrival.shared.snapshot.load();
    match by_cluster::find(&snapshot, cluster, ServiceKind::Redis, None) {
        Lookup::Found(s) => Some(s),
        _ => None,
    }
}

/// Answers requests until one names a cluster: the service and the login request to hand
/// the session (empty when the proxy answered it). `None`: the client left or was closed.
async fn route(
    client: &mut Accepted,
    buf: &mut BytesMut,
    arrival: &Arrival,
) -> Option<(std::sync::Arc<ServiceRuntime>, Vec<u8>)> {
    let mut scanner = RequestScanner::new(UNAUTHENTICATED);
    loop {
        let request = match scanner.scan(buf) {
            Ok(Some(r)) => r,
            Ok(None) => {
                if client.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
                continue;
            }
            Err(e) => {
                let e = unauthenticated(e, buf);
                let _ = client.write_all(&encode::error(&format!("ERR {e}"))).await;
                let _ = client.flush().await;
                return None;
            }
        };
        let (reply, routed) = answer(&request, arrival);
        if let Some(routed) = routed {
            if !reply.is_empty() {
                client.write_all(&reply).await.ok()?;
                client.flush().await.ok()?;
            }
            return Some(routed);
        }
        client.write_all(&reply).await.ok()?;
        client.flush().await.ok()?;
        if request.name().eq_ignore_ascii_case(b"quit") {
            return None;
        }
    }
}

/// Redis's words for a request over the limits of a client that has not logged in: the
/// same bytes scanned under the ordinary limits tell whether those limits were the cause.
fn unauthenticated(e: throome_resp::ProtocolError, buf: &BytesMut) -> String {
    use throome_resp::ProtocolError::{InvalidBulkLength, InvalidMultibulkLength};
    let ordinary = RequestScanner::new(Limits::default()).scan(&mut buf.clone());
    match (&e, ordinary) {
        (InvalidMultibulkLength, Ok(_)) => {
            "Protocol error: unauthenticated multibulk length".into()
        }
        (InvalidBulkLength, Ok(_)) => "Protocol error: unauthenticated bulk length".into(),
        _ => e.to_string(),
    }
}

type Routed = (std::sync::Arc<ServiceRuntime>, Vec<u8>);

/// The reply to one request before login, and where the client goes when it logged in.
fn answer(request: &Request, arrival: &Arrival) -> (Vec<u8>, Option<Routed>) {
    let args: Vec<&[u8]> = request.args().collect();
    let name = request.name();
    // (user name as given, password, HELLO's args) of the login.
    let (given, pass, hello): (Option<&[u8]>, Option<&[u8]>, Option<usize>) =
        if name.eq_ignore_ascii_case(b"auth") {
            match args.as_slice() {
                [_, user, pass] => (Some(user), Some(pass), None),
                [_, pass] => (None, Some(pass), None),
                [_] => return (arity_error(), None),
                _ => return (encode::error("ERR syntax error").to_vec(), None),
            }
        } else if name.eq_ignore_ascii_case(b"hello") {
            match hello_auth(&args) {
                Ok(Some(at)) => (Some(args[at + 1]), Some(args[at + 2]), Some(at)),
                Ok(None) => (None, None, Some(0)),
                Err(reply) => return (reply.to_vec(), None),
            }
        } else if name.eq_ignore_ascii_case(b"quit") {
            return (encode::simple("OK").to_vec(), None);
        } else {
            return (encode::error(NOAUTH).to_vec(), None);
        };
    let given = given.map(|u| String::from_utf8_lossy(u).into_owned());
    // Who logs in to which cluster: `user@cluster[/service]`, or `cluster[/service]` alone.
    let Some(given) = given.as_deref() else {
        let refusal = if hello.is_some() {
            HELLO_NOAUTH
        } else {
            WRONGPASS
        };
        return (encode::error(refusal).to_vec(), None);
    };
    let named = by_cluster::at_sign(given);
    let user = given.contains('@').then_some(named.user);
    let (cluster, service) = (named.cluster, named.service);
    let snapshot = arrival.shared.snapshot.load();
    let Lookup::Found(found) = by_cluster::find(&snapshot, cluster, ServiceKind::Redis, service)
    else {
        return (encode::error(WRONGPASS).to_vec(), None);
    };
    let pass = pass.unwrap_or_default();
    let login = match (hello, user) {
        // The cluster alone, no password, a service without users: nothing to check. (With
        // `auth:` the empty password goes on and is refused there, as Redis refuses it.)
        (None, None) if pass.is_empty() && found.spec.auth.is_none() => {
            return (encode::simple("OK").to_vec(), Some((found, Vec::new())));
        }
        (None, None) => command(&[b"AUTH", pass]),
        (None, Some(u)) => command(&[b"AUTH", u.as_bytes(), pass]),
        // `HELLO protover AUTH <name> pass ...`, the name replaced or the AUTH taken out.
        (Some(at), user) => {
            let mut out: Vec<&[u8]> = args.clone();
            match user {
                Some(u) => out[at + 1] = u.as_bytes(),
                None if pass.is_empty() => {
                    out.drain(at..at + 3);
                }
                None => out[at + 1] = b"default",
            }
            command(&out)
        }
    };
    (Vec::new(), Some((found, login)))
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::command(&mut out, args);
    out
}

use super::local::HELLO_NOAUTH;

fn arity_error() -> Vec<u8> {
    encode::error("ERR wrong number of arguments for 'auth' command").to_vec()
}

/// Where `AUTH` sits in `HELLO protover [AUTH user pass] [SETNAME name]`, checked in
/// redis-server's order (`helloCommand`): the version, then each option's arguments.
fn hello_auth(args: &[&[u8]]) -> Result<Option<usize>, bytes::Bytes> {
    if let Some(v) = args.get(1) {
        match std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
        {
            Some(2 | 3) => {}
            Some(_) => return Err(encode::error("NOPROTO unsupported protocol version")),
            None => {
                return Err(encode::error(
                    "ERR Protocol version is not an integer or out of range",
                ));
            }
        }
    }
    let mut auth = None;
    let mut i = 2;
    while let Some(opt) = args.get(i) {
        let more = args.len() - 1 - i;
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            auth = Some(i);
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            i += 2;
        } else {
            let opt = String::from_utf8_lossy(opt);
            return Err(encode::error(&format!(
                "ERR Syntax error in HELLO option '{opt}'"
            )));
        }
    }
    Ok(auth)
}
