use std::ops::Range;

use crate::scan::{bulk_len, find_crlf, parse_int};
use crate::{Limits, ProtocolError};

/// Longest `*N` or `$N` header line of a request, like Redis (which says "too big ... count
/// string" past it).
const MAX_COUNT_LINE: usize = 64 * 1024;

/// What [`RequestParser::parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    Incomplete,
    /// A whole request of `consumed` bytes. Its arguments are available through
    /// [`RequestParser::arg`]; its RESP form through [`RequestParser::resp`] (for an inline
    /// request that is a multibulk rewrite, for a multibulk request the bytes themselves).
    Request { consumed: usize },
    /// Nothing to run (an empty inline line, `*0`, `*-1`); skip `consumed` bytes.
    Empty { consumed: usize },
}

/// Parses client requests: `*N\r\n$len\r\narg\r\n...` as every client library sends, and inline
/// commands (`PING\r\n`, with Redis' quoting rules) as telnet users type. Reuses its buffers,
/// and resumes a partial multibulk where it stopped (the caller only appends to the buffer
/// between calls, and calls [`RequestParser::reset`] if it abandons a partial request).
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: Limits,
    /// Argument positions inside `resp(buf)`.
    args: Vec<Range<usize>>,
    /// The multibulk rewrite of the last inline request.
    inline_resp: Vec<u8>,
    inline: bool,
    /// Progress through a partial multibulk: arguments announced, next header offset.
    expected: usize,
    pos: usize,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            args: Vec::new(),
            inline_resp: Vec::new(),
            inline: false,
            expected: 0,
            pos: 0,
        }
    }

    /// Parses the request at the start of `buf`. After an error the connection's stream is
    /// out of sync: reply with the error and close it, as Redis does.
    pub fn parse(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let result = match buf.first() {
            None => Ok(Parsed::Incomplete),
            Some(b'*') => self.parse_multibulk(buf),
            Some(_) => self.parse_inline(buf),
        };
        if !matches!(result, Ok(Parsed::Incomplete)) {
            self.expected = 0;
            self.pos = 0;
        }
        result
    }

    /// Forget a partial request.
    pub fn reset(&mut self) {
        self.args.clear();
        self.expected = 0;
        self.pos = 0;
    }

    /// Number of arguments of the last parsed request, command name included.
    pub fn argc(&self) -> usize {
        self.args.len()
    }

    /// Argument `i` of the last parsed request; `buf` is the buffer given to `parse`.
    pub fn arg<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        &self.resp(buf)[self.args[i].clone()]
    }

    /// Every argument of the last parsed request.
    pub fn args<'a>(&'a self, buf: &'a [u8]) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let resp = self.resp(buf);
        self.args.iter().map(move |r| &resp[r.clone()])
    }

    /// The last parsed request as RESP bytes, ready to forward.
    pub fn resp<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        if self.inline { &self.inline_resp } else { buf }
    }

    fn parse_multibulk(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        self.inline = false;
        if self.pos == 0 {
            let Some(line_end) = count_line(buf, 1, ProtocolError::MultibulkCountTooLong)? else {
                return Ok(Parsed::Incomplete);
            };
            let count =
                parse_int(&buf[1..line_end]).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
            if count <= 0 {
                return Ok(Parsed::Empty { consumed: line_end + 2 });
            }
            if count > i64::from(i32::MAX) || count as usize > self.limits.max_elements {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            self.args.clear();
            self.expected = count as usize;
            self.pos = line_end + 2;
        }
        while self.args.len() < self.expected {
            let start = self.pos;
            let Some(&kind) = buf.get(start) else { return Ok(Parsed::Incomplete) };
            if kind != b'$' {
                return Err(ProtocolError::ExpectedBulk(kind));
            }
            let Some(line_end) = count_line(buf, start + 1, ProtocolError::BulkCountTooLong)?
            else {
                return Ok(Parsed::Incomplete);
            };
            let len = parse_int(&buf[start + 1..line_end])
                .map_err(|_| ProtocolError::InvalidBulkLength)?;
            let len = bulk_len(len, &self.limits)?;
            let data = line_end + 2;
            if buf.len() < data + len + 2 {
                return Ok(Parsed::Incomplete);
            }
            if &buf[data + len..data + len + 2] != b"\r\n" {
                return Err(ProtocolError::MissingCrlf);
            }
            self.args.push(data..data + len);
            self.pos = data + len + 2;
        }
        Ok(Parsed::Request { consumed: self.pos })
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() > self.limits.max_inline_len {
                Err(ProtocolError::InlineTooBig)
            } else {
                Ok(Parsed::Incomplete)
            };
        };
        if newline > self.limits.max_inline_len {
            return Err(ProtocolError::InlineTooBig);
        }
        let line = buf[..newline].strip_suffix(b"\r").unwrap_or(&buf[..newline]);
        let words = split_args(line)?;
        if words.is_empty() {
            return Ok(Parsed::Empty { consumed: newline + 1 });
        }
        self.inline = true;
        self.args.clear();
        self.inline_resp.clear();
        crate::write::array_len(&mut self.inline_resp, words.len());
        for word in &words {
            crate::write::bulk(&mut self.inline_resp, word);
            let end = self.inline_resp.len() - 2;
            self.args.push(end - word.len()..end);
        }
        Ok(Parsed::Request { consumed: newline + 1 })
    }
}

