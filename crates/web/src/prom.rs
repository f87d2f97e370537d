//! `/metrics`: the Prometheus text exposition format (0.0.4), written by hand from a
//! [`Snapshot`].
//!
//! The proxy's own figures are `redkeep_proxy_*`. What the health checker reads from each
//! node's INFO uses redis_exporter's names (`redis_up`, `redis_memory_used_bytes`,
//! `redis_db_keys`, ...) with a `node` label holding the node's address, so dashboards made
//! for redis_exporter work with it; see [`node_gauges`].
//!
//! Why by hand: the workers' counters are lock-free per-thread blocks that are only summed when
//! someone reads them (see `proxy::metrics`), so there is nothing for a metrics library to
//! own; putting one in between would add a second copy of every counter and a lock or an
//! allocation on the request path. A scrape instead takes one snapshot and prints it.

use std::fmt::Write;

use proxy::metrics::{BUCKETS, HistogramSnapshot};
use proxy::snapshot::Snapshot;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const PREFIX: &str = "redkeep_proxy_";

/// The whole exposition for one snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut out = Text { out: String::with_capacity(32 * 1024), prefix: PREFIX };
    let p = &snap.proxy;

    out.family("clients_connected", "gauge", "Client connections open now.");
    out.sample("clients_connected", &[], p.clients_connected as u64);
    out.family("clients_peak", "gauge", "The most client connections open at once.");
    out.sample("clients_peak", &[], p.clients_peak as u64);
    out.family("clients_max", "gauge", "Client connections allowed (--max-clients).");
    out.sample("clients_max", &[], p.clients_max as u64);
    out.family("client_received_bytes_total", "counter", "Bytes read from clients.");
    out.sample("client_received_bytes_total", &[], p.bytes_in);
    out.family("client_sent_bytes_total", "counter", "Bytes written to clients.");
    out.sample("client_sent_bytes_total", &[], p.bytes_out);
    out.family("connections_total", "counter", "Client connections accepted.");
    out.sample("connections_total", &[], p.clients_total);
    out.family(
        "connections_rejected_total",
        "counter",
        "Client connections refused because max clients was reached.",
    );
    out.sample("connections_rejected_total", &[], p.clients_rejected);
    out.family("commands_total", "counter", "Commands served to clients.");
    out.sample("commands_total", &[], p.commands);
    out.family(
        "errors_total",
        "counter",
        "Error replies sent to clients (from nodes or the proxy): the sum of \
         command_errors_total, unknown commands included.",
    );
    out.sample("errors_total", &[], p.errors);
    out.family("redirects_total", "counter", "MOVED and ASK redirects the proxy followed.");
    out.sample("redirects_total", &[("kind", "moved")], p.moved);
    out.sample("redirects_total", &[("kind", "ask")], p.ask);
    out.family(
        "retries_total",
        "counter",
        "Commands sent again after TRYAGAIN, CLUSTERDOWN, LOADING or a lost connection.",
    );
    out.sample("retries_total", &[], p.retries);
    out.family(
        "outcome_unknown_total",
        "counter",
        "Commands whose connection broke after they were sent and that could not be retried.",
    );
    out.sample("outcome_unknown_total", &[], p.outcome_unknown);
    out.family(
        "write_acks_total",
        "counter",
        "With --write-ack replica: writes a replica confirmed (confirmed) or did not confirm in \
         time, answered with NOREPLICAACK (missing).",
    );
    out.sample("write_acks_total", &[("result", "confirmed")], p.acks_confirmed);
    out.sample("write_acks_total", &[("result", "missing")], p.acks_missing);
    out.family("protocol_errors_total", "counter", "Clients that sent invalid RESP.");
    out.sample("protocol_errors_total", &[], p.protocol_errors);
    out.family("topology_refreshes_total", "counter", "New slot maps taken into use.");
    out.sample("topology_refreshes_total", &[], p.topology_refreshes);
    out.family("backend_connects_total", "counter", "Connections opened to cluster nodes.");
    out.sample("backend_connects_total", &[], p.backend_connects);
    out.family("backend_failures_total", "counter", "Connections to cluster nodes that failed.");
    out.sample("backend_failures_total", &[], p.backend_failures);
    out.family("cluster_slots_uncovered", "gauge", "Hash slots with no serving master.");
    out.sample("cluster_slots_uncovered", &[], snap.cluster.slots_uncovered as u64);

    out.family("node_up", "gauge", "1 when the last health check of the node passed, else 0.");
    for n in &snap.nodes {
        out.sample("node_up", &[("node", &n.addr)], u64::from(n.state == "up"));
    }
    out.family("node_replies_total", "counter", "Replies the proxy read from the node.");
    for n in &snap.nodes {
        out.sample("node_replies_total", &[("node", &n.addr)], n.replies);
    }
    out.family("node_errors_total", "counter", "Error replies the proxy read from the node.");
    for n in &snap.nodes {
        out.sample("node_errors_total", &[("node", &n.addr)], n.errors);
    }
    out.family("node_connections", "gauge", "Connections the proxy has open to the node.");
    for n in &snap.nodes {
        out.sample_i64("node_connections", &[("node", &n.addr)], n.connections);
    }
    out.family(
        "node_latency_seconds",
        "histogram",
        "Time from the proxy reading a request to the node's reply arriving.",
    );
    for n in &snap.nodes {
        out.histogram("node_latency_seconds", ("node", &n.addr), &n.latency);
    }

    node_gauges(&mut out, snap);

    out.family("command_calls_total", "counter", "Calls of the command by clients.");
    for c in &snap.commands {
        out.sample("command_calls_total", &[("command", &c.name)], c.calls);
    }
    out.family(
        "command_errors_total",
        "counter",
        "Error replies clients got for the command, from nodes or the proxy (redirects \
         followed and retries are not errors).",
    );
    for c in &snap.commands {
        out.sample("command_errors_total", &[("command", &c.name)], c.errors);
    }
    out.family(
        "command_latency_seconds",
        "histogram",
        "Time from the proxy reading the command to a node's reply arriving.",
    );
    for c in &snap.commands {
        out.histogram("command_latency_seconds", ("command", &c.name), &c.latency);
    }
    out.out
}

