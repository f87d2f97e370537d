//! One model of a cluster, parsed from `CLUSTER NODES` (text) or `CLUSTER SHARDS` (RESP) as
//! Redis 7.0 prints them. Everything else (status, check, fix, the proxy's slot map) reads
//! this model rather than the raw outputs.

use serde::Serialize;

use crate::slot::SLOT_COUNT;
use resp::Value;

/// The nodes one node knows of, itself included.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Topology {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Node {
    pub id: String,
    /// Empty when the node has no known address (`noaddr`).
    pub ip: String,
    pub port: u16,
    pub bus_port: u16,
    pub hostname: Option<String>,
    pub role: Role,
    /// The master a replica follows.
    pub master_id: Option<String>,
    pub flags: Flags,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub config_epoch: u64,
    pub link: Link,
    pub slots: Vec<SlotRange>,
    /// Slots this node is moving away, with the node they go to.
    pub migrating: Vec<OpenSlot>,
    /// Slots this node is receiving, with the node they come from.
    pub importing: Vec<OpenSlot>,
    /// `CLUSTER SHARDS` only: `online`, `fail` (`failed` in the docs) or `loading`.
    pub health: Option<String>,
    /// `CLUSTER SHARDS` only.
    pub replication_offset: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Replica,
    /// Neither flag yet (a node in handshake, or `noflags`).
    Unknown,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    pub myself: bool,
    /// `fail?`: this node suspects it is down.
    pub pfail: bool,
    /// `fail`: the majority of masters agreed it is down.
    pub fail: bool,
    pub handshake: bool,
    pub noaddr: bool,
    pub nofailover: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    Connected,
    Disconnected,
}

/// Slots `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenSlot {
    pub slot: u16,
    pub node_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse {what}: {reason}")]
pub struct ParseError {
    pub what: &'static str,
    pub reason: String,
}

fn nodes_error(line: &str, reason: impl Into<String>) -> ParseError {
    ParseError { what: "CLUSTER NODES", reason: format!("{} in line `{line}`", reason.into()) }
}

fn shards_error(reason: impl Into<String>) -> ParseError {
    ParseError { what: "CLUSTER SHARDS", reason: reason.into() }
}

impl SlotRange {
    pub fn len(&self) -> u64 {
        u64::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, slot: u16) -> bool {
        (self.start..=self.end).contains(&slot)
    }
}

impl std::fmt::Display for SlotRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Joins slot ranges as `0-5460,10923`.
pub fn format_ranges(ranges: &[SlotRange]) -> String {
    ranges.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Collapses a sorted list of slots into ranges.
pub fn ranges_of(slots: impl IntoIterator<Item = u16>) -> Vec<SlotRange> {
    let mut ranges: Vec<SlotRange> = Vec::new();
    for slot in slots {
        match ranges.last_mut() {
            Some(last) if last.end + 1 == slot => last.end = slot,
            _ => ranges.push(SlotRange { start: slot, end: slot }),
        }
    }
    ranges
}

impl Role {
    /// `master`, `replica` or `unknown`, as status output and JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        }
    }
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Connected => "connected",
            Link::Disconnected => "disconnected",
        }
    }
}

impl Flags {
    /// The flags as `CLUSTER NODES` spells them, role and `myself` left out.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.pfail, "fail?"),
            (self.fail, "fail"),
            (self.handshake, "handshake"),
            (self.noaddr, "noaddr"),
            (self.nofailover, "nofailover"),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect()
    }
}

impl Node {
    /// `ip:port`, the address clients use.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    pub fn is_master(&self) -> bool {
        self.role == Role::Master
    }

    /// Marked `fail` or `fail?`.
    pub fn is_failing(&self) -> bool {
        self.flags.fail || self.flags.pfail
    }

    pub fn slot_count(&self) -> u64 {
        self.slots.iter().map(SlotRange::len).sum()
    }
}

