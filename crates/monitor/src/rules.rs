//! Alarm rules: pure functions over the previous and the current [`Model`]. Each rule returns
//! the conditions that hold now (one per node, slot or proxy it concerns); [`crate::alarms`]
//! turns them into pending / firing / resolved alarms with the rule's "for" duration.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::Config;
use crate::model::{Model, NodeHealth};

/// A rule's condition holding for one subject (a node, a slot, a proxy...).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The rule's name (`node_down`).
    pub rule: &'static str,
    /// What it concerns: `addr`, `master`, `slot`, `proxy`... (`alertname` and `severity` are
    /// added by the alarm book).
    pub labels: BTreeMap<String, String>,
    /// One line for a human, with the figures.
    pub summary: String,
    /// The value compared with the threshold (1 for yes/no rules).
    pub value: f64,
}

type Check = fn(Option<&Model>, &Model, f64) -> Vec<Condition>;

/// A rule and its defaults.
pub struct Rule {
    pub name: &'static str,
    /// The Prometheus/Alertmanager alert name (the same in `deploy/prometheus/redkeep.rules.yml`).
    pub alertname: &'static str,
    pub severity: &'static str,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    pub threshold: f64,
    pub description: &'static str,
    pub check: Check,
}

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Every rule, with defaults for a 3+3 cluster. `healing_failed` is raised by the healer, not
/// computed from the model.
pub const CATALOGUE: &[Rule] = &[
    Rule {
        name: "cluster_state",
        alertname: "RedisClusterStateNotOk",
        severity: "critical",
        for_: secs(2),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a node reports cluster_state other than ok",
        check: cluster_state,
    },
    Rule {
        name: "slots_pfail",
        alertname: "RedisClusterSlotsPfail",
        severity: "warning",
        for_: secs(0),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "slots served by a node some node suspects (fail?)",
        check: slots_pfail,
    },
    Rule {
        name: "slots_fail",
        alertname: "RedisClusterSlotsFail",
        severity: "critical",
        for_: secs(0),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "slots served by a node the cluster agreed has failed",
        check: slots_fail,
    },
    Rule {
        name: "slot_open",
        alertname: "RedisClusterSlotOpen",
        severity: "warning",
        for_: secs(60),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a slot left migrating or importing (for: how long is too long)",
        check: slot_open,
    },
    Rule {
        name: "node_down",
        alertname: "RedisNodeDown",
        severity: "critical",
        for_: secs(1),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a node does not answer the monitor, or the cluster marks it fail",
        check: node_down,
    },
    Rule {
        name: "node_came_back_empty",
        alertname: "RedisNodeCameBackEmpty",
        severity: "critical",
        for_: secs(0),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a node answers under a new id, knowing only itself (its nodes.conf is gone)",
        check: node_came_back_empty,
    },
    Rule {
        name: "master_without_replica",
        alertname: "RedisMasterWithoutReplica",
        severity: "critical",
        for_: secs(3),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a master with slots has no healthy replica",
        check: master_without_replica,
    },
    Rule {
        name: "replica_link_down",
        alertname: "RedisReplicaLinkDown",
        severity: "warning",
        for_: secs(5),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a replica's link to its master is not up",
        check: replica_link_down,
    },
    Rule {
        name: "replication_lag_bytes",
        alertname: "RedisReplicationLagBytes",
        severity: "warning",
        for_: secs(30),
        keep_firing_for: secs(0),
        threshold: 10_485_760.0,
        description: "a replica is more than threshold bytes behind its master",
        check: replication_lag_bytes,
    },
    Rule {
        name: "replication_lag_seconds",
        alertname: "RedisReplicationLagSeconds",
        severity: "warning",
        for_: secs(10),
        keep_firing_for: secs(0),
        threshold: 10.0,
        description: "a replica heard nothing from its master for more than threshold seconds",
        check: replication_lag_seconds,
    },
    Rule {
        name: "master_replica_same_host",
        alertname: "RedisMasterReplicaSameHost",
        severity: "warning",
        for_: secs(10),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a master and its replica on one host (only when the cluster spans hosts)",
        check: master_replica_same_host,
    },
    Rule {
        name: "masters_same_host",
        alertname: "RedisMastersSameHost",
        severity: "warning",
        for_: secs(30),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "two masters on one host while another host has none (after failovers)",
        check: masters_same_host,
    },
    Rule {
        name: "memory_high",
        alertname: "RedisMemoryHigh",
        severity: "warning",
        for_: secs(60),
        keep_firing_for: secs(0),
        threshold: 0.9,
        description: "used_memory over threshold (fraction) of maxmemory",
        check: memory_high,
    },
    Rule {
        name: "evictions",
        alertname: "RedisEvictions",
        severity: "warning",
        for_: secs(0),
        keep_firing_for: secs(60),
        threshold: 0.0,
        description: "a node evicted keys since the last poll",
        check: evictions,
    },
    Rule {
        name: "rejected_connections",
        alertname: "RedisRejectedConnections",
        severity: "warning",
        for_: secs(0),
        keep_firing_for: secs(60),
        threshold: 0.0,
        description: "a node refused connections (maxclients) since the last poll",
        check: rejected_connections,
    },
    Rule {
        name: "latency_spike",
        alertname: "RedisLatencySpike",
        severity: "warning",
        for_: secs(0),
        keep_firing_for: secs(60),
        threshold: 100.0,
        description: "a latency event over threshold ms since the last poll (needs latency-monitor-threshold)",
        check: latency_spike,
    },
    Rule {
        name: "proxy_down",
        alertname: "RedkeepProxyDown",
        severity: "critical",
        for_: secs(2),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "a proxy does not answer, or has slots without a master",
        check: proxy_down,
    },
    Rule {
        name: "vip_none",
        alertname: "RedkeepVipNone",
        severity: "critical",
        for_: secs(3),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "no load balancer holds the floating IP",
        check: vip_none,
    },
    Rule {
        name: "vip_split",
        alertname: "RedkeepVipSplit",
        severity: "critical",
        for_: secs(3),
        keep_firing_for: secs(0),
        threshold: 0.0,
        description: "more than one load balancer holds the floating IP",
        check: vip_split,
    },
    Rule {
        name: "shard_imbalance_keys",
        alertname: "RedisShardImbalanceKeys",
        severity: "info",
        for_: secs(300),
        keep_firing_for: secs(0),
        threshold: 0.5,
        description: "(max - min) / mean of keys per master over threshold (100+ keys per master)",
        check: shard_imbalance_keys,
    },
    Rule {
        name: "shard_imbalance_memory",
        alertname: "RedisShardImbalanceMemory",
        severity: "info",
        for_: secs(300),
        keep_firing_for: secs(0),
        threshold: 0.5,
        description: "(max - min) / mean of used_memory per master over threshold (10 MB+ per master)",
        check: shard_imbalance_memory,
    },
    Rule {
        name: "node_restarted",
        alertname: "RedisNodeRestarted",
        severity: "info",
        for_: secs(0),
        keep_firing_for: secs(300),
        threshold: 0.0,
        description: "a node's uptime went back or its run_id changed",
        check: node_restarted,
    },
    Rule {
        name: "healing_failed",
        alertname: "RedkeepHealingFailed",
        severity: "critical",
        for_: secs(0),
        keep_firing_for: secs(300),
        threshold: 0.0,
        description: "a healing action did not have its effect after its retries",
        check: no_model_check,
    },
];

