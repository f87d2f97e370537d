//! Commands answered by several nodes: how the parts' replies become the one reply the client
//! would get from a single Redis. Pure.

use resp::{Limits, frame_len, write};

use crate::commands::{Merge, Split};

/// How to merge the parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeKind {
    /// MGET: part `i` answered for the key numbers `positions[i]`; `total` keys in all.
    Values {
        positions: Vec<Vec<usize>>,
        total: usize,
    },
    Split(Split),
    Merge(Merge),
    /// INFO: the sections asked for, merged from the masters' (see [`crate::info`]).
    Info(Box<(Vec<crate::info::Section>, crate::info::Local)>),
    /// SLOWLOG, LATENCY, MEMORY: the nodes' reports, from these nodes in this order (see
    /// [`crate::reports`]).
    Reports(Box<(crate::reports::Report, Vec<String>)>),
}

/// The client's reply from every part's reply frame (`parts[i]` is one whole frame), in the
/// client's protocol (`resp3`: the parts came from RESP3 connections too).
pub fn merge(kind: &MergeKind, parts: &[Vec<u8>], resp3: bool) -> Vec<u8> {
    if let Some(error) = parts.iter().find(|p| p.first() == Some(&b'-')) {
        return error.clone();
    }
    let mut out = Vec::new();
    match kind {
        MergeKind::Values { positions, total } => {
            let null: &[u8] = if resp3 { b"_\r\n" } else { b"$-1\r\n" };
            let mut values: Vec<&[u8]> = vec![null; *total];
            for (part, keys) in parts.iter().zip(positions) {
                let Some(elements) = elements(part) else { return unexpected(part) };
                if elements.len() != keys.len() {
                    return unexpected(part);
                }
                for (element, &key) in elements.into_iter().zip(keys) {
                    values[key] = element;
                }
            }
            write::array_len(&mut out, *total);
            values.iter().for_each(|v| out.extend_from_slice(v));
        }
        MergeKind::Split(Split::Ok) | MergeKind::Merge(Merge::AllOk) => {
            match parts.iter().find(|p| p.as_slice() != b"+OK\r\n") {
                Some(other) => return other.clone(),
                None => write::simple(&mut out, b"OK"),
            }
        }
        MergeKind::Merge(Merge::Min) => {
            let least = parts.iter().map(|p| integer(p)).collect::<Option<Vec<i64>>>();
            match least.and_then(|all| all.into_iter().min()) {
                Some(n) => write::integer(&mut out, n),
                None => return parts.first().map_or_else(Vec::new, |p| unexpected(p)),
            }
        }
        MergeKind::Split(Split::Count) | MergeKind::Merge(Merge::Sum) => {
            let mut sum = 0i64;
            for part in parts {
                match integer(part) {
                    Some(n) => sum = sum.saturating_add(n),
                    None => return unexpected(part),
                }
            }
            write::integer(&mut out, sum);
        }
        MergeKind::Split(Split::Values) => unreachable!("MGET merges with MergeKind::Values"),
        MergeKind::Merge(Merge::First) => return parts.first().cloned().unwrap_or_default(),
        MergeKind::Merge(Merge::Concat) => {
            let mut all = Vec::new();
            for part in parts {
                let Some(elements) = elements(part) else { return unexpected(part) };
                all.extend(elements);
            }
            write::array_len(&mut out, all.len());
            all.iter().for_each(|e| out.extend_from_slice(e));
        }
        MergeKind::Merge(Merge::AllTrue) => {
            let mut all: Option<Vec<bool>> = None;
            for part in parts {
                let Some(elements) = elements(part) else { return unexpected(part) };
                let flags: Vec<bool> = elements.iter().map(|e| integer(e) == Some(1)).collect();
                all = Some(match all {
                    None => flags,
                    Some(prev) => prev.iter().zip(&flags).map(|(a, b)| *a && *b).collect(),
                });
            }
            let all = all.unwrap_or_default();
            write::array_len(&mut out, all.len());
            all.iter().for_each(|&b| write::integer(&mut out, i64::from(b)));
        }
        MergeKind::Merge(Merge::AnyValue) => {
            let values: Vec<&Vec<u8>> = parts
                .iter()
                .filter(|p| p.first() == Some(&b'$') && p.as_slice() != b"$-1\r\n")
                .collect();
            match values.len() {
                0 => return parts.first().cloned().unwrap_or_else(|| b"$-1\r\n".to_vec()),
                n => return values[rand::random_range(0..n)].clone(),
            }
        }
        MergeKind::Reports(request) => {
            let (report, nodes) = request.as_ref();
            return crate::reports::merge(*report, nodes, parts, resp3);
        }
        MergeKind::Info(request) => {
            let (sections, local) = request.as_ref();
            let texts: Vec<String> = parts.iter().map(|p| crate::info::frame_text(p)).collect();
            let text = crate::info::render(sections, local, &texts);
            write_text(&mut out, text.as_bytes(), resp3);
        }
    }
    out
}

