/// Bounds that a peer cannot push us past. Defaults follow Redis' own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string, like Redis' `proto-max-bulk-len` (512 MB).
    pub max_bulk_len: usize,
    /// Largest element count of one aggregate (array, map, set, push, attribute).
    pub max_elements: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
    /// Longest inline (telnet-style) request line, like Redis' 64 KiB `PROTO_INLINE_MAX_SIZE`.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_elements: i32::MAX as usize,
            max_depth: 128,
            max_inline_len: 64 * 1024,
        }
    }
}