impl Topology {
    pub fn masters(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.is_master())
    }

    pub fn replicas_of<'a>(&'a self, master_id: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.master_id.as_deref() == Some(master_id))
    }

    pub fn by_id(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn by_addr(&self, addr: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.addr() == addr)
    }

    /// The node that produced this view (`CLUSTER NODES` only).
    pub fn myself(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.flags.myself)
    }

    /// For every slot, the index in `nodes` of the master serving it.
    pub fn slot_owners(&self) -> Vec<Option<usize>> {
        let mut owners = vec![None; usize::from(SLOT_COUNT)];
        for (i, node) in self.nodes.iter().enumerate() {
            for range in &node.slots {
                for slot in range.start..=range.end {
                    owners[usize::from(slot)] = Some(i);
                }
            }
        }
        owners
    }

    /// How many slots some node serves.
    pub fn covered_slots(&self) -> u64 {
        self.slot_owners().iter().filter(|o| o.is_some()).count() as u64
    }
}

/// Parses `CLUSTER NODES` output of Redis 7.0.
pub fn parse_cluster_nodes(text: &str) -> Result<Topology, ParseError> {
    let nodes = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(parse_node_line);
    Ok(Topology { nodes: nodes.collect::<Result<_, _>>()? })
}

fn parse_node_line(line: &str) -> Result<Node, ParseError> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if fields.len() < 8 {
        return Err(nodes_error(line, "fewer than 8 fields"));
    }
    let number = |i: usize, name: &str| {
        fields[i]
            .parse::<u64>()
            .map_err(|_| nodes_error(line, format!("bad {name} `{}`", fields[i])))
    };
    let (ip, port, bus_port, hostname) = parse_address(fields[1])
        .ok_or_else(|| nodes_error(line, format!("bad address `{}`", fields[1])))?;
    let (role, flags) = parse_flags(fields[2]);
    let master_id = (fields[3] != "-").then(|| fields[3].to_string());
    let link = match fields[7] {
        "connected" => Link::Connected,
        "disconnected" => Link::Disconnected,
        other => return Err(nodes_error(line, format!("bad link state `{other}`"))),
    };
    let mut node = Node {
        id: fields[0].to_string(),
        ip,
        port,
        bus_port,
        hostname,
        role,
        master_id,
        flags,
        ping_sent: number(4, "ping-sent")?,
        pong_received: number(5, "pong-recv")?,
        config_epoch: number(6, "config-epoch")?,
        link,
        slots: Vec::new(),
        migrating: Vec::new(),
        importing: Vec::new(),
        health: None,
        replication_offset: None,
    };
    for field in &fields[8..] {
        parse_slot_field(field, &mut node)
            .ok_or_else(|| nodes_error(line, format!("bad slot `{field}`")))?;
    }
    Ok(node)
}

/// `ip:port@cport[,hostname]`; `:0@0` for a node without address.
fn parse_address(field: &str) -> Option<(String, u16, u16, Option<String>)> {
    let (address, hostname) = match field.split_once(',') {
        Some((address, hostname)) => {
            (address, (!hostname.is_empty()).then(|| hostname.to_string()))
        }
        None => (field, None),
    };
    let (ip_port, bus) = address.split_once('@')?;
    let (ip, port) = ip_port.rsplit_once(':')?;
    // A `cport` may carry extra fields after a comma in later versions; the number comes first.
    let bus = bus.split(',').next()?;
    Some((ip.to_string(), port.parse().ok()?, bus.parse().ok()?, hostname))
}

fn parse_flags(field: &str) -> (Role, Flags) {
    let mut role = Role::Unknown;
    let mut flags = Flags::default();
    for flag in field.split(',') {
        match flag {
            "myself" => flags.myself = true,
            "master" => role = Role::Master,
            "slave" => role = Role::Replica,
            "fail?" => flags.pfail = true,
            "fail" => flags.fail = true,
            "handshake" => flags.handshake = true,
            "noaddr" => flags.noaddr = true,
            "nofailover" => flags.nofailover = true,
            _ => {} // `noflags` and flags of later versions
        }
    }
    (role, flags)
}

/// `5`, `0-5460`, `[5->-id]` (migrating), `[5-<-id]` (importing).
fn parse_slot_field(field: &str, node: &mut Node) -> Option<()> {
    if let Some(open) = field.strip_prefix('[').and_then(|f| f.strip_suffix(']')) {
        if let Some((slot, id)) = open.split_once("->-") {
            node.migrating.push(OpenSlot { slot: slot_number(slot)?, node_id: id.to_string() });
        } else {
            let (slot, id) = open.split_once("-<-")?;
            node.importing.push(OpenSlot { slot: slot_number(slot)?, node_id: id.to_string() });
        }
        return Some(());
    }
    let (start, end) = field.split_once('-').unwrap_or((field, field));
    let (start, end) = (slot_number(start)?, slot_number(end)?);
    (start <= end).then(|| node.slots.push(SlotRange { start, end }))
}

