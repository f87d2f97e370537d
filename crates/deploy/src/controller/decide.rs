//! What the controller does next, decided from what the nodes say, without I/O.
//!
//! Input: every node the controller reached this pass, with the address it reached it at,
//! its node ID (`CLUSTER MYID`), its view of the cluster (`CLUSTER NODES`) and its
//! `cluster_state`. Output: the actions to apply, or why it waits.
//!
//! - No node belongs to a cluster: once the expected number of empty nodes answer, form one
//!   (shard by shard when the nodes announce StatefulSet-style hostnames `NAME-sK-N.…`, else
//!   as `redis-cli --cluster create` would).
//! - A node knows a peer (by ID) at another address than the one the peer answers at now, or
//!   without an address: it is told to `CLUSTER MEET` the peer at its new address. Redis
//!   matches the answer to the ID it knows and updates the address in place (a handshake with
//!   a known node becomes an address update), so the cluster keeps its IDs, slots and data.
//!   A node whose own entry still holds an old address is met by another node, which teaches
//!   it the address it is reached at.
//! - Once no address is stale and the cluster is `ok`, an empty node joins as a replica of a
//!   master that has fewer than the wanted replicas. An empty node no master needs is left
//!   alone (it may be meant for scaling out).

use std::collections::BTreeMap;

use cluster::ops::Formation;
use cluster::topology::{Node, Topology};

/// One node as the controller found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Where the controller reached it now, `ip:port`.
    pub addr: String,
    /// Its `CLUSTER MYID`.
    pub id: String,
    /// Its `CLUSTER NODES`.
    pub view: Topology,
    /// Its `cluster_state` (`ok`, `fail`).
    pub state: String,
}

/// The cluster the controller keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub masters: usize,
    pub replicas: usize,
}

impl Want {
    pub fn nodes(&self) -> usize {
        self.masters * (1 + self.replicas)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Form a new cluster from empty nodes ([`cluster::ops::create`]).
    Form(Formation),
    /// `CLUSTER MEET` sent to `on`, naming `peer_addr` (where node `peer_id` answers now).
    Meet { on: String, peer_id: String, peer_addr: String, was: String },
    /// An empty node meets the cluster through `via`, then replicates `master_id`.
    Join { node: String, via: String, master_id: String, master_addr: String },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Form(formation) => {
                let masters: Vec<&str> =
                    formation.masters.iter().map(|(a, _)| a.as_str()).collect();
                write!(
                    f,
                    "form a cluster: masters {}, {} replicas",
                    masters.join(" "),
                    formation.replicas.len()
                )
            }
            Action::Meet { on, peer_id, peer_addr, was } => write!(
                f,
                "{on}: CLUSTER MEET {peer_addr} (node {} it knows at {was})",
                short(peer_id)
            ),
            Action::Join { node, master_addr, master_id, .. } => {
                write!(f, "{node}: join as a replica of {master_addr} (node {})", short(master_id))
            }
        }
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// The actions of one pass, and what the controller waits for when there are none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Why nothing (more) can be done yet, for the log.
    pub waiting: Vec<String>,
}

/// A node that never joined a cluster: it knows only itself and serves no slot.
pub fn is_empty_node(observed: &Observed) -> bool {
    observed.view.nodes.len() <= 1 && observed.view.nodes.iter().all(|n| n.slots.is_empty())
}

/// Decides the next actions from this pass's observations.
pub fn decide(observed: &[Observed], want: Want) -> Decision {
    let (empty, members): (Vec<&Observed>, Vec<&Observed>) =
        observed.iter().partition(|o| is_empty_node(o));
    if members.is_empty() {
        return form(&empty, want);
    }
    let mut decision = Decision { actions: stale_addresses(&members, observed), waiting: vec![] };
    let missing = unaccounted(&members, observed);
    if !missing.is_empty() {
        decision.waiting.push(format!(
            "{} known node(s) did not answer at any address found: {}",
            missing.len(),
            missing.iter().map(|id| short(id)).collect::<Vec<_>>().join(" ")
        ));
    }
    if !decision.actions.is_empty() || empty.is_empty() {
        return decision;
    }
    match members.iter().find(|m| m.state == "ok") {
        Some(reference) => joins(&empty, reference, want, &mut decision),
        None => decision
            .waiting
            .push(format!("{} empty node(s) wait until the cluster is ok", empty.len())),
    }
    decision
}

fn form(empty: &[&Observed], want: Want) -> Decision {
    let mut decision = Decision::default();
    if empty.len() < want.nodes() {
        decision.waiting.push(format!(
            "{} of {} empty nodes answer; the cluster is formed when all do",
            empty.len(),
            want.nodes()
        ));
        return decision;
    }
    let mut chosen: Vec<&Observed> = empty.to_vec();
    chosen.sort_by_key(|o| (shard_of(o), o.addr.clone()));
    chosen.truncate(want.nodes());
    match formation(&chosen, want) {
        Ok(formation) => decision.actions.push(Action::Form(formation)),
        Err(why) => decision.waiting.push(why),
    }
    decision
}

