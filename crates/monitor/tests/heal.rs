//! Healing plans and guardrails, pure: an alarm and a model (built from recorded
//! `CLUSTER NODES`) in, an action or a refusal out.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use monitor::Model;
use monitor::heal::{Action, Context, Decision, EVERY_SHARD, Guard, Mode, Plan, plan, verified};
use monitor::poll::build_model;

fn labels(addr: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("addr".to_string(), addr.to_string())])
}

fn plan_for(
    rule: &str,
    addr: &str,
    model: &Model,
    owned: bool,
    spares: &[String],
) -> Option<Action> {
    let no_room = |_: &[String]| Err("no room".to_string());
    plan_with(rule, addr, model, owned, spares, &no_room).map(|p| p.action)
}

fn plan_with(
    rule: &str,
    addr: &str,
    model: &Model,
    owned: bool,
    spares: &[String],
    place_new_node: &dyn Fn(&[String]) -> Result<String, String>,
) -> Option<Plan> {
    let owns = move |_: &str| owned;
    let ctx = Context { owns: &owns, spares, place_new_node };
    plan(rule, "fp", &labels(addr), model, &ctx)
}

fn down(addrs: &[&str]) -> Model {
    build_model(
        0,
        &["127.0.0.1:23001".into()],
        &samples(HEALTHY, addrs),
        vec![],
        None,
        &Default::default(),
    )
}

#[test]
fn a_dead_node_is_restarted_only_when_the_local_supervisor_owns_it() {
    let model = down(&["127.0.0.1:23004"]);
    assert_eq!(
        plan_for("node_down", "127.0.0.1:23004", &model, true, &[]),
        Some(Action::RestartNode { addr: "127.0.0.1:23004".into() })
    );
    assert_eq!(plan_for("node_down", "127.0.0.1:23004", &model, false, &[]), None);
    // Marked fail but answering (a partition healed): nothing to restart.
    assert_eq!(plan_for("node_down", "127.0.0.1:23001", &healthy(0), true, &[]), None);
}

#[test]
fn a_node_back_empty_is_reattached_to_the_master_that_needs_a_replica() {
    let mut model = healthy(0);
    // 23005 (replica of 23001) came back empty.
    let own = own_mut(&mut model, "127.0.0.1:23005");
    own.id = "f".repeat(40);
    own.known_nodes = 1;
    own.master_link_up = None;
    match plan_for("node_came_back_empty", "127.0.0.1:23005", &model, true, &[]) {
        Some(Action::Reattach { addr, old_id, master_addr, .. }) => {
            assert_eq!(addr, "127.0.0.1:23005");
            assert_eq!(old_id, "92ced21de28fb34b04dfdaeb7747bab8de989174");
            assert_eq!(master_addr, "127.0.0.1:23001");
        }
        other => panic!("{other:?}"),
    }
    // Its master's own alarm leaves it to that plan.
    assert_eq!(plan_for("master_without_replica", "127.0.0.1:23001", &model, true, &[]), None);
}

