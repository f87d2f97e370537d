//! Properties of the rebalance and reshard planners over random clusters: the result is
//! balanced, and exactly the surplus moves (no slot moves twice, none moves needlessly).

use std::collections::BTreeSet;

use cluster::reshard::{
    MasterLoad, MovePlan, Rebalance, RebalanceOptions, Sources, counts_after, plan_rebalance,
    plan_reshard, target_counts,
};
use proptest::prelude::*;

/// 3 to 8 masters splitting every slot at random cut points, some possibly empty.
fn cluster(max_masters: usize) -> impl Strategy<Value = Vec<MasterLoad>> {
    (3..=max_masters).prop_flat_map(|n| prop::collection::vec(0u16..=16384, n - 1)).prop_map(
        |mut cuts| {
            cuts.sort_unstable();
            let mut bounds = vec![0u16];
            bounds.extend(cuts);
            bounds.push(16384);
            bounds
                .windows(2)
                .enumerate()
                .map(|(i, w)| MasterLoad {
                    id: format!("{i:02}{}", "f".repeat(38)),
                    addr: format!("10.0.0.{i}:7000"),
                    slots: (w[0]..w[1]).collect(),
                    weight: 1.0,
                })
                .collect()
        },
    )
}

/// Every planned slot is owned by its source now, and no slot is planned twice.
fn moves_are_valid(masters: &[MasterLoad], plan: &MovePlan) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    for m in &plan.moves {
        prop_assert_ne!(&m.from_id, &m.to_id);
        let source = masters.iter().find(|x| x.id == m.from_id).unwrap();
        let owned: BTreeSet<u16> = source.slots.iter().copied().collect();
        for slot in m.slot_list() {
            prop_assert!(owned.contains(&slot), "slot {} not on its source", slot);
            prop_assert!(seen.insert(slot), "slot {} moves twice", slot);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn rebalance_reaches_the_shares_moving_only_the_surplus(
        masters in cluster(8),
        weights in prop::collection::vec(0u8..4, 8),
    ) {
        let mut masters = masters;
        for (m, w) in masters.iter_mut().zip(&weights) {
            m.weight = f64::from(*w);
        }
        let options = RebalanceOptions { threshold: 0.0001, use_empty_masters: true };
        let Ok(targets) = target_counts(&masters, true) else {
            prop_assert!(masters.iter().all(|m| m.weight == 0.0));
            return Ok(());
        };
        match plan_rebalance(&masters, options).unwrap() {
            Rebalance::Balanced { .. } => {
                for (m, t) in masters.iter().zip(&targets) {
                    prop_assert_eq!(m.slots.len() as u64, *t);
                }
            }
            Rebalance::Moves(plan) => {
                moves_are_valid(&masters, &plan)?;
                let after = counts_after(&masters, &plan);
                for ((_, n), t) in after.iter().zip(&targets) {
                    prop_assert_eq!(n, t);
                }
                let surplus: u64 = masters
                    .iter()
                    .zip(&targets)
                    .map(|(m, t)| (m.slots.len() as u64).saturating_sub(*t))
                    .sum();
                prop_assert_eq!(plan.slot_count(), surplus, "moves more than the minimum");
                // Shares follow the weights: within one slot of the exact weighted share.
                let total: f64 = masters.iter().map(|m| m.weight).sum();
                for ((_, n), m) in after.iter().zip(&masters) {
                    let exact = 16384.0 / total * m.weight;
                    prop_assert!((*n as f64 - exact).abs() < masters.len() as f64 + 1.0);
                }
            }
        }
    }

    #[test]
    fn reshard_moves_exactly_the_count_to_the_target(masters in cluster(6), count in 1u64..16384) {
        let target = masters.iter().min_by_key(|m| m.slots.len()).unwrap().id.clone();
        let available: u64 = masters.iter().filter(|m| m.id != target).map(|m| m.slots.len() as u64).sum();
        match plan_reshard(&masters, &Sources::All, &target, count) {
            Ok(plan) => {
                prop_assert!(count <= available);
                moves_are_valid(&masters, &plan)?;
                prop_assert_eq!(plan.slot_count(), count);
                prop_assert!(plan.moves.iter().all(|m| m.to_id == target));
            }
            Err(_) => prop_assert!(count > available),
        }
    }
}