/// What the health checks read from the nodes: redis_exporter's names where it has one (with
/// a `node` label, since one proxy reports on every node), `redkeep_proxy_node_*` where not.
/// Figures from INFO are given for nodes whose last check passed only: an old reading of a
/// node that is down would look current.
fn node_gauges(out: &mut Text, snap: &Snapshot) {
    let redis = |out: &mut Text| out.prefix = "";
    redis(out);
    out.family(
        "redis_cluster_state",
        "gauge",
        "1 when every slot has a serving master (the proxy's view), else 0.",
    );
    out.sample("redis_cluster_state", &[], u64::from(snap.cluster.state == "ok"));
    out.family("redis_up", "gauge", "1 when the last health check of the node passed, else 0.");
    for n in &snap.nodes {
        out.sample("redis_up", &[("node", &n.addr)], u64::from(n.state == "up"));
    }
    let live: Vec<_> =
        snap.nodes.iter().filter_map(|n| Some((n, n.health.as_ref().filter(|h| h.up)?))).collect();
    out.family(
        "redis_instance_info",
        "gauge",
        "1 per node that answered its last check, labelled with its role (master or slave, as \
         its ROLE says) and version.",
    );
    for (n, h) in &live {
        let labels = [
            ("node", n.addr.as_str()),
            ("role", h.role.as_str()),
            ("redis_version", h.figures.redis_version.as_str()),
        ];
        out.sample("redis_instance_info", &labels, 1);
    }
    type Figure = fn(&proxy::health::NodeHealth) -> u64;
    let simple: [(&str, &str, &str, Figure); 7] = [
        ("redis_memory_used_bytes", "gauge", "used_memory from INFO.", |h| h.figures.used_memory),
        ("redis_memory_max_bytes", "gauge", "maxmemory from INFO (0: no limit).", |h| {
            h.figures.maxmemory
        }),
        ("redis_evicted_keys_total", "counter", "evicted_keys from INFO.", |h| {
            h.figures.evicted_keys
        }),
        ("redis_connected_clients", "gauge", "connected_clients from INFO.", |h| {
            h.connected_clients
        }),
        (
            "redis_master_repl_offset",
            "gauge",
            "master_repl_offset from INFO: the replication stream position.",
            |h| h.figures.master_repl_offset,
        ),
        ("redis_net_input_bytes_total", "counter", "total_net_input_bytes from INFO.", |h| {
            h.figures.total_net_input_bytes
        }),
        ("redis_net_output_bytes_total", "counter", "total_net_output_bytes from INFO.", |h| {
            h.figures.total_net_output_bytes
        }),
    ];
    for (name, kind, help, figure) in simple {
        out.family(name, kind, help);
        for (n, h) in &live {
            out.sample(name, &[("node", &n.addr)], figure(h));
        }
    }
    out.family("redis_db_keys", "gauge", "Keys per database, from INFO keyspace.");
    for (n, h) in &live {
        for (db, keys) in &h.figures.db_keys {
            out.sample("redis_db_keys", &[("node", &n.addr), ("db", db)], *keys);
        }
    }
    out.family(
        "redis_connected_slave_offset_bytes",
        "gauge",
        "How far each replica got in its master's replication stream, as the master lists it.",
    );
    out.family(
        "redis_connected_slave_lag_seconds",
        "gauge",
        "Seconds since each replica last acknowledged, as its master lists it.",
    );
    for (n, h) in &live {
        for r in &h.figures.replicas {
            let (ip, port) = r.addr.rsplit_once(':').unwrap_or((&r.addr, ""));
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            let labels = [
                ("node", n.addr.as_str()),
                ("slave_ip", ip),
                ("slave_port", port),
                ("slave_state", r.state.as_str()),
            ];
            out.sample("redis_connected_slave_offset_bytes", &labels, r.offset);
            out.sample("redis_connected_slave_lag_seconds", &labels, r.lag_secs);
        }
    }
    out.prefix = PREFIX;
    out.family(
        "node_replication_lag_bytes",
        "gauge",
        "A replica: bytes of its master's replication stream it has not acknowledged.",
    );
    for n in &snap.nodes {
        if let Some(r) = &n.replication {
            out.sample(
                "node_replication_lag_bytes",
                &[("node", &n.addr), ("master", &r.master)],
                r.behind_bytes,
            );
        }
    }
    out.family(
        "node_last_up_timestamp_seconds",
        "gauge",
        "When the node last passed a health check (Unix time).",
    );
    out.family(
        "node_down_since_timestamp_seconds",
        "gauge",
        "A node that is down: when its first failed check of this outage was (Unix time).",
    );
    for n in &snap.nodes {
        let Some(h) = &n.health else { continue };
        if let Some(ms) = h.last_up_ms {
            out.sample_f64("node_last_up_timestamp_seconds", &[("node", &n.addr)], ms as f64 / 1e3);
        }
        if let Some(ms) = h.down_since_ms.filter(|_| !h.up) {
            out.sample_f64(
                "node_down_since_timestamp_seconds",
                &[("node", &n.addr)],
                ms as f64 / 1e3,
            );
        }
    }
}

