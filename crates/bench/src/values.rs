//! Keys, values and sizes of the workload. Pure.
//!
//! A value is its key's bytes followed by `|`, repeated to the value's size, so that a GET can
//! be checked against the key alone: a value written for another key, cut short, or changed
//! behind the benchmark's back does not match.

/// The key of operation `n` of a client at a value size: several clients (`--client-id`) and
/// sizes never collide.
pub fn key(client: u32, size: usize, n: u64) -> String {
    let mut key = String::new();
    write_key(&mut key, client, size, n);
    key
}

/// [`key`] written into `out` (cleared first), reusing its allocation.
pub fn write_key(out: &mut String, client: u32, size: usize, n: u64) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(out, "rkbench:{client}:{size}:{n}");
}

/// Writes the value of `key` at `size` bytes into `out` (cleared first).
pub fn fill_value(key: &[u8], size: usize, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(size);
    while out.len() < size {
        let take = (size - out.len()).min(key.len());
        out.extend_from_slice(&key[..take]);
        if out.len() < size {
            out.push(b'|');
        }
    }
}

/// True when `got` is exactly the value of `key` at `size` bytes.
pub fn value_matches(key: &[u8], size: usize, got: &[u8]) -> bool {
    if got.len() != size {
        return false;
    }
    let period = key.len() + 1;
    got.iter().enumerate().all(|(i, &b)| {
        let at = i % period;
        b == if at == key.len() { b'|' } else { key[at] }
    })
}

/// Parses a size: `16`, `16B`, `4KiB`, `4K`, `1MiB`, `512KB` (K, M are binary, as the old
/// client's sizes were powers of two).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: usize =
        number.parse().map_err(|_| format!("`{text}` is not a size like 16B or 4KiB"))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use B, KiB or MiB)")),
    };
    let size = number.checked_mul(factor).ok_or_else(|| format!("`{text}` is too large"))?;
    if size == 0 {
        return Err("a value size must be at least 1 byte".into());
    }
    Ok(size)
}

/// `16B..512KiB` (every power of two from one to the other), or a comma list `16B,4KiB`.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>, String> {
    if let Some((from, to)) = text.split_once("..") {
        let (from, to) = (parse_size(from)?, parse_size(to)?);
        if from > to {
            return Err(format!("`{text}`: the first size is larger than the last"));
        }
        let mut sizes = Vec::new();
        let mut size = from;
        while size <= to {
            sizes.push(size);
            size *= 2;
        }
        return Ok(sizes);
    }
    text.split(',').map(parse_size).collect()
}

/// A size as people write it: 16 B, 4 KiB, 512 KiB.
pub fn show_size(size: usize) -> String {
    match size {
        s if s >= 1024 * 1024 && s % (1024 * 1024) == 0 => format!("{} MiB", s / (1024 * 1024)),
        s if s >= 1024 && s % 1024 == 0 => format!("{} KiB", s / 1024),
        s => format!("{s} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_their_key() {
        let key = key(1, 16, 7);
        let mut value = Vec::new();
        fill_value(key.as_bytes(), 40, &mut value);
        assert_eq!(value.len(), 40);
        assert!(value_matches(key.as_bytes(), 40, &value));
        let mut changed = value.clone();
        changed[39] ^= 1;
        assert!(!value_matches(key.as_bytes(), 40, &changed), "a changed byte is caught");
        assert!(!value_matches(key.as_bytes(), 39, &value[..39].to_vec().repeat(1)[..38]));
        let other = super::key(2, 16, 7);
        let mut foreign = Vec::new();
        fill_value(other.as_bytes(), 40, &mut foreign);
        assert!(!value_matches(key.as_bytes(), 40, &foreign), "another client's value is caught");
        fill_value(b"k", 3, &mut value);
        assert_eq!(value, b"k|k");
    }

    #[test]
    fn the_default_sizes_are_the_old_clients_sixteen() {
        let sizes = parse_sizes("16B..512KiB").unwrap();
        assert_eq!(sizes.len(), 16);
        assert_eq!((sizes[0], sizes[15]), (16, 512 * 1024));
        assert_eq!(parse_sizes("16B,4KiB").unwrap(), [16, 4096]);
        assert!(parse_size("4XB").unwrap_err().contains("unknown unit"));
        assert_eq!(show_size(512 * 1024), "512 KiB");
    }
}