/// Alerts other redkeep parts send to `POST /api/v1/alerts` (`redkeep controller --monitor`).
/// The monitor records them in its timeline and lists firing ones, but no rule has these
/// names, so [`rule_by_alertname`] finds none and no healing plan is made for them: the
/// controller acts on its own findings, and two healers acting on one node would fight.
pub const CONTROLLER_ACTION: &str = "RedkeepControllerAction";
/// See [`CONTROLLER_ACTION`].
pub const CONTROLLER_STUCK: &str = "RedkeepControllerStuck";

/// The rule called `name`.
pub fn rule(name: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.name == name)
}

/// The rule whose alert name is `alertname` (for alerts that come from Alertmanager).
pub fn rule_by_alertname(alertname: &str) -> Option<&'static Rule> {
    CATALOGUE.iter().find(|r| r.alertname == alertname)
}

/// Every enabled rule's conditions over `prev` and `cur`.
pub fn evaluate(config: &Config, prev: Option<&Model>, cur: &Model) -> Vec<Condition> {
    CATALOGUE
        .iter()
        .filter_map(|rule| {
            let settings = config.rule(rule.name);
            settings.enabled.then(|| (rule.check)(prev, cur, settings.threshold))
        })
        .flatten()
        .collect()
}

fn condition(
    rule: &'static str,
    labels: &[(&str, &str)],
    summary: String,
    value: f64,
) -> Condition {
    let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Condition { rule, labels, summary, value }
}

