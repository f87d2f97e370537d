//! The parsers on real Redis 7.0 outputs (captured by scripts/capture-cluster-fixtures.sh).

use cluster::slot::key_slot;
use cluster::topology::{Link, Role, SlotRange, parse_cluster_nodes, parse_cluster_shards};
use resp::{Limits, parse_value};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn nodes(name: &str) -> cluster::topology::Topology {
    parse_cluster_nodes(&String::from_utf8(fixture(name)).unwrap()).unwrap()
}

#[test]
fn key_slots_match_redis() {
    let table = String::from_utf8(fixture("keyslots.tsv")).unwrap();
    let mut checked = 0;
    for line in table.lines() {
        let (key, slot) = line.split_once('\t').unwrap();
        assert_eq!(key_slot(key.as_bytes()), slot.parse::<u16>().unwrap(), "key {key:?}");
        checked += 1;
    }
    assert!(checked >= 15);
}

#[test]
fn healthy_cluster_nodes() {
    let t = nodes("nodes-healthy.txt");
    assert_eq!(t.nodes.len(), 6);
    assert_eq!(t.masters().count(), 3);
    assert_eq!(t.covered_slots(), 16384);
    let me = t.myself().unwrap();
    assert_eq!(me.port, 23001);
    assert_eq!(me.bus_port, 33001);
    assert_eq!(me.slots, vec![SlotRange { start: 0, end: 5460 }]);
    for master in t.masters() {
        assert_eq!(t.replicas_of(&master.id).count(), 1, "{} has one replica", master.addr());
    }
    assert!(t.nodes.iter().all(|n| n.link == Link::Connected && !n.is_failing()));
}

#[test]
fn open_slots_on_both_sides() {
    let source = nodes("nodes-migrating.txt");
    let me = source.myself().unwrap();
    assert_eq!(me.migrating.len(), 1);
    assert_eq!(me.migrating[0].slot, 0);
    let target = nodes("nodes-importing.txt");
    let me_target = target.myself().unwrap();
    assert_eq!(me_target.importing[0].slot, 0);
    assert_eq!(me_target.importing[0].node_id, me.id);
    assert_eq!(me.migrating[0].node_id, me_target.id);
}

#[test]
fn suspected_then_failed_master() {
    let t = nodes("nodes-pfail.txt");
    let suspect = t.nodes.iter().find(|n| n.flags.pfail).expect("a fail? node");
    assert!(suspect.is_master() && !suspect.flags.fail && suspect.link == Link::Disconnected);

    let t = nodes("nodes-failover.txt");
    let failed = t.nodes.iter().find(|n| n.flags.fail).expect("a failed node");
    assert!(failed.slots.is_empty(), "the failed master lost its slots");
    let promoted = t.masters().find(|n| n.slots.first().map(|r| r.start) == Some(0)).unwrap();
    assert_ne!(promoted.id, failed.id);
    assert!(!promoted.is_failing());
    assert_eq!(t.covered_slots(), 16384);
}

#[test]
fn shards_resp2_and_resp3_give_the_same_model() {
    let limits = Limits::default();
    let (resp2, _) = parse_value(&fixture("shards-healthy.resp2"), &limits).unwrap().unwrap();
    let (resp3, _) = parse_value(&fixture("shards-healthy.resp3"), &limits).unwrap().unwrap();
    let t2 = parse_cluster_shards(&resp2).unwrap();
    let t3 = parse_cluster_shards(&resp3).unwrap();
    assert_eq!(t2, t3);
    assert_eq!(t2.nodes.len(), 6);
    assert_eq!(t2.covered_slots(), 16384);
    for master in t2.masters() {
        let replicas: Vec<_> = t2.replicas_of(&master.id).collect();
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0].role, Role::Replica);
        assert_eq!(master.health.as_deref(), Some("online"));
        assert!(master.replication_offset.is_some());
    }
    // Same nodes and slots as CLUSTER NODES says.
    let from_nodes = nodes("nodes-healthy.txt");
    for node in &from_nodes.nodes {
        let same = t2.by_id(&node.id).unwrap();
        assert_eq!((same.addr(), &same.slots, same.role), (node.addr(), &node.slots, node.role));
    }
}

#[test]
fn shards_after_failover_mark_the_failed_node() {
    let (reply, _) =
        parse_value(&fixture("shards-failover.resp2"), &Limits::default()).unwrap().unwrap();
    let t = parse_cluster_shards(&reply).unwrap();
    assert_eq!(t.nodes.iter().filter(|n| n.flags.fail).count(), 1);
    assert_eq!(t.covered_slots(), 16384);
}

#[test]
fn malformed_lines_are_errors_that_quote_the_line() {
    for bad in [
        "abc 127.0.0.1:7001@17001 master - 0 0 1",
        "abc nonsense master - 0 0 1 connected",
        "abc 127.0.0.1:7001@17001 master - x 0 1 connected",
        "abc 127.0.0.1:7001@17001 master - 0 0 1 connected 16384",
        "abc 127.0.0.1:7001@17001 master - 0 0 1 sleeping",
    ] {
        let err = parse_cluster_nodes(bad).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn hostnames_and_noaddr() {
    let t = parse_cluster_nodes(
        "a 10.0.0.1:7001@17001,redis-a myself,master - 0 0 1 connected 0-10 12\n\
         b :0@0 noaddr,master - 0 0 0 disconnected\n",
    )
    .unwrap();
    assert_eq!(t.nodes[0].hostname.as_deref(), Some("redis-a"));
    assert_eq!(t.nodes[0].slot_count(), 12);
    assert!(t.nodes[1].flags.noaddr && t.nodes[1].ip.is_empty());
}
