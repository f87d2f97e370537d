//! The rebalance and reshard planners: which slots move from which master to which, as data
//! that is printed, saved to a plan file, and applied by [`crate::mover`].
//!
//! Both follow `redis-cli --cluster` so that operators get the plans they know:
//!
//! - **rebalance**: every master gets `16384 / total_weight * weight` slots (rounded down; the
//!   slots left over by rounding go to the masters that receive, in order). Masters without
//!   slots take part only with `use_empty_masters`; a master with weight 0 gives all its slots
//!   away. Nothing moves while every master is within `threshold` percent of its share. Then
//!   the master that must gain most is paired with the one that must lose most, repeatedly:
//!   exactly the surplus moves, no slot moves twice.
//! - **reshard**: `count` slots go to one master, taken from the sources in proportion to the
//!   slots each has (the largest source rounds up, the others down), lowest slots first.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::slot::SLOT_COUNT;
use crate::topology::{SlotRange, Topology, format_ranges, ranges_of};

/// A master as the planners see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasterLoad {
    pub id: String,
    pub addr: String,
    /// Its slots, ascending.
    pub slots: Vec<u16>,
    pub weight: f64,
}

impl MasterLoad {
    /// The masters of `topology` (failing ones left out: they cannot take part), weight 1.
    pub fn from_topology(topology: &Topology) -> Vec<MasterLoad> {
        topology
            .masters()
            .filter(|m| !m.is_failing())
            .map(|m| MasterLoad {
                id: m.id.clone(),
                addr: m.addr(),
                slots: m.slots.iter().flat_map(|r| r.start..=r.end).collect(),
                weight: 1.0,
            })
            .collect()
    }
}

/// Slots that go from one master to another. Ids and addresses both: the addresses to
/// connect to, the ids to check that the node there is still the one planned for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeMove {
    pub from_id: String,
    pub from_addr: String,
    pub to_id: String,
    pub to_addr: String,
    pub slots: Vec<SlotRange>,
}

impl RangeMove {
    pub fn slot_count(&self) -> u64 {
        self.slots.iter().map(SlotRange::len).sum()
    }

    pub fn slot_list(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots.iter().flat_map(|r| r.start..=r.end)
    }
}

/// What a rebalance or reshard will do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovePlan {
    pub moves: Vec<RangeMove>,
}

