//! The proxy's state at one moment, as data: what the stats page, `/metrics` and the JSON API
//! show. Built from the slot map, the health checks and the workers' statistics blocks.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use crate::health::NodeHealth;
use crate::metrics::HistogramSnapshot;
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
    pub clients_total: u64,
    pub clients_rejected: u64,
    pub commands: u64,
    pub errors: u64,
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
    pub latency_p50_us: Option<u64>,
    pub latency_p99_us: Option<u64>,
    pub latency: HistogramSnapshot,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandSnapshot {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub latency: HistogramSnapshot,
}

impl Shared {
    pub fn snapshot(&self, listen: &str) -> Snapshot {
        let stats = &self.stats;
        let map = self.map();
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let traffic = self.registry.nodes();
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
            clients_total: stats.clients_total.load(Relaxed),
            clients_rejected: stats.clients_rejected.load(Relaxed),
            commands: stats.commands.load(Relaxed),
            errors: stats.errors.load(Relaxed),
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
                    latency_p50_us: latency.percentile_us(0.5),
                    latency_p99_us: latency.percentile_us(0.99),
                    latency,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.addr.cmp(&b.addr));
        let commands = self
            .registry
            .commands()
            .into_iter()
            .map(|(id, calls, errors, latency)| CommandSnapshot {
                name: self.table.name_of(id).to_string(),
                calls,
                errors,
                latency,
            })
            .collect();
        Snapshot { proxy, cluster, nodes, commands }
    }
}
