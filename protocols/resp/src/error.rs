//! Protocol errors, worded as Redis words them so clients see familiar messages
//! (`networking.c`: processMultibulkBuffer / processInlineBuffer).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: bulk data not terminated by CRLF")]
    BulkNotTerminated,
    #[error("Protocol error: request larger than {0} bytes")]
    RequestTooLarge(usize),
    #[error("Protocol error: unexpected reply type byte 0x{0:02x}")]
    UnexpectedReplyType(u8),
    #[error("Protocol error: reply nested deeper than {0} levels")]
    ReplyTooDeep(usize),
}
