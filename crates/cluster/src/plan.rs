//! The create planner: what `redis-cli --cluster create --cluster-replicas N` does, as data
//! that can be printed, tested and applied ([`crate::ops::create`]).
//!
//! Like redis-cli: nodes are interleaved host by host so that the masters (the first ones of
//! that order) land on as many hosts as possible; each master gets its replicas, preferring
//! nodes on other hosts; nodes left over become extra replicas of the masters with fewest.
//! Unlike redis-cli, the anti-affinity repair is a deterministic pass of replica swaps instead
//! of random ones, so the same input always gives the same plan.

use std::fmt;

use serde::Serialize;

use crate::slot::SLOT_COUNT;
use crate::topology::SlotRange;

/// A node to place, by host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    /// Parses `host:port` (the last colon separates the port, so IPv6 works unbracketed).
    pub fn parse(text: &str) -> Result<NodeAddr, PlanError> {
        let bad = || PlanError::BadAddress(text.to_string());
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(NodeAddr { host: host.trim_matches(['[', ']']).to_string(), port })
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterPlan {
    pub addr: NodeAddr,
    pub slots: SlotRange,
    pub replicas: Vec<NodeAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatePlan {
    pub masters: Vec<MasterPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "Redis Cluster needs at least 3 masters: {nodes} nodes with {replicas} replica(s) per \
         master give {masters}; add nodes or lower --replicas"
    )]
    TooFewMasters { nodes: usize, replicas: usize, masters: usize },
    #[error("{0} is listed twice")]
    Duplicate(String),
    #[error("`{0}` is not HOST:PORT")]
    BadAddress(String),
}

impl CreatePlan {
    /// Pairs of a master and its replica that share a host.
    pub fn affinity_violations(&self) -> Vec<(&NodeAddr, &NodeAddr)> {
        self.masters
            .iter()
            .flat_map(|m| {
                m.replicas.iter().filter(|r| r.host == m.addr.host).map(move |r| (&m.addr, r))
            })
            .collect()
    }
}

impl fmt::Display for CreatePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, ">>> Performing hash slots allocation on {} nodes...", self.node_count())?;
        for (i, master) in self.masters.iter().enumerate() {
            writeln!(f, "Master[{i}] -> Slots {} - {}", master.slots.start, master.slots.end)?;
        }
        for master in &self.masters {
            for replica in &master.replicas {
                writeln!(f, "Adding replica {replica} to {}", master.addr)?;
            }
        }
        for master in &self.masters {
            writeln!(
                f,
                "M: {} slots:[{}] ({} slots) master",
                master.addr,
                master.slots,
                master.slots.len()
            )?;
            for replica in &master.replicas {
                writeln!(f, "S: {replica} replicates {}", master.addr)?;
            }
        }
        let violations = self.affinity_violations();
        if !violations.is_empty() {
            writeln!(f, "[WARNING] Some replicas are in the same host as their master")?;
            for (master, replica) in violations {
                writeln!(f, "  {replica} replicates {master} on host {}", master.host)?;
            }
        }
        Ok(())
    }
}

impl CreatePlan {
    pub fn node_count(&self) -> usize {
        self.masters.iter().map(|m| 1 + m.replicas.len()).sum()
    }
}

/// Plans a cluster of `nodes` with `replicas` replicas per master.
pub fn plan_create(nodes: &[NodeAddr], replicas: usize) -> Result<CreatePlan, PlanError> {
    for (i, node) in nodes.iter().enumerate() {
        if nodes[..i].contains(node) {
            return Err(PlanError::Duplicate(node.to_string()));
        }
    }
    let master_count = nodes.len() / (replicas + 1);
    if master_count < 3 {
        return Err(PlanError::TooFewMasters {
            nodes: nodes.len(),
            replicas,
            masters: master_count,
        });
    }
    let mut order = interleave_by_host(nodes);
    let rest = order.split_off(master_count);
    let mut masters: Vec<MasterPlan> = order
        .into_iter()
        .zip(balanced_ranges(master_count))
        .map(|(addr, slots)| MasterPlan { addr, slots, replicas: Vec::new() })
        .collect();
    assign_replicas(&mut masters, rest, replicas);
    repair_affinity(&mut masters);
    Ok(CreatePlan { masters })
}

/// Hosts in order of first appearance; one node of each host in turn.
fn interleave_by_host(nodes: &[NodeAddr]) -> Vec<NodeAddr> {
    let mut hosts: Vec<(&str, Vec<&NodeAddr>)> = Vec::new();
    for node in nodes {
        match hosts.iter_mut().find(|(h, _)| *h == node.host) {
            Some((_, list)) => list.push(node),
            None => hosts.push((&node.host, vec![node])),
        }
    }
    let longest = hosts.iter().map(|(_, list)| list.len()).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| hosts.iter().filter_map(move |(_, list)| list.get(i).copied().cloned()))
        .collect()
}

