use crate::{Limits, ProtocolError};

/// Longest header or simple line we accept in a reply (`+`, `-`, `:`, lengths ...). Redis'
/// own replies never come close; a peer that never sends CRLF must not grow us unbounded.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Finds where the first complete frame of a buffer ends, resuming where the previous call
/// stopped so that a frame arriving in many reads is scanned in linear time overall.
///
/// Contract: between calls the caller only appends to the buffer (the frame starts at byte 0);
/// after a frame is returned, or after the caller drops the start of the buffer, the scanner
/// starts over by itself for the next `scan` (a frame return resets it) — call
/// [`Scanner::reset`] only when abandoning a partial frame.
#[derive(Debug, Clone)]
pub struct Scanner {
    limits: Limits,
    /// Where the next element header starts.
    pos: usize,
    /// Elements still missing in each open aggregate, innermost last.
    open: Vec<u64>,
}

/// One element header, decoded.
enum Header {
    /// A complete element ending at this offset.
    Done(usize),
    /// An aggregate of this many children, whose header ends at the offset.
    Aggregate(usize, u64),
}

impl Scanner {
    pub fn new(limits: Limits) -> Self {
        Scanner { limits, pos: 0, open: Vec::new() }
    }

    /// `Ok(Some(len))`: `buf[..len]` is one complete frame (of any RESP2/RESP3 type, attributes
    /// included as a prefix of the frame they annotate). `Ok(None)`: more bytes are needed.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let header = match self.header(buf) {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
            };
            match header {
                Header::Aggregate(end, children) => {
                    if self.open.len() >= self.limits.max_depth {
                        self.reset();
                        return Err(ProtocolError::TooDeep);
                    }
                    self.pos = end;
                    self.open.push(children);
                }
                Header::Done(end) => {
                    self.pos = end;
                    if self.close_elements() {
                        let len = self.pos;
                        self.reset();
                        return Ok(Some(len));
                    }
                }
            }
        }
    }

    /// Counts one finished element against the open aggregates; true when the whole frame is
    /// complete.
    fn close_elements(&mut self) -> bool {
        while let Some(missing) = self.open.last_mut() {
            *missing -= 1;
            if *missing > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }

    /// After a `scan` that needs more bytes: the buffer length at which the element being
    /// scanned is complete, when its header says (a bulk string's). A reader that grows its
    /// buffer to this at once, instead of step by step, moves a large value in one allocation
    /// and few reads, and copies none of it again.
    pub fn wanted(&self, buf: &[u8]) -> Option<usize> {
        let start = self.pos;
        if !matches!(buf.get(start), Some(b'$' | b'!' | b'=')) {
            return None;
        }
        let line_end = find_crlf(buf, start + 1).ok()??;
        let len = usize::try_from(parse_int(&buf[start + 1..line_end]).ok()?).ok()?;
        let end = line_end + 2 + len.min(self.limits.max_bulk_len) + 2;
        (end > buf.len()).then_some(end)
    }

    /// Forget any partial progress.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.open.clear();
    }

    fn header(&self, buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let start = self.pos;
        let Some(&kind) = buf.get(start) else { return Ok(None) };
        let Some(line_end) = find_crlf(buf, start + 1)? else { return Ok(None) };
        let line = &buf[start + 1..line_end];
        let next = line_end + 2;
        let limits = &self.limits;
        let done = |end| Ok(Some(Header::Done(end)));
        match kind {
            b'+' | b'-' => done(next),
            b':' => parse_int(line).and_then(|_| done(next)),
            b'_' if line.is_empty() => done(next),
            b'_' => Err(ProtocolError::InvalidNull),
            b'#' if line == b"t" || line == b"f" => done(next),
            b'#' => Err(ProtocolError::InvalidBoolean),
            b',' => parse_double(line).and_then(|_| done(next)),
            b'(' => parse_big_number(line).and_then(|_| done(next)),
            b'$' | b'!' | b'=' => {
                if line == b"?" {
                    return Err(ProtocolError::Streamed);
                }
                let len = parse_int(line).map_err(|_| ProtocolError::InvalidBulkLength)?;
                if kind == b'$' && len == -1 {
                    return done(next);
                }
                let len = bulk_len(len, limits)?;
                let end = next + len + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(ProtocolError::MissingCrlf);
                }
                if kind == b'=' && (len < 4 || buf[next + 3] != b':') {
                    return Err(ProtocolError::InvalidVerbatim);
                }
                done(end)
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                if line == b"?" {
                    return Err(ProtocolError::Streamed);
                }
                let count = parse_int(line).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                if kind == b'*' && count == -1 {
                    return done(next);
                }
                let count = element_count(count, limits)?;
                let children = match kind {
                    b'%' => count * 2,
                    // The attribute's pairs, then the value they annotate.
                    b'|' => count * 2 + 1,
                    _ => count,
                };
                if children == 0 { done(next) } else { Ok(Some(Header::Aggregate(next, children))) }
            }
            other => Err(ProtocolError::UnknownType(other)),
        }
    }
}

/// One-shot form of [`Scanner::scan`].
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    Scanner::new(*limits).scan(buf)
}

/// Offset of the `\r` of the first CRLF at or after `from`.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(tail) = buf.get(from..) else { return Ok(None) };
    match tail.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from + i)),
        None if tail.len() > MAX_LINE => Err(ProtocolError::LineTooLong),
        None => Ok(None),
    }
}

/// A bulk length checked against the limits.
pub(crate) fn bulk_len(len: i64, limits: &Limits) -> Result<usize, ProtocolError> {
    match usize::try_from(len) {
        Ok(len) if len <= limits.max_bulk_len => Ok(len),
        _ => Err(ProtocolError::InvalidBulkLength),
    }
}

/// An element count checked against the limits.
pub(crate) fn element_count(count: i64, limits: &Limits) -> Result<u64, ProtocolError> {
    match usize::try_from(count) {
        Ok(count) if count <= limits.max_elements => Ok(count as u64),
        _ => Err(ProtocolError::InvalidMultibulkLength),
    }
}

/// A signed decimal integer: optional `-`, then digits; overflow is an error, not a wrap.
pub(crate) fn parse_int(digits: &[u8]) -> Result<i64, ProtocolError> {
    let (negative, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(ProtocolError::InvalidInteger);
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ProtocolError::InvalidInteger);
        }
        let digit = i64::from(d - b'0');
        value = value.checked_mul(10).ok_or(ProtocolError::InvalidInteger)?;
        value = if negative { value.checked_sub(digit) } else { value.checked_add(digit) }
            .ok_or(ProtocolError::InvalidInteger)?;
    }
    Ok(value)
}

pub(crate) fn parse_double(text: &[u8]) -> Result<f64, ProtocolError> {
    let text = std::str::from_utf8(text).map_err(|_| ProtocolError::InvalidDouble)?;
    match text {
        "inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" => Ok(f64::NAN),
        _ if text.is_empty() || !text.bytes().all(|b| b"0123456789+-.eE".contains(&b)) => {
            Err(ProtocolError::InvalidDouble)
        }
        _ => text.parse().map_err(|_| ProtocolError::InvalidDouble),
    }
}

fn parse_big_number(text: &[u8]) -> Result<(), ProtocolError> {
    let digits = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        Ok(())
    } else {
        Err(ProtocolError::InvalidBigNumber)
    }
}