/// Text as Redis sends INFO and CLIENT LIST: a bulk string in RESP2, a verbatim string
/// (`txt`) in RESP3.
pub fn write_text(out: &mut Vec<u8>, text: &[u8], resp3: bool) {
    if resp3 {
        out.extend_from_slice(format!("={}\r\ntxt:", text.len() + 4).as_bytes());
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        write::bulk(out, text);
    }
}

/// Bits of a proxy SCAN cursor that say which master is being scanned (up to 256 masters); the
/// rest is that master's own cursor.
const SCAN_INDEX_BITS: u32 = 8;

/// Splits a proxy SCAN cursor into (master index, the master's cursor).
pub fn split_scan_cursor(cursor: u64) -> (usize, u64) {
    ((cursor & ((1 << SCAN_INDEX_BITS) - 1)) as usize, cursor >> SCAN_INDEX_BITS)
}

/// The client's SCAN reply from master `index`'s (of `masters`) reply: its cursor rewritten so
/// that the next call continues on that master, or on the next one when it is done.
pub fn scan_reply(frame: &[u8], index: usize, masters: usize) -> Vec<u8> {
    if frame.first() == Some(&b'-') {
        return frame.to_vec();
    }
    let Some([cursor, keys]) = elements(frame)
        .as_deref()
        .map(<[&[u8]]>::to_vec)
        .and_then(|e| <[&[u8]; 2]>::try_from(e).ok())
    else {
        return unexpected(frame);
    };
    let Some(node_cursor) = bulk_number(cursor) else { return unexpected(frame) };
    let next = if node_cursor != 0 {
        if node_cursor >> (64 - SCAN_INDEX_BITS) != 0 {
            let mut out = Vec::new();
            write::error(&mut out, b"ERR redkeep: a node's SCAN cursor is too large to carry");
            return out;
        }
        (node_cursor << SCAN_INDEX_BITS) | index as u64
    } else if index + 1 < masters {
        (index + 1) as u64
    } else {
        0
    };
    let mut out = Vec::new();
    write::array_len(&mut out, 2);
    write::bulk(&mut out, next.to_string().as_bytes());
    out.extend_from_slice(keys);
    out
}

fn bulk_number(frame: &[u8]) -> Option<u64> {
    let (_, rest) = frame.split_at(frame.iter().position(|&b| b == b'\n')? + 1);
    std::str::from_utf8(rest.strip_suffix(b"\r\n")?).ok()?.parse().ok()
}

/// The elements of an array frame, each as its whole frame.
pub(crate) fn elements(frame: &[u8]) -> Option<Vec<&[u8]>> {
    let limits = Limits::default();
    let header_end = frame.iter().position(|&b| b == b'\n')? + 1;
    if frame.first() != Some(&b'*') {
        return None;
    }
    let count: i64 = std::str::from_utf8(&frame[1..header_end - 2]).ok()?.parse().ok()?;
    let mut at = header_end;
    let mut out = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count.max(0) {
        let len = frame_len(&frame[at..], &limits).ok()??;
        out.push(&frame[at..at + len]);
        at += len;
    }
    Some(out)
}

pub(crate) fn integer(frame: &[u8]) -> Option<i64> {
    let line = frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(line).ok()?.parse().ok()
}

