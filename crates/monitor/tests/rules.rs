//! Every alarm rule on models built from recorded `CLUSTER NODES`: silent on the healthy
//! cluster, and raising the right subject when its condition holds.

mod common;

use common::*;
use monitor::model::{LatencyEvent, OpenSlot, ProxyHealth, VipHealth};
use monitor::poll::build_model;
use monitor::rules::{Condition, rule};
use monitor::{Config, Model};

fn check(name: &str, prev: Option<&Model>, cur: &Model) -> Vec<Condition> {
    let r = rule(name).expect("rule exists");
    (r.check)(prev, cur, Config::default().rule(name).threshold)
}

fn addrs(conditions: &[Condition]) -> Vec<String> {
    conditions.iter().map(|c| c.labels.get("addr").cloned().unwrap_or_default()).collect()
}

#[test]
fn the_healthy_cluster_raises_nothing() {
    let (prev, cur) = (healthy(1_000), healthy(2_000));
    let conditions = monitor::rules::evaluate(&Config::default(), Some(&prev), &cur);
    assert!(conditions.is_empty(), "{conditions:#?}");
    assert_eq!(cur.nodes.len(), 6);
    assert_eq!(cur.shards().len(), 3);
    assert!(cur.sees_majority());
    assert_eq!(cur.cluster.state, "ok");
}

#[test]
fn cluster_state_not_ok() {
    let mut cur = healthy(0);
    own_mut(&mut cur, "127.0.0.1:23002").cluster_state = "fail".into();
    assert_eq!(addrs(&check("cluster_state", None, &cur)), ["127.0.0.1:23002"]);
}

#[test]
fn slots_pfail_and_fail() {
    let mut cur = healthy(0);
    assert!(check("slots_pfail", None, &cur).is_empty());
    cur.cluster.slots_pfail = 5461;
    cur.cluster.slots_fail = 10;
    assert_eq!(check("slots_pfail", None, &cur)[0].value, 5461.0);
    assert_eq!(check("slots_fail", None, &cur)[0].value, 10.0);
}

#[test]
fn slot_open() {
    let mut cur = healthy(0);
    own_mut(&mut cur, "127.0.0.1:23001").open_slots =
        vec![OpenSlot { slot: 42, state: "migrating".into(), peer: "5f79".into() }];
    let c = check("slot_open", None, &cur);
    assert_eq!(
        (c[0].labels["slot"].as_str(), c[0].labels["addr"].as_str()),
        ("42", "127.0.0.1:23001")
    );
}

#[test]
fn node_down_when_unreachable_or_marked_fail() {
    let samples = samples(HEALTHY, &["127.0.0.1:23004"]);
    let cur =
        build_model(0, &["127.0.0.1:23001".into()], &samples, vec![], None, &Default::default());
    let c = check("node_down", None, &cur);
    assert_eq!(addrs(&c), ["127.0.0.1:23004"]);
    assert!(c[0].summary.contains("Connection refused"), "{}", c[0].summary);

    // The recorded failover: 23001 failed, 23005 took over. It is down although no poll said
    // so, because the cluster marks it fail.
    let samples = common::samples(FAILOVER, &[]);
    let cur =
        build_model(0, &["127.0.0.1:23006".into()], &samples, vec![], None, &Default::default());
    assert_eq!(addrs(&check("node_down", None, &cur)), ["127.0.0.1:23001"]);
}

#[test]
fn node_came_back_empty() {
    let mut cur = healthy(0);
    let own = own_mut(&mut cur, "127.0.0.1:23005");
    own.id = "ffffffffffffffffffffffffffffffffffffffff".into();
    own.known_nodes = 1;
    let c = check("node_came_back_empty", None, &cur);
    assert_eq!(addrs(&c), ["127.0.0.1:23005"]);
    assert_eq!(c[0].labels["old_id"], "92ced21de28fb34b04dfdaeb7747bab8de989174");
}

#[test]
fn master_without_replica_when_its_replica_is_down_or_unlinked() {
    // 23005 replicates 23001.
    let samples = samples(HEALTHY, &["127.0.0.1:23005"]);
    let cur =
        build_model(0, &["127.0.0.1:23001".into()], &samples, vec![], None, &Default::default());
    assert_eq!(addrs(&check("master_without_replica", None, &cur)), ["127.0.0.1:23001"]);
    let mut cur = healthy(0);
    own_mut(&mut cur, "127.0.0.1:23006").master_link_up = Some(false);
    assert_eq!(addrs(&check("master_without_replica", None, &cur)), ["127.0.0.1:23002"]);
}

#[test]
fn replica_link_down() {
    let mut cur = healthy(0);
    own_mut(&mut cur, "127.0.0.1:23004").master_link_up = Some(false);
    let c = check("replica_link_down", None, &cur);
    assert_eq!(addrs(&c), ["127.0.0.1:23004"]);
    assert_eq!(c[0].labels["master"], "127.0.0.1:23003");
}

