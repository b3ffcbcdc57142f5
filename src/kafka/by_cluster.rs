//! Kafka on the gateway's shared listener, as Kroxylicious's SNI routing: TLS is required,
//! and the server name a client asks for names the cluster and the broker —
//! `<cluster>.bootstrap.<sni_domain>` to bootstrap, `<cluster>.broker-<node>.<sni_domain>` for
//! each broker, the names the rewritten Metadata, FindCoordinator and DescribeCluster
//! answers give out (with the shared port). One port then serves every broker of every
//! cluster, and a client that reconnects lands in the same cluster. A wildcard DNS record
//! for `*.<sni_domain>` must point at the gateway.

use std::time::Duration;

use bytes::BytesMut;
use throome_kafka::{FrameScanner, api, rewrite_response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connect::BrokerStream;
use crate::accepted::Accepted;
use crate::by_cluster::{self, Lookup};
use crate::config::ServiceKind;
use crate::config::gateway::SharedListen;
use crate::error::ProxyError;
use crate::protocol::Arrival;
use crate::session::{ClientConn, Session};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest Metadata answer read when learning the brokers (it names no topics).
const MAX_METADATA: usize = 1024 * 1024;

/// A shared Kafka listener needs TLS and the domain its broker names are under.
pub fn check(listen: &SharedListen) -> Result<(), String> {
    match (listen.tls(), listen.sni_domain()) {
        (Some(_), Some(_)) => Ok(()),
        _ => Err(
            "Kafka clients name their cluster and broker by the TLS server name: give the \
             shared kafka listener `tls` and `sni_domain`"
                .into(),
        ),
    }
}

pub async fn serve(arrival: Arrival, client: ClientConn) {
    // A Unix-domain socket has no TLS, so no server name: nothing names a cluster.
    let ClientConn::Tcp(tcp) = client else {
        return;
    };
    let client = match Accepted::accept(tcp, arrival.listen.tls(), HANDSHAKE_TIMEOUT).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(peer = %arrival.peer, error = %e, "TLS handshake with a client of the shared kafka listener failed");
            return;
        }
    };
    let domain = arrival.listen.sni_domain().unwrap_or_default();
    let Some((cluster, node)) = client.server_name().and_then(|n| parse(n, domain)) else {
        tracing::info!(peer = %arrival.peer, name = ?client.server_name(), "a kafka client named no cluster of this gateway");
        return;
    };
    let snapshot = arrival.shared.snapshot.load();
    let Lookup::Found(service) = by_cluster::find(&snapshot, cluster, ServiceKind::Kafka, None)
    else {
        tracing::info!(peer = %arrival.peer, cluster, "a kafka client named an unknown cluster");
        return;
    };
    let Some(_slot) = by_cluster::admit(&arrival.shared, &service) else {
        return;
    };
    let mut session = arrival.into_session(service);
    session.node = node;
    let _counted = crate::session::Counted::new(&session);
    super::session::serve_accepted(session, client).await;
}

/// `<cluster>.bootstrap.<domain>` or `<cluster>.broker-<node>.<domain>`: the cluster and
/// the node (`None`: bootstrap).
fn parse<'a>(name: &'a str, domain: &str) -> Option<(&'a str, Option<i32>)> {
    let head = name.strip_suffix(domain)?.strip_suffix('.')?;
    let (cluster, which) = head.rsplit_once('.')?;
    match which {
        "bootstrap" => Some((cluster, None)),
        _ => Some((cluster, Some(which.strip_prefix("broker-")?.parse().ok()?))),
    }
}

/// The name and port a client of the shared listener is told for broker `node`; `None` on
/// a service's own listener.
pub fn advertised(session: &Session, node: i32) -> Option<(String, i32)> {
    let via = session.via.as_ref()?;
    let domain = via.sni_domain()?;
    let name = format!("{}.broker-{node}.{domain}", session.service.cluster);
    Some((name, i32::from(via.addr().port())))
}

/// Asks a broker of the session's cluster for the broker list and remembers where each
/// one is.
pub async fn discover(session: &Session) -> Result<(), ProxyError> {
    let (stream, _guard) = super::connect::open(session, None).await?;
    let answer = match stream {
        BrokerStream::Plain(mut s) => metadata(&mut s).await,
        BrokerStream::Tls(mut s) => metadata(&mut *s).await,
    };
    let frame = answer.map_err(|e| ProxyError::Login(session.service.key(), e.to_string()))?;
    let ports = session.shared.ext.get::<super::BrokerPorts>();
    let mut remember = |b: &throome_kafka::Broker| {
        if let Ok(port) = u16::try_from(b.port) {
            let up = super::Upstream {
                host: b.host.clone(),
                port,
            };
            ports.remember(&session.service, b.node_id, up);
        }
        (b.host.clone(), b.port)
    };
    rewrite_response(api::METADATA, 1, &frame, &mut remember)
        .map_err(|e| ProxyError::Login(session.service.key(), e.to_string()))?;
    Ok(())
}

/// Metadata v1 for no topics, and its answer.
async fn metadata<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<bytes::Bytes> {
    s.write_all(&throome_kafka::sasl::metadata_request(1))
        .await?;
    s.flush().await?;
    let scanner = FrameScanner::new(MAX_METADATA);
    let mut buf = BytesMut::new();
    loop {
        match scanner.next(&mut buf) {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn server_names_give_the_cluster_and_the_broker() {
        let d = "kafka.example.com";
        assert_eq!(
            parse("shop.bootstrap.kafka.example.com", d),
            Some(("shop", None))
        );
        assert_eq!(
            parse("shop.broker-3.kafka.example.com", d),
            Some(("shop", Some(3)))
        );
        assert_eq!(parse("shop.broker-x.kafka.example.com", d), None);
        assert_eq!(parse("shop.kafka.example.com", d), None);
        assert_eq!(parse("shop.bootstrap.other.com", d), None);
        assert_eq!(parse("shop.bootstrapkafka.example.com", d), None);
    }
}
