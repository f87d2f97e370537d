//! What is wrong with a cluster, from every node's own view of it: the checks of
//! `redis-cli --cluster check` (all nodes agree on the slot configuration, every slot covered,
//! no open slot) plus failed nodes, missing replicas, and replicas sharing a host with their
//! master. Pure: [`crate::ops::gather_views`] does the I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::slot::SLOT_COUNT;
use crate::topology::{Topology, format_ranges, ranges_of};

/// What one node told us, or why it could not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeView {
    pub addr: String,
    /// Its `CLUSTER NODES`, or the error that stopped us reading it.
    pub topology: Result<Topology, String>,
    /// `cluster_state` from its `CLUSTER INFO`.
    pub state: Option<String>,
    /// Its `DBSIZE`.
    pub keys: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    Unreachable {
        addr: String,
        error: String,
    },
    Disagreement {
        nodes: Vec<String>,
    },
    Uncovered {
        slots: String,
        count: u64,
    },
    OpenSlot {
        addr: String,
        slot: u16,
        state: String,
        peer: String,
    },
    Failing {
        addr: String,
        flag: String,
        reported_by: Vec<String>,
    },
    MissingReplicas {
        master: String,
        has: usize,
        expected: usize,
    },
    SameHost {
        master: String,
        replica: String,
        host: String,
    },
    /// Every node runs on one host: a development cluster, anti-affinity impossible.
    SingleHost {
        host: String,
    },
    StateNotOk {
        addr: String,
        state: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Unreachable { addr, error } => write!(f, "{addr} is unreachable: {error}"),
            Problem::Disagreement { nodes } => {
                write!(
                    f,
                    "Nodes don't agree about configuration! Differing views: {}",
                    nodes.join("; ")
                )
            }
            Problem::Uncovered { slots, count } => {
                write!(f, "{count} slots are not covered by any node: {slots}")
            }
            Problem::OpenSlot { addr, slot, state, peer } => {
                write!(f, "{addr} has slot {slot} open ({state} {peer})")
            }
            Problem::Failing { addr, flag, reported_by } => {
                write!(f, "{addr} is flagged {flag} by {}", reported_by.join(", "))
            }
            Problem::MissingReplicas { master, has, expected } => {
                write!(f, "master {master} has {has} replica(s), expected {expected}")
            }
            Problem::SameHost { master, replica, host } => {
                write!(f, "replica {replica} is on the same host ({host}) as its master {master}")
            }
            Problem::SingleHost { host } => write!(
                f,
                "every node runs on {host}: replicas share their master's host (fine for \
                 development; use three or more hosts in production)"
            ),
            Problem::StateNotOk { addr, state } => {
                write!(f, "{addr} reports cluster_state:{state}")
            }
        }
    }
}

/// The whole result: what was found and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub ok: bool,
    /// The node whose view the summary uses.
    pub reference: String,
    pub masters: Vec<MasterSummary>,
    pub covered_slots: u64,
    /// What makes the check fail.
    pub problems: Vec<Problem>,
    /// Worth knowing, not failing (a single-host cluster).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MasterSummary {
    pub id: String,
    pub addr: String,
    pub slots: String,
    pub slot_count: u64,
    pub keys: Option<u64>,
    pub replicas: Vec<String>,
}

/// Checks the views; `expected_replicas` is how many replicas every master should have.
pub fn check(views: &[NodeView], expected_replicas: usize) -> Report {
    let mut problems = Vec::new();
    let reachable: Vec<(&NodeView, &Topology)> =
        views.iter().filter_map(|v| v.topology.as_ref().ok().map(|t| (v, t))).collect();
    for view in views {
        if let Err(error) = &view.topology {
            problems.push(Problem::Unreachable { addr: view.addr.clone(), error: error.clone() });
        }
    }
    let Some(&(reference_view, reference)) = reachable.first() else {
        return Report {
            ok: false,
            reference: String::new(),
            masters: vec![],
            covered_slots: 0,
            problems,
            warnings: vec![],
        };
    };
    problems.extend(disagreement(&reachable));
    problems.extend(uncovered(reference));
    for (view, topology) in &reachable {
        problems.extend(open_slots(&view.addr, topology));
        if let Some(state) = view.state.as_deref().filter(|s| *s != "ok") {
            problems
                .push(Problem::StateNotOk { addr: view.addr.clone(), state: state.to_string() });
        }
    }
    problems.extend(failing(&reachable));
    problems.extend(missing_replicas(reference, expected_replicas));
    let (affinity_errors, warnings) = affinity(reference);
    problems.extend(affinity_errors);
    Report {
        ok: problems.is_empty(),
        reference: reference_view.addr.clone(),
        masters: summarize(reference, views),
        covered_slots: reference.covered_slots(),
        problems,
        warnings,
    }
}

/// A node's slot configuration: every master's id with the slots it serves, sorted.
pub(crate) fn signature(topology: &Topology) -> String {
    let mut parts: Vec<String> = topology
        .masters()
        .filter(|m| !m.slots.is_empty())
        .map(|m| format!("{}:{}", m.id, format_ranges(&m.slots)))
        .collect();
    parts.sort();
    parts.join("|")
}

fn disagreement(reachable: &[(&NodeView, &Topology)]) -> Option<Problem> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (view, topology) in reachable {
        groups.entry(signature(topology)).or_default().push(&view.addr);
    }
    (groups.len() > 1).then(|| Problem::Disagreement {
        nodes: groups.values().map(|addrs| addrs.join(", ")).collect(),
    })
}