fn no_model_check(_: Option<&Model>, _: &Model, _: f64) -> Vec<Condition> {
    Vec::new()
}

fn cluster_state(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    cur.nodes
        .iter()
        .filter(|n| !n.came_back_empty())
        .filter_map(|n| Some((n, n.own.as_ref()?)))
        .filter(|(_, own)| own.cluster_state != "ok")
        .map(|(n, own)| {
            let summary = format!("{} reports cluster_state:{}", n.addr, own.cluster_state);
            condition("cluster_state", &[("addr", &n.addr)], summary, 1.0)
        })
        .collect()
}

fn slots_pfail(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let n = cur.cluster.slots_pfail;
    let summary = format!("{n} slots are served by a node {} suspects", cur.cluster.reporter);
    if n > 0 { vec![condition("slots_pfail", &[], summary, n as f64)] } else { vec![] }
}

fn slots_fail(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let n = cur.cluster.slots_fail;
    let summary = format!("{n} slots are served by a failed node");
    if n > 0 { vec![condition("slots_fail", &[], summary, n as f64)] } else { vec![] }
}

fn slot_open(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let mut out = Vec::new();
    for node in &cur.nodes {
        for open in node.own.iter().flat_map(|o| &o.open_slots) {
            let slot = open.slot.to_string();
            let summary =
                format!("slot {slot} is {} on {} (peer {})", open.state, node.addr, open.peer);
            out.push(condition(
                "slot_open",
                &[("addr", &node.addr), ("slot", &slot)],
                summary,
                1.0,
            ));
        }
    }
    out
}

fn node_down(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    cur.nodes
        .iter()
        .filter(|n| n.is_down())
        .map(|n| {
            let why = match (&n.error, n.fail) {
                (Some(e), _) => e.clone(),
                (None, true) => "the cluster marks it fail".into(),
                (None, false) => "down".into(),
            };
            let summary = format!("node {} ({}) is down: {why}", n.addr, n.role);
            condition("node_down", &[("addr", &n.addr), ("role", &n.role)], summary, 1.0)
        })
        .collect()
}

fn node_came_back_empty(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    cur.nodes
        .iter()
        .filter(|n| n.came_back_empty())
        .map(|n| {
            let new_id = n.own.as_ref().map_or("", |o| o.id.as_str());
            let summary = format!(
                "{} answers as a new node {new_id} knowing only itself; the cluster knows it as {}",
                n.addr, n.id
            );
            condition("node_came_back_empty", &[("addr", &n.addr), ("old_id", &n.id)], summary, 1.0)
        })
        .collect()
}

fn master_without_replica(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    cur.shards()
        .into_iter()
        .filter(|s| !s.master.is_down())
        .filter(|s| !s.replicas.iter().any(|r| r.is_healthy_replica()))
        .map(|s| {
            let summary = format!(
                "master {} ({} slots) has no healthy replica ({} listed)",
                s.master.addr,
                s.master.slot_count,
                s.replicas.len()
            );
            condition("master_without_replica", &[("addr", &s.master.addr)], summary, 0.0)
        })
        .collect()
}

/// Replicas that answer (a replica that does not is `node_down`'s).
fn answering_replicas(
    cur: &Model,
) -> impl Iterator<Item = (&NodeHealth, &crate::model::OwnReport)> {
    cur.nodes
        .iter()
        .filter(|n| n.role == "replica" && n.reachable)
        .filter_map(|n| Some((n, n.own.as_ref()?)))
}

fn master_addr_of<'a>(cur: &'a Model, node: &NodeHealth) -> &'a str {
    node.master_id.as_deref().and_then(|id| cur.node_by_id(id)).map_or("", |m| m.addr.as_str())
}

fn replica_link_down(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    answering_replicas(cur)
        .filter(|(_, own)| own.master_link_up == Some(false))
        .map(|(n, _)| {
            let master = master_addr_of(cur, n);
            let summary = format!("replica {}: link to master {master} is down", n.addr);
            condition("replica_link_down", &[("addr", &n.addr), ("master", master)], summary, 1.0)
        })
        .collect()
}

