//! The Kafka health probe: an ApiVersions v0 request, which every broker answers before
//! authentication ([ApiVersions](https://kafka.apache.org/protocol.html#The_Messages_ApiVersions)).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;

const CORRELATION_ID: i32 = 0x7468_726f; // "thro"

/// ApiVersions v0 with client id `throome-probe`.
fn request() -> Vec<u8> {
    let client_id = b"throome-probe";
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&throome_kafka::api::API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// True when the broker answers with our correlation id and error code 0 (over TLS when
/// the service reaches its brokers so).
pub async fn api_versions(service: &ServiceRuntime, backend: &BackendState) -> bool {
    let Ok(tcp) = TcpStream::connect((backend.host.as_str(), backend.port)).await else {
        return false;
    };
    match super::connect::secure(service, &backend.host, tcp).await {
        Ok(super::connect::BrokerStream::Plain(mut s)) => ask(&mut s).await,
        Ok(super::connect::BrokerStream::Tls(mut s)) => ask(&mut *s).await,
        Err(_) => false,
    }
}

async fn ask(s: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> bool {
    if s.write_all(&request()).await.is_err() || s.flush().await.is_err() {
        return false;
    }
    let mut head = [0u8; 10];
    if s.read_exact(&mut head).await.is_err() {
        return false;
    }
    let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let error = i16::from_be_bytes([head[8], head[9]]);
    correlation == CORRELATION_ID && error == 0
}
