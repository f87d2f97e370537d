//! `redkeep status`: what every node is doing, as one report. Pure: built from a topology and
//! each node's `INFO`, rendered as a table or serialized as JSON.

use serde::Serialize;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub summary: Summary,
    pub nodes: Vec<NodeStatus>,
}

/// The cluster as the node we asked sees it (`CLUSTER INFO`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The node that answered `CLUSTER INFO` and `CLUSTER NODES`.
    pub reporter: String,
    pub state: String,
    pub slots_assigned: u64,
    pub slots_ok: u64,
    pub slots_pfail: u64,
    pub slots_fail: u64,
    pub known_nodes: u64,
    pub size: u64,
    pub current_epoch: u64,
}

/// One node: what the cluster says of it, and what it says of itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub id: String,
    pub addr: String,
    /// `master` or `replica`.
    pub role: String,
    pub master_addr: Option<String>,
    /// Slot ranges like `0-5460,10923`, empty for none.
    pub slots: String,
    pub slot_count: u64,
    /// As `CLUSTER NODES` prints them, `myself` left out: `fail`, `fail?`, `handshake`, ...
    pub flags: Vec<String>,
    /// `connected` or `disconnected`.
    pub link: String,
    /// False when the node did not answer `INFO`.
    pub reachable: bool,
    pub used_memory: Option<u64>,
    pub ops_per_sec: Option<u64>,
    /// `master_repl_offset` of a master, `slave_repl_offset` of a replica.
    pub repl_offset: Option<u64>,
    /// Bytes a replica is behind its master (offsets compared).
    pub repl_lag: Option<u64>,
}

/// What a node says of itself in `INFO`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelfReport {
    pub used_memory: Option<u64>,
    pub ops_per_sec: Option<u64>,
    pub repl_offset: Option<u64>,
}

impl SelfReport {
    /// From parsed `INFO` pairs (see [`crate::admin::parse_info`]).
    pub fn from_info(info: &[(String, String)]) -> SelfReport {
        let number = |field: &str| crate::admin::info_field(info, field)?.parse().ok();
        let is_replica = crate::admin::info_field(info, "role") == Some("slave");
        SelfReport {
            used_memory: number("used_memory"),
            ops_per_sec: number("instantaneous_ops_per_sec"),
            repl_offset: if is_replica {
                number("slave_repl_offset")
            } else {
                number("master_repl_offset")
            },
        }
    }
}

impl Summary {
    /// From `CLUSTER INFO` pairs.
    pub fn from_cluster_info(reporter: &str, info: &[(String, String)]) -> Summary {
        let number = |field: &str| {
            crate::admin::info_field(info, field).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Summary {
            reporter: reporter.to_string(),
            state: crate::admin::info_field(info, "cluster_state").unwrap_or("unknown").to_string(),
            slots_assigned: number("cluster_slots_assigned"),
            slots_ok: number("cluster_slots_ok"),
            slots_pfail: number("cluster_slots_pfail"),
            slots_fail: number("cluster_slots_fail"),
            known_nodes: number("cluster_known_nodes"),
            size: number("cluster_size"),
            current_epoch: number("cluster_current_epoch"),
        }
    }
}

/// Fills in each replica's lag from its master's offset.
pub fn fill_lag(nodes: &mut [NodeStatus]) {
    let offsets: Vec<(String, Option<u64>)> =
        nodes.iter().map(|n| (n.addr.clone(), n.repl_offset)).collect();
    for node in nodes.iter_mut() {
        let Some(master) = &node.master_addr else { continue };
        let master_offset = offsets.iter().find(|(addr, _)| addr == master).and_then(|(_, o)| *o);
        if let (Some(master_offset), Some(own)) = (master_offset, node.repl_offset) {
            node.repl_lag = Some(master_offset.saturating_sub(own));
        }
    }
}

impl StatusReport {
    /// The report as a fixed-width table followed by the summary.
    pub fn render(&self) -> String {
        let dash = || "-".to_string();
        let mut rows = vec![
            [
                "ID", "ADDRESS", "ROLE", "MASTER", "SLOTS", "FLAGS", "LINK", "MEMORY", "OPS/S",
                "OFFSET", "LAG",
            ]
            .map(String::from),
        ];
        for n in &self.nodes {
            let flags = if n.flags.is_empty() { dash() } else { n.flags.join(",") };
            let or_dash = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
            rows.push([
                n.id.chars().take(8).collect(),
                n.addr.clone(),
                n.role.clone(),
                n.master_addr.clone().unwrap_or_else(dash),
                if n.slots.is_empty() { dash() } else { n.slots.clone() },
                flags,
                if n.reachable { n.link.clone() } else { format!("{} (unreachable)", n.link) },
                n.used_memory.map_or_else(dash, human_bytes),
                or_dash(n.ops_per_sec),
                or_dash(n.repl_offset),
                or_dash(n.repl_lag),
            ]);
        }
        let mut out = render_table(&rows);
        let s = &self.summary;
        out.push_str(&format!(
            "\ncluster_state: {}   slots: {} assigned, {} ok, {} pfail, {} fail   \
             known nodes: {}   masters with slots: {}   current epoch: {}   (as seen by {})\n",
            s.state,
            s.slots_assigned,
            s.slots_ok,
            s.slots_pfail,
            s.slots_fail,
            s.known_nodes,
            s.size,
            s.current_epoch,
            s.reporter
        ));
        out
    }
}

/// Left-aligned columns, two spaces apart.
pub fn render_table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> =
        (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `1.5M`-style sizes, as `INFO`'s `used_memory_human` prints them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.2}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addr: &str, master: Option<&str>, offset: u64) -> NodeStatus {
        NodeStatus {
            id: format!("id-{addr}"),
            addr: addr.into(),
            role: if master.is_some() { "replica" } else { "master" }.into(),
            master_addr: master.map(String::from),
            slots: String::new(),
            slot_count: 0,
            flags: vec![],
            link: "connected".into(),
            reachable: true,
            used_memory: Some(1_572_864),
            ops_per_sec: Some(3),
            repl_offset: Some(offset),
            repl_lag: None,
        }
    }

    #[test]
    fn lag_is_master_offset_minus_replica_offset() {
        let mut nodes = vec![node("a:1", None, 1000), node("b:2", Some("a:1"), 900)];
        fill_lag(&mut nodes);
        assert_eq!(nodes[0].repl_lag, None);
        assert_eq!(nodes[1].repl_lag, Some(100));
    }

    #[test]
    fn summary_from_cluster_info() {
        let info = crate::admin::parse_info(
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:10923\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:5461\r\ncluster_known_nodes:6\r\n\
             cluster_size:3\r\ncluster_current_epoch:7\r\n",
        );
        let s = Summary::from_cluster_info("127.0.0.1:7001", &info);
        assert_eq!((s.state.as_str(), s.slots_fail, s.current_epoch), ("fail", 5461, 7));
    }

    #[test]
    fn table_aligns_columns_and_shows_summary() {
        let report = StatusReport {
            summary: Summary::from_cluster_info("x:1", &[]),
            nodes: vec![
                node("127.0.0.1:7001", None, 5),
                node("127.0.0.1:7004", Some("127.0.0.1:7001"), 5),
            ],
        };
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"));
        assert_eq!(lines[1].find("127.0.0.1:7001"), lines[0].find("ADDRESS"));
        assert!(lines[1].contains("1.50M"));
        assert!(text.contains("cluster_state: unknown"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1024 * 1024 * 3 / 2), "1.50M");
    }
}
