//! The cluster as a cluster-aware client sees it through the proxy: one node, the proxy
//! itself (at its announce address), a master that owns all 16384 slots.
//!
//! A cluster client (redis-py `RedisCluster`, ioredis `Cluster`, Jedis `JedisCluster`, ...)
//! given the proxy's address asks `CLUSTER SLOTS` (or `SHARDS`, or `NODES`) and then sends
//! each command to the node that owns its key's slot. If it saw the real nodes, it would
//! bypass the proxy; so the proxy shows itself as the only node, and since it follows MOVED
//! and ASK itself, the client never gets a redirect. Pure: replies are built from data.

use cluster::{SLOT_COUNT, key_slot};
use resp::write;

use crate::commands::Args;

/// What the one virtual node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View<'a> {
    /// Host or IP clients should connect to (the announce address, or the address the
    /// client reached the proxy at).
    pub host: &'a str,
    pub port: u16,
    /// 40 hex characters, from [`node_id`].
    pub id: &'a str,
    /// Slots the proxy's map has no master for (the real cluster is missing a shard).
    pub uncovered: usize,
    /// The client speaks RESP3.
    pub resp3: bool,
}

/// What the proxy does with a `CLUSTER ...` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAnswer {
    /// The reply, made here.
    Reply(Vec<u8>),
    /// Sent as it is to the master of this slot (COUNTKEYSINSLOT, GETKEYSINSLOT).
    ToSlot(u16),
    /// An error reply (without the leading `-`).
    Refused(String),
}

