//! Append RESP frames to a buffer. No allocation besides the buffer's own growth.

use bytes::BufMut;

use crate::Value;

/// `*N\r\n$len\r\narg\r\n...`: a command as clients send it.
pub fn command<B: BufMut, A: AsRef<[u8]>>(out: &mut B, args: &[A]) {
    array_len(out, args.len());
    for arg in args {
        bulk(out, arg.as_ref());
    }
}

/// Any value, in RESP3 where the value is RESP3-only.
pub fn value<B: BufMut>(out: &mut B, v: &Value) {
    match v {
        Value::Simple(s) => simple(out, s),
        Value::Error(e) => error(out, e),
        Value::Integer(n) => integer(out, *n),
        Value::Bulk(b) => bulk(out, b),
        Value::Array(items) => list(out, b'*', items),
        Value::Null => null(out),
        Value::Boolean(b) => boolean(out, *b),
        Value::Double(d) => double(out, *d),
        Value::BigNumber(n) => line(out, b'(', n),
        Value::Verbatim(format, text) => {
            header(out, b'=', (text.len() + 4) as i64);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Value::Map(pairs) => pairs_of(out, b'%', pairs),
        Value::Set(items) => list(out, b'~', items),
        Value::Attribute(pairs, annotated) => {
            pairs_of(out, b'|', pairs);
            value(out, annotated);
        }
        Value::Push(items) => list(out, b'>', items),
    }
}

fn list<B: BufMut>(out: &mut B, kind: u8, items: &[Value]) {
    header(out, kind, items.len() as i64);
    for item in items {
        value(out, item);
    }
}

fn pairs_of<B: BufMut>(out: &mut B, kind: u8, pairs: &[(Value, Value)]) {
    header(out, kind, pairs.len() as i64);
    for (k, v) in pairs {
        value(out, k);
        value(out, v);
    }
}

/// A type byte, a decimal number, CRLF: the header of bulks and aggregates.
fn header<B: BufMut>(out: &mut B, kind: u8, n: i64) {
    out.put_u8(kind);
    out.put_slice(Digits::of(n).as_slice());
    out.put_slice(b"\r\n");
}

fn line<B: BufMut>(out: &mut B, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// `+text` (the caller guarantees no CR or LF in `text`).
pub fn simple<B: BufMut>(out: &mut B, text: &[u8]) {
    line(out, b'+', text);
}

/// `-ERR text` (the caller guarantees no CR or LF in `text`).
pub fn error<B: BufMut>(out: &mut B, text: &[u8]) {
    line(out, b'-', text);
}

pub fn integer<B: BufMut>(out: &mut B, n: i64) {
    header(out, b':', n);
}

pub fn bulk<B: BufMut>(out: &mut B, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// RESP2's null bulk string, `$-1`.
pub fn null_bulk<B: BufMut>(out: &mut B) {
    out.put_slice(b"$-1\r\n");
}

/// RESP3's null, `_`.
pub fn null<B: BufMut>(out: &mut B) {
    out.put_slice(b"_\r\n");
}

pub fn array_len<B: BufMut>(out: &mut B, n: usize) {
    header(out, b'*', n as i64);
}

pub fn map_len<B: BufMut>(out: &mut B, n: usize) {
    header(out, b'%', n as i64);
}

pub fn set_len<B: BufMut>(out: &mut B, n: usize) {
    header(out, b'~', n as i64);
}

pub fn push_len<B: BufMut>(out: &mut B, n: usize) {
    header(out, b'>', n as i64);
}

pub fn boolean<B: BufMut>(out: &mut B, b: bool) {
    out.put_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
}

pub fn double<B: BufMut>(out: &mut B, d: f64) {
    let text = if d.is_nan() {
        "nan".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{d:?}")
    };
    line(out, b',', text.as_bytes());
}

/// Decimal digits of `n` on the stack.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn of(n: i64) -> Digits {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        let mut rest = n.unsigned_abs();
        loop {
            start -= 1;
            buf[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if n < 0 {
            start -= 1;
            buf[start] = b'-';
        }
        Digits { buf, start }
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}