fn replication_lag_bytes(_: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    answering_replicas(cur)
        .filter_map(|(n, own)| {
            let master = n.master_id.as_deref().and_then(|id| cur.node_by_id(id))?;
            let lag = master.own.as_ref()?.repl_offset.saturating_sub(own.repl_offset);
            (lag as f64 > threshold).then(|| {
                let summary = format!("replica {} is {lag} bytes behind {}", n.addr, master.addr);
                condition(
                    "replication_lag_bytes",
                    &[("addr", &n.addr), ("master", &master.addr)],
                    summary,
                    lag as f64,
                )
            })
        })
        .collect()
}

fn replication_lag_seconds(_: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    answering_replicas(cur)
        .filter_map(|(n, own)| {
            let silent = own.master_last_io_s? as f64;
            (silent > threshold).then(|| {
                let master = master_addr_of(cur, n);
                let summary =
                    format!("replica {} heard nothing from {master} for {silent} s", n.addr);
                condition(
                    "replication_lag_seconds",
                    &[("addr", &n.addr), ("master", master)],
                    summary,
                    silent,
                )
            })
        })
        .collect()
}

fn hosts(cur: &Model) -> BTreeSet<&str> {
    cur.nodes.iter().filter(|n| !n.id.is_empty()).map(NodeHealth::host).collect()
}

fn master_replica_same_host(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    // On one host (a local cluster) there is no better layout to ask for.
    if hosts(cur).len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for shard in cur.shards() {
        for replica in shard.replicas.iter().filter(|r| r.host() == shard.master.host()) {
            let summary = format!(
                "master {} and its replica {} are both on host {}",
                shard.master.addr,
                replica.addr,
                replica.host()
            );
            let labels = [("addr", replica.addr.as_str()), ("master", shard.master.addr.as_str())];
            out.push(condition("master_replica_same_host", &labels, summary, 1.0));
        }
    }
    out
}

/// Hosts with the number of masters (with slots) on each; hosts with only replicas count 0.
pub fn masters_per_host(cur: &Model) -> BTreeMap<&str, usize> {
    let mut per_host: BTreeMap<&str, usize> = hosts(cur).into_iter().map(|h| (h, 0)).collect();
    for shard in cur.shards() {
        *per_host.entry(shard.master.host()).or_default() += 1;
    }
    per_host
}

fn masters_same_host(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let per_host = masters_per_host(cur);
    if per_host.len() < 2 || !per_host.values().any(|&n| n == 0) {
        return Vec::new();
    }
    per_host
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(host, n)| {
            let summary = format!("host {host} has {n} masters while another host has none");
            condition("masters_same_host", &[("host", host)], summary, *n as f64)
        })
        .collect()
}

fn memory_high(_: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    cur.nodes
        .iter()
        .filter_map(|n| Some((n, n.own.as_ref()?)))
        .filter(|(_, o)| o.maxmemory > 0)
        .filter_map(|(n, o)| {
            let used = o.used_memory as f64 / o.maxmemory as f64;
            (used > threshold).then(|| {
                let summary = format!("{} uses {:.0}% of maxmemory", n.addr, used * 100.0);
                condition("memory_high", &[("addr", &n.addr)], summary, used)
            })
        })
        .collect()
}

/// Nodes whose counter `field` grew since `prev` (a restart resets counters: no growth).
fn counter_growth(
    prev: Option<&Model>,
    cur: &Model,
    field: fn(&crate::model::OwnReport) -> u64,
) -> Vec<(String, u64)> {
    let Some(prev) = prev else { return Vec::new() };
    cur.nodes
        .iter()
        .filter_map(|n| {
            let now = field(n.own.as_ref()?);
            let before = field(prev.node(&n.addr)?.own.as_ref()?);
            (now > before).then(|| (n.addr.clone(), now - before))
        })
        .collect()
}

fn evictions(prev: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    counter_growth(prev, cur, |o| o.evicted_keys)
        .into_iter()
        .map(|(addr, n)| {
            condition("evictions", &[("addr", &addr)], format!("{addr} evicted {n} keys"), n as f64)
        })
        .collect()
}

fn rejected_connections(prev: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    counter_growth(prev, cur, |o| o.rejected_connections)
        .into_iter()
        .map(|(addr, n)| {
            let summary = format!("{addr} rejected {n} connections (maxclients reached)");
            condition("rejected_connections", &[("addr", &addr)], summary, n as f64)
        })
        .collect()
}

