//! The nodes' own reports through the proxy: SLOWLOG, LATENCY and MEMORY, asked of the
//! nodes and merged into the one reply a user of one Redis expects, each entry labelled with
//! the node it came from (one more element at the end of the entry, which clients that read
//! Redis' entries by position ignore). Pure: node replies in, the client's reply out.

use resp::{Limits, Value, parse_value, write};

/// A report the proxy merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `SLOWLOG GET [count]`: the newest `count` (10 by default, all for a negative count) of
    /// every node's entries, newest first.
    SlowlogGet(Option<usize>),
    /// `SLOWLOG LEN`: summed.
    SlowlogLen,
    /// `LATENCY LATEST`: every node's events.
    LatencyLatest,
    /// `LATENCY HISTORY event`: every node's samples, oldest first.
    LatencyHistory,
    /// `LATENCY RESET`, `SLOWLOG RESET`, `MEMORY PURGE`: integers summed, `OK` when all are.
    Reset,
    /// `MEMORY STATS`: summed over the masters (ratios: the worst node's).
    MemoryStats,
    /// `LATENCY DOCTOR`, `MEMORY DOCTOR`, `MEMORY MALLOC-STATS`: each node's text under its
    /// address.
    Text,
}

/// Which nodes a report is asked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    Masters,
    /// Masters and replicas: replicas have slow commands and latency spikes of their own.
    All,
}

/// The report for a request whose table name is `name` (`slowlog|get`, ...); `Err` is the
/// error reply for bad arguments, `Ok(None)` for a name that is not a report.
pub fn report_of(name: &str, args: &[&[u8]]) -> Result<Option<(Report, Nodes)>, String> {
    let report = match name {
        "slowlog|get" => {
            let count = match args.get(2) {
                None => Some(10),
                Some(arg) => {
                    let n = std::str::from_utf8(arg)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok())
                        .ok_or("ERR value is not an integer or out of range")?;
                    usize::try_from(n).ok()
                }
            };
            (Report::SlowlogGet(count), Nodes::All)
        }
        "slowlog|len" => (Report::SlowlogLen, Nodes::All),
        "slowlog|reset" | "latency|reset" | "memory|purge" => (Report::Reset, Nodes::All),
        "latency|latest" => (Report::LatencyLatest, Nodes::All),
        "latency|history" => (Report::LatencyHistory, Nodes::All),
        "latency|doctor" | "memory|doctor" | "memory|malloc-stats" => (Report::Text, Nodes::All),
        "memory|stats" => (Report::MemoryStats, Nodes::Masters),
        _ => return Ok(None),
    };
    Ok(Some(report))
}

/// The client's reply from the nodes' replies (`parts[i]` from `nodes[i]`, one whole frame
/// each, none an error: [`crate::fanout::merge`] answers the first error as it is).
pub fn merge(report: Report, nodes: &[String], parts: &[Vec<u8>], resp3: bool) -> Vec<u8> {
    let values: Option<Vec<Value>> = parts.iter().map(|p| parse(p)).collect();
    let Some(values) = values else {
        let mut out = Vec::new();
        write::error(&mut out, b"ERR redkeep: a node's reply could not be read");
        return out;
    };
    let mut out = Vec::new();
    match report {
        Report::SlowlogGet(count) => {
            let mut entries = labelled(&values, nodes);
            // Newest first, as Redis lists them: by time, then by the node's own id.
            entries.sort_by_key(|e| std::cmp::Reverse((int_at(e, 1), int_at(e, 0))));
            entries.truncate(count.unwrap_or(usize::MAX));
            write_value(&mut out, &Value::Array(entries), resp3);
        }
        Report::LatencyLatest => {
            let mut entries = labelled(&values, nodes);
            entries.sort_by(|a, b| bytes_at(a, 0).cmp(bytes_at(b, 0)));
            write_value(&mut out, &Value::Array(entries), resp3);
        }
        Report::LatencyHistory => {
            let mut entries = labelled(&values, nodes);
            entries.sort_by_key(|e| int_at(e, 0));
            write_value(&mut out, &Value::Array(entries), resp3);
        }
        Report::SlowlogLen => {
            let sum = values.iter().map(|v| as_int(v).unwrap_or(0)).sum();
            write::integer(&mut out, sum);
        }
        Report::Reset => match values.iter().all(|v| matches!(v, Value::Integer(_))) {
            true => write::integer(&mut out, values.iter().filter_map(as_int).sum()),
            false => write::simple(&mut out, b"OK"),
        },
        Report::MemoryStats => {
            let mut merged = merge_stats(&values);
            per_key_bytes(&mut merged);
            write_value(&mut out, &merged, resp3);
        }
        Report::Text => {
            let mut text = String::new();
            for (node, part) in nodes.iter().zip(parts) {
                text.push_str(&format!("=== {node} ===\n"));
                text.push_str(crate::info::frame_text(part).trim_end());
                text.push('\n');
            }
            crate::fanout::write_text(&mut out, text.as_bytes(), resp3);
        }
    }
    out
}

