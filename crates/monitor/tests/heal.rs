//! Healing plans and guardrails, pure: an alarm and a model (built from recorded
//! `CLUSTER NODES`) in, an action or a refusal out.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use monitor::Model;
use monitor::heal::{Action, Context, Decision, Guard, Mode, plan};
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
    let owns = move |_: &str| owned;
    let ctx = Context { owns: &owns, spares };
    plan(rule, "fp", &labels(addr), model, &ctx).map(|p| p.action)
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
        "no source"
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
    let ctx = Context { owns: &owns, spares: &[] };
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
