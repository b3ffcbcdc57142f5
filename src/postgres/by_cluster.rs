//! PostgreSQL on the gateway's shared listener: the client names its cluster as Supavisor's
//! clients name their tenant, by the user name `user.cluster`, or by `options=-c
//! throome.cluster=ID`, or by the TLS server name `ID.<anything>`; the database name picks
//! the cluster's postgres service (its name or its `database`). The startup packet is then
//! put back with the plain user name and the session goes on as on the service's own port
//! ([start-up flow](https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP)).

use std::time::Duration;

use bytes::BytesMut;
use throome_pgwire::build;

use super::startup::Negotiated;

use super::io::{Stream, Wire, WireError};
use crate::by_cluster::{self, Lookup};
use crate::config::{ServiceKind, TlsConfig};
use crate::protocol::Arrival;
use crate::session::ClientConn;

/// How long a client of the shared listener has to send its startup packet (PgBouncer's
/// `client_login_timeout` default); the service's own applies from there.
const ROUTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The custom setting that names the cluster in `options`.
const CLUSTER_OPTION: &str = "throome.cluster=";

pub async fn serve(arrival: Arrival, client: ClientConn) {
    let tls = arrival.listen.tls().cloned();
    let stream = match client {
        ClientConn::Tcp(tcp) => Stream::Plain(tcp),
        ClientConn::Unix(unix) => Stream::Unix(unix),
    };
    let mut wire = Wire::over(
        stream,
        BytesMut::with_capacity(1024),
        throome_pgwire::DEFAULT_MAX_MESSAGE,
    );
    let routed =
        tokio::time::timeout(ROUTE_TIMEOUT, route(&mut wire, tls.as_ref(), &arrival)).await;
    let service = match routed {
        Ok(Ok(Some(service))) => service,
        Ok(Ok(None)) | Ok(Err(_)) => return,
        Err(_) => {
            let text = "canceling authentication due to timeout";
            let _ = wire.send(&build::error("FATAL", "08P01", text)).await;
            return;
        }
    };
    let Some(_slot) = by_cluster::admit(&arrival.shared, &service) else {
        let text = "sorry, too many clients already";
        let _ = wire.send(&build::error("FATAL", "53300", text)).await;
        return;
    };
    let session = arrival.into_session(service);
    let _counted = crate::session::Counted::new(&session);
    super::session::serve_wire(session, wire).await;
}

/// Reads up to the StartupMessage (answering SSLRequest, passing cancel requests on) and
/// finds the service it names; the startup packet is left in `wire.buf` for the session.
/// `None`: the client was answered (refused, or its cancel request passed on).
async fn route(
    wire: &mut Wire,
    tls: Option<&TlsConfig>,
    arrival: &Arrival,
) -> Result<Option<std::sync::Arc<crate::snapshot::ServiceRuntime>>, WireError> {
    let acceptor = tls.and_then(|t| crate::tls::cached_acceptor(t).ok());
    match super::startup::negotiate(wire, acceptor).await? {
        Negotiated::Startup {
            major,
            minor,
            params,
        } => pick(wire, arrival, major, minor, params).await,
        Negotiated::Done => Ok(None),
        Negotiated::Invalid(e) => {
            let text = format!("invalid startup packet: {e}");
            wire.send(&build::error("FATAL", "08P01", &text)).await?;
            Ok(None)
        }
    }
}