#[test]
fn a_master_without_replica_gets_a_spare_or_a_replica_from_a_master_with_two() {
    let model = down(&["127.0.0.1:23005"]);
    assert_eq!(
        plan_for("master_without_replica", "127.0.0.1:23001", &model, true, &[]),
        None,
        "no source; its replica is restarted by the supervisor"
    );
    assert!(
        matches!(
            plan_for("master_without_replica", "127.0.0.1:23001", &model, false, &[]),
            Some(Action::CannotHeal { .. })
        ),
        "no source, the replica lost for good, and the supervisor has no room"
    );
    // A spare: an empty cluster-mode node that answers.
    let mut model = down(&["127.0.0.1:23005"]);
    let mut spare = model.node("127.0.0.1:23002").unwrap().clone();
    spare.addr = "127.0.0.1:23009".into();
    spare.id = String::new();
    spare.role = "unknown".into();
    spare.slot_count = 0;
    spare.own.as_mut().unwrap().known_nodes = 1;
    model.nodes.push(spare);
    match plan_for(
        "master_without_replica",
        "127.0.0.1:23001",
        &model,
        true,
        &["127.0.0.1:23009".into()],
    ) {
        Some(Action::AttachReplica { replica, master_addr, donor: None, .. }) => {
            assert_eq!(
                (replica.as_str(), master_addr.as_str()),
                ("127.0.0.1:23009", "127.0.0.1:23001")
            );
        }
        other => panic!("{other:?}"),
    }
    // A donor: 23002 has two replicas (23006, and 23004 moved under it).
    let mut model = down(&["127.0.0.1:23005"]);
    let id_23002 = model.node("127.0.0.1:23002").unwrap().id.clone();
    node_mut(&mut model, "127.0.0.1:23004").master_id = Some(id_23002);
    match plan_for("master_without_replica", "127.0.0.1:23001", &model, true, &[]) {
        Some(Action::AttachReplica { donor: Some(donor), .. }) => {
            assert_eq!(donor, "127.0.0.1:23002")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn after_a_failover_the_master_on_a_crowded_host_fails_over_back() {
    // The recorded failover: 23005 (host 2) took over 23001's slots; 23001 came back as its
    // replica on host 1, which now has no master.
    let text = FAILOVER.replace(
        "127.0.0.1:23001@33001 master,fail - 1795568697933 1795568696927 1 disconnected",
        "127.0.0.1:23001@33001 slave 92ced21de28fb34b04dfdaeb7747bab8de989174 0 1795568696927 7 connected",
    );
    let mut model = build_model(
        0,
        &["127.0.0.1:23006".into()],
        &samples(&text, &[]),
        vec![],
        None,
        &Default::default(),
    );
    place(&mut model, [1, 2, 3, 1, 2, 3]);
    assert_eq!(
        plan_for("masters_same_host", "", &model, true, &[]),
        Some(Action::FailoverBack {
            replica: "10.0.0.1:23001".into(),
            master: "10.0.0.2:23005".into()
        })
    );
}

#[test]
fn open_slots_are_fixed() {
    let model = healthy(0);
    let action = plan_for("slot_open", "127.0.0.1:23001", &model, true, &[]);
    assert_eq!(action, Some(Action::FixSlots { seed: "127.0.0.1:23001".into() }));
}

#[test]
fn guardrails() {
    let model = down(&["127.0.0.1:23004"]);
    let owns = |_: &str| true;
    let no_room = |_: &[String]| Err("no room".to_string());
    let ctx = Context { owns: &owns, spares: &[], place_new_node: &no_room };
    let p = plan("node_down", "fp", &labels("127.0.0.1:23004"), &model, &ctx).unwrap();
    let window = Duration::from_secs(60);

    let refused = |d: Decision| matches!(d, Decision::Refuse(_));
    assert!(refused(Guard::new(Mode::Off, 3, window).decide(&p, &model, 0, None)));
    assert_eq!(Guard::new(Mode::DryRun, 3, window).decide(&p, &model, 0, None), Decision::DryRun);
    assert!(
        refused(Guard::new(Mode::Auto, 3, window).decide(&p, &model, 0, Some(false))),
        "not the VIP holder"
    );

    // Cut off: two of three masters unreachable.
    let cut_off = down(&["127.0.0.1:23002", "127.0.0.1:23003", "127.0.0.1:23004"]);
    match Guard::new(Mode::Auto, 3, window).decide(&p, &cut_off, 0, None) {
        Decision::Refuse(why) => assert!(why.contains("1 of 3 masters"), "{why}"),
        other => panic!("{other:?}"),
    }

    // One action per shard at a time, and a rate limit.
    let mut guard = Guard::new(Mode::Auto, 2, window);
    assert_eq!(guard.decide(&p, &model, 0, Some(true)), Decision::Apply);
    assert!(refused(guard.decide(&p, &model, 1_000, None)), "shard busy");
    guard.done(&p.shard);
    assert_eq!(guard.decide(&p, &model, 2_000, None), Decision::Apply);
    guard.done(&p.shard);
    match guard.decide(&p, &model, 3_000, None) {
        Decision::Refuse(why) => assert!(why.contains("rate limit"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(guard.decide(&p, &model, 61_000, None), Decision::Apply, "the window moved on");
}

#[test]
fn a_master_without_replica_spare_or_donor_gets_a_new_node_away_from_its_shard() {
    // 23005, the only replica of 23001, is gone; no spare, no master with two replicas.
    let mut model = down(&["127.0.0.1:23005"]);
    place(&mut model, [1, 2, 3, 2, 3, 1]);
    let asked = std::sync::Mutex::new(Vec::new());
    let room = |avoid: &[String]| {
        asked.lock().unwrap().extend(avoid.iter().cloned());
        Ok("10.0.0.2".to_string())
    };
    // The lost replica is one the supervisor restarts: that comes first, no new node.
    assert_eq!(
        plan_with("master_without_replica", "10.0.0.1:23001", &model, true, &[], &room),
        None
    );
    assert!(asked.lock().unwrap().is_empty());
    // Gone for good (not the supervisor's to start): a new node.
    let p = plan_with("master_without_replica", "10.0.0.1:23001", &model, false, &[], &room)
        .expect("a plan");
    let master_id = model.node("10.0.0.1:23001").unwrap().id.clone();
    assert_eq!(
        p.action,
        Action::NewReplica {
            host: "10.0.0.2".into(),
            master_id: master_id.clone(),
            master_addr: "10.0.0.1:23001".into()
        }
    );
    assert_eq!(p.shard, master_id);
    assert_eq!(
        p.action.to_string(),
        "start a new node on 10.0.0.2 and make it a replica of 10.0.0.1:23001"
    );
    // The master's host and the lost replica's are avoided.
    let mut avoided = asked.lock().unwrap().clone();
    avoided.sort();
    assert_eq!(avoided, ["10.0.0.1", "10.0.0.3"]);
    // Not verified until the master has a healthy replica; the healthy cluster shows one.
    assert!(!verified(&p.action, &model));
    let mut healed = healthy(0);
    place(&mut healed, [1, 2, 3, 2, 3, 1]);
    assert!(verified(&p.action, &healed));

    // No room: said, and the guard applies nothing even in auto mode.
    let full = |_: &[String]| Err("every host has a node of this shard".to_string());
    let p = plan_with("master_without_replica", "10.0.0.1:23001", &model, false, &[], &full)
        .expect("a plan that says why not");
    match &p.action {
        Action::CannotHeal { why } => {
            assert!(why.contains("every host has a node of this shard"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    let mut guard = Guard::new(Mode::Auto, 3, Duration::from_secs(60));
    assert!(matches!(guard.decide(&p, &healthy(0), 0, None), Decision::Refuse(_)));
}

/// The healthy model with the masters' slots set to `counts` (consecutive ranges).
fn with_slots(counts: [u16; 3]) -> Model {
    let mut model = healthy(0);
    let mut start = 0u16;
    for (port, count) in [23001, 23002, 23003].into_iter().zip(counts) {
        let node = node_mut(&mut model, &format!("127.0.0.1:{port}"));
        node.slots = vec![cluster::topology::SlotRange { start, end: start + count - 1 }];
        node.slot_count = u64::from(count);
        start += count;
    }
    model
}

#[test]
fn uneven_slots_are_rebalanced_with_the_scaling_planner() {
    let model = with_slots([10000, 3192, 3192]);
    let p = plan_with("shard_imbalance_keys", "", &model, true, &[], &|_| Err("-".into()))
        .expect("a plan");
    assert_eq!(p.shard, EVERY_SHARD, "a rebalance touches every shard");
    let Action::Rebalance { plan: moves, .. } = &p.action else { panic!("{:?}", p.action) };
    // After the planner's moves every master has its share.
    let after = cluster::reshard::counts_after(
        &[23001u16, 23002, 23003]
            .iter()
            .map(|port| {
                let n = model.node(&format!("127.0.0.1:{port}")).unwrap();
                cluster::reshard::MasterLoad {
                    id: n.id.clone(),
                    addr: n.addr.clone(),
                    slots: n.slots.iter().flat_map(|r| r.start..=r.end).collect(),
                    weight: 1.0,
                }
            })
            .collect::<Vec<_>>(),
        moves,
    );
    let counts: Vec<u64> = after.iter().map(|(_, c)| *c).collect();
    assert!(counts.iter().all(|&c| (5461..=5462).contains(&c)), "{counts:?}");
    assert!(moves.moves.iter().all(|m| m.from_addr == "127.0.0.1:23001"), "{moves:?}");
    let text = p.action.to_string();
    assert!(
        text.starts_with("rebalance (as `redkeep rebalance 127.0.0.1:23001`): move 4539 slots:"),
        "{text}"
    );
    assert!(!verified(&p.action, &model));
    assert!(verified(&p.action, &with_slots([5461, 5462, 5461])));

    // Even slots: nothing to move, and it says why.
    let even = with_slots([5461, 5462, 5461]);
    assert!(matches!(
        plan_for("shard_imbalance_memory", "", &even, true, &[]),
        Some(Action::CannotHeal { .. })
    ));
    // A master down: not now (it is restarted or failed over first).
    let mut one_down = model.clone();
    node_mut(&mut one_down, "127.0.0.1:23002").reachable = false;
    assert_eq!(plan_for("shard_imbalance_keys", "", &one_down, true, &[]), None);
}

#[test]
fn a_rebalance_runs_alone() {
    let model = with_slots([10000, 3192, 3192]);
    let rebalance = plan_with("shard_imbalance_keys", "", &model, true, &[], &|_| Err("-".into()))
        .expect("a plan");
    let owns = |_: &str| true;
    let no_room = |_: &[String]| Err("no room".to_string());
    let ctx = Context { owns: &owns, spares: &[], place_new_node: &no_room };
    let restart =
        plan("node_down", "fp2", &labels("127.0.0.1:23004"), &down(&["127.0.0.1:23004"]), &ctx)
            .expect("a restart");
    let mut guard = Guard::new(Mode::Auto, 10, Duration::from_secs(60));
    assert_eq!(guard.decide(&restart, &model, 0, None), Decision::Apply);
    match guard.decide(&rebalance, &model, 0, None) {
        Decision::Refuse(why) => assert!(why.contains("a rebalance waits"), "{why}"),
        other => panic!("{other:?}"),
    }
    guard.done(&restart.shard);
    assert_eq!(guard.decide(&rebalance, &model, 0, None), Decision::Apply);
    match guard.decide(&restart, &model, 0, None) {
        Decision::Refuse(why) => assert!(why.contains("rebalance is in flight"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Dry-run prints the plan and applies nothing.
    let mut dry = Guard::new(Mode::DryRun, 10, Duration::from_secs(60));
    assert_eq!(dry.decide(&rebalance, &model, 0, None), Decision::DryRun);
}

#[test]
fn a_refusal_for_want_of_a_majority_says_what_was_reached_and_what_not() {
    let all = [
        "127.0.0.1:23001",
        "127.0.0.1:23002",
        "127.0.0.1:23003",
        "127.0.0.1:23004",
        "127.0.0.1:23005",
        "127.0.0.1:23006",
    ];
    // Cut off from everything: the cluster's view is unknown (no master listed at all).
    let model = build_model(
        0,
        &all.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        &samples(HEALTHY, &all),
        vec![],
        None,
        &Default::default(),
    );
    let why = model.no_majority_reason();
    assert!(!why.contains("0 of 0"), "{why}");
    assert!(why.contains("reached 0 of the 6 nodes"), "{why}");
    assert!(why.contains("could not reach: 127.0.0.1:23001, 127.0.0.1:23002"), "{why}");
    // Two of three masters unreachable: named.
    let cut = down(&["127.0.0.1:23002", "127.0.0.1:23003"]);
    let why = cut.no_majority_reason();
    assert!(why.contains("reached 1 of 3 masters"), "{why}");
    assert!(why.contains("could not reach masters 127.0.0.1:23002, 127.0.0.1:23003"), "{why}");
}