fn latency_spike(prev: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    let Some(prev) = prev else { return Vec::new() };
    let since_s = prev.at_ms / 1000;
    let mut out = Vec::new();
    for node in &cur.nodes {
        for event in node.own.iter().flat_map(|o| &o.latency) {
            if event.at_s >= since_s && event.latest_ms as f64 > threshold {
                let summary = format!("{}: {} took {} ms", node.addr, event.event, event.latest_ms);
                let labels = [("addr", node.addr.as_str()), ("event", event.event.as_str())];
                out.push(condition("latency_spike", &labels, summary, event.latest_ms as f64));
            }
        }
    }
    out
}

fn proxy_down(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    cur.proxies
        .iter()
        .filter(|p| !p.up || p.slots_uncovered > 0)
        .map(|p| {
            let why = match &p.error {
                Some(e) => e.clone(),
                None => format!("{} slots without a master", p.slots_uncovered),
            };
            condition(
                "proxy_down",
                &[("proxy", &p.addr)],
                format!("proxy {} is down: {why}", p.addr),
                1.0,
            )
        })
        .collect()
}

fn vip_none(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let Some(vip) = &cur.vip else { return Vec::new() };
    // An LB whose check failed may hold it: say nothing rather than something false.
    if !vip.holders.is_empty() || !vip.unknown.is_empty() {
        return Vec::new();
    }
    let summary = format!("no load balancer holds the VIP {}", vip.address);
    vec![condition("vip_none", &[("vip", &vip.address)], summary, 0.0)]
}

fn vip_split(_: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let Some(vip) = &cur.vip else { return Vec::new() };
    if vip.holders.len() < 2 {
        return Vec::new();
    }
    let summary = format!("the VIP {} is held by {}", vip.address, vip.holders.join(" and "));
    vec![condition("vip_split", &[("vip", &vip.address)], summary, vip.holders.len() as f64)]
}

/// `(max - min) / mean` of a per-master figure, when the mean is at least `floor`.
fn spread(values: &[u64], floor: f64) -> Option<f64> {
    let (min, max) = (*values.iter().min()?, *values.iter().max()?);
    let mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
    (values.len() >= 2 && mean >= floor).then(|| (max - min) as f64 / mean)
}

fn imbalance(
    rule: &'static str,
    what: &str,
    cur: &Model,
    threshold: f64,
    floor: f64,
    field: fn(&crate::model::OwnReport) -> u64,
) -> Vec<Condition> {
    let values: Vec<u64> =
        cur.shards().iter().filter_map(|s| s.master.own.as_ref().map(field)).collect();
    match spread(&values, floor) {
        Some(ratio) if ratio > threshold => {
            let summary = format!(
                "{what} per master differ by {:.0}% of the mean: {values:?}",
                ratio * 100.0
            );
            vec![condition(rule, &[], summary, ratio)]
        }
        _ => Vec::new(),
    }
}

fn shard_imbalance_keys(_: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    imbalance("shard_imbalance_keys", "keys", cur, threshold, 100.0, |o| o.keys)
}

fn shard_imbalance_memory(_: Option<&Model>, cur: &Model, threshold: f64) -> Vec<Condition> {
    imbalance("shard_imbalance_memory", "used_memory", cur, threshold, 10e6, |o| o.used_memory)
}

fn node_restarted(prev: Option<&Model>, cur: &Model, _: f64) -> Vec<Condition> {
    let Some(prev) = prev else { return Vec::new() };
    cur.nodes
        .iter()
        .filter_map(|n| {
            let now = n.own.as_ref()?;
            let restarted = match prev.node(&n.addr)?.own.as_ref() {
                Some(before) => now.uptime_s < before.uptime_s || now.run_id != before.run_id,
                // It did not answer last time: restarted if it started since then.
                None => now.uptime_s * 1000 <= cur.at_ms.saturating_sub(prev.at_ms) + 2000,
            };
            restarted.then(|| {
                let summary = format!("{} restarted (uptime {} s)", n.addr, now.uptime_s);
                condition("node_restarted", &[("addr", &n.addr)], summary, now.uptime_s as f64)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_alerts_map_to_no_rule_so_no_healing_plan() {
        for name in [CONTROLLER_ACTION, CONTROLLER_STUCK] {
            assert!(rule_by_alertname(name).is_none(), "{name} must not drive healing");
        }
    }
}
