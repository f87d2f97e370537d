/// Why a byte stream is not valid RESP. `Display` gives the text Redis itself uses where Redis
/// has one, so `-ERR Protocol error: {self}` reads like Redis' own reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("too big bulk count string")]
    BulkCountTooLong,
    #[error("too big mbulk count string")]
    MultibulkCountTooLong,
    #[error("expected '$', got '{}'", *.0 as char)]
    ExpectedBulk(u8),
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("too big inline request")]
    InlineTooBig,
    #[error("invalid integer")]
    InvalidInteger,
    #[error("invalid double")]
    InvalidDouble,
    #[error("invalid boolean")]
    InvalidBoolean,
    #[error("invalid big number")]
    InvalidBigNumber,
    #[error("invalid null")]
    InvalidNull,
    #[error("invalid verbatim string")]
    InvalidVerbatim,
    #[error("missing CRLF after bulk payload")]
    MissingCrlf,
    #[error("unknown type byte '{}'", (*.0 as char).escape_default())]
    UnknownType(u8),
    #[error("streamed (chunked) aggregates are not supported")]
    Streamed,
    #[error("nesting too deep")]
    TooDeep,
    #[error("line too long")]
    LineTooLong,
}
