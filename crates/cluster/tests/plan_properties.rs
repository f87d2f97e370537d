//! Properties of the create planner over random host layouts.

use cluster::plan::{CreatePlan, NodeAddr, plan_create};
use proptest::prelude::*;

/// Nodes spread over up to four hosts.
fn layout(max_nodes: usize) -> impl Strategy<Value = Vec<NodeAddr>> {
    prop::collection::vec(0u8..4, 3..=max_nodes).prop_map(|hosts| {
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| NodeAddr { host: format!("host{h}"), port: 7000 + i as u16 })
            .collect()
    })
}

/// The fewest same-host master/replica pairs any split of these nodes into `masters` masters
/// (each with the replica counts the planner gives) can have: brute force over permutations.
fn best_possible(nodes: &[NodeAddr], plan: &CreatePlan) -> usize {
    let counts: Vec<usize> = plan.masters.iter().map(|m| m.replicas.len()).collect();
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    let mut best = usize::MAX;
    permute(&mut order, 0, &mut |perm| {
        let mut next = counts.len();
        let mut violations = 0;
        for (m, &count) in counts.iter().enumerate() {
            for r in &perm[next..next + count] {
                violations += usize::from(nodes[*r].host == nodes[perm[m]].host);
            }
            next += count;
        }
        best = best.min(violations);
    });
    best
}

fn permute(items: &mut Vec<usize>, k: usize, visit: &mut dyn FnMut(&[usize])) {
    if k == items.len() {
        visit(items);
        return;
    }
    for i in k..items.len() {
        items.swap(k, i);
        permute(items, k + 1, visit);
        items.swap(k, i);
    }
}

proptest! {
    #[test]
    fn every_slot_once_and_balanced(nodes in layout(12), replicas in 0usize..3) {
        let Ok(plan) = plan_create(&nodes, replicas) else {
            prop_assert!(nodes.len() / (replicas + 1) < 3);
            return Ok(());
        };
        let mut next = 0u32;
        for master in &plan.masters {
            prop_assert_eq!(u32::from(master.slots.start), next, "contiguous");
            next = u32::from(master.slots.end) + 1;
        }
        prop_assert_eq!(next, 16384);
        let sizes: Vec<u64> = plan.masters.iter().map(|m| m.slots.len()).collect();
        prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{:?}", sizes);
        // Every node placed once; replica counts as redis-cli gives them (N each, leftovers spread).
        prop_assert_eq!(plan.node_count(), nodes.len());
        let counts: Vec<usize> = plan.masters.iter().map(|m| m.replicas.len()).collect();
        prop_assert!(counts.iter().all(|&c| c == replicas || c == replicas + 1), "{:?}", counts);
        prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    }

    #[test]
    fn anti_affinity_whenever_the_hosts_allow_it(nodes in layout(7)) {
        let plan = plan_create(&nodes, 1).unwrap_or_else(|_| plan_create(&nodes, 0).unwrap());
        prop_assert_eq!(plan.affinity_violations().len(), best_possible(&nodes, &plan), "{}", plan);
    }
}
