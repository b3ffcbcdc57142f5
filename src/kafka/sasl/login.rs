//! The proxy's own SASL login to a broker, on every upstream connection before any client
//! byte goes through: SaslHandshake v1, then SaslAuthenticate rounds (one for PLAIN, two for
//! SCRAM, whose last answer proves the broker knows the password too).

use bytes::BytesMut;
use throome_kafka::sasl::{self, SASL_AUTHENTICATE};
use throome_kafka::{FrameScanner, api};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::scram::{ClientExchange, Sha};
use crate::config::SaslMechanism;

/// Largest answer a broker sends during login.
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("broker connection failed during SASL login: {0}")]
    Io(#[from] std::io::Error),
    #[error("broker sent a bad SASL answer: {0}")]
    Frame(#[from] throome_kafka::KafkaError),
    #[error("broker refused the proxy's SASL login (error {code}): {message}")]
    Refused { code: i16, message: String },
    #[error("SASL login: {0}")]
    Scram(#[from] super::scram::ScramError),
}

/// Logs in to the broker on `stream` as `user`.
pub async fn login<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    mechanism: SaslMechanism,
    user: &str,
    password: &str,
) -> Result<(), LoginError> {
    let mut wire = Wire {
        stream,
        buf: BytesMut::new(),
        next_id: 0,
    };
    wire.ask(api::SASL_HANDSHAKE, |id| {
        sasl::handshake_request(id, mechanism.name())
    })
    .await?;
    let sha = match mechanism {
        SaslMechanism::Plain => {
            let token = format!("\0{user}\0{password}");
            wire.authenticate(token.as_bytes()).await?;
            return Ok(());
        }
        SaslMechanism::ScramSha256 => Sha::Sha256,
        SaslMechanism::ScramSha512 => Sha::Sha512,
    };
    let mut scram = ClientExchange::new(sha, user, password);
    let server_first = wire.authenticate(&scram.first()).await?;
    let last = scram.answer(&server_first)?;
    let server_final = wire.authenticate(&last).await?;
    Ok(scram.check(&server_final)?)
}

struct Wire<'a, S> {
    stream: &'a mut S,
    buf: BytesMut,
    next_id: i32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<'_, S> {
    async fn authenticate(&mut self, token: &[u8]) -> Result<Vec<u8>, LoginError> {
        self.ask(SASL_AUTHENTICATE, |id| {
            sasl::authenticate_request(id, token)
        })
        .await
    }

    /// Sends one request and reads its answer: the token, or the broker's refusal.
    async fn ask(
        &mut self,
        api_key: i16,
        request: impl FnOnce(i32) -> Vec<u8>,
    ) -> Result<Vec<u8>, LoginError> {
        self.next_id += 1;
        self.stream.write_all(&request(self.next_id)).await?;
        self.stream.flush().await?;
        let scanner = FrameScanner::new(MAX_ANSWER);
        let frame = loop {
            if let Some(frame) = scanner.next(&mut self.buf)? {
                break frame;
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        };
        let (code, message, token) = sasl::read_response(api_key, &frame)?;
        if code != 0 {
            let message = message.unwrap_or_else(|| "no message".into());
            return Err(LoginError::Refused { code, message });
        }
        Ok(token)
    }
}
