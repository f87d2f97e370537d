//! The health of the whole system as data: the cluster, its shards, every node, the proxies and
//! the floating IP. Built by [`crate::poll`] once per interval; the alarm rules and the healing
//! planner read two successive models and nothing else, so they are tested on models built by
//! hand or recorded from a real cluster.

use serde::{Deserialize, Serialize};

/// One observation of everything the monitor watches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// When the poll that built this model started, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub cluster: ClusterHealth,
    /// Every node the cluster knows of or the monitor has seen, sorted by address.
    pub nodes: Vec<NodeHealth>,
    pub proxies: Vec<ProxyHealth>,
    /// `None` when no VIP is configured.
    pub vip: Option<VipHealth>,
}

/// The cluster as the reference node (the seed, else the best-informed reachable node) sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterHealth {
    /// The node whose `CLUSTER INFO` / `CLUSTER NODES` this is; empty when none answered.
    pub reporter: String,
    /// `ok`, `fail`, or `unknown` when no node answered.
    pub state: String,
    pub slots_assigned: u64,
    pub slots_ok: u64,
    pub slots_pfail: u64,
    pub slots_fail: u64,
    pub known_nodes: u64,
    pub size: u64,
    pub current_epoch: u64,
}

/// One node: what the cluster says of it (id, role, flags) and what it says of itself (INFO).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeHealth {
    /// `ip:port`.
    pub addr: String,
    /// The id the cluster knows this address by (empty when the cluster does not list it).
    pub id: String,
    /// `master`, `replica` or `unknown`, as the cluster lists it.
    pub role: String,
    /// The id of the master a replica follows.
    pub master_id: Option<String>,
    /// Slots served (masters).
    pub slot_count: u64,
    /// Which slots (masters): what a rebalance plan is made from.
    #[serde(default)]
    pub slots: Vec<cluster::topology::SlotRange>,
    /// The cluster marks it `fail?` (the reference node suspects it).
    pub pfail: bool,
    /// The cluster marks it `fail` (a majority of masters agreed).
    pub fail: bool,
    /// Did it answer the monitor's poll?
    pub reachable: bool,
    /// Why not, when it did not.
    pub error: Option<String>,
    /// What it says of itself; `None` when unreachable.
    pub own: Option<OwnReport>,
}

/// A node's answers to `INFO all`, `CLUSTER INFO`, `CLUSTER NODES` (its own line),
/// `LATENCY LATEST` and `SLOWLOG LEN`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OwnReport {
    /// The id the node gives itself (differs from [`NodeHealth::id`] when it came back empty).
    pub id: String,
    pub run_id: String,
    pub uptime_s: u64,
    /// `master` or `slave` as INFO says.
    pub role: String,
    pub cluster_state: String,
    /// How many nodes it knows of: 1 for a node that lost its nodes.conf.
    pub known_nodes: u64,
    pub keys: u64,
    pub used_memory: u64,
    /// 0 when unlimited.
    pub maxmemory: u64,
    pub evicted_keys: u64,
    pub rejected_connections: u64,
    pub connected_clients: u64,
    pub connected_replicas: u64,
    pub ops_per_sec: u64,
    /// `master_repl_offset` of a master, `slave_repl_offset` of a replica.
    pub repl_offset: u64,
    /// Replicas only: `master_link_status:up`.
    pub master_link_up: Option<bool>,
    /// Replicas only.
    pub master_last_io_s: Option<u64>,
    /// Slots it is migrating or importing.
    pub open_slots: Vec<OpenSlot>,
    /// `LATENCY LATEST` events.
    pub latency: Vec<LatencyEvent>,
    pub slowlog_len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSlot {
    pub slot: u16,
    /// `migrating` or `importing`.
    pub state: String,
    /// The node id on the other side.
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyEvent {
    pub event: String,
    /// Unix seconds of the latest spike.
    pub at_s: u64,
    pub latest_ms: u64,
    pub max_ms: u64,
}

/// A redkeep proxy, from its `INFO proxy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyHealth {
    pub addr: String,
    pub up: bool,
    pub error: Option<String>,
    pub masters: u64,
    pub slots_uncovered: u64,
    pub connected_clients: u64,
}

