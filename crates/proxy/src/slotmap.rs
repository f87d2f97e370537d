//! Which node serves each slot, and the redirections (`MOVED`, `ASK`) that correct it. Pure.

use cluster::SLOT_COUNT;
use cluster::topology::Topology;

/// Index of a node in [`SlotMap::nodes`].
pub type NodeIndex = u16;
const UNASSIGNED: NodeIndex = NodeIndex::MAX;

/// A snapshot of the cluster's slot assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotMap {
    /// Every node that serves or replicates slots, as `ip:port`.
    pub nodes: Vec<MapNode>,
    /// The master of each slot.
    masters: Vec<NodeIndex>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapNode {
    pub addr: String,
    pub is_master: bool,
    /// For a replica, the index of its master.
    pub master: Option<NodeIndex>,
    /// Marked `fail` by the cluster when the map was made.
    pub failing: bool,
}

impl SlotMap {
    pub fn empty() -> SlotMap {
        SlotMap { nodes: Vec::new(), masters: vec![UNASSIGNED; usize::from(SLOT_COUNT)] }
    }

    /// The map of a topology (one node's `CLUSTER NODES`).
    pub fn from_topology(topology: &Topology) -> SlotMap {
        let mut map = SlotMap::empty();
        let usable = topology.nodes.iter().filter(|n| !n.flags.noaddr && !n.flags.handshake);
        for node in usable.clone().filter(|n| n.is_master()) {
            let index = map.add_node(&node.addr(), true, node.is_failing());
            for range in &node.slots {
                for slot in range.start..=range.end {
                    map.masters[usize::from(slot)] = index;
                }
            }
        }
        for node in usable.filter(|n| !n.is_master()) {
            let master = node
                .master_id
                .as_deref()
                .and_then(|id| topology.by_id(id))
                .and_then(|m| map.index_of(&m.addr()));
            let index = map.add_node(&node.addr(), false, node.is_failing());
            map.nodes[usize::from(index)].master = master;
        }
        map
    }

    fn add_node(&mut self, addr: &str, is_master: bool, failing: bool) -> NodeIndex {
        if let Some(i) = self.index_of(addr) {
            return i;
        }
        self.nodes.push(MapNode { addr: addr.to_string(), is_master, master: None, failing });
        (self.nodes.len() - 1) as NodeIndex
    }

    pub fn index_of(&self, addr: &str) -> Option<NodeIndex> {
        self.nodes.iter().position(|n| n.addr == addr).map(|i| i as NodeIndex)
    }

    /// The master serving `slot`, if any.
    pub fn master_of(&self, slot: u16) -> Option<NodeIndex> {
        let index = *self.masters.get(usize::from(slot))?;
        (index != UNASSIGNED).then_some(index)
    }

    pub fn addr(&self, index: NodeIndex) -> &str {
        &self.nodes[usize::from(index)].addr
    }

    /// The replicas of a master that are not failing.
    pub fn replicas_of(&self, master: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.master == Some(master) && !n.failing)
            .map(|(i, _)| i as NodeIndex)
    }

    /// Masters that serve at least one slot, in address order.
    pub fn serving_masters(&self) -> Vec<NodeIndex> {
        let mut masters: Vec<NodeIndex> =
            self.masters.iter().copied().filter(|&m| m != UNASSIGNED).collect();
        masters.sort_unstable();
        masters.dedup();
        masters.sort_by(|a, b| self.addr(*a).cmp(self.addr(*b)));
        masters
    }

    /// The slots each node serves as master, indexed like [`SlotMap::nodes`].
    pub fn slots_by_node(&self) -> Vec<Vec<u16>> {
        let mut slots = vec![Vec::new(); self.nodes.len()];
        for (slot, &m) in self.masters.iter().enumerate() {
            if m != UNASSIGNED {
                slots[usize::from(m)].push(slot as u16);
            }
        }
        slots
    }

    /// Slots without a master.
    pub fn uncovered(&self) -> usize {
        self.masters.iter().filter(|&&m| m == UNASSIGNED).count()
    }

    /// True when every slot has a master that is not failing.
    pub fn is_complete(&self) -> bool {
        self.masters.iter().all(|&m| m != UNASSIGNED && !self.nodes[usize::from(m)].failing)
    }

    /// Applies a `MOVED slot addr`: the slot now lives at `addr` (added as a master if new).
    pub fn apply_moved(&mut self, slot: u16, addr: &str) -> NodeIndex {
        let index = match self.index_of(addr) {
            Some(i) => {
                let node = &mut self.nodes[usize::from(i)];
                node.is_master = true;
                node.master = None;
                node.failing = false;
                i
            }
            None => self.add_node(addr, true, false),
        };
        if let Some(m) = self.masters.get_mut(usize::from(slot)) {
            *m = index;
        }
        index
    }
}