fn unexpected(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let shown = String::from_utf8_lossy(&part[..part.len().min(60)]).replace("\r\n", " ");
    write::error(
        &mut out,
        format!("ERR redkeep: unexpected reply from a node: {shown}").as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(frames: &[&str]) -> Vec<Vec<u8>> {
        frames.iter().map(|f| f.as_bytes().to_vec()).collect()
    }

    #[test]
    fn mget_parts_are_put_back_in_key_order() {
        let kind = MergeKind::Values { positions: vec![vec![0, 2], vec![1]], total: 3 };
        let reply = merge(&kind, &parts(&["*2\r\n$1\r\na\r\n$-1\r\n", "*1\r\n$1\r\nb\r\n"]), false);
        assert_eq!(reply, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n");
    }

    #[test]
    fn counts_add_up_and_the_first_error_wins() {
        let count = MergeKind::Split(Split::Count);
        assert_eq!(merge(&count, &parts(&[":1\r\n", ":2\r\n"]), false), b":3\r\n");
        assert_eq!(merge(&count, &parts(&[":1\r\n", "-ERR x\r\n"]), false), b"-ERR x\r\n");
        let ok = MergeKind::Split(Split::Ok);
        assert_eq!(merge(&ok, &parts(&["+OK\r\n", "+OK\r\n"]), true), b"+OK\r\n");
    }

    #[test]
    fn arrays_concatenate_and_script_exists_needs_every_master() {
        let concat = MergeKind::Merge(Merge::Concat);
        let reply =
            merge(&concat, &parts(&["*1\r\n$1\r\na\r\n", "*0\r\n", "*1\r\n$1\r\nb\r\n"]), false);
        assert_eq!(reply, b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        let all = MergeKind::Merge(Merge::AllTrue);
        let reply = merge(&all, &parts(&["*2\r\n:1\r\n:1\r\n", "*2\r\n:1\r\n:0\r\n"]), false);
        assert_eq!(reply, b"*2\r\n:1\r\n:0\r\n");
    }

    #[test]
    fn scan_cursors_walk_one_master_after_the_other() {
        let reply =
            |cursor: &str| format!("*2\r\n${}\r\n{cursor}\r\n*1\r\n$1\r\nk\r\n", cursor.len());
        let next = |frame: Vec<u8>| {
            let text = String::from_utf8(frame).unwrap();
            text.split("\r\n").nth(2).unwrap().parse::<u64>().unwrap()
        };
        // Master 0 not done: its cursor 17 is carried with index 0.
        let c = next(scan_reply(reply("17").as_bytes(), 0, 3));
        assert_eq!(split_scan_cursor(c), (0, 17));
        // Master 0 done: continue at master 1 from 0.
        assert_eq!(split_scan_cursor(next(scan_reply(reply("0").as_bytes(), 0, 3))), (1, 0));
        // The last master done: the whole scan is done.
        assert_eq!(next(scan_reply(reply("0").as_bytes(), 2, 3)), 0);
        assert!(scan_reply(reply("0").as_bytes(), 2, 3).ends_with(b"*1\r\n$1\r\nk\r\n"));
    }

    #[test]
    fn lastsave_is_the_oldest_masters() {
        let min = MergeKind::Merge(Merge::Min);
        assert_eq!(merge(&min, &parts(&[":300\r\n", ":100\r\n", ":200\r\n"]), false), b":100\r\n");
    }

    #[test]
    fn mget_fills_missing_values_with_the_clients_null() {
        let kind = MergeKind::Values { positions: vec![vec![0], vec![2]], total: 3 };
        // Key 1 is in no part (as if no node answered for it): it reads as a null.
        let resp3 = parts(&["*1\r\n_\r\n", "*1\r\n$1\r\nc\r\n"]);
        assert_eq!(merge(&kind, &resp3, true), b"*3\r\n_\r\n_\r\n$1\r\nc\r\n");
        let resp2 = parts(&["*1\r\n$-1\r\n", "*1\r\n$1\r\nc\r\n"]);
        assert_eq!(merge(&kind, &resp2, false), b"*3\r\n$-1\r\n$-1\r\n$1\r\nc\r\n");
    }
}