/// A node's shard and ordinal from its announced hostname: `redkeep-s1-0.redkeep-nodes.…`
/// is ordinal 0 of shard `redkeep-s1` (how StatefulSets name pods, and the Swarm stack its
/// services).
pub fn shard_of(observed: &Observed) -> Option<(String, u32)> {
    let hostname = observed.view.myself()?.hostname.as_deref()?;
    let label = hostname.split('.').next()?;
    let (shard, ordinal) = label.rsplit_once('-')?;
    Some((shard.to_string(), ordinal.parse().ok()?))
}

/// The formation: by shard when every node names its shard and the shards match `want`,
/// otherwise by host as `redis-cli --cluster create` places nodes.
fn formation(nodes: &[&Observed], want: Want) -> Result<Formation, String> {
    let mut shards: BTreeMap<String, Vec<(u32, String)>> = BTreeMap::new();
    for node in nodes {
        if let Some((shard, ordinal)) = shard_of(node) {
            shards.entry(shard).or_default().push((ordinal, node.addr.clone()));
        }
    }
    let by_shard = shards.values().map(Vec::len).sum::<usize>() == nodes.len()
        && shards.len() == want.masters
        && shards.values().all(|members| members.len() == 1 + want.replicas);
    if !by_shard {
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        return Formation::plan(&addrs, want.replicas).map_err(|e| e.to_string());
    }
    let ranges = cluster::plan::balanced_ranges(want.masters);
    let mut formation = Formation::default();
    for (mut members, range) in shards.into_values().zip(ranges) {
        members.sort();
        let master = members[0].1.clone();
        for (_, replica) in &members[1..] {
            formation.replicas.push((replica.clone(), master.clone()));
        }
        formation.masters.push((master, vec![(range.start, range.end)]));
    }
    Ok(formation)
}

/// MEETs for every node of `members` that knows a reachable node at a stale address.
fn stale_addresses(members: &[&Observed], observed: &[Observed]) -> Vec<Action> {
    let by_id: BTreeMap<&str, &Observed> = observed.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut actions = Vec::new();
    for member in members {
        for known in member.view.nodes.iter().filter(|n| !n.flags.myself && !n.flags.handshake) {
            if let Some(peer) = by_id.get(known.id.as_str())
                && address_of(known) != Some(peer.addr.clone())
            {
                actions.push(meet(&member.addr, peer, known));
            }
        }
    }
    // A node that still holds an old address for itself learns the right one from a MEET.
    for member in members {
        let Some(me) = member.view.myself() else { continue };
        let told = actions
            .iter()
            .any(|a| matches!(a, Action::Meet { peer_addr, .. } if *peer_addr == member.addr));
        let other = members.iter().find(|m| m.addr != member.addr);
        if address_of(me) != Some(member.addr.clone())
            && !told
            && let Some(other) = other
        {
            actions.push(meet(&other.addr, member, me));
        }
    }
    actions
}

fn meet(on: &str, peer: &Observed, known: &Node) -> Action {
    Action::Meet {
        on: on.to_string(),
        peer_id: peer.id.clone(),
        peer_addr: peer.addr.clone(),
        was: address_of(known).unwrap_or_else(|| "no address".into()),
    }
}

/// `ip:port` of a node entry; None for a node without an address.
fn address_of(node: &Node) -> Option<String> {
    (!node.flags.noaddr && !node.ip.is_empty()).then(|| node.addr())
}

/// IDs the members know (handshakes aside) that no reached node has.
fn unaccounted(members: &[&Observed], observed: &[Observed]) -> Vec<String> {
    let mut missing: Vec<String> = members
        .iter()
        .flat_map(|m| &m.view.nodes)
        .filter(|n| !n.flags.handshake && !observed.iter().any(|o| o.id == n.id))
        .map(|n| n.id.clone())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

/// A replica that counts: not failing, and with an address. (A node that answers at a lost
/// replica's address with another ID makes Redis drop that address, and a node without one
/// is never pinged, so it is never marked failing either.)
fn is_serving(node: &Node) -> bool {
    !node.is_failing() && !node.flags.noaddr
}

/// Empty nodes become replicas of the masters (with slots, not failing) that have fewest
/// replicas, below `want.replicas`, preferring a master on another IP than the node.
fn joins(empty: &[&Observed], reference: &Observed, want: Want, decision: &mut Decision) {
    let view = &reference.view;
    let mut replicas: Vec<(&Node, usize)> = view
        .masters()
        .filter(|m| m.slot_count() > 0 && !m.is_failing())
        .map(|m| (m, view.replicas_of(&m.id).filter(|r| is_serving(r)).count()))
        .collect();
    let mut spare = 0;
    for node in empty {
        let ip = node.addr.rsplit_once(':').map_or("", |(ip, _)| ip);
        let choice = replicas
            .iter_mut()
            .filter(|(_, count)| *count < want.replicas)
            .min_by_key(|(master, count)| (*count, master.ip == ip, master.addr()));
        match choice {
            Some((master, count)) => {
                *count += 1;
                decision.actions.push(Action::Join {
                    node: node.addr.clone(),
                    via: reference.addr.clone(),
                    master_id: master.id.clone(),
                    master_addr: master.addr(),
                });
            }
            None => spare += 1,
        }
    }
    if spare > 0 {
        decision.waiting.push(format!(
            "{spare} empty node(s) left alone: every master has {} replica(s)",
            want.replicas
        ));
    }
}
