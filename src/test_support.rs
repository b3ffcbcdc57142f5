//! Helpers for the unit tests.

use tokio::net::{TcpListener, TcpStream};

/// A connected loopback pair: (the proxy's side, the peer's side).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (ours, _) = listener.accept().await.unwrap();
    (ours, peer)
}