#[test]
fn replication_lag_in_bytes_and_seconds() {
    let mut cur = healthy(0);
    own_mut(&mut cur, "127.0.0.1:23001").repl_offset = 5000 + 20_000_000;
    own_mut(&mut cur, "127.0.0.1:23006").master_last_io_s = Some(30);
    let bytes = check("replication_lag_bytes", None, &cur);
    assert_eq!(
        (addrs(&bytes), bytes[0].value),
        (vec!["127.0.0.1:23005".to_string()], 20_000_000.0)
    );
    assert_eq!(addrs(&check("replication_lag_seconds", None, &cur)), ["127.0.0.1:23006"]);
}

#[test]
fn master_and_replica_on_one_host_only_counts_across_hosts() {
    let mut cur = healthy(0);
    assert!(check("master_replica_same_host", None, &cur).is_empty(), "one host: no better layout");
    // 23001 and its replica 23005 on host 1; the rest elsewhere.
    place(&mut cur, [1, 2, 3, 1, 1, 3]);
    let c = check("master_replica_same_host", None, &cur);
    assert_eq!(addrs(&c), ["10.0.0.1:23005"]);
    assert_eq!(c[0].labels["master"], "10.0.0.1:23001");
}

#[test]
fn two_masters_on_a_host_while_another_has_none() {
    let mut cur = healthy(0);
    place(&mut cur, [1, 2, 3, 1, 2, 3]);
    assert!(check("masters_same_host", None, &cur).is_empty());
    // The recorded failover: 23005 (host 2) took over from 23001 (host 1).
    let samples = samples(FAILOVER, &["127.0.0.1:23001"]);
    let mut cur =
        build_model(0, &["127.0.0.1:23006".into()], &samples, vec![], None, &Default::default());
    place(&mut cur, [1, 2, 3, 1, 2, 3]);
    let c = check("masters_same_host", None, &cur);
    assert_eq!(c[0].labels["host"], "10.0.0.2");
}

#[test]
fn memory_high_fires_over_the_threshold_and_not_without_maxmemory() {
    let mut cur = healthy(0);
    assert!(check("memory_high", None, &cur).is_empty(), "maxmemory 0 is unlimited");
    own_mut(&mut cur, "127.0.0.1:23002").maxmemory = 1_200_000; // 83%
    assert!(check("memory_high", None, &cur).is_empty());
    own_mut(&mut cur, "127.0.0.1:23002").maxmemory = 1_050_000; // 95%
    assert_eq!(addrs(&check("memory_high", None, &cur)), ["127.0.0.1:23002"]);
}

#[test]
fn evictions_and_rejected_connections_count_growth_since_the_last_poll() {
    let prev = healthy(0);
    let mut cur = healthy(1_000);
    assert!(check("evictions", Some(&prev), &cur).is_empty());
    own_mut(&mut cur, "127.0.0.1:23003").evicted_keys = 7;
    own_mut(&mut cur, "127.0.0.1:23001").rejected_connections = 2;
    let e = check("evictions", Some(&prev), &cur);
    assert_eq!((addrs(&e), e[0].value), (vec!["127.0.0.1:23003".to_string()], 7.0));
    assert_eq!(addrs(&check("rejected_connections", Some(&prev), &cur)), ["127.0.0.1:23001"]);
    assert!(check("evictions", None, &cur).is_empty(), "no growth without a previous poll");
}

#[test]
fn latency_spike_since_the_last_poll_over_the_threshold() {
    let prev = healthy(10_000);
    let mut cur = healthy(11_000);
    let spike =
        |at_s, latest_ms| LatencyEvent { event: "command".into(), at_s, latest_ms, max_ms: 900 };
    own_mut(&mut cur, "127.0.0.1:23001").latency = vec![spike(10, 250)];
    own_mut(&mut cur, "127.0.0.1:23002").latency = vec![spike(3, 900)]; // old news
    own_mut(&mut cur, "127.0.0.1:23003").latency = vec![spike(10, 20)]; // below 100 ms
    assert_eq!(addrs(&check("latency_spike", Some(&prev), &cur)), ["127.0.0.1:23001"]);
}

#[test]
fn proxy_down_or_with_uncovered_slots() {
    let mut cur = healthy(0);
    cur.proxies = vec![
        ProxyHealth { addr: "p:1".into(), up: true, masters: 3, ..Default::default() },
        ProxyHealth {
            addr: "p:2".into(),
            up: false,
            error: Some("refused".into()),
            ..Default::default()
        },
        ProxyHealth { addr: "p:3".into(), up: true, slots_uncovered: 5461, ..Default::default() },
    ];
    let c = check("proxy_down", None, &cur);
    let proxies: Vec<&str> = c.iter().map(|c| c.labels["proxy"].as_str()).collect();
    assert_eq!(proxies, ["p:2", "p:3"]);
}