fn uncovered(reference: &Topology) -> Option<Problem> {
    let owners = reference.slot_owners();
    let missing: Vec<u16> = (0..SLOT_COUNT).filter(|&s| owners[usize::from(s)].is_none()).collect();
    (!missing.is_empty()).then(|| Problem::Uncovered {
        count: missing.len() as u64,
        slots: format_ranges(&ranges_of(missing)),
    })
}

/// The slots `addr` itself has open (its own `myself` line is the authority on that).
fn open_slots(addr: &str, topology: &Topology) -> Vec<Problem> {
    let Some(me) = topology.myself() else { return vec![] };
    let peer = |id: &str| topology.by_id(id).map_or_else(|| id.to_string(), |n| n.addr());
    let migrating = me.migrating.iter().map(|o| (o.slot, "migrating to", peer(&o.node_id)));
    let importing = me.importing.iter().map(|o| (o.slot, "importing from", peer(&o.node_id)));
    migrating
        .chain(importing)
        .map(|(slot, state, peer)| Problem::OpenSlot {
            addr: addr.to_string(),
            slot,
            state: state.into(),
            peer,
        })
        .collect()
}

/// Nodes flagged `fail` or `fail?` by anyone, with who says so.
fn failing(reachable: &[(&NodeView, &Topology)]) -> Vec<Problem> {
    let mut flagged: BTreeMap<(String, &str), Vec<String>> = BTreeMap::new();
    for (view, topology) in reachable {
        for node in topology.nodes.iter().filter(|n| n.is_failing()) {
            let flag = if node.flags.fail { "fail" } else { "fail?" };
            flagged.entry((node.addr(), flag)).or_default().push(view.addr.clone());
        }
    }
    flagged
        .into_iter()
        .map(|((addr, flag), reported_by)| Problem::Failing {
            addr,
            flag: flag.into(),
            reported_by,
        })
        .collect()
}

fn missing_replicas(reference: &Topology, expected_replicas: usize) -> Vec<Problem> {
    reference
        .masters()
        .filter(|m| !m.slots.is_empty())
        .filter_map(|master| {
            let has = reference.replicas_of(&master.id).filter(|r| !r.is_failing()).count();
            (has < expected_replicas).then(|| Problem::MissingReplicas {
                master: master.addr(),
                has,
                expected: expected_replicas,
            })
        })
        .collect()
}

/// Replicas on their master's host: errors on a multi-host cluster, one warning on a
/// single-host one (where nothing better is possible).
fn affinity(reference: &Topology) -> (Vec<Problem>, Vec<Problem>) {
    let mut hosts: Vec<&str> = reference.nodes.iter().map(|n| n.ip.as_str()).collect();
    hosts.sort_unstable();
    hosts.dedup();
    if let [only] = hosts.as_slice() {
        return (vec![], vec![Problem::SingleHost { host: only.to_string() }]);
    }
    let mut problems = Vec::new();
    for master in reference.masters().filter(|m| !m.slots.is_empty()) {
        for replica in reference.replicas_of(&master.id).filter(|r| r.ip == master.ip) {
            problems.push(Problem::SameHost {
                master: master.addr(),
                replica: replica.addr(),
                host: master.ip.clone(),
            });
        }
    }
    (problems, vec![])
}

fn summarize(reference: &Topology, views: &[NodeView]) -> Vec<MasterSummary> {
    let keys_of = |addr: &str| views.iter().find(|v| v.addr == addr).and_then(|v| v.keys);
    let mut masters: Vec<&crate::topology::Node> =
        reference.masters().filter(|m| !m.slots.is_empty()).collect();
    masters.sort_by_key(|m| m.slots[0].start);
    masters
        .into_iter()
        .map(|m| MasterSummary {
            id: m.id.clone(),
            addr: m.addr(),
            slots: format_ranges(&m.slots),
            slot_count: m.slot_count(),
            keys: keys_of(&m.addr()),
            replicas: reference.replicas_of(&m.id).map(|r| r.addr()).collect(),
        })
        .collect()
}

impl Report {
    /// Text in the manner of `redis-cli --cluster check`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for m in &self.masters {
            let keys = m.keys.map_or("?".into(), |k| k.to_string());
            out += &format!(
                "{} ({}...) -> {keys} keys | {} slots | {} replicas.\n",
                m.addr,
                &m.id[..m.id.len().min(8)],
                m.slot_count,
                m.replicas.len()
            );
        }
        let total: u64 = self.masters.iter().filter_map(|m| m.keys).sum();
        out += &format!("[OK] {total} keys in {} masters.\n", self.masters.len());
        out += &format!(">>> Performing Cluster Check (using node {})\n", self.reference);
        for m in &self.masters {
            out += &format!(
                "M: {} {}\n   slots:[{}] ({} slots) master\n",
                m.id, m.addr, m.slots, m.slot_count
            );
            for replica in &m.replicas {
                out += &format!("S: {replica} replicates {}\n", m.id);
            }
        }
        if self.problems.is_empty() {
            out += "[OK] All nodes agree about slots configuration.\n[OK] No open slots.\n";
            out += &format!(
                "[OK] All {SLOT_COUNT} slots covered.\n[OK] Every master has its replicas.\n"
            );
        }
        for warning in &self.warnings {
            out += &format!("[WARNING] {warning}\n");
        }
        for problem in &self.problems {
            out += &format!("[ERR] {problem}\n");
        }
        out
    }
}