impl MovePlan {
    pub fn slot_count(&self) -> u64 {
        self.moves.iter().map(RangeMove::slot_count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

impl fmt::Display for MovePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.moves.is_empty() {
            return writeln!(f, "Nothing to move.");
        }
        writeln!(f, ">>> Moving {} slots:", self.slot_count())?;
        for m in &self.moves {
            writeln!(
                f,
                "  {} slots from {} ({}) to {} ({}): {}",
                m.slot_count(),
                m.from_addr,
                short(&m.from_id),
                m.to_addr,
                short(&m.to_id),
                abbreviated_ranges(&m.slots)
            )?;
        }
        Ok(())
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

/// Ranges for a human: the first few, then how many more.
fn abbreviated_ranges(ranges: &[SlotRange]) -> String {
    const SHOWN: usize = 6;
    if ranges.len() <= SHOWN {
        return format_ranges(ranges);
    }
    format!("{} and {} more ranges", format_ranges(&ranges[..SHOWN]), ranges.len() - SHOWN)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalePlanError {
    #[error("no master has a weight above 0: nothing could hold the slots")]
    NoWeight,
    #[error("{0} is not a master of this cluster (see `redkeep status`)")]
    UnknownMaster(String),
    #[error("--to {0} is also a source; choose sources other than the target")]
    TargetIsSource(String),
    #[error("--slots must be between 1 and {available} (what the sources hold), got {asked}")]
    BadSlotCount { asked: u64, available: u64 },
    #[error("a weight must be a number of 0 or more, got {0}")]
    BadWeight(String),
}

/// Rebalance options, as redis-cli's `--cluster-threshold` and `--cluster-use-empty-masters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RebalanceOptions {
    pub threshold: f64,
    pub use_empty_masters: bool,
}

impl Default for RebalanceOptions {
    fn default() -> Self {
        RebalanceOptions { threshold: 2.0, use_empty_masters: false }
    }
}

/// What the rebalance planner decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Rebalance {
    /// Every master is within the threshold: nothing to do.
    Balanced {
        threshold: f64,
    },
    Moves(MovePlan),
}

/// Each master's share: how many slots it should end with, in `masters`' order. The slots
/// rounding leaves over go one each to the masters with a balance of zero or less, in order,
/// as redis-cli does, so the shares add up to the slots the masters hold.
pub fn target_counts(masters: &[MasterLoad], use_empty: bool) -> Result<Vec<u64>, ScalePlanError> {
    let weights = effective_weights(masters, use_empty);
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err(ScalePlanError::NoWeight);
    }
    let held: u64 = masters.iter().map(|m| m.slots.len() as u64).sum();
    let mut targets: Vec<u64> =
        weights.iter().map(|w| (f64::from(SLOT_COUNT) / total * w) as u64).collect();
    let mut left = held.saturating_sub(targets.iter().sum());
    while left > 0 {
        for (i, target) in targets.iter_mut().enumerate() {
            let balance = masters[i].slots.len() as i64 - *target as i64;
            if balance <= 0 && left > 0 && weights[i] > 0.0 {
                *target += 1;
                left -= 1;
            }
        }
    }
    Ok(targets)
}

/// Weights as redis-cli uses them: an empty master counts only with `use_empty`.
fn effective_weights(masters: &[MasterLoad], use_empty: bool) -> Vec<f64> {
    masters.iter().map(|m| if m.slots.is_empty() && !use_empty { 0.0 } else { m.weight }).collect()
}

/// redis-cli's threshold test: some master is off its share by more than `threshold` percent
/// (an empty master that should get more than one slot always is).
fn threshold_reached(masters: &[MasterLoad], use_empty: bool, threshold: f64) -> bool {
    let weights = effective_weights(masters, use_empty);
    let total: f64 = weights.iter().sum();
    masters.iter().zip(&weights).any(|(m, w)| {
        let expected = (f64::from(SLOT_COUNT) / total * w).floor();
        if threshold <= 0.0 {
            return false;
        }
        if m.slots.is_empty() {
            return expected > 1.0;
        }
        (100.0 - 100.0 * expected / m.slots.len() as f64).abs() > threshold
    })
}

/// Plans a rebalance of `masters` (weights set by the caller).
pub fn plan_rebalance(
    masters: &[MasterLoad],
    options: RebalanceOptions,
) -> Result<Rebalance, ScalePlanError> {
    if let Some(bad) = masters.iter().find(|m| !valid_weight(m.weight)) {
        return Err(ScalePlanError::BadWeight(bad.weight.to_string()));
    }
    let targets = target_counts(masters, options.use_empty_masters)?;
    if !threshold_reached(masters, options.use_empty_masters, options.threshold) {
        return Ok(Rebalance::Balanced { threshold: options.threshold });
    }
    let mut balance: Vec<(usize, i64)> = masters
        .iter()
        .zip(&targets)
        .enumerate()
        .map(|(i, (m, &t))| (i, m.slots.len() as i64 - t as i64))
        .collect();
    // Ascending: the masters that gain most first, those that lose most last. Stable, so ties
    // keep the cluster's order and the plan is deterministic.
    balance.sort_by_key(|&(_, b)| b);
    let mut remaining: Vec<Vec<u16>> = masters.iter().map(|m| m.slots.clone()).collect();
    let mut moves = Vec::new();
    let (mut dst, mut src) = (0usize, balance.len().saturating_sub(1));
    while dst < src {
        let count = balance[dst].1.unsigned_abs().min(balance[src].1.unsigned_abs());
        if count > 0 {
            let (from, to) = (balance[src].0, balance[dst].0);
            let taken: Vec<u16> = remaining[from].drain(..count as usize).collect();
            moves.push(range_move(&masters[from], &masters[to], taken));
        }
        balance[dst].1 += count as i64;
        balance[src].1 -= count as i64;
        if balance[dst].1 == 0 {
            dst += 1;
        }
        if balance[src].1 == 0 {
            src = src.saturating_sub(1);
        }
    }
    Ok(Rebalance::Moves(MovePlan { moves }))
}

fn range_move(from: &MasterLoad, to: &MasterLoad, slots: Vec<u16>) -> RangeMove {
    RangeMove {
        from_id: from.id.clone(),
        from_addr: from.addr.clone(),
        to_id: to.id.clone(),
        to_addr: to.addr.clone(),
        slots: ranges_of(slots),
    }
}

/// Where reshard takes slots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// Every master but the target.
    All,
    Ids(Vec<String>),
}