/// A redirection in a node's error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// `-MOVED slot addr`: the slot has a new owner for good.
    Moved { slot: u16, addr: String },
    /// `-ASK slot addr`: ask `addr` this once (the slot is being migrated).
    Ask { slot: u16, addr: String },
}

/// Parses a reply frame that is a `MOVED` or `ASK` error.
pub fn parse_redirect(frame: &[u8]) -> Option<Redirect> {
    let line = frame.strip_prefix(b"-")?.strip_suffix(b"\r\n")?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split(' ');
    let kind = words.next()?;
    let slot: u16 = words.next()?.parse().ok()?;
    let addr = words.next()?;
    if slot >= SLOT_COUNT || words.next().is_some() {
        return None;
    }
    // Redis 7 may announce an empty host (`:7001`) meaning "the host you asked": not used with
    // `cluster-announce-hostname` unset, which is what redkeep deploys.
    let addr = addr.to_string();
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { slot, addr }),
        _ => None,
    }
}

/// Errors after which the command did not run and may be sent again after a pause.
pub fn is_transient_error(frame: &[u8]) -> bool {
    [&b"-TRYAGAIN"[..], b"-CLUSTERDOWN", b"-LOADING", b"-MASTERDOWN"]
        .iter()
        .any(|prefix| frame.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
e7f 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2b 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
c3d 127.0.0.1:7003@17003 master,fail - 0 0 3 connected 10923-16383
d4e 127.0.0.1:7004@17004 slave e7f 0 0 1 connected
";

    #[test]
    fn a_map_from_cluster_nodes_knows_each_slots_master_and_the_replicas() {
        let topology = cluster::topology::parse_cluster_nodes(NODES).unwrap();
        let map = SlotMap::from_topology(&topology);
        assert_eq!(map.addr(map.master_of(0).unwrap()), "127.0.0.1:7001");
        assert_eq!(map.addr(map.master_of(5461).unwrap()), "127.0.0.1:7002");
        assert_eq!(map.addr(map.master_of(16383).unwrap()), "127.0.0.1:7003");
        let replicas: Vec<_> = map.replicas_of(map.index_of("127.0.0.1:7001").unwrap()).collect();
        assert_eq!(replicas.iter().map(|&r| map.addr(r)).collect::<Vec<_>>(), ["127.0.0.1:7004"]);
        assert_eq!(map.uncovered(), 0);
        assert!(!map.is_complete(), "7003 is failing");
        assert_eq!(map.serving_masters().len(), 3);
    }

    #[test]
    fn moved_reassigns_one_slot_and_can_add_a_node() {
        let topology = cluster::topology::parse_cluster_nodes(NODES).unwrap();
        let mut map = SlotMap::from_topology(&topology);
        let new = map.apply_moved(100, "127.0.0.1:7009");
        assert_eq!(map.master_of(100), Some(new));
        assert_eq!(map.addr(map.master_of(101).unwrap()), "127.0.0.1:7001");
        let promoted = map.apply_moved(0, "127.0.0.1:7004");
        assert!(map.nodes[usize::from(promoted)].is_master);
    }

    #[test]
    fn redirects_are_parsed_and_anything_else_is_not() {
        assert_eq!(
            parse_redirect(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Some(Redirect::Moved { slot: 3999, addr: "127.0.0.1:6381".into() })
        );
        assert_eq!(
            parse_redirect(b"-ASK 1 10.0.0.1:7000\r\n"),
            Some(Redirect::Ask { slot: 1, addr: "10.0.0.1:7000".into() })
        );
        assert_eq!(parse_redirect(b"-MOVED 16384 h:1\r\n"), None);
        assert_eq!(parse_redirect(b"-ERR MOVED 1 h:1\r\n"), None);
        assert_eq!(parse_redirect(b"+MOVED 1 h:1\r\n"), None);
        assert!(is_transient_error(
            b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
        ));
        assert!(is_transient_error(b"-CLUSTERDOWN The cluster is down\r\n"));
        assert!(!is_transient_error(b"-ERR wrong\r\n"));
    }
}
