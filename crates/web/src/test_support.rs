//! A hand-made snapshot for the renderers' unit tests.

use std::time::Duration;

use proxy::health::NodeHealth;
use proxy::metrics::Histogram;
use proxy::snapshot::{ClusterSummary, CommandSnapshot, NodeSnapshot, ProxySummary, Snapshot};

/// When the snapshot's health checks are taken to be "now" (Unix ms).
pub const NOW_MS: u64 = 1_700_000_010_000;

/// Two nodes: `10.0.0.1:7000` (master, up, 3 samples < 128 µs and 1 < 4096 µs) and
/// `10.0.0.2:7001` (replica, down with an error that contains HTML), and two commands.
pub fn snapshot() -> Snapshot {
    let latency = Histogram::default();
    for _ in 0..3 {
        latency.record(Duration::from_micros(100));
    }
    latency.record(Duration::from_micros(3000));
    let latency = latency.snapshot();
    let up = NodeSnapshot {
        addr: "10.0.0.1:7000".into(),
        role: "master",
        master: None,
        slots: "0-16383".into(),
        slot_count: 16384,
        state: "up",
        health: Some(NodeHealth {
            up: true,
            role: "master".into(),
            checked_at_ms: NOW_MS - 3_000,
            ping_us: 150,
            error: None,
            ops_per_sec: 1234,
            connected_clients: 7,
            used_memory_human: "1.50M".into(),
            failures: 0,
        }),
        connections: 2,
        replies: 4,
        errors: 1,
        latency_p50_us: latency.percentile_us(0.5),
        latency_p99_us: latency.percentile_us(0.99),
        latency: latency.clone(),
    };
    let down = NodeSnapshot {
        addr: "10.0.0.2:7001".into(),
        role: "replica",
        master: Some("10.0.0.1:7000".into()),
        slots: String::new(),
        slot_count: 0,
        state: "down",
        health: Some(NodeHealth {
            up: false,
            role: String::new(),
            checked_at_ms: NOW_MS - 1_000,
            ping_us: 0,
            error: Some("connection refused <script>alert(1)</script> & more".into()),
            ops_per_sec: 0,
            connected_clients: 0,
            used_memory_human: String::new(),
            failures: 3,
        }),
        connections: 0,
        replies: 0,
        errors: 0,
        latency_p50_us: None,
        latency_p99_us: None,
        latency: Default::default(),
    };
    Snapshot {
        proxy: ProxySummary {
            version: "0.1.0",
            listen: "127.0.0.1:7777".into(),
            uptime_secs: 3 * 86_400 + 4 * 3600 + 5 * 60 + 6,
            threads: 2,
            read_from: "master",
            write_ack: "master",
            clients_connected: 3,
            clients_total: 10,
            clients_rejected: 0,
            commands: 42,
            errors: 1,
            moved: 2,
            ask: 1,
            retries: 5,
            outcome_unknown: 0,
            acks_confirmed: 0,
            acks_missing: 0,
            protocol_errors: 0,
            topology_refreshes: 4,
            backend_connects: 6,
            backend_failures: 1,
        },
        cluster: ClusterSummary { state: "ok", masters: 1, slots_uncovered: 0 },
        nodes: vec![up, down],
        commands: vec![
            CommandSnapshot { name: "get".into(), calls: 40, errors: 0, latency: latency.clone() },
            CommandSnapshot {
                name: "set".into(),
                calls: 2,
                errors: 1,
                latency: Default::default(),
            },
        ],
    }
}