/// The end of a `*N`/`$N` line starting at `from`, bounded like Redis bounds it.
fn count_line(
    buf: &[u8],
    from: usize,
    too_long: ProtocolError,
) -> Result<Option<usize>, ProtocolError> {
    match find_crlf(buf, from)? {
        Some(end) if end - from > MAX_COUNT_LINE => Err(too_long),
        Some(end) => Ok(Some(end)),
        None if buf.len() - from > MAX_COUNT_LINE => Err(too_long),
        None => Ok(None),
    }
}

/// Splits an inline request into arguments with Redis' rules (`sdssplitargs`): blanks separate
/// words; `"..."` understands `\n \r \t \b \a \\ \" \xHH`; `'...'` understands `\'`; a closing
/// quote must be followed by a blank or the end of the line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Ok(words);
        }
        let mut word = Vec::new();
        i = match line[i] {
            b'"' => double_quoted(line, i + 1, &mut word)?,
            b'\'' => single_quoted(line, i + 1, &mut word)?,
            _ => {
                let end = line[i..]
                    .iter()
                    .position(|b| b.is_ascii_whitespace())
                    .map_or(line.len(), |p| i + p);
                word.extend_from_slice(&line[i..end]);
                end
            }
        };
        words.push(word);
    }
}

/// Reads a `"..."` word whose content starts at `i`; returns the offset after the quote.
fn double_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        match line.get(i) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'"') => return closing_quote(line, i),
            Some(b'\\') if i + 3 < line.len() && line[i + 1] == b'x' => {
                match (hex(line[i + 2]), hex(line[i + 3])) {
                    (Some(h), Some(l)) => {
                        word.push(h * 16 + l);
                        i += 4;
                    }
                    _ => {
                        word.push(b'x');
                        i += 2;
                    }
                }
            }
            Some(b'\\') if i + 1 < line.len() => {
                word.push(match line[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
            }
            Some(&b) => {
                word.push(b);
                i += 1;
            }
        }
    }
}

/// Reads a `'...'` word whose content starts at `i`; returns the offset after the quote.
fn single_quoted(line: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, ProtocolError> {
    loop {
        match line.get(i) {
            None => return Err(ProtocolError::UnbalancedQuotes),
            Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                word.push(b'\'');
                i += 2;
            }
            Some(b'\'') => return closing_quote(line, i),
            Some(&b) => {
                word.push(b);
                i += 1;
            }
        }
    }
}

fn closing_quote(line: &[u8], quote: usize) -> Result<usize, ProtocolError> {
    match line.get(quote + 1) {
        None => Ok(quote + 1),
        Some(b) if b.is_ascii_whitespace() => Ok(quote + 1),
        Some(_) => Err(ProtocolError::UnbalancedQuotes),
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}
