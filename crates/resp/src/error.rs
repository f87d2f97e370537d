/// Why a byte stream is not valid RESP. `Display` gives the text Redis itself uses where Redis
/// has one, so `-ERR Protocol error: {self}` reads like Redis' own reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    // The implementation fills in the variants (invalid bulk length, invalid multibulk length,
    // expected '$', unbalanced quotes, too big inline request, nesting too deep, unknown type
    // byte, bad integer, bad double, ...).
    #[error("{0}")]
    Invalid(&'static str),
}