#[test]
fn vip_held_by_none_or_by_two() {
    let mut cur = healthy(0);
    let vip = |holders: &[&str], unknown: &[&str]| VipHealth {
        address: "198.18.0.100".into(),
        holders: holders.iter().map(|s| s.to_string()).collect(),
        unknown: unknown.iter().map(|s| s.to_string()).collect(),
    };
    cur.vip = Some(vip(&["lb1"], &[]));
    assert!(check("vip_none", None, &cur).is_empty() && check("vip_split", None, &cur).is_empty());
    cur.vip = Some(vip(&[], &[]));
    assert_eq!(check("vip_none", None, &cur).len(), 1);
    cur.vip = Some(vip(&[], &["lb2"]));
    assert!(check("vip_none", None, &cur).is_empty(), "an LB we could not ask may hold it");
    cur.vip = Some(vip(&["lb1", "lb2"], &[]));
    assert_eq!(check("vip_split", None, &cur)[0].value, 2.0);
}

#[test]
fn shard_imbalance_of_keys_and_memory() {
    let mut cur = healthy(0);
    assert!(check("shard_imbalance_keys", None, &cur).is_empty());
    own_mut(&mut cur, "127.0.0.1:23001").keys = 3000; // 3000, 1000, 1000: (3000-1000)/1667 = 1.2
    assert!(check("shard_imbalance_keys", None, &cur)[0].value > 1.0);
    for addr in ["127.0.0.1:23001", "127.0.0.1:23002", "127.0.0.1:23003"] {
        own_mut(&mut cur, addr).used_memory = 20_000_000;
    }
    assert!(check("shard_imbalance_memory", None, &cur).is_empty());
    own_mut(&mut cur, "127.0.0.1:23003").used_memory = 60_000_000;
    assert_eq!(check("shard_imbalance_memory", None, &cur).len(), 1);
}

#[test]
fn node_restarted_when_uptime_goes_back_or_it_starts_after_being_down() {
    let prev = healthy(0);
    let mut cur = healthy(1_000);
    own_mut(&mut cur, "127.0.0.1:23002").uptime_s = 1;
    own_mut(&mut cur, "127.0.0.1:23003").run_id = "other".into();
    assert_eq!(
        addrs(&check("node_restarted", Some(&prev), &cur)),
        ["127.0.0.1:23002", "127.0.0.1:23003"]
    );
    // Down in the previous poll, up now with a fresh uptime.
    let samples = samples(HEALTHY, &["127.0.0.1:23004"]);
    let prev =
        build_model(0, &["127.0.0.1:23001".into()], &samples, vec![], None, &Default::default());
    let mut cur = healthy(1_000);
    own_mut(&mut cur, "127.0.0.1:23004").uptime_s = 0;
    assert_eq!(addrs(&check("node_restarted", Some(&prev), &cur)), ["127.0.0.1:23004"]);
}

#[test]
fn every_rule_is_tested_here() {
    let source = include_str!("rules.rs");
    for rule in monitor::rules::CATALOGUE.iter().filter(|r| r.name != "healing_failed") {
        assert!(source.contains(&format!("\"{}\"", rule.name)), "rule {} has no test", rule.name);
    }
}

#[test]
fn node_came_back_empty_after_the_cluster_dropped_its_old_address() {
    // Once the others see a new id answer on the address, they mark the old id `noaddr` and
    // forget its address (Redis 7.0 prints `:0@0`); the model keeps it where it was last seen.
    let old = "92ced21de28fb34b04dfdaeb7747bab8de989174 127.0.0.1:23005@33005 slave";
    let text =
        HEALTHY.replace(old, "92ced21de28fb34b04dfdaeb7747bab8de989174 :0@0 slave,fail,noaddr");
    let mut samples = samples(&text, &[]);
    let fresh =
        samples.iter_mut().find(|s| s.addr.is_empty() || s.addr == ":0").expect("the noaddr line");
    fresh.addr = "127.0.0.1:23005".into();
    let raw = fresh.answer.as_mut().unwrap();
    raw.cluster_nodes = "ffffffffffffffffffffffffffffffffffffffff 127.0.0.1:23005@33005 myself,master - 0 0 0 connected".into();
    raw.cluster_info = CLUSTER_INFO_OK.replace("cluster_known_nodes:6", "cluster_known_nodes:1");
    let former = std::collections::BTreeMap::from([(
        "92ced21de28fb34b04dfdaeb7747bab8de989174".to_string(),
        "127.0.0.1:23005".to_string(),
    )]);
    let seeds = ["127.0.0.1:23001".to_string()];
    let cur = build_model(0, &seeds, &samples, vec![], None, &former);
    assert_eq!(addrs(&check("node_came_back_empty", None, &cur)), ["127.0.0.1:23005"]);
    assert_eq!(addrs(&check("node_down", None, &cur)), ["127.0.0.1:23005"], "marked fail");
    assert!(
        check("cluster_state", None, &cur).is_empty(),
        "its own fail state is not the cluster's"
    );
}
