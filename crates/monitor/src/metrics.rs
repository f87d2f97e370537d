//! `/metrics` of the monitor: the model as Prometheus gauges, named as redis_exporter names
//! them where it has the figure (`redis_up`, `redis_memory_used_bytes`, `redis_cluster_state`,
//! ...), each with an `addr` label since one monitor covers every node; redkeep's own figures
//! as `redkeep_*`; and one `redkeep_alarm_firing` series per firing alarm. Pure text rendering.

use std::fmt::Write;

use crate::alarms::Alarm;
use crate::model::Model;

/// Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out {
    text: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            let inner: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            let _ = write!(self.text, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Node figures: (metric, type, help, value of a reachable node's report).
type NodeFigure =
    (&'static str, &'static str, &'static str, fn(&crate::model::OwnReport) -> Option<f64>);

const NODE_FIGURES: &[NodeFigure] = &[
    ("redis_uptime_in_seconds", "gauge", "Seconds since the node started.", |o| {
        Some(o.uptime_s as f64)
    }),
    ("redis_memory_used_bytes", "gauge", "used_memory of INFO.", |o| Some(o.used_memory as f64)),
    ("redis_memory_max_bytes", "gauge", "maxmemory (0: unlimited).", |o| Some(o.maxmemory as f64)),
    ("redis_evicted_keys_total", "counter", "Keys evicted since start.", |o| {
        Some(o.evicted_keys as f64)
    }),
    ("redis_rejected_connections_total", "counter", "Connections refused (maxclients).", |o| {
        Some(o.rejected_connections as f64)
    }),
    ("redis_connected_clients", "gauge", "Client connections.", |o| {
        Some(o.connected_clients as f64)
    }),
    ("redis_connected_slaves", "gauge", "Replicas connected to this master.", |o| {
        Some(o.connected_replicas as f64)
    }),
    ("redis_instantaneous_ops_per_sec", "gauge", "Commands per second.", |o| {
        Some(o.ops_per_sec as f64)
    }),
    ("redis_db_keys_total", "gauge", "Keys over all databases.", |o| Some(o.keys as f64)),
    ("redis_slowlog_length", "gauge", "Entries in the slow log.", |o| Some(o.slowlog_len as f64)),
    ("redis_master_link_up", "gauge", "Replicas: 1 when the link to the master is up.", |o| {
        o.master_link_up.map(|u| f64::from(u8::from(u)))
    }),
    (
        "redis_master_last_io_seconds_ago",
        "gauge",
        "Replicas: seconds since the master last spoke.",
        |o| o.master_last_io_s.map(|s| s as f64),
    ),
    (
        "redis_replication_offset",
        "gauge",
        "master_repl_offset (masters) or slave_repl_offset (replicas).",
        |o| Some(o.repl_offset as f64),
    ),
    (
        "redkeep_node_known_nodes",
        "gauge",
        "Nodes this node knows of (1: it lost its nodes.conf).",
        |o| Some(o.known_nodes as f64),
    ),
    ("redkeep_node_open_slots", "gauge", "Slots this node is migrating or importing.", |o| {
        Some(o.open_slots.len() as f64)
    }),
    ("redkeep_node_cluster_state_ok", "gauge", "1 when this node reports cluster_state:ok.", |o| {
        Some(f64::from(u8::from(o.cluster_state == "ok")))
    }),
    (
        "redis_latency_spike_last_milliseconds",
        "gauge",
        "Latest latency spike of any event (LATENCY LATEST).",
        |o| o.latency.iter().map(|e| e.latest_ms).max().map(|m| m as f64),
    ),
];

/// The whole `/metrics` text.
pub fn render(model: &Model, firing: &[&Alarm], heal_actions: &[(String, u64)]) -> String {
    let mut out = Out { text: String::new() };
    cluster_figures(&mut out, model);
    node_figures(&mut out, model);
    shard_figures(&mut out, model);
    proxy_figures(&mut out, model);
    out.family("redkeep_alarm_firing", "gauge", "1 per alarm the monitor fires, with its labels.");
    for alarm in firing {
        let labels: Vec<(&str, &str)> =
            alarm.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        out.sample("redkeep_alarm_firing", &labels, 1.0);
    }
    out.family("redkeep_heal_actions_total", "counter", "Healing actions by result.");
    for (result, n) in heal_actions {
        out.sample("redkeep_heal_actions_total", &[("result", result)], *n as f64);
    }
    out.text
}

fn cluster_figures(out: &mut Out, model: &Model) {
    let c = &model.cluster;
    let figures = [
        (
            "redis_cluster_state",
            "1 when the reference node reports cluster_state:ok.",
            f64::from(u8::from(c.state == "ok")),
        ),
        ("redis_cluster_slots_assigned", "Slots assigned.", c.slots_assigned as f64),
        ("redis_cluster_slots_ok", "Slots served by healthy masters.", c.slots_ok as f64),
        ("redis_cluster_slots_pfail", "Slots of a suspected master (fail?).", c.slots_pfail as f64),
        ("redis_cluster_slots_fail", "Slots of a failed master.", c.slots_fail as f64),
        ("redis_cluster_known_nodes", "Nodes the reference node knows.", c.known_nodes as f64),
        ("redis_cluster_size", "Masters serving slots.", c.size as f64),
        ("redis_cluster_current_epoch", "The cluster's current epoch.", c.current_epoch as f64),
    ];
    for (name, help, value) in figures {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
    let (visible, all) = model.visible_masters();
    out.family("redkeep_masters_visible", "gauge", "Masters with slots the monitor reaches.");
    out.sample("redkeep_masters_visible", &[], visible as f64);
    out.family("redkeep_masters", "gauge", "Masters with slots the cluster lists.");
    out.sample("redkeep_masters", &[], all as f64);
}

fn node_figures(out: &mut Out, model: &Model) {
    out.family("redis_up", "gauge", "1 when the node answered the monitor's poll.");
    for n in &model.nodes {
        out.sample(
            "redis_up",
            &[("addr", &n.addr), ("role", &n.role)],
            f64::from(u8::from(n.reachable)),
        );
    }
    out.family("redkeep_node_fail", "gauge", "1 when the cluster marks the node fail (2: fail?).");
    for n in &model.nodes {
        let value = if n.fail {
            1.0
        } else if n.pfail {
            2.0
        } else {
            0.0
        };
        out.sample("redkeep_node_fail", &[("addr", &n.addr)], value);
    }
    out.family(
        "redkeep_node_came_back_empty",
        "gauge",
        "1 when the node answers under a new id knowing only itself.",
    );
    for n in &model.nodes {
        out.sample(
            "redkeep_node_came_back_empty",
            &[("addr", &n.addr)],
            f64::from(u8::from(n.came_back_empty())),
        );
    }
    for (name, kind, help, value) in NODE_FIGURES {
        out.family(name, kind, help);
        for n in &model.nodes {
            if let Some(v) = n.own.as_ref().and_then(value) {
                out.sample(name, &[("addr", &n.addr), ("role", &n.role)], v);
            }
        }
    }
}

fn shard_figures(out: &mut Out, model: &Model) {
    let shards = model.shards();
    out.family(
        "redkeep_master_healthy_replicas",
        "gauge",
        "Healthy replicas of each master with slots.",
    );
    for s in &shards {
        let healthy = s.replicas.iter().filter(|r| r.is_healthy_replica()).count();
        out.sample("redkeep_master_healthy_replicas", &[("addr", &s.master.addr)], healthy as f64);
    }
    out.family("redkeep_master_slots", "gauge", "Slots of each master.");
    for s in &shards {
        out.sample("redkeep_master_slots", &[("addr", &s.master.addr)], s.master.slot_count as f64);
    }
    out.family("redkeep_replication_lag_bytes", "gauge", "Bytes a replica is behind its master.");
    for s in &shards {
        let Some(master_offset) = s.master.own.as_ref().map(|o| o.repl_offset) else { continue };
        for r in &s.replicas {
            if let Some(own) = &r.own {
                let lag = master_offset.saturating_sub(own.repl_offset) as f64;
                out.sample(
                    "redkeep_replication_lag_bytes",
                    &[("addr", &r.addr), ("master", &s.master.addr)],
                    lag,
                );
            }
        }
    }
    out.family(
        "redkeep_replica_same_host_as_master",
        "gauge",
        "1 when a replica shares its master's host.",
    );
    for s in &shards {
        for r in &s.replicas {
            let same = f64::from(u8::from(r.host() == s.master.host()));
            out.sample(
                "redkeep_replica_same_host_as_master",
                &[("addr", &r.addr), ("master", &s.master.addr)],
                same,
            );
        }
    }
    out.family("redkeep_host_masters", "gauge", "Masters with slots on each host.");
    for (host, n) in crate::rules::masters_per_host(model) {
        out.sample("redkeep_host_masters", &[("host", host)], n as f64);
    }
}

fn proxy_figures(out: &mut Out, model: &Model) {
    out.family("redkeep_proxy_up", "gauge", "1 when the proxy answers INFO proxy.");
    for p in &model.proxies {
        out.sample("redkeep_proxy_up", &[("proxy", &p.addr)], f64::from(u8::from(p.up)));
    }
    out.family(
        "redkeep_proxy_slots_uncovered",
        "gauge",
        "Slots without a master in the proxy's map.",
    );
    for p in model.proxies.iter().filter(|p| p.up) {
        out.sample(
            "redkeep_proxy_slots_uncovered",
            &[("proxy", &p.addr)],
            p.slots_uncovered as f64,
        );
    }
    if let Some(vip) = &model.vip {
        out.family("redkeep_vip_holders", "gauge", "Load balancers holding the floating IP.");
        out.sample("redkeep_vip_holders", &[("vip", &vip.address)], vip.holders.len() as f64);
        out.family("redkeep_vip_unknown", "gauge", "Load balancers whose VIP check could not run.");
        out.sample("redkeep_vip_unknown", &[("vip", &vip.address)], vip.unknown.len() as f64);
    }
}
