//! `check` on views built from real Redis 7.0 captures.

use cluster::check::{NodeView, Problem, check};
use cluster::topology::{Topology, parse_cluster_nodes};

fn fixture(name: &str) -> Topology {
    let text =
        std::fs::read_to_string(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    parse_cluster_nodes(&text).unwrap()
}

/// Every node of `topology` reporting that same view (what a settled cluster looks like).
fn views(topology: &Topology) -> Vec<NodeView> {
    topology
        .nodes
        .iter()
        .map(|n| NodeView {
            addr: n.addr(),
            topology: Ok(topology.clone()),
            state: Some("ok".into()),
            keys: Some(0),
        })
        .collect()
}

#[test]
fn a_healthy_single_host_cluster_passes_with_a_warning() {
    let report = check(&views(&fixture("nodes-healthy.txt")), 1);
    assert_eq!(report.covered_slots, 16384);
    assert_eq!(report.masters.len(), 3);
    assert!(report.ok, "{:?}", report.problems);
    // All six nodes run on 127.0.0.1: anti-affinity is impossible, so a warning, not an error.
    assert_eq!(report.warnings, vec![Problem::SingleHost { host: "127.0.0.1".into() }]);
    assert!(report.render().contains("[OK] All 16384 slots covered."));
}

#[test]
fn on_several_hosts_a_replica_beside_its_master_is_an_error() {
    let mut topology = fixture("nodes-healthy.txt");
    // Move one master and its replica to another host: that pair still shares a host.
    let master_id = topology.masters().next().unwrap().id.clone();
    for node in topology
        .nodes
        .iter_mut()
        .filter(|n| n.id == master_id || n.master_id.as_deref() == Some(&master_id))
    {
        node.ip = "10.0.0.2".into();
    }
    let report = check(&views(&topology), 1);
    let same_host: Vec<_> =
        report.problems.iter().filter(|p| matches!(p, Problem::SameHost { .. })).collect();
    assert_eq!(same_host.len(), 3, "{:?}", report.problems);
    assert!(!report.ok && report.warnings.is_empty());
}

#[test]
fn a_failed_master_is_named_and_its_replica_missed() {
    let topology = fixture("nodes-failover.txt");
    let failed = topology.nodes.iter().find(|n| n.flags.fail).unwrap().addr();
    let mut views = views(&topology);
    for view in views.iter_mut().filter(|v| v.addr == failed) {
        view.topology = Err("connection refused".into());
    }
    let report = check(&views, 1);
    let text = report.render();
    assert!(text.contains(&format!("[ERR] {failed} is unreachable")), "{text}");
    assert!(text.contains(&format!("[ERR] {failed} is flagged fail by")), "{text}");
    // The promoted master has no replica left.
    assert!(
        report.problems.iter().any(|p| matches!(p, Problem::MissingReplicas { has: 0, .. })),
        "{text}"
    );
    assert!(!report.problems.iter().any(|p| matches!(p, Problem::Uncovered { .. })));
}

#[test]
fn open_slots_and_disagreement() {
    let mut views = views(&fixture("nodes-healthy.txt"));
    let migrating = fixture("nodes-migrating.txt");
    let importing = fixture("nodes-importing.txt");
    let source = migrating.myself().unwrap().addr();
    let target = importing.myself().unwrap().addr();
    for view in views.iter_mut() {
        if view.addr == source {
            view.topology = Ok(migrating.clone());
        } else if view.addr == target {
            view.topology = Ok(importing.clone());
        }
    }
    let problems = check(&views, 1).problems;
    let open: Vec<String> = problems
        .iter()
        .filter(|p| matches!(p, Problem::OpenSlot { .. }))
        .map(ToString::to_string)
        .collect();
    assert_eq!(open.len(), 2, "{problems:?}");
    assert!(
        open.iter()
            .any(|p| p.contains(&format!("{source} has slot 0 open (migrating to {target})")))
    );
    assert!(
        open.iter()
            .any(|p| p.contains(&format!("{target} has slot 0 open (importing from {source})")))
    );

    // A node that believes another owner for slot range 0-5460 disagrees with the rest.
    let mut odd = fixture("nodes-healthy.txt");
    let owner = odd.nodes.iter().position(|n| n.slots.first().map(|r| r.start) == Some(0)).unwrap();
    odd.nodes[owner].slots.clear();
    views[5].topology = Ok(odd);
    let problems = check(&views, 1).problems;
    assert!(problems.iter().any(|p| matches!(p, Problem::Disagreement { .. })), "{problems:?}");
}

#[test]
fn uncovered_slots_are_listed_as_ranges() {
    let mut topology = fixture("nodes-healthy.txt");
    let master =
        topology.nodes.iter_mut().find(|n| n.slots.first().map(|r| r.start) == Some(0)).unwrap();
    master.slots = vec![
        cluster::topology::SlotRange { start: 0, end: 99 },
        cluster::topology::SlotRange { start: 200, end: 5460 },
    ];
    let problems = check(&views(&topology), 1).problems;
    assert!(
        problems.contains(&Problem::Uncovered { slots: "100-199".into(), count: 100 }),
        "{problems:?}"
    );
}

#[test]
fn nothing_reachable() {
    let views = vec![NodeView {
        addr: "127.0.0.1:1".into(),
        topology: Err("refused".into()),
        state: None,
        keys: None,
    }];
    let report = check(&views, 1);
    assert!(!report.ok);
    assert_eq!(report.problems.len(), 1);
}
