//! The upstream side of a Kafka client connection: a TCP connection to the broker (the
//! bootstrap address goes to a broker picked by the router, a broker port to the broker it
//! stands for), wrapped in TLS when the service has `server_tls` (Kafka's `SSL` and
//! `SASL_SSL` listeners: TLS from the first byte, no negotiation in the protocol).

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::sasl::login::login;
use crate::error::ProxyError;
use crate::session::Session;
use crate::snapshot::ServiceRuntime;

pub enum BrokerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

pub type Opened = (BrokerStream, Option<crate::backend::ActiveGuard>);

pub async fn open_upstream(session: &Session) -> Result<Opened, ProxyError> {
    open(session, session.node).await
}

/// A logged-in connection to broker `node`, or to a broker the router picks for `None`.
pub async fn open(session: &Session, node: Option<i32>) -> Result<Opened, ProxyError> {
    let (mut stream, guard) = connect(session, node).await?;
    let service = &session.service;
    if let Some((mechanism, user, password)) = &service.spec.kafka.login {
        let host = match &guard {
            Some(g) => g.backend().address(),
            None => format!("broker node {node:?}"),
        };
        let login = async {
            match &mut stream {
                BrokerStream::Plain(s) => login(s, *mechanism, user, password.expose()).await,
                BrokerStream::Tls(s) => login(s, *mechanism, user, password.expose()).await,
            }
        };
        let after = service.spec.connect_timeout;
        match tokio::time::timeout(after, login).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(ProxyError::Login(host, e.to_string())),
            Err(_) => {
                return Err(ProxyError::ConnectTimeout {
                    backend: host,
                    after,
                });
            }
        }
    }
    Ok((stream, guard))
}

async fn connect(session: &Session, node: Option<i32>) -> Result<Opened, ProxyError> {
    let service = &session.service;
    let Some(node) = node else {
        let (s, g) = crate::upstream::connect(service).await?;
        let host = g.backend().host.clone();
        return Ok((secure(service, &host, s).await?, Some(g)));
    };
    let ports = session.shared.ext.get::<super::BrokerPorts>();
    let up = match ports.upstream(service, node) {
        Some(up) => up,
        // A broker name the shared listener's client had from an earlier gateway (or
        // worker): ask the cluster where its brokers are.
        None if session.via.is_some() => {
            Box::pin(super::by_cluster::discover(session)).await?;
            ports
                .upstream(service, node)
                .ok_or(ProxyError::ServiceGone)?
        }
        None => return Err(ProxyError::ServiceGone),
    };
    let backend = format!("{}:{}", up.host, up.port);
    let after = service.spec.connect_timeout;
    let connect = TcpStream::connect((up.host.as_str(), up.port));
    let stream = match tokio::time::timeout(after, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(ProxyError::Connect { backend, source }),
        Err(_) => return Err(ProxyError::ConnectTimeout { backend, after }),
    };
    let _ = stream.set_nodelay(true);
    Ok((secure(service, &up.host, stream).await?, None))
}

/// TLS over `tcp` to `host` when the service asks for it (the certificate verified for
/// `host` under `verify-full`).
pub async fn secure(
    service: &ServiceRuntime,
    host: &str,
    tcp: TcpStream,
) -> Result<BrokerStream, ProxyError> {
    let Some(config) = &service.spec.server_tls else {
        return Ok(BrokerStream::Plain(tcp));
    };
    let backend = || host.to_string();
    let after = service.spec.connect_timeout;
    match tokio::time::timeout(after, crate::tls::connect(config, host, tcp)).await {
        Ok(Ok(tls)) => Ok(BrokerStream::Tls(Box::new(tls))),
        Ok(Err(source)) => Err(ProxyError::Connect {
            backend: backend(),
            source,
        }),
        Err(_) => Err(ProxyError::ConnectTimeout {
            backend: backend(),
            after,
        }),
    }
}
