//! Append RESP frames to a buffer. No allocation besides the buffer's own growth.

use bytes::BufMut;

use crate::Value;

/// `*N\r\n$len\r\narg\r\n...`: a command as clients send it.
pub fn command<B: BufMut, A: AsRef<[u8]>>(out: &mut B, args: &[A]) {
    let _ = (out, args);
    todo!("implemented by the resp helper")
}

/// Any value, in RESP3 where the value is RESP3-only.
pub fn value<B: BufMut>(out: &mut B, v: &Value) {
    let _ = (out, v);
    todo!("implemented by the resp helper")
}

// The implementation adds: simple, error, integer, bulk, null_bulk (`$-1`), null (`_`),
// array_len, map_len, set_len, push_len, boolean, double.
