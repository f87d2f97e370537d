//! How to repair uncovered and open slots, as data, the way `redis-cli --cluster fix` decides:
//!
//! - An uncovered slot that no master holds keys of goes to the master with fewest slots
//!   (whole contiguous runs at a time); one that a single master holds keys of goes to that
//!   master; one that several hold keys of goes to the one with most keys, and the others'
//!   keys move there.
//! - An open slot migrating from its owner to one importing node: the migration is finished.
//!   Only importing nodes: their keys move back to the owner and the slot is closed. Only
//!   migrating nodes: the slot is closed where it is. Anything else is reported, not guessed.
//!
//! Pure: [`crate::ops::gather_fix_input`] reads the state, [`crate::ops::apply_fix`] applies.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::check::NodeView;
use crate::slot::SLOT_COUNT;
use crate::topology::{SlotRange, Topology, ranges_of};

/// Keys per (slot, master address), for the slots that need fixing.
pub type KeyCounts = BTreeMap<(u16, String), u64>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FixAction {
    /// `CLUSTER ADDSLOTSRANGE` on `addr`.
    AddSlots { addr: String, ranges: Vec<SlotRange> },
    /// Move the keys of `slot` from each of `from` to `to`, then make `to` its owner everywhere.
    MoveSlot { slot: u16, from: Vec<String>, to: String },
    /// `CLUSTER SETSLOT slot STABLE` on `addr`.
    SetStable { addr: String, slot: u16 },
    /// Left for a human, with the reason.
    Unfixable { slot: u16, reason: String },
}

impl std::fmt::Display for FixAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FixAction::AddSlots { addr, ranges } => {
                write!(f, "assign slots {} to {addr}", crate::topology::format_ranges(ranges))
            }
            FixAction::MoveSlot { slot, from, to } => {
                write!(
                    f,
                    "move the keys of slot {slot} from {} to {to} and make {to} its owner",
                    from.join(", ")
                )
            }
            FixAction::SetStable { addr, slot } => {
                write!(f, "close slot {slot} on {addr} (SETSLOT STABLE)")
            }
            FixAction::Unfixable { slot, reason } => write!(f, "cannot fix slot {slot}: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FixPlan {
    pub actions: Vec<FixAction>,
}

impl std::fmt::Display for FixPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.actions.is_empty() {
            return writeln!(f, "[OK] Nothing to fix: every slot is covered and none is open.");
        }
        for (i, action) in self.actions.iter().enumerate() {
            writeln!(f, "{:>3}. {action}", i + 1)?;
        }
        Ok(())
    }
}

/// The slots a fix must look at: uncovered in `reference`, or open on some node.
pub fn slots_to_inspect(views: &[NodeView]) -> Vec<u16> {
    let Some(reference) = reference(views) else { return vec![] };
    let owners = reference.slot_owners();
    let mut slots: Vec<u16> =
        (0..SLOT_COUNT).filter(|&s| owners[usize::from(s)].is_none()).collect();
    for (_, topology) in reachable(views) {
        if let Some(me) = topology.myself() {
            slots.extend(me.migrating.iter().chain(&me.importing).map(|o| o.slot));
        }
    }
    slots.sort_unstable();
    slots.dedup();
    slots
}

fn reachable(views: &[NodeView]) -> impl Iterator<Item = (&str, &Topology)> {
    views.iter().filter_map(|v| v.topology.as_ref().ok().map(|t| (v.addr.as_str(), t)))
}

fn reference(views: &[NodeView]) -> Option<&Topology> {
    reachable(views).next().map(|(_, t)| t)
}

/// Plans the fix from every node's view and the key counts of the slots to inspect.
pub fn plan_fix(views: &[NodeView], keys: &KeyCounts) -> FixPlan {
    let Some(reference) = reference(views) else { return FixPlan::default() };
    let masters: Vec<(String, u64)> = reference
        .masters()
        .filter(|m| !m.is_failing())
        .map(|m| (m.addr(), m.slot_count()))
        .collect();
    let mut actions = fix_uncovered(reference, &masters, keys);
    actions.extend(fix_open(views, reference, keys));
    FixPlan { actions }
}

fn holders(slot: u16, keys: &KeyCounts) -> Vec<(&str, u64)> {
    let mut holders: Vec<(&str, u64)> = keys
        .range((slot, String::new())..)
        .take_while(|((s, _), _)| *s == slot)
        .filter(|(_, n)| **n > 0)
        .map(|((_, a), &n)| (a.as_str(), n))
        .collect();
    // Most keys first; ties by address, so the plan is deterministic.
    holders.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    holders
}