fn parse(frame: &[u8]) -> Option<Value> {
    parse_value(frame, &Limits::default()).ok().flatten().map(|(v, _)| v)
}

/// Every node's entries (each an array), with the node's address added at the end.
fn labelled(values: &[Value], nodes: &[String]) -> Vec<Value> {
    let mut entries = Vec::new();
    for (value, node) in values.iter().zip(nodes) {
        for entry in value.as_list().unwrap_or(&[]) {
            let mut fields = entry.as_list().map(<[Value]>::to_vec).unwrap_or_default();
            fields.push(Value::Bulk(node.as_bytes().to_vec()));
            entries.push(Value::Array(fields));
        }
    }
    entries
}

fn int_at(entry: &Value, i: usize) -> i64 {
    entry.as_list().and_then(|f| f.get(i)).and_then(as_int).unwrap_or(0)
}

fn bytes_at(entry: &Value, i: usize) -> &[u8] {
    entry.as_list().and_then(|f| f.get(i)).and_then(Value::as_bytes).unwrap_or(b"")
}

fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

/// The number in a field: RESP3 doubles, and RESP2's doubles, which come as bulk strings.
fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Double(d) => Some(*d),
        Value::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// MEMORY STATS of several nodes as one: integers summed, fractional figures (ratios,
/// percentages) the largest, nested maps (`db.0`) merged alike, anything else the first's.
fn merge_stats(values: &[Value]) -> Value {
    let Some(first) = values.first() else { return Value::Array(Vec::new()) };
    if values.iter().all(|v| matches!(v, Value::Integer(_))) {
        return Value::Integer(values.iter().filter_map(as_int).sum());
    }
    if let Some(pairs) = values.iter().map(pairs_of).collect::<Option<Vec<_>>>() {
        let mut keys: Vec<&Value> = Vec::new();
        for list in &pairs {
            for (key, _) in list {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        let merged: Vec<(Value, Value)> = keys
            .into_iter()
            .map(|key| {
                let of_key: Vec<Value> = pairs
                    .iter()
                    .filter_map(|list| list.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
                    .collect();
                (key.clone(), merge_stats(&of_key))
            })
            .collect();
        return match first {
            Value::Map(_) => Value::Map(merged),
            _ => Value::Array(merged.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        };
    }
    if let Some(floats) = values.iter().map(as_float).collect::<Option<Vec<f64>>>() {
        let max = floats.into_iter().fold(f64::MIN, f64::max);
        return match first {
            Value::Double(_) => Value::Double(max),
            _ => Value::Bulk(format!("{max}").into_bytes()),
        };
    }
    first.clone()
}

/// A map's pairs: a RESP3 map, or RESP2's flat array of name, value, name, value...
fn pairs_of(value: &Value) -> Option<Vec<(Value, Value)>> {
    match value {
        Value::Map(pairs) => Some(pairs.clone()),
        Value::Array(items) if items.len().is_multiple_of(2) && !items.is_empty() => {
            let named = items.iter().step_by(2).all(|k| matches!(k, Value::Bulk(_)));
            let any_int_key = items.iter().step_by(2).any(|k| as_float(k).is_some());
            (named && !any_int_key)
                .then(|| items.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
        }
        _ => None,
    }
}

/// `keys.bytes-per-key` is not a sum: Redis' own formula over the summed figures.
fn per_key_bytes(stats: &mut Value) {
    let get = |stats: &Value, name: &str| -> Option<i64> {
        let pairs = pairs_of(stats)?;
        pairs.iter().find(|(k, _)| k.as_bytes() == Some(name.as_bytes())).and_then(|p| as_int(&p.1))
    };
    let (Some(keys), Some(total), Some(startup)) =
        (get(stats, "keys.count"), get(stats, "total.allocated"), get(stats, "startup.allocated"))
    else {
        return;
    };
    let per_key = if keys > 0 { (total - startup) / keys } else { 0 };
    let set = |key: &Value, value: &mut Value| {
        if key.as_bytes() == Some(b"keys.bytes-per-key") {
            *value = Value::Integer(per_key);
        }
    };
    match stats {
        Value::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| set(k, v)),
        Value::Array(items) => {
            for pair in items.chunks_mut(2) {
                let (key, value) = pair.split_at_mut(1);
                set(&key[0], &mut value[0]);
            }
        }
        _ => {}
    }
}

/// A value in the client's protocol (a RESP2 client gets `$-1` for a null, never `_`).
fn write_value(out: &mut Vec<u8>, value: &Value, resp3: bool) {
    match value {
        Value::Null if !resp3 => write::null_bulk(out),
        Value::Array(items) => {
            write::array_len(out, items.len());
            items.iter().for_each(|item| write_value(out, item, resp3));
        }
        other => write::value(out, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()]
    }

    fn frame(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write::value(&mut out, value);
        out
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn reply(report: Report, parts: &[Value], resp3: bool) -> Value {
        let frames: Vec<Vec<u8>> = parts.iter().map(frame).collect();
        parse(&merge(report, &nodes(), &frames, resp3)).unwrap()
    }

    fn slow(id: i64, time: i64, command: &str) -> Value {
        Value::Array(vec![
            Value::Integer(id),
            Value::Integer(time),
            Value::Integer(15),
            Value::Array(vec![bulk(command)]),
            bulk("127.0.0.1:50000"),
            bulk(""),
        ])
    }

    #[test]
    fn slowlog_entries_of_every_node_newest_first_labelled_and_cut_to_count() {
        let a = Value::Array(vec![slow(1, 200, "a1"), slow(0, 100, "a0")]);
        let b = Value::Array(vec![slow(0, 150, "b0")]);
        let Value::Array(entries) =
            reply(Report::SlowlogGet(Some(10)), &[a.clone(), b.clone()], false)
        else {
            panic!()
        };
        let order: Vec<(i64, Value)> =
            entries.iter().map(|e| (int_at(e, 1), e.as_list().unwrap()[6].clone())).collect();
        assert_eq!(
            order,
            [
                (200, bulk("127.0.0.1:7001")),
                (150, bulk("127.0.0.1:7002")),
                (100, bulk("127.0.0.1:7001"))
            ]
        );
        let Value::Array(two) = reply(Report::SlowlogGet(Some(2)), &[a.clone(), b.clone()], false)
        else {
            panic!()
        };
        assert_eq!(two.len(), 2);
        let Value::Array(all) = reply(Report::SlowlogGet(None), &[a, b], false) else { panic!() };
        assert_eq!(all.len(), 3);
        assert_eq!(
            reply(Report::SlowlogLen, &[Value::Integer(2), Value::Integer(1)], false),
            Value::Integer(3)
        );
    }

    #[test]
    fn slowlog_arguments_are_checked_as_redis_does() {
        let get = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            report_of("slowlog|get", &args)
        };
        assert_eq!(get("SLOWLOG GET"), Ok(Some((Report::SlowlogGet(Some(10)), Nodes::All))));
        assert_eq!(get("SLOWLOG GET 3"), Ok(Some((Report::SlowlogGet(Some(3)), Nodes::All))));
        assert_eq!(get("SLOWLOG GET -1"), Ok(Some((Report::SlowlogGet(None), Nodes::All))));
        assert!(get("SLOWLOG GET x").unwrap_err().contains("not an integer"));
        assert_eq!(report_of("memory|stats", &[]), Ok(Some((Report::MemoryStats, Nodes::Masters))));
        assert_eq!(report_of("memory|usage", &[]), Ok(None));
    }

    #[test]
    fn latency_events_and_history_of_every_node_are_labelled() {
        let event = |name: &str, t: i64| {
            Value::Array(vec![bulk(name), Value::Integer(t), Value::Integer(5), Value::Integer(9)])
        };
        let a = Value::Array(vec![event("command", 10)]);
        let b = Value::Array(vec![event("command", 20), event("aof-fsync", 30)]);
        let Value::Array(latest) = reply(Report::LatencyLatest, &[a, b], false) else { panic!() };
        assert_eq!(latest.len(), 3);
        assert_eq!(bytes_at(&latest[0], 0), b"aof-fsync");
        assert_eq!(latest[0].as_list().unwrap()[4], bulk("127.0.0.1:7002"));
        let sample = |t: i64| Value::Array(vec![Value::Integer(t), Value::Integer(7)]);
        let a = Value::Array(vec![sample(30), sample(10)]);
        let b = Value::Array(vec![sample(20)]);
        let Value::Array(history) = reply(Report::LatencyHistory, &[a, b], false) else { panic!() };
        let times: Vec<i64> = history.iter().map(|e| int_at(e, 0)).collect();
        assert_eq!(times, [10, 20, 30]);
        assert_eq!(history[1].as_list().unwrap()[2], bulk("127.0.0.1:7002"));
        assert_eq!(
            reply(Report::Reset, &[Value::Integer(1), Value::Integer(2)], false),
            Value::Integer(3)
        );
        let ok = Value::Simple(b"OK".to_vec());
        assert_eq!(reply(Report::Reset, &[ok.clone(), ok.clone()], false), ok);
    }

    #[test]
    fn memory_stats_are_summed_with_ratios_at_their_worst_in_both_protocols() {
        let stats2 = |total: i64, frag: &str, keys: i64| {
            Value::Array(vec![
                bulk("total.allocated"),
                Value::Integer(total),
                bulk("startup.allocated"),
                Value::Integer(100),
                bulk("keys.count"),
                Value::Integer(keys),
                bulk("keys.bytes-per-key"),
                Value::Integer(1),
                bulk("db.0"),
                Value::Array(vec![bulk("overhead.hashtable.main"), Value::Integer(keys * 10)]),
                bulk("fragmentation"),
                bulk(frag),
            ])
        };
        let merged =
            reply(Report::MemoryStats, &[stats2(1100, "1.5", 10), stats2(2100, "2.25", 30)], false);
        let Value::Array(items) = merged else { panic!() };
        let field = |name: &str| {
            items.chunks(2).find(|p| p[0] == bulk(name)).map(|p| p[1].clone()).unwrap()
        };
        assert_eq!(field("total.allocated"), Value::Integer(3200));
        assert_eq!(field("keys.count"), Value::Integer(40));
        assert_eq!(field("keys.bytes-per-key"), Value::Integer((3200 - 200) / 40));
        assert_eq!(field("fragmentation"), bulk("2.25"));
        assert_eq!(
            field("db.0"),
            Value::Array(vec![bulk("overhead.hashtable.main"), Value::Integer(400)])
        );
        let stats3 = |total: i64, frag: f64| {
            Value::Map(vec![
                (bulk("total.allocated"), Value::Integer(total)),
                (bulk("fragmentation"), Value::Double(frag)),
            ])
        };
        let merged = reply(Report::MemoryStats, &[stats3(1, 1.5), stats3(2, 3.5)], true);
        assert_eq!(
            merged,
            Value::Map(vec![
                (bulk("total.allocated"), Value::Integer(3)),
                (bulk("fragmentation"), Value::Double(3.5))
            ])
        );
    }

    #[test]
    fn doctor_texts_come_under_their_nodes() {
        let frames = vec![b"$5\r\nfine.\r\n".to_vec(), b"$4\r\nbad.\r\n".to_vec()];
        let reply = merge(Report::Text, &nodes(), &frames, false);
        let Some(Value::Bulk(text)) = parse(&reply) else { panic!() };
        assert_eq!(text, b"=== 127.0.0.1:7001 ===\nfine.\n=== 127.0.0.1:7002 ===\nbad.\n");
    }
}
