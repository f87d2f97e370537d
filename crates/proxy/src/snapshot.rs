//! The proxy's state at one moment, as data: what the stats page, `/metrics` and the JSON API
//! show. Built from the slot map, the health checks and the workers' statistics blocks.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use std::collections::HashMap;

use crate::health::NodeHealth;
use crate::metrics::HistogramSnapshot;
use crate::rates::{Rates, UNKNOWN};
use crate::shared::Shared;

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub proxy: ProxySummary,
    pub cluster: ClusterSummary,
    pub nodes: Vec<NodeSnapshot>,
    pub commands: Vec<CommandSnapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxySummary {
    pub version: &'static str,
    pub listen: String,
    pub uptime_secs: u64,
    pub threads: usize,
    pub read_from: &'static str,
    /// `master` (answered when the master ran it) or `replica` (once a replica confirmed it).
    pub write_ack: &'static str,
    pub clients_connected: usize,
    /// The most clients connected at once since the start.
    pub clients_peak: usize,
    /// `--max-clients`: more are refused.
    pub clients_max: usize,
    pub clients_total: u64,
    pub clients_rejected: u64,
    /// Bytes read from and written to clients.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub commands: u64,
    /// Error replies clients got: the sum of the command rows' errors (the unknown-command
    /// row included), so the two always agree.
    pub errors: u64,
    /// Per-second rates over the last few seconds (none in the first second).
    pub rates: Option<Rates>,
    pub moved: u64,
    pub ask: u64,
    pub retries: u64,
    pub outcome_unknown: u64,
    /// With `--write-ack replica`: writes a replica confirmed, and writes it did not (in time).
    pub acks_confirmed: u64,
    pub acks_missing: u64,
    pub protocol_errors: u64,
    pub topology_refreshes: u64,
    pub backend_connects: u64,
    pub backend_failures: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    /// `ok` when every slot has a master that is not failing, else `degraded`.
    pub state: &'static str,
    pub masters: usize,
    pub slots_uncovered: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSnapshot {
    pub addr: String,
    /// From the slot map: `master` or `replica`.
    pub role: &'static str,
    /// A replica's master.
    pub master: Option<String>,
    pub slots: String,
    pub slot_count: usize,
    /// `up`, `down` (last check failed) or `unknown` (not checked yet).
    pub state: &'static str,
    pub health: Option<NodeHealth>,
    /// The proxy's own traffic to the node.
    pub connections: i64,
    pub replies: u64,
    pub errors: u64,
    /// Replies per second the proxy read from the node.
    pub ops_per_sec: Option<f64>,
    /// Estimated from the histogram (see [`HistogramSnapshot::estimate_us`]).
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    pub latency: HistogramSnapshot,
    /// A replica: how far behind its master it is.
    pub replication: Option<Replication>,
}

/// A replica's distance from its master.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    pub master: String,
    /// Bytes of the master's replication stream the replica has not acknowledged.
    pub behind_bytes: u64,
    /// Seconds since the replica last acknowledged, as its master says (when it lists it).
    pub lag_secs: Option<u64>,
    /// The link as the master lists it (`online`, `wait_bgsave`, ...), or `unlisted`.
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandSnapshot {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub ops_per_sec: Option<f64>,
    pub errors_per_sec: Option<f64>,
    /// Estimated from the histogram (see [`HistogramSnapshot::estimate_us`]).
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    pub latency: HistogramSnapshot,
}

/// The name of the row for requests that named no known command (and invalid RESP).
pub const UNKNOWN_COMMAND: &str = "(unknown)";

/// A latency percentile estimated from a histogram, in whole µs.
fn estimate(h: &HistogramSnapshot, q: f64) -> Option<u64> {
    h.estimate_us(q).map(|us| us.round() as u64)
}

/// Where a replica stands against its master: from the master's own list of replicas when it
/// has the replica on it (offset and lag read at one moment), else from the two nodes'
/// offsets as their last checks read them.
pub fn replication_of(
    replica: &str,
    master: &str,
    health: &HashMap<String, NodeHealth>,
) -> Option<Replication> {
    let master_health = health.get(master).filter(|h| h.up)?;
    let master_offset = master_health.figures.master_repl_offset;
    if let Some(link) = master_health.figures.replicas.iter().find(|r| r.addr == replica) {
        return Some(Replication {
            master: master.to_string(),
            behind_bytes: master_offset.saturating_sub(link.offset),
            lag_secs: Some(link.lag_secs),
            state: link.state.clone(),
        });
    }
    let replica_health = health.get(replica).filter(|h| h.up)?;
    Some(Replication {
        master: master.to_string(),
        behind_bytes: master_offset.saturating_sub(replica_health.figures.master_repl_offset),
        lag_secs: None,
        state: "unlisted".to_string(),
    })
}

impl Shared {
    pub fn snapshot(&self, listen: &str) -> Snapshot {
        let stats = &self.stats;
        let map = self.map();
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let traffic = self.registry.nodes();
        let rates = self.rates.lock().unwrap_or_else(|e| e.into_inner()).rates();
        let (bytes_in, bytes_out) = self.registry.traffic();
        let commands = self.command_snapshots(rates.as_ref());
        let proxy = ProxySummary {
            version: env!("CARGO_PKG_VERSION"),
            listen: listen.to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            threads: self.config.threads,
            read_from: match self.config.read_from {
                crate::ReadFrom::Master => "master",
                crate::ReadFrom::Replica => "replica",
            },
            write_ack: match self.config.write_ack {
                crate::WriteAck::Master => "master",
                crate::WriteAck::Replica => "replica",
            },
            clients_connected: stats.clients_connected.load(Relaxed),
            clients_peak: stats.clients_peak.load(Relaxed),
            clients_max: self.config.max_clients,
            clients_total: stats.clients_total.load(Relaxed),
            clients_rejected: stats.clients_rejected.load(Relaxed),
            bytes_in,
            bytes_out,
            commands: stats.commands.load(Relaxed),
            errors: commands.iter().map(|c| c.errors).sum(),
            moved: stats.moved.load(Relaxed),
            ask: stats.ask.load(Relaxed),
            retries: stats.retries.load(Relaxed),
            outcome_unknown: stats.outcome_unknown.load(Relaxed),
            acks_confirmed: stats.acks_confirmed.load(Relaxed),
            acks_missing: stats.acks_missing.load(Relaxed),
            protocol_errors: stats.protocol_errors.load(Relaxed),
            topology_refreshes: stats.topology_refreshes.load(Relaxed),
            backend_connects: stats.backend_connects.load(Relaxed),
            backend_failures: stats.backend_failures.load(Relaxed),
            rates: rates.clone(),
        };
        let cluster = ClusterSummary {
            state: if map.is_complete() { "ok" } else { "degraded" },
            masters: map.serving_masters().len(),
            slots_uncovered: map.uncovered(),
        };
        let slots = map.slots_by_node();
        let mut nodes: Vec<NodeSnapshot> = map
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let owned = &slots[i];
                let replication = node
                    .master
                    .filter(|_| !node.is_master)
                    .and_then(|m| replication_of(&node.addr, map.addr(m), &health));
                let ops_per_sec = rates.as_ref().and_then(|r| r.node_replies.get(&node.addr));
                let health = health.get(&node.addr).cloned();
                let (replies, errors, connections, latency) = traffic
                    .iter()
                    .find(|t| t.0 == node.addr)
                    .map(|t| (t.1, t.2, t.3, t.4.clone()))
                    .unwrap_or_default();
                NodeSnapshot {
                    addr: node.addr.clone(),
                    role: if node.is_master { "master" } else { "replica" },
                    master: node.master.map(|m| map.addr(m).to_string()),
                    slots: cluster::topology::format_ranges(&cluster::topology::ranges_of(
                        owned.iter().copied(),
                    )),
                    slot_count: owned.len(),
                    state: match &health {
                        Some(h) if h.up => "up",
                        Some(_) => "down",
                        None => "unknown",
                    },
                    health,
                    connections,
                    replies,
                    errors,
                    ops_per_sec: ops_per_sec.copied(),
                    latency_p50_us: estimate(&latency, 0.5),
                    latency_p99_us: estimate(&latency, 0.99),
                    latency,
                    replication,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.addr.cmp(&b.addr));
        Snapshot { proxy, cluster, nodes, commands }
    }

    /// One row per command called, with its rates; then one for unknown commands if any.
    fn command_snapshots(&self, rates: Option<&Rates>) -> Vec<CommandSnapshot> {
        let rates_of = |id: usize| rates.map(|r| r.commands.get(&id).copied().unwrap_or_default());
        let mut rows: Vec<CommandSnapshot> = self
            .registry
            .commands()
            .into_iter()
            .map(|(id, calls, errors, latency)| CommandSnapshot {
                name: self.table.name_of(id).to_string(),
                calls,
                errors,
                ops_per_sec: rates_of(id).map(|r| r.0),
                errors_per_sec: rates_of(id).map(|r| r.1),
                latency_p50_us: estimate(&latency, 0.5),
                latency_p99_us: estimate(&latency, 0.99),
                latency,
            })
            .collect();
        let unknown = self.registry.unknown_errors();
        if unknown > 0 {
            rows.push(CommandSnapshot {
                name: UNKNOWN_COMMAND.to_string(),
                calls: unknown,
                errors: unknown,
                ops_per_sec: rates_of(UNKNOWN).map(|r| r.0),
                errors_per_sec: rates_of(UNKNOWN).map(|r| r.1),
                latency_p50_us: None,
                latency_p99_us: None,
                latency: HistogramSnapshot::default(),
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{NodeFigures, ReplicaLink};

    fn node(up: bool, offset: u64, replicas: Vec<ReplicaLink>) -> NodeHealth {
        NodeHealth {
            up,
            role: String::new(),
            checked_at_ms: 0,
            ping_us: 0,
            error: None,
            ops_per_sec: 0,
            connected_clients: 0,
            used_memory_human: String::new(),
            failures: 0,
            last_up_ms: None,
            down_since_ms: None,
            figures: NodeFigures { master_repl_offset: offset, replicas, ..Default::default() },
        }
    }

    #[test]
    fn replication_lag_from_the_masters_list_then_from_both_offsets() {
        let link =
            ReplicaLink { addr: "r:2".into(), state: "online".into(), offset: 700, lag_secs: 1 };
        let mut health = HashMap::from([
            ("m:1".to_string(), node(true, 1000, vec![link])),
            ("r:2".to_string(), node(true, 990, vec![])),
            ("r:3".to_string(), node(true, 400, vec![])),
        ]);
        let listed = replication_of("r:2", "m:1", &health).unwrap();
        assert_eq!((listed.behind_bytes, listed.lag_secs), (300, Some(1)));
        assert_eq!(listed.state, "online");
        let unlisted = replication_of("r:3", "m:1", &health).unwrap();
        assert_eq!((unlisted.behind_bytes, unlisted.lag_secs), (600, None));
        assert_eq!(unlisted.state, "unlisted");
        // A replica ahead of an older reading of its master is not behind.
        health.get_mut("r:3").unwrap().figures.master_repl_offset = 5000;
        assert_eq!(replication_of("r:3", "m:1", &health).unwrap().behind_bytes, 0);
        // Nothing to say while the master is down.
        health.get_mut("m:1").unwrap().up = false;
        assert_eq!(replication_of("r:2", "m:1", &health), None);
    }
}
