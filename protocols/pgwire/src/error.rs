/// What makes a byte stream unusable as PostgreSQL protocol. Each ends the connection after
/// an ErrorResponse (SQLSTATE 08P01, protocol_violation), as PostgreSQL itself does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    #[error("invalid startup packet length {0}")]
    StartupLength(i64),
    #[error("invalid startup packet layout")]
    StartupLayout,
    #[error("invalid message length {0}")]
    Length(i64),
    #[error("message of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed {0:?} message")]
    Malformed(char),
}