/// The exposition being written; `prefix` goes before every name.
struct Text {
    out: String,
    prefix: &'static str,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let prefix = self.prefix;
        let _ = writeln!(self.out, "# HELP {prefix}{name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {prefix}{name} {kind}");
    }

    fn name_and_labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        let _ = write!(self.out, "{}{name}", self.prefix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_i64(&mut self, name: &str, labels: &[(&str, &str)], value: i64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.name_and_labels(name, labels);
        let _ = writeln!(self.out, " {value}");
    }

    /// Cumulative `_bucket`s with `le` in seconds, then `_sum` (seconds) and `_count`. Every
    /// series gets all buckets, also one without samples yet, so the series never change shape.
    fn histogram(&mut self, name: &str, label: (&str, &str), h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for i in 0..BUCKETS.max(h.counts.len()) {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let le = match HistogramSnapshot::upper_bound_us(i) {
                Some(us) => seconds(us),
                None => "+Inf".to_string(),
            };
            self.sample(&bucket, &[label, ("le", &le)], cumulative);
        }
        self.sample_f64(&format!("{name}_sum"), &[label], h.sum_us as f64 / 1e6);
        self.sample(&format!("{name}_count"), &[label], cumulative);
    }
}

/// Microseconds as seconds in plain decimal (`128` → `0.000128`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A label value: backslash, double quote and line feed escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
    out
}