/// Which load balancers hold the floating IP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VipHealth {
    pub address: String,
    /// Names of the LBs whose check found the address on them.
    pub holders: Vec<String>,
    /// LBs whose check could not run (unknown either way).
    pub unknown: Vec<String>,
}

/// A master and its replicas, as the cluster lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard<'a> {
    pub master: &'a NodeHealth,
    pub replicas: Vec<&'a NodeHealth>,
}

impl NodeHealth {
    pub fn is_master(&self) -> bool {
        self.role == "master"
    }

    /// The host part of the address.
    pub fn host(&self) -> &str {
        self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(host, _)| host)
    }

    pub fn port(&self) -> Option<u16> {
        self.addr.rsplit_once(':').and_then(|(_, port)| port.parse().ok())
    }

    /// Down in the monitor's eyes or the cluster's.
    pub fn is_down(&self) -> bool {
        !self.reachable || self.fail
    }

    /// Answers, is not marked failing, and (as a replica) has its link to the master up.
    pub fn is_healthy_replica(&self) -> bool {
        self.reachable
            && !self.fail
            && !self.pfail
            && self.own.as_ref().is_some_and(|o| o.master_link_up == Some(true))
    }

    /// It answers, but under an id the cluster does not know, knowing only itself: it lost its
    /// `nodes.conf` (a wiped disk, a new container) and must be re-attached.
    pub fn came_back_empty(&self) -> bool {
        self.own
            .as_ref()
            .is_some_and(|o| o.known_nodes <= 1 && !self.id.is_empty() && o.id != self.id)
    }
}

impl Model {
    pub fn node(&self, addr: &str) -> Option<&NodeHealth> {
        self.nodes.iter().find(|n| n.addr == addr)
    }

    pub fn node_by_id(&self, id: &str) -> Option<&NodeHealth> {
        self.nodes.iter().find(|n| !id.is_empty() && n.id == id)
    }

    /// Masters that serve slots, each with the replicas the cluster lists for it.
    pub fn shards(&self) -> Vec<Shard<'_>> {
        self.nodes
            .iter()
            .filter(|n| n.is_master() && n.slot_count > 0)
            .map(|master| Shard {
                master,
                replicas: self
                    .nodes
                    .iter()
                    .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
                    .collect(),
            })
            .collect()
    }

    /// Masters with slots that answer the monitor, and all masters with slots.
    pub fn visible_masters(&self) -> (usize, usize) {
        let shards = self.shards();
        let visible = shards.iter().filter(|s| s.master.reachable).count();
        (visible, shards.len())
    }

    /// Can this monitor see more than half the masters? If not, it may be the one cut off,
    /// and must not act on what it sees.
    pub fn sees_majority(&self) -> bool {
        let (visible, all) = self.visible_masters();
        all > 0 && visible * 2 > all
    }

    /// Why [`Model::sees_majority`] is false, naming what this monitor reached and what not.
    pub fn no_majority_reason(&self) -> String {
        let (visible, all) = self.visible_masters();
        let unreached: Vec<&str> =
            self.nodes.iter().filter(|n| !n.reachable).map(|n| n.addr.as_str()).collect();
        let reached = self.nodes.len() - unreached.len();
        if all == 0 {
            return format!(
                "this monitor reached {reached} of the {} nodes it knows and no master serving \
                 slots, so it cannot see a majority of masters (could not reach: {}): it may be \
                 the one cut off",
                self.nodes.len(),
                list_or_none(&unreached)
            );
        }
        let masters_unreached: Vec<&str> = self
            .shards()
            .iter()
            .filter(|s| !s.master.reachable)
            .map(|s| s.master.addr.as_str())
            .collect();
        format!(
            "this monitor reached {visible} of {all} masters, not a majority (could not reach \
             masters {}): it may be the one cut off",
            list_or_none(&masters_unreached)
        )
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}
