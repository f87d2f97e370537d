use std::ops::Range;

use crate::{Limits, ProtocolError};

/// What [`RequestParser::parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    Incomplete,
    /// A whole request of `consumed` bytes. Its arguments are available through
    /// [`RequestParser::arg`]; its RESP form through [`RequestParser::resp`] (for an inline
    /// request that is a multibulk rewrite, for a multibulk request the bytes themselves).
    Request { consumed: usize },
    /// An empty inline line (Redis ignores those); skip `consumed` bytes.
    Empty { consumed: usize },
}

/// Parses client requests: `*N\r\n$len\r\narg\r\n...` as every client library sends, and inline
/// commands (`PING\r\n`, with Redis' quoting rules) as telnet users type. Reuses its buffers.
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: Limits,
    /// Argument positions inside `resp(buf)`.
    args: Vec<Range<usize>>,
    /// The multibulk rewrite of the last inline request.
    inline_resp: Vec<u8>,
    inline: bool,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser { limits, args: Vec::new(), inline_resp: Vec::new(), inline: false }
    }

    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let _ = (buf, self.limits);
        todo!("implemented by the resp helper")
    }

    /// Number of arguments of the last parsed request, command name included.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` of the last parsed request; `buf` is the buffer given to `parse`.
    pub fn arg<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        &self.resp(buf)[self.args[i].clone()]
    }

    /// The last parsed request as RESP bytes, ready to forward.
    pub fn resp<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        if self.inline { &self.inline_resp } else { buf }
    }
}