/// Plans moving `count` slots to `to` (an id or an id prefix) from `sources`.
pub fn plan_reshard(
    masters: &[MasterLoad],
    sources: &Sources,
    to: &str,
    count: u64,
) -> Result<MovePlan, ScalePlanError> {
    let target = find_master(masters, to)?;
    let mut chosen: Vec<&MasterLoad> = match sources {
        Sources::All => masters.iter().filter(|m| m.id != target.id).collect(),
        Sources::Ids(ids) => {
            let found: Vec<&MasterLoad> =
                ids.iter().map(|id| find_master(masters, id)).collect::<Result<_, _>>()?;
            if found.iter().any(|m| m.id == target.id) {
                return Err(ScalePlanError::TargetIsSource(target.id.clone()));
            }
            found
        }
    };
    chosen.dedup_by_key(|m| m.id.clone());
    let available: u64 = chosen.iter().map(|m| m.slots.len() as u64).sum();
    if count == 0 || count > available {
        return Err(ScalePlanError::BadSlotCount { asked: count, available });
    }
    // Largest source first (stable on ties), as redis-cli sorts them.
    chosen.sort_by_key(|m| std::cmp::Reverse(m.slots.len()));
    let mut takes: Vec<u64> = chosen
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let share = count as f64 / available as f64 * source.slots.len() as f64;
            (if i == 0 { share.ceil() } else { share.floor() }) as u64
        })
        .collect();
    settle_shares(&mut takes, &chosen, count);
    let moves = chosen
        .iter()
        .zip(&takes)
        .filter(|(_, take)| **take > 0)
        .map(|(source, &take)| range_move(source, target, source.slots[..take as usize].to_vec()))
        .collect();
    Ok(MovePlan { moves })
}

/// Makes the shares add up to `count`: rounding down several sources can leave a few slots
/// short (redis-cli then moves fewer than asked), and the rounded-up first share can make one
/// too many. Slots are added to, or taken from, the sources in order.
fn settle_shares(takes: &mut [u64], sources: &[&MasterLoad], count: u64) {
    let mut total: u64 = takes.iter().sum();
    for (take, source) in takes.iter_mut().zip(sources) {
        let room = source.slots.len() as u64 - (*take).min(source.slots.len() as u64);
        let add = room.min(count.saturating_sub(total));
        *take += add;
        total += add;
    }
    for take in takes.iter_mut().rev() {
        let cut = (*take).min(total.saturating_sub(count));
        *take -= cut;
        total -= cut;
    }
}

/// A master by full id or unique prefix (operators paste the first characters).
pub fn find_master<'a>(
    masters: &'a [MasterLoad],
    id: &str,
) -> Result<&'a MasterLoad, ScalePlanError> {
    let mut matching = masters.iter().filter(|m| !id.is_empty() && m.id.starts_with(id));
    match (matching.next(), matching.next()) {
        (Some(m), None) => Ok(m),
        _ => Err(ScalePlanError::UnknownMaster(id.to_string())),
    }
}

/// Applies `ID=W` weight settings to `masters`.
pub fn apply_weights(masters: &mut [MasterLoad], weights: &[String]) -> Result<(), ScalePlanError> {
    for setting in weights {
        let bad = || ScalePlanError::BadWeight(setting.clone());
        let (id, weight) = setting.split_once('=').ok_or_else(bad)?;
        let weight: f64 = weight.parse().map_err(|_| bad())?;
        if !valid_weight(weight) {
            return Err(bad());
        }
        let id = find_master(masters, id)?.id.clone();
        masters.iter_mut().filter(|m| m.id == id).for_each(|m| m.weight = weight);
    }
    Ok(())
}

fn valid_weight(weight: f64) -> bool {
    weight.is_finite() && weight >= 0.0
}