/// `HOST:PORT` (IPv6 as `[::1]:7010`) as host and port; an error that says what is wrong.
pub fn parse_announce(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` is not HOST:PORT (e.g. 10.0.0.100:7010)"))?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("`{text}` has no host: expected HOST:PORT (e.g. 10.0.0.100:7010)"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| format!("`{text}`: the port must be a number from 1 to 65535"))?;
    Ok((host.to_string(), port))
}

/// The address and node ID the proxy shows: `announce` (checked at start) when set, else
/// `laddr`, the proxy's address the client connected to (right for a listener on 0.0.0.0).
pub fn announced(announce: Option<&str>, laddr: &str) -> (String, u16, String) {
    let shown = announce.unwrap_or(laddr);
    let (host, port) = parse_announce(shown).unwrap_or_else(|_| (shown.to_string(), 0));
    let id = node_id(&format!("{host}:{port}"));
    (host, port, id)
}

/// A stable node ID for the proxy at `announce` (`HOST:PORT`): 40 hex characters, like a
/// Redis node ID, the same on every start and on every proxy announcing the same address
/// (two proxies behind one VIP look like one node to a client that reconnects).
pub fn node_id(announce: &str) -> String {
    // FNV-1a, three rounds with different prefixes: stable across builds and Rust versions
    // (std's hasher promises neither).
    let mut id = String::with_capacity(48);
    for round in 0u8..3 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in [b'r', b'k', round].iter().chain(announce.as_bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        id.push_str(&format!("{hash:016x}"));
    }
    id.truncate(40);
    id
}

/// The answer to `CLUSTER <sub> ...` (`args[0]` is `CLUSTER`; arity was checked by the
/// command table).
pub fn answer(view: &View, args: &(impl Args + ?Sized)) -> ClusterAnswer {
    let sub = args.arg(1).to_ascii_uppercase();
    let reply = |build: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        build(&mut out);
        ClusterAnswer::Reply(out)
    };
    match sub.as_slice() {
        b"SLOTS" => reply(&|out| slots(view, out)),
        b"SHARDS" => reply(&|out| shards(view, out)),
        b"NODES" => reply(&|out| text(out, nodes_line(view).as_bytes(), view.resp3)),
        b"INFO" => reply(&|out| text(out, info(view).as_bytes(), view.resp3)),
        b"MYID" => reply(&|out| write::bulk(out, view.id.as_bytes())),
        b"MYSHARDID" => reply(&|out| write::bulk(out, shard_id(view).as_bytes())),
        b"KEYSLOT" => reply(&|out| write::integer(out, i64::from(key_slot(args.arg(2))))),
        b"COUNTKEYSINSLOT" | b"GETKEYSINSLOT" => match slot_arg(args.arg(2)) {
            Ok(slot) => ClusterAnswer::ToSlot(slot),
            Err(e) => ClusterAnswer::Refused(e),
        },
        // The one node has no replicas and no links to other nodes.
        b"REPLICAS" | b"SLAVES" => {
            if args.arg(2).eq_ignore_ascii_case(view.id.as_bytes()) {
                reply(&|out| write::array_len(out, 0))
            } else {
                unknown_node(args.arg(2))
            }
        }
        b"COUNT-FAILURE-REPORTS" => {
            if args.arg(2).eq_ignore_ascii_case(view.id.as_bytes()) {
                reply(&|out| write::integer(out, 0))
            } else {
                unknown_node(args.arg(2))
            }
        }
        b"LINKS" => reply(&|out| write::array_len(out, 0)),
        b"HELP" => reply(&|out| help(out)),
        _ => {
            let shown = String::from_utf8_lossy(&sub).into_owned();
            ClusterAnswer::Refused(format!(
                "ERR redkeep proxy: CLUSTER {shown} is not served here: the proxy shows the \
                 cluster as one node; to change the cluster, run it on a node (or use redkeep \
                 failover / fix / create)"
            ))
        }
    }
}

fn unknown_node(id: &[u8]) -> ClusterAnswer {
    ClusterAnswer::Refused(format!("ERR Unknown node {}", String::from_utf8_lossy(id)))
}

/// A slot number argument, as Redis checks it.
fn slot_arg(arg: &[u8]) -> Result<u16, String> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n < SLOT_COUNT)
        .ok_or_else(|| "ERR Invalid slot".to_string())
}

/// `CLUSTER SLOTS`: one range, 0-16383, served by the proxy (Redis 7.0's entry form: ip, port,
/// id, networking metadata).
fn slots(view: &View, out: &mut Vec<u8>) {
    write::array_len(out, 1);
    write::array_len(out, 3);
    write::integer(out, 0);
    write::integer(out, i64::from(SLOT_COUNT) - 1);
    write::array_len(out, 4);
    write::bulk(out, view.host.as_bytes());
    write::integer(out, i64::from(view.port));
    write::bulk(out, view.id.as_bytes());
    empty_map(out, view.resp3);
}

/// `CLUSTER SHARDS`: one shard of all slots with the proxy as its master.
fn shards(view: &View, out: &mut Vec<u8>) {
    write::array_len(out, 1);
    map_len(out, 2, view.resp3);
    write::bulk(out, b"slots");
    write::array_len(out, 2);
    write::integer(out, 0);
    write::integer(out, i64::from(SLOT_COUNT) - 1);
    write::bulk(out, b"nodes");
    write::array_len(out, 1);
    let is_ip = view.host.parse::<std::net::IpAddr>().is_ok();
    map_len(out, if is_ip { 7 } else { 8 }, view.resp3);
    write::bulk(out, b"id");
    write::bulk(out, view.id.as_bytes());
    write::bulk(out, b"port");
    write::integer(out, i64::from(view.port));
    write::bulk(out, b"ip");
    write::bulk(out, if is_ip { view.host.as_bytes() } else { b"" });
    if !is_ip {
        write::bulk(out, b"hostname");
        write::bulk(out, view.host.as_bytes());
    }
    write::bulk(out, b"endpoint");
    write::bulk(out, view.host.as_bytes());
    write::bulk(out, b"role");
    write::bulk(out, b"master");
    write::bulk(out, b"replication-offset");
    write::integer(out, 0);
    write::bulk(out, b"health");
    write::bulk(out, if view.uncovered == 0 { &b"online"[..] } else { b"failed" });
}

/// `CLUSTER NODES`: the proxy's line. It has no cluster bus, so its bus port is 0.
fn nodes_line(view: &View) -> String {
    let host = if view.host.contains(':') { format!("[{}]", view.host) } else { view.host.into() };
    format!(
        "{} {host}:{}@0 myself,master - 0 0 1 connected 0-{}\n",
        view.id,
        view.port,
        SLOT_COUNT - 1
    )
}

/// `CLUSTER INFO`: one node, all slots assigned to it; slots the real cluster has no master
/// for count as failed, and then the state is `fail`, as a node of that cluster would say.
fn info(view: &View) -> String {
    let uncovered = view.uncovered.min(usize::from(SLOT_COUNT));
    let state = if uncovered == 0 { "ok" } else { "fail" };
    let ok = usize::from(SLOT_COUNT) - uncovered;
    format!(
        "cluster_state:{state}\r\ncluster_slots_assigned:{SLOT_COUNT}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:0\r\ncluster_slots_fail:{uncovered}\r\ncluster_known_nodes:1\r\n\
         cluster_size:1\r\ncluster_current_epoch:1\r\ncluster_my_epoch:1\r\n\
         cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
         total_cluster_links_buffer_limit_exceeded:0\r\n"
    )
}

/// The one shard's ID: derived from the node's, so it is as stable.
fn shard_id(view: &View) -> String {
    node_id(&format!("shard:{}", view.id))
}

fn help(out: &mut Vec<u8>) {
    let lines: [&[u8]; 8] = [
        b"CLUSTER <subcommand> (as answered by the redkeep proxy: one node owning every slot)",
        b"SLOTS | SHARDS | NODES | INFO | MYID | MYSHARDID",
        b"    The proxy itself, at its announce address, as the only master.",
        b"KEYSLOT <key>",
        b"COUNTKEYSINSLOT <slot> | GETKEYSINSLOT <slot> <count>",
        b"    Asked of the real master of the slot.",
        b"REPLICAS <id> | COUNT-FAILURE-REPORTS <id> | LINKS",
        b"Commands that change the cluster are refused: run them on a node.",
    ];
    write::array_len(out, lines.len());
    for line in lines {
        write::simple(out, line);
    }
}

/// Text as Redis sends CLUSTER NODES/INFO: bulk in RESP2, verbatim in RESP3.
fn text(out: &mut Vec<u8>, body: &[u8], resp3: bool) {
    crate::fanout::write_text(out, body, resp3);
}

fn map_len(out: &mut Vec<u8>, pairs: usize, resp3: bool) {
    if resp3 {
        write::map_len(out, pairs);
    } else {
        write::array_len(out, pairs * 2);
    }
}

fn empty_map(out: &mut Vec<u8>, resp3: bool) {
    map_len(out, 0, resp3);
}

#[cfg(test)]
mod tests {
    use super::*;
    use resp::{Limits, Value, parse_value};

    fn view(resp3: bool) -> View<'static> {
        View {
            host: "10.0.0.100",
            port: 7010,
            id: "0123456789abcdef0123456789abcdef01234567",
            uncovered: 0,
            resp3,
        }
    }

    fn ask(view: &View, line: &str) -> ClusterAnswer {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        answer(view, args.as_slice())
    }

    fn value(answer: ClusterAnswer) -> Value {
        let ClusterAnswer::Reply(bytes) = answer else { panic!("a reply: {answer:?}") };
        let (value, used) = parse_value(&bytes, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, bytes.len(), "one whole frame");
        value
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn node_ids_are_40_hex_stable_and_differ_by_address() {
        let a = node_id("10.0.0.100:7010");
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{a}");
        assert_eq!(a, node_id("10.0.0.100:7010"));
        assert_ne!(a, node_id("10.0.0.100:7011"));
        assert_ne!(a, node_id("10.0.0.101:7010"));
    }

    #[test]
    fn announce_addresses_are_checked() {
        assert_eq!(parse_announce("10.0.0.100:7010"), Ok(("10.0.0.100".into(), 7010)));
        assert_eq!(parse_announce("[::1]:7010"), Ok(("::1".into(), 7010)));
        assert_eq!(parse_announce("proxy.example:6379"), Ok(("proxy.example".into(), 6379)));
        assert!(parse_announce("10.0.0.100").unwrap_err().contains("HOST:PORT"));
        assert!(parse_announce(":7010").unwrap_err().contains("no host"));
        assert!(parse_announce("h:0").unwrap_err().contains("1 to 65535"));
        assert!(parse_announce("h:99999").unwrap_err().contains("1 to 65535"));
    }

    #[test]
    fn cluster_slots_is_one_range_served_by_the_proxy() {
        let v = view(false);
        let expected = Value::Array(vec![Value::Array(vec![
            Value::Integer(0),
            Value::Integer(16383),
            Value::Array(vec![
                bulk("10.0.0.100"),
                Value::Integer(7010),
                bulk(v.id),
                Value::Array(vec![]),
            ]),
        ])]);
        assert_eq!(value(ask(&v, "CLUSTER SLOTS")), expected);
        // RESP3: the metadata is a map.
        let Value::Array(ranges) = value(ask(&view(true), "cluster slots")) else { panic!() };
        let Value::Array(range) = &ranges[0] else { panic!() };
        let Value::Array(node) = &range[2] else { panic!() };
        assert_eq!(node[3], Value::Map(vec![]));
    }

    #[test]
    fn cluster_shards_has_one_master_with_every_slot() {
        let v = view(true);
        let Value::Array(shards) = value(ask(&v, "CLUSTER SHARDS")) else { panic!() };
        assert_eq!(shards.len(), 1);
        let Value::Map(shard) = &shards[0] else { panic!("{:?}", shards[0]) };
        assert_eq!(
            shard[0],
            (bulk("slots"), Value::Array(vec![Value::Integer(0), Value::Integer(16383)]))
        );
        let Value::Array(nodes) = &shard[1].1 else { panic!() };
        let Value::Map(node) = &nodes[0] else { panic!() };
        let field =
            |name: &str| node.iter().find(|(k, _)| *k == bulk(name)).map(|(_, v)| v.clone());
        assert_eq!(field("id"), Some(bulk(v.id)));
        assert_eq!(field("port"), Some(Value::Integer(7010)));
        assert_eq!(field("ip"), Some(bulk("10.0.0.100")));
        assert_eq!(field("role"), Some(bulk("master")));
        assert_eq!(field("health"), Some(bulk("online")));
        // RESP2: maps are flat arrays of pairs.
        let Value::Array(shards) = value(ask(&view(false), "CLUSTER SHARDS")) else { panic!() };
        assert!(matches!(&shards[0], Value::Array(pairs) if pairs.len() == 4));
    }

    #[test]
    fn cluster_nodes_and_info_describe_one_node_owning_every_slot() {
        let v = view(false);
        let nodes = value(ask(&v, "CLUSTER NODES"));
        let expected =
            format!("{} 10.0.0.100:7010@0 myself,master - 0 0 1 connected 0-16383\n", v.id);
        assert_eq!(nodes, bulk(&expected));
        // The line parses as a real node's line does.
        let topology = cluster::topology::parse_cluster_nodes(&expected).unwrap();
        assert_eq!(topology.nodes[0].slots.len(), 1);
        let Value::Bulk(info) = value(ask(&v, "CLUSTER INFO")) else { panic!() };
        let info = String::from_utf8(info).unwrap();
        assert!(info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"), "{info}");
        assert!(info.contains("cluster_known_nodes:1\r\n") && info.contains("cluster_size:1\r\n"));
        // A real shard without a master: the state says so.
        let missing = View { uncovered: 5461, ..view(false) };
        let Value::Bulk(info) = value(ask(&missing, "CLUSTER INFO")) else { panic!() };
        let info = String::from_utf8(info).unwrap();
        assert!(
            info.contains("cluster_state:fail") && info.contains("cluster_slots_ok:10923"),
            "{info}"
        );
    }

    #[test]
    fn keyslot_myid_and_slot_questions() {
        let v = view(false);
        assert_eq!(value(ask(&v, "CLUSTER KEYSLOT foo")), Value::Integer(12182));
        assert_eq!(
            value(ask(&v, "CLUSTER KEYSLOT {user1}.a")),
            Value::Integer(i64::from(key_slot(b"user1")))
        );
        assert_eq!(value(ask(&v, "CLUSTER MYID")), bulk(v.id));
        assert_eq!(ask(&v, "CLUSTER COUNTKEYSINSLOT 100"), ClusterAnswer::ToSlot(100));
        assert_eq!(ask(&v, "CLUSTER GETKEYSINSLOT 16383 10"), ClusterAnswer::ToSlot(16383));
        assert_eq!(
            ask(&v, "CLUSTER COUNTKEYSINSLOT 16384"),
            ClusterAnswer::Refused("ERR Invalid slot".into())
        );
        assert_eq!(value(ask(&v, &format!("CLUSTER REPLICAS {}", v.id))), Value::Array(vec![]));
        assert!(
            matches!(ask(&v, "CLUSTER REPLICAS abc"), ClusterAnswer::Refused(e) if e.contains("Unknown node"))
        );
    }

    #[test]
    fn commands_that_change_the_cluster_are_refused_with_a_reason() {
        for line in
            ["CLUSTER FAILOVER", "CLUSTER MEET 1.2.3.4 7001", "CLUSTER ADDSLOTS 1", "CLUSTER RESET"]
        {
            match ask(&view(false), line) {
                ClusterAnswer::Refused(e) => assert!(e.contains("run it on a node"), "{line}: {e}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }
}
