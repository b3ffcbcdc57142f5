//! Health probe for Redis backends: connect (with the backend credentials), `PING`, expect
//! `+PONG`. A server that is running a long script (`-BUSY`) or loading its dataset
//! (`-LOADING`) is alive: it answers, and SCRIPT KILL must still reach it. A server that
//! accepts TCP but is misconfigured or refusing us fails.

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use throome_resp::{ReplyLimits, ReplyScanner};

use crate::backend::BackendState;
use crate::snapshot::ServiceRuntime;

pub async fn ping(service: &ServiceRuntime, backend: &BackendState) -> bool {
    let Ok(mut stream) = super::upstream::open(service, (&backend.host, backend.port), false).await
    else {
        return false;
    };
    let sent = async {
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        stream.flush().await
    };
    if sent.await.is_err() {
        return false;
    }
    let mut scanner = ReplyScanner::new(ReplyLimits::default());
    let mut buf = BytesMut::new();
    loop {
        match scanner.scan(&mut buf) {
            Ok(Some(reply)) => return alive(reply.frame()),
            Ok(None) => {}
            Err(_) => return false,
        }
        match stream.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
    }
}

/// PING's answer from a live server.
fn alive(frame: &[u8]) -> bool {
    frame == b"+PONG\r\n" || frame.starts_with(b"-BUSY ") || frame.starts_with(b"-LOADING ")
}