/// A `# HELP` text: backslash and line feed escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::snapshot;

    fn line_value(text: &str, prefix: &str) -> String {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix) && l[prefix.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"));
        line[prefix.len() + 1..].to_string()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_in_seconds() {
        let snap = snapshot();
        let text = render(&snap);
        // The test node has 3 samples below 128 µs (bucket 7) and 1 below 4096 µs (bucket 12).
        let node = r#"redkeep_proxy_node_latency_seconds_bucket{node="10.0.0.1:7000",le="#;
        assert_eq!(line_value(&text, &format!("{node}\"0.000064\"}}")), "0");
        assert_eq!(line_value(&text, &format!("{node}\"0.000128\"}}")), "3");
        assert_eq!(line_value(&text, &format!("{node}\"0.002048\"}}")), "3");
        assert_eq!(line_value(&text, &format!("{node}\"0.004096\"}}")), "4");
        assert_eq!(line_value(&text, &format!("{node}\"16.777216\"}}")), "4");
        assert_eq!(line_value(&text, &format!("{node}\"+Inf\"}}")), "4");
        assert_eq!(
            line_value(&text, r#"redkeep_proxy_node_latency_seconds_count{node="10.0.0.1:7000"}"#),
            "4"
        );
        assert_eq!(
            line_value(&text, r#"redkeep_proxy_node_latency_seconds_sum{node="10.0.0.1:7000"}"#),
            "0.0033"
        );
        // A node without traffic still has every bucket, all zero.
        let idle = r#"redkeep_proxy_node_latency_seconds_bucket{node="10.0.0.2:7001",le="+Inf"}"#;
        assert_eq!(line_value(&text, idle), "0");
        assert_eq!(
            text.matches("node_latency_seconds_bucket{node=\"10.0.0.2:7001\"").count(),
            BUCKETS
        );
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let text = render(&snapshot());
        for family in [
            "clients_connected",
            "connections_total",
            "commands_total",
            "errors_total",
            "redirects_total",
            "retries_total",
            "outcome_unknown_total",
            "write_acks_total",
            "protocol_errors_total",
            "topology_refreshes_total",
            "backend_connects_total",
            "backend_failures_total",
            "cluster_slots_uncovered",
            "node_up",
            "node_replies_total",
            "node_errors_total",
            "node_connections",
            "node_latency_seconds",
            "command_calls_total",
            "command_errors_total",
            "command_latency_seconds",
        ] {
            let name = format!("{PREFIX}{family}");
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1, "{name}");
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        }
        assert!(text.contains("# TYPE redkeep_proxy_node_latency_seconds histogram\n"));
        assert!(text.contains("# TYPE redkeep_proxy_clients_connected gauge\n"));
        assert!(text.contains("# TYPE redkeep_proxy_commands_total counter\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn values_and_labels() {
        let text = render(&snapshot());
        assert_eq!(line_value(&text, "redkeep_proxy_commands_total"), "42");
        assert_eq!(line_value(&text, r#"redkeep_proxy_redirects_total{kind="moved"}"#), "2");
        assert_eq!(line_value(&text, r#"redkeep_proxy_redirects_total{kind="ask"}"#), "1");
        assert_eq!(line_value(&text, r#"redkeep_proxy_node_up{node="10.0.0.1:7000"}"#), "1");
        assert_eq!(line_value(&text, r#"redkeep_proxy_node_up{node="10.0.0.2:7001"}"#), "0");
        assert_eq!(line_value(&text, r#"redkeep_proxy_command_calls_total{command="get"}"#), "40");
    }

    #[test]
    fn node_gauges_use_redis_exporter_names() {
        let text = render(&snapshot());
        let up = r#"{node="10.0.0.1:7000"}"#;
        assert_eq!(line_value(&text, "redis_cluster_state"), "1");
        assert_eq!(line_value(&text, &format!("redis_up{up}")), "1");
        assert_eq!(line_value(&text, r#"redis_up{node="10.0.0.2:7001"}"#), "0");
        assert_eq!(
            line_value(
                &text,
                r#"redis_instance_info{node="10.0.0.1:7000",role="master",redis_version="7.0.15"}"#
            ),
            "1"
        );
        assert_eq!(line_value(&text, &format!("redis_memory_used_bytes{up}")), "1572864");
        assert_eq!(line_value(&text, &format!("redis_memory_max_bytes{up}")), "104857600");
        assert_eq!(line_value(&text, &format!("redis_evicted_keys_total{up}")), "5");
        assert_eq!(line_value(&text, &format!("redis_connected_clients{up}")), "7");
        assert_eq!(line_value(&text, &format!("redis_master_repl_offset{up}")), "1500");
        assert_eq!(line_value(&text, r#"redis_db_keys{node="10.0.0.1:7000",db="db0"}"#), "12");
        assert_eq!(line_value(&text, r#"redis_db_keys{node="10.0.0.1:7000",db="db3"}"#), "1");
        let slave =
            r#"{node="10.0.0.1:7000",slave_ip="10.0.0.2",slave_port="7001",slave_state="online"}"#;
        assert_eq!(
            line_value(&text, &format!("redis_connected_slave_offset_bytes{slave}")),
            "1200"
        );
        assert_eq!(line_value(&text, &format!("redis_connected_slave_lag_seconds{slave}")), "1");
        assert_eq!(
            line_value(
                &text,
                r#"redkeep_proxy_node_replication_lag_bytes{node="10.0.0.2:7001",master="10.0.0.1:7000"}"#
            ),
            "300"
        );
        // The node that is down: redis_up 0 and when it went down, no stale figures.
        assert!(!text.contains(r#"redis_memory_used_bytes{node="10.0.0.2:7001"}"#));
        assert_eq!(
            line_value(
                &text,
                r#"redkeep_proxy_node_down_since_timestamp_seconds{node="10.0.0.2:7001"}"#
            ),
            "1700000002"
        );
        assert!(!text.contains(r#"node_down_since_timestamp_seconds{node="10.0.0.1:7000"}"#));
        assert_eq!(line_value(&text, "redkeep_proxy_clients_peak"), "5");
        assert_eq!(line_value(&text, "redkeep_proxy_client_sent_bytes_total"), "3145728");
        for family in
            ["redis_up", "redis_db_keys", "redis_memory_used_bytes", "redis_cluster_state"]
        {
            assert_eq!(text.matches(&format!("# TYPE {family} gauge\n")).count(), 1, "{family}");
        }
        assert_eq!(text.matches("# TYPE redis_evicted_keys_total counter\n").count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let mut snap = snapshot();
        snap.commands[0].name = "we\"ird\\\n".into();
        let text = render(&snap);
        assert!(text.contains(r#"redkeep_proxy_command_calls_total{command="we\"ird\\\n"} 40"#));
    }

    #[test]
    fn seconds_are_plain_decimals() {
        assert_eq!(seconds(1), "0.000001");
        assert_eq!(seconds(128), "0.000128");
        assert_eq!(seconds(1 << 20), "1.048576");
        assert_eq!(seconds(2_000_000), "2");
    }
}
