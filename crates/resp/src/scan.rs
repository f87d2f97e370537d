use crate::{Limits, ProtocolError};

/// Finds where the first complete frame of a buffer ends, resuming where the previous call
/// stopped so that a frame arriving in many reads is scanned in linear time overall.
///
/// Contract: between calls the caller only appends to the buffer (the frame starts at byte 0);
/// after a frame is returned, or after the caller drops the start of the buffer, it calls
/// [`Scanner::reset`].
#[derive(Debug, Clone)]
pub struct Scanner {
    limits: Limits,
}

impl Scanner {
    pub fn new(limits: Limits) -> Self {
        Scanner { limits }
    }

    /// `Ok(Some(len))`: `buf[..len]` is one complete frame (of any RESP2/RESP3 type, attributes
    /// included as a prefix of the frame they annotate). `Ok(None)`: more bytes are needed.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let _ = (buf, self.limits);
        todo!("implemented by the resp helper")
    }

    /// Forget any partial progress.
    pub fn reset(&mut self) {}
}

/// One-shot form of [`Scanner::scan`].
pub fn frame_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    Scanner::new(*limits).scan(buf)
}