fn slot_number(text: &str) -> Option<u16> {
    text.parse().ok().filter(|&s| s < SLOT_COUNT)
}

/// Parses the `CLUSTER SHARDS` reply of Redis 7.0, RESP2 (flat key/value arrays) or RESP3
/// (maps). Replicas get the shard's master as their master; slots belong to the master.
pub fn parse_cluster_shards(reply: &Value) -> Result<Topology, ParseError> {
    let shards = reply.as_list().ok_or_else(|| shards_error("the reply is not a list"))?;
    let mut nodes = Vec::new();
    for shard in shards {
        let fields = pairs(shard).ok_or_else(|| shards_error("a shard is not a map"))?;
        let slots = slot_pairs(field(&fields, "slots"))?;
        let shard_nodes = field(&fields, "nodes").and_then(Value::as_list).unwrap_or(&[]);
        let mut parsed: Vec<Node> =
            shard_nodes.iter().map(parse_shard_node).collect::<Result<_, _>>()?;
        let master_id = parsed.iter().find(|n| n.is_master()).map(|n| n.id.clone());
        for node in &mut parsed {
            if node.is_master() {
                node.slots = slots.clone();
            } else {
                node.master_id = master_id.clone();
            }
        }
        nodes.extend(parsed);
    }
    Ok(Topology { nodes })
}

/// The key/value pairs of a RESP3 map or a RESP2 flat array.
fn pairs(value: &Value) -> Option<Vec<(String, &Value)>> {
    let text = |v: &Value| v.as_bytes().map(|b| String::from_utf8_lossy(b).into_owned());
    match value {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        Value::Array(items) if items.len() % 2 == 0 => {
            items.chunks(2).map(|kv| Some((text(&kv[0])?, &kv[1]))).collect()
        }
        _ => None,
    }
}

fn field<'a>(fields: &[(String, &'a Value)], name: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// `slots` is a flat list of start, end, start, end ...
fn slot_pairs(value: Option<&Value>) -> Result<Vec<SlotRange>, ParseError> {
    let items = value.and_then(Value::as_list).unwrap_or(&[]);
    let numbers: Vec<u16> = items
        .iter()
        .map(|v| match v {
            Value::Integer(n) => u16::try_from(*n).ok().filter(|&s| s < SLOT_COUNT),
            _ => None,
        })
        .collect::<Option<_>>()
        .ok_or_else(|| shards_error("a slot is not a number below 16384"))?;
    if !numbers.len().is_multiple_of(2) {
        return Err(shards_error("slots are not start/end pairs"));
    }
    Ok(numbers.chunks(2).map(|p| SlotRange { start: p[0], end: p[1] }).collect())
}

fn parse_shard_node(value: &Value) -> Result<Node, ParseError> {
    let fields = pairs(value).ok_or_else(|| shards_error("a node is not a map"))?;
    let text = |name: &str| {
        field(&fields, name)
            .and_then(Value::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let int = |name: &str| match field(&fields, name) {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    };
    let id = text("id").ok_or_else(|| shards_error("a node has no id"))?;
    let port = int("port").or(int("tls-port")).and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let health = text("health");
    let role = match text("role").as_deref() {
        Some("master") => Role::Master,
        Some("replica") => Role::Replica,
        _ => Role::Unknown,
    };
    // Redis 7.0.15 says `fail`; the documentation says `failed`.
    let failed = matches!(health.as_deref(), Some("fail" | "failed"));
    Ok(Node {
        id,
        ip: text("ip").unwrap_or_default(),
        port,
        bus_port: 0,
        hostname: text("hostname"),
        role,
        master_id: None,
        flags: Flags { fail: failed, ..Flags::default() },
        ping_sent: 0,
        pong_received: 0,
        config_epoch: 0,
        link: if failed { Link::Disconnected } else { Link::Connected },
        slots: Vec::new(),
        migrating: Vec::new(),
        importing: Vec::new(),
        health,
        replication_offset: int("replication-offset").and_then(|o| u64::try_from(o).ok()),
    })
}