/// Finds the service the startup parameters name and puts the packet back without the
/// cluster in it.
async fn pick(
    wire: &mut Wire,
    arrival: &Arrival,
    major: u16,
    minor: u16,
    mut params: Vec<(String, String)>,
) -> Result<Option<std::sync::Arc<crate::snapshot::ServiceRuntime>>, WireError> {
    let get = |params: &[(String, String)], name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(given_user) = get(&params, "user") else {
        let text = "no PostgreSQL user name specified in startup packet";
        wire.send(&build::error("FATAL", "28000", text)).await?;
        return Ok(None);
    };
    let options = get(&params, "options").unwrap_or_default();
    let (options, from_options) = take_cluster_option(&options);
    let sni = wire
        .server_name()
        .and_then(|n| n.split_once('.'))
        .map(|(c, _)| c.to_string());
    let (user, cluster) = match (from_options, by_cluster::dotted(&given_user), sni) {
        (Some(c), _, _) => (given_user.clone(), c),
        (None, Some((u, c)), _) => (u.to_string(), c.to_string()),
        (None, None, Some(c)) => (given_user.clone(), c),
        (None, None, None) => (given_user.clone(), String::new()),
    };
    // libpq's default database is the user name as the client typed it.
    let database = get(&params, "database").unwrap_or_else(|| user.clone());
    let snapshot = arrival.shared.snapshot.load();
    let service =
        match by_cluster::find(&snapshot, &cluster, ServiceKind::Postgres, Some(&database)) {
            Lookup::Found(s) => s,
            Lookup::NoService if super::console::is_console(&database) => {
                match by_cluster::find(&snapshot, &cluster, ServiceKind::Postgres, None) {
                    Lookup::Found(s) => s,
                    _ => return no_such_database(wire, &database).await,
                }
            }
            Lookup::NoService => return no_such_database(wire, &database).await,
            Lookup::NoCluster => return no_such_user(wire, &given_user).await,
        };
    for (k, v) in params.iter_mut() {
        match k.as_str() {
            "user" => v.clone_from(&user),
            "options" => v.clone_from(&options),
            _ => {}
        }
    }
    params.retain(|(k, v)| k != "options" || !v.is_empty());
    if get(&params, "database").is_none() {
        params.push(("database".into(), database));
    }
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let rest = wire.buf.split();
    wire.buf
        .extend_from_slice(&build::startup_version(major, minor, &pairs));
    wire.buf.extend_from_slice(&rest);
    Ok(Some(service))
}

/// `options` without `-c throome.cluster=ID` (also `--throome.cluster=ID`), and the ID.
fn take_cluster_option(options: &str) -> (String, Option<String>) {
    let mut kept: Vec<&str> = Vec::new();
    let mut cluster = None;
    let mut words = options.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let setting = match w {
            "-c" => words
                .peek()
                .copied()
                .filter(|s| s.starts_with(CLUSTER_OPTION)),
            _ => w
                .strip_prefix("-c")
                .or_else(|| w.strip_prefix("--"))
                .filter(|s| s.starts_with(CLUSTER_OPTION)),
        };
        match setting {
            Some(s) => {
                cluster = Some(s[CLUSTER_OPTION.len()..].to_string());
                if w == "-c" {
                    words.next();
                }
            }
            None => kept.push(w),
        }
    }
    (kept.join(" "), cluster)
}

/// A cluster that is not there, or has no postgres service on this listener: asked for a
/// password and refused as PostgreSQL refuses a role it does not have, so a client cannot
/// tell which clusters exist from which names are refused at once.
async fn no_such_user<T>(wire: &mut Wire, user: &str) -> Result<Option<T>, WireError> {
    let mut salt = [0u8; 4];
    let _ = getrandom::fill(&mut salt);
    wire.send(&build::auth_md5(salt)).await?;
    while wire.buf.is_empty() {
        wire.fill().await?;
    }
    let text = format!("password authentication failed for user \"{user}\"");
    wire.send(&build::error("FATAL", "28P01", &text)).await?;
    Ok(None)
}

async fn no_such_database<T>(wire: &mut Wire, database: &str) -> Result<Option<T>, WireError> {
    let text = format!("database \"{database}\" does not exist");
    wire.send(&build::error("FATAL", "3D000", &text)).await?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::take_cluster_option;

    #[test]
    fn the_cluster_option_is_taken_out_of_options() {
        let (rest, c) = take_cluster_option("-c search_path=a -c throome.cluster=shop");
        assert_eq!(
            (rest.as_str(), c.as_deref()),
            ("-c search_path=a", Some("shop"))
        );
        let (rest, c) = take_cluster_option("--throome.cluster=shop -cwork_mem=4MB");
        assert_eq!(
            (rest.as_str(), c.as_deref()),
            ("-cwork_mem=4MB", Some("shop"))
        );
        let (rest, c) = take_cluster_option("-cthroome.cluster=shop");
        assert_eq!((rest.as_str(), c.as_deref()), ("", Some("shop")));
        let (rest, c) = take_cluster_option("-c geqo=off");
        assert_eq!((rest.as_str(), c), ("-c geqo=off", None));
    }
}
