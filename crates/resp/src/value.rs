use crate::scan::{find_crlf, parse_double, parse_int};
use crate::{Limits, ProtocolError, frame_len};

/// An owned RESP2/RESP3 value, for code off the hot path (admin connections, tests).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...`, and RESP3 bulk errors (`!`).
    Error(Vec<u8>),
    Integer(i64),
    /// `$`; RESP2's null bulk and null array become [`Value::Null`].
    Bulk(Vec<u8>),
    Array(Vec<Value>),
    /// RESP3 `_`, RESP2 `$-1` and `*-1`.
    Null,
    Boolean(bool),
    Double(f64),
    /// RESP3 `(`, kept as its decimal text.
    BigNumber(Vec<u8>),
    /// RESP3 `=`: format (3 bytes, e.g. `txt`) and text.
    Verbatim([u8; 3], Vec<u8>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    /// RESP3 `|`: attributes and the value they annotate.
    Attribute(Vec<(Value, Value)>, Box<Value>),
    /// RESP3 `>`.
    Push(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk, simple or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Simple(b) | Value::Verbatim(_, b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) | Value::Set(items) | Value::Push(items) => Some(items),
            _ => None,
        }
    }
}

/// Parse the first complete frame of `buf`: `Ok(Some((value, consumed)))`, or `Ok(None)` when
/// more bytes are needed.
pub fn parse_value(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ProtocolError> {
    let Some(len) = frame_len(buf, limits)? else { return Ok(None) };
    // The scanner validated the whole frame, so decoding cannot run out of bytes.
    let (value, end) = decode(buf, 0)?;
    debug_assert_eq!(end, len);
    Ok(Some((value, len)))
}

/// Decodes the validated element at `pos`; returns it and where the next one starts.
fn decode(buf: &[u8], pos: usize) -> Result<(Value, usize), ProtocolError> {
    let line_end = find_crlf(buf, pos + 1)?.ok_or(ProtocolError::MissingCrlf)?;
    let line = &buf[pos + 1..line_end];
    let next = line_end + 2;
    let value = match buf[pos] {
        b'+' => Value::Simple(line.to_vec()),
        b'-' => Value::Error(line.to_vec()),
        b':' => Value::Integer(parse_int(line)?),
        b'_' => Value::Null,
        b'#' => Value::Boolean(line == b"t"),
        b',' => Value::Double(parse_double(line)?),
        b'(' => Value::BigNumber(line.to_vec()),
        kind @ (b'$' | b'!' | b'=') => {
            let len = parse_int(line)?;
            if len < 0 {
                return Ok((Value::Null, next));
            }
            let payload = &buf[next..next + len as usize];
            let end = next + len as usize + 2;
            let value = match kind {
                b'$' => Value::Bulk(payload.to_vec()),
                b'!' => Value::Error(payload.to_vec()),
                _ => Value::Verbatim([payload[0], payload[1], payload[2]], payload[4..].to_vec()),
            };
            return Ok((value, end));
        }
        kind => {
            let count = parse_int(line)?;
            if count < 0 {
                return Ok((Value::Null, next));
            }
            return decode_aggregate(buf, kind, count as usize, next);
        }
    };
    Ok((value, next))
}

fn decode_aggregate(
    buf: &[u8],
    kind: u8,
    count: usize,
    mut pos: usize,
) -> Result<(Value, usize), ProtocolError> {
    let next_value = |pos: &mut usize| -> Result<Value, ProtocolError> {
        let (value, end) = decode(buf, *pos)?;
        *pos = end;
        Ok(value)
    };
    if kind == b'%' || kind == b'|' {
        let mut pairs = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            let key = next_value(&mut pos)?;
            pairs.push((key, next_value(&mut pos)?));
        }
        if kind == b'%' {
            return Ok((Value::Map(pairs), pos));
        }
        let annotated = next_value(&mut pos)?;
        return Ok((Value::Attribute(pairs, Box::new(annotated)), pos));
    }
    let mut items = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        items.push(next_value(&mut pos)?);
    }
    let value = match kind {
        b'~' => Value::Set(items),
        b'>' => Value::Push(items),
        _ => Value::Array(items),
    };
    Ok((value, pos))
}
