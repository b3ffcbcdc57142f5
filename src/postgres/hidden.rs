//! Queries the proxy runs on a server for itself (SET of the client's parameters, DISCARD ALL
//! before a session-mode server is reused): sent, read to ReadyForQuery, never shown to a
//! client.

use throome_pgwire::{build, msg};

use super::io::WireError;
use super::upstream::{Server, ServerError};

/// Runs `sql` to completion; an ErrorResponse fails it (the server is then not reused).
pub async fn run(server: &mut Server, sql: &str) -> Result<(), ServerError> {
    // A simple Query destroys the unnamed statement.
    server.unnamed = None;
    server.wire.send(&build::query(sql)).await?;
    let mut failed = None;
    loop {
        let frame = server.wire.frame().await?;
        let body = frame.body();
        match frame.tag() {
            msg::back::PARAMETER_STATUS => {
                if let Some((name, value)) = msg::parameter_status(body) {
                    server.set_param(name, value);
                }
            }
            msg::back::ERROR_RESPONSE => failed = Some(frame.into_bytes()),
            msg::back::READY_FOR_QUERY => {
                server.status = msg::ready_status(body).unwrap_or(b'E');
                return match failed {
                    Some(error) => Err(ServerError::Refused(error)),
                    None if server.status == b'I' => Ok(()),
                    None => Err(ServerError::Wire(WireError::Closed)),
                };
            }
            _ => {}
        }
    }
}