/// `count` contiguous ranges covering every slot once, sizes differing by at most one, split
/// with redis-cli's rounding (3 masters: 0-5460, 5461-10922, 10923-16383).
pub fn balanced_ranges(count: usize) -> Vec<SlotRange> {
    let per_master = f64::from(SLOT_COUNT) / count as f64;
    let mut start = 0u16;
    (0..count)
        .map(|i| {
            let end = if i + 1 == count {
                SLOT_COUNT - 1
            } else {
                ((i as f64 * per_master) + per_master - 1.0).round() as u16
            };
            let range = SlotRange { start, end };
            start = end + 1;
            range
        })
        .collect()
}

/// Each master gets `replicas` nodes, preferring another host; leftovers go to the masters
/// with fewest replicas, on another host when there is a choice.
fn assign_replicas(masters: &mut [MasterPlan], mut rest: Vec<NodeAddr>, replicas: usize) {
    for _ in 0..replicas {
        for master in masters.iter_mut() {
            if rest.is_empty() {
                return;
            }
            let pick = rest.iter().position(|n| n.host != master.addr.host).unwrap_or(0);
            master.replicas.push(rest.remove(pick));
        }
    }
    for node in rest {
        let master = masters
            .iter_mut()
            .min_by_key(|m| (m.replicas.len(), m.addr.host == node.host))
            .expect("at least 3 masters");
        master.replicas.push(node);
    }
}

/// Swaps replicas between masters while a swap removes a same-host pair without making one.
fn repair_affinity(masters: &mut [MasterPlan]) {
    let bad = |m: &MasterPlan, r: &NodeAddr| m.addr.host == r.host;
    let mut improved = true;
    while improved {
        improved = false;
        'search: for a in 0..masters.len() {
            for ra in 0..masters[a].replicas.len() {
                if !bad(&masters[a], &masters[a].replicas[ra]) {
                    continue;
                }
                for b in (0..masters.len()).filter(|&b| b != a) {
                    for rb in 0..masters[b].replicas.len() {
                        let (x, y) = (&masters[a].replicas[ra], &masters[b].replicas[rb]);
                        let before = usize::from(bad(&masters[b], y)) + 1;
                        let after =
                            usize::from(bad(&masters[a], y)) + usize::from(bad(&masters[b], x));
                        if after < before {
                            let x = x.clone();
                            let taken = std::mem::replace(&mut masters[b].replicas[rb], x);
                            masters[a].replicas[ra] = taken;
                            improved = true;
                            break 'search;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(spec: &[(&str, u16)]) -> Vec<NodeAddr> {
        spec.iter().map(|(h, p)| NodeAddr { host: h.to_string(), port: *p }).collect()
    }

    #[test]
    fn six_local_nodes_like_redis_cli() {
        let nodes: Vec<NodeAddr> =
            (7001..=7006).map(|p| NodeAddr { host: "127.0.0.1".into(), port: p }).collect();
        let plan = plan_create(&nodes, 1).unwrap();
        let slots: Vec<(u16, u16)> =
            plan.masters.iter().map(|m| (m.slots.start, m.slots.end)).collect();
        assert_eq!(slots, vec![(0, 5460), (5461, 10922), (10923, 16383)]);
        assert_eq!(plan.masters[0].addr.port, 7001);
        assert_eq!(plan.masters[0].replicas[0].port, 7004);
        let text = plan.to_string();
        assert!(text.contains("Master[0] -> Slots 0 - 5460"));
        assert!(text.contains("Adding replica 127.0.0.1:7004 to 127.0.0.1:7001"));
        assert!(text.contains("[WARNING] Some replicas are in the same host as their master"));
    }

    #[test]
    fn three_hosts_keep_replicas_away_from_their_masters() {
        let nodes = addrs(&[("a", 1), ("a", 2), ("b", 1), ("b", 2), ("c", 1), ("c", 2)]);
        let plan = plan_create(&nodes, 1).unwrap();
        let hosts: Vec<&str> = plan.masters.iter().map(|m| m.addr.host.as_str()).collect();
        assert_eq!(hosts, vec!["a", "b", "c"]);
        assert!(plan.affinity_violations().is_empty(), "{plan}");
        assert!(!plan.to_string().contains("WARNING"));
    }

    #[test]
    fn errors_name_the_problem() {
        let five = addrs(&[("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]);
        assert!(plan_create(&five, 1).unwrap_err().to_string().contains("at least 3 masters"));
        let dup = addrs(&[("a", 1), ("a", 1), ("a", 3)]);
        assert_eq!(plan_create(&dup, 0).unwrap_err(), PlanError::Duplicate("a:1".into()));
        assert!(NodeAddr::parse("nohost").is_err());
        assert_eq!(NodeAddr::parse("10.0.0.1:7001").unwrap().port, 7001);
    }
}