fn fix_uncovered(
    reference: &Topology,
    masters: &[(String, u64)],
    keys: &KeyCounts,
) -> Vec<FixAction> {
    let owners = reference.slot_owners();
    let uncovered: Vec<u16> =
        (0..SLOT_COUNT).filter(|&s| owners[usize::from(s)].is_none()).collect();
    let mut load: Vec<(String, u64)> = masters.to_vec();
    let mut assigned: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut moves = Vec::new();
    let (with_keys, empty): (Vec<u16>, Vec<u16>) =
        uncovered.into_iter().partition(|&s| !holders(s, keys).is_empty());
    for slot in with_keys {
        let holders = holders(slot, keys);
        let owner = holders[0].0.to_string();
        assigned.entry(owner.clone()).or_default().push(slot);
        let others: Vec<String> = holders[1..].iter().map(|(a, _)| a.to_string()).collect();
        if !others.is_empty() {
            moves.push(FixAction::MoveSlot { slot, from: others, to: owner });
        }
    }
    for run in ranges_of(empty) {
        let Some(target) = load.iter_mut().min_by_key(|(_, n)| *n) else { break };
        target.1 += run.len();
        assigned.entry(target.0.clone()).or_default().extend(run.start..=run.end);
    }
    let mut actions: Vec<FixAction> = assigned
        .into_iter()
        .map(|(addr, mut slots)| {
            slots.sort_unstable();
            FixAction::AddSlots { addr, ranges: ranges_of(slots) }
        })
        .collect();
    actions.extend(moves);
    actions
}

fn fix_open(views: &[NodeView], reference: &Topology, keys: &KeyCounts) -> Vec<FixAction> {
    let mut migrating: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    let mut importing: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (addr, topology) in reachable(views) {
        let Some(me) = topology.myself() else { continue };
        for open in &me.migrating {
            migrating.entry(open.slot).or_default().push(addr.to_string());
        }
        for open in &me.importing {
            importing.entry(open.slot).or_default().push(addr.to_string());
        }
    }
    let owners = reference.slot_owners();
    let mut slots: Vec<u16> = migrating.keys().chain(importing.keys()).copied().collect();
    slots.sort_unstable();
    slots.dedup();
    let mut actions = Vec::new();
    for slot in slots {
        let migrating = migrating.get(&slot).cloned().unwrap_or_default();
        let importing = importing.get(&slot).cloned().unwrap_or_default();
        let Some(owner) = owners[usize::from(slot)].map(|i| reference.nodes[i].addr()) else {
            // An uncovered slot gets its owner above; its open states only need closing.
            actions.extend(
                migrating
                    .iter()
                    .chain(&importing)
                    .map(|addr| FixAction::SetStable { addr: addr.clone(), slot }),
            );
            continue;
        };
        match (migrating.as_slice(), importing.as_slice()) {
            ([source], [target]) if *source == owner => {
                actions.push(FixAction::MoveSlot { slot, from: vec![owner], to: target.clone() });
            }
            ([], importers) => {
                let with_keys: Vec<String> = holders(slot, keys)
                    .into_iter()
                    .map(|(a, _)| a.to_string())
                    .filter(|a| importers.contains(a))
                    .collect();
                if with_keys.is_empty() {
                    actions.extend(
                        importers
                            .iter()
                            .map(|addr| FixAction::SetStable { addr: addr.clone(), slot }),
                    );
                } else {
                    actions.push(FixAction::MoveSlot { slot, from: with_keys, to: owner });
                    let empty = importers
                        .iter()
                        .filter(|a| !holders(slot, keys).iter().any(|(h, _)| h == *a));
                    actions.extend(
                        empty.map(|addr| FixAction::SetStable { addr: addr.clone(), slot }),
                    );
                }
            }
            (sources, []) => {
                actions.extend(
                    sources.iter().map(|addr| FixAction::SetStable { addr: addr.clone(), slot }),
                );
            }
            (sources, targets) => actions.push(FixAction::Unfixable {
                slot,
                reason: format!(
                    "migrating on {} and importing on {} while {owner} owns it",
                    sources.join(", "),
                    targets.join(", ")
                ),
            }),
        }
    }
    actions
}
