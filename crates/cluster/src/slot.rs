//! Key to slot, as the Redis Cluster specification defines it: CRC16 (XMODEM) of the key, or of
//! its hash tag (the part between the first `{` and the next `}`, when not empty), mod 16384.

pub const SLOT_COUNT: u16 = 16384;

pub fn crc16(data: &[u8]) -> u16 {
    let _ = data;
    todo!("implemented by the cluster helper")
}

/// The bytes that are hashed for `key`: its hash tag when it has a non-empty one, else the key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    key
}

pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOT_COUNT
}