/// The slot counts after `plan` is applied, per master id (for tests and the summary).
pub fn counts_after(masters: &[MasterLoad], plan: &MovePlan) -> Vec<(String, u64)> {
    masters
        .iter()
        .map(|m| {
            let gained: u64 =
                plan.moves.iter().filter(|mv| mv.to_id == m.id).map(RangeMove::slot_count).sum();
            let lost: u64 =
                plan.moves.iter().filter(|mv| mv.from_id == m.id).map(RangeMove::slot_count).sum();
            (m.id.clone(), m.slots.len() as u64 + gained - lost)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::balanced_ranges;

    fn masters(counts: &[usize]) -> Vec<MasterLoad> {
        let mut next = 0u16;
        counts
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let slots: Vec<u16> = (next..next + n as u16).collect();
                next += n as u16;
                MasterLoad {
                    id: format!("{i:040}"),
                    addr: format!("127.0.0.1:{}", 7001 + i),
                    slots,
                    weight: 1.0,
                }
            })
            .collect()
    }

    fn three_plus_empty() -> Vec<MasterLoad> {
        let ranges = balanced_ranges(3);
        let mut ms = masters(&[0, 0, 0, 0]);
        for (m, r) in ms.iter_mut().zip(&ranges) {
            m.slots = (r.start..=r.end).collect();
        }
        ms
    }

    #[test]
    fn a_new_empty_master_is_ignored_without_use_empty_masters() {
        let ms = three_plus_empty();
        let plan = plan_rebalance(&ms, RebalanceOptions::default()).unwrap();
        assert_eq!(plan, Rebalance::Balanced { threshold: 2.0 });
    }

    #[test]
    fn a_new_master_gets_a_quarter_from_the_three_others() {
        let ms = three_plus_empty();
        let options = RebalanceOptions { use_empty_masters: true, ..Default::default() };
        let Rebalance::Moves(plan) = plan_rebalance(&ms, options).unwrap() else { panic!() };
        assert_eq!(plan.slot_count(), 4096);
        assert!(plan.moves.iter().all(|m| m.to_id == ms[3].id));
        let after: Vec<u64> = counts_after(&ms, &plan).into_iter().map(|(_, n)| n).collect();
        assert_eq!(after.iter().sum::<u64>(), 16384);
        assert!(after.iter().all(|&n| n == 4096), "{after:?}");
        // The lowest slots of each source move, as redis-cli takes them.
        assert_eq!(plan.moves.iter().find(|m| m.from_id == ms[0].id).unwrap().slots[0].start, 0);
    }

    #[test]
    fn weight_zero_empties_a_master() {
        let mut ms = masters(&[4096, 4096, 4096, 4096]);
        let ambiguous = format!("{}=0", &ms[1].id[..39]);
        apply_weights(&mut ms, &[ambiguous]).unwrap_err();
        let last = ms[3].id.clone();
        apply_weights(&mut ms, &[format!("{last}=0")]).unwrap();
        let Rebalance::Moves(plan) = plan_rebalance(&ms, RebalanceOptions::default()).unwrap()
        else {
            panic!()
        };
        assert!(plan.moves.iter().all(|m| m.from_id == last));
        assert_eq!(counts_after(&ms, &plan)[3].1, 0);
        assert_eq!(plan.slot_count(), 4096);
    }

    #[test]
    fn within_threshold_nothing_moves() {
        let ms = masters(&[5500, 5442, 5442]);
        assert!(matches!(
            plan_rebalance(&ms, RebalanceOptions::default()).unwrap(),
            Rebalance::Balanced { .. }
        ));
        let tight = RebalanceOptions { threshold: 0.5, use_empty_masters: false };
        let Rebalance::Moves(plan) = plan_rebalance(&ms, tight).unwrap() else { panic!() };
        assert_eq!(plan.slot_count(), 5500 - 5461);
    }

    #[test]
    fn reshard_takes_in_proportion_largest_first() {
        let ms = masters(&[6000, 6000, 4384]);
        let plan = plan_reshard(&ms, &Sources::All, &ms[2].id, 1000).unwrap();
        assert_eq!(plan.slot_count(), 1000);
        let counts: Vec<u64> = plan.moves.iter().map(RangeMove::slot_count).collect();
        assert_eq!(counts, vec![500, 500]);
        let plan = plan_reshard(&ms, &Sources::Ids(vec![ms[0].id.clone()]), &ms[2].id, 10).unwrap();
        assert_eq!(plan.moves[0].slots, vec![SlotRange { start: 0, end: 9 }]);
    }

    #[test]
    fn reshard_errors_say_what_is_wrong() {
        let ms = masters(&[6000, 6000, 4384]);
        let all = Sources::All;
        assert!(matches!(
            plan_reshard(&ms, &all, &ms[2].id, 0),
            Err(ScalePlanError::BadSlotCount { .. })
        ));
        assert!(matches!(
            plan_reshard(&ms, &all, &ms[2].id, 12001),
            Err(ScalePlanError::BadSlotCount { available: 12000, .. })
        ));
        assert!(matches!(
            plan_reshard(&ms, &all, "nope", 1),
            Err(ScalePlanError::UnknownMaster(_))
        ));
        let own = Sources::Ids(vec![ms[2].id.clone()]);
        assert!(matches!(
            plan_reshard(&ms, &own, &ms[2].id, 1),
            Err(ScalePlanError::TargetIsSource(_))
        ));
        // "0000" prefixes every test id: ambiguous, so refused.
        assert!(matches!(
            plan_reshard(&ms, &all, "0000", 1),
            Err(ScalePlanError::UnknownMaster(_))
        ));
    }

    #[test]
    fn plan_text_lists_the_moves() {
        let ms = three_plus_empty();
        let options = RebalanceOptions { use_empty_masters: true, ..Default::default() };
        let Rebalance::Moves(plan) = plan_rebalance(&ms, options).unwrap() else { panic!() };
        let text = plan.to_string();
        assert!(text.contains(">>> Moving 4096 slots:"), "{text}");
        assert!(text.contains("to 127.0.0.1:7004"), "{text}");
    }
}
