//! A hand-made snapshot for the renderers' unit tests.

use std::time::Duration;

use proxy::health::{NodeFigures, NodeHealth, ReplicaLink};
use proxy::metrics::Histogram;
use proxy::rates::Rates;
use proxy::snapshot::{
    ClusterSummary, CommandSnapshot, NodeSnapshot, ProxySummary, Replication, Snapshot,
};

/// When the snapshot's health checks are taken to be "now" (Unix ms).
pub const NOW_MS: u64 = 1_700_000_010_000;

/// Two nodes: `10.0.0.1:7000` (master, up, 3 samples < 128 µs and 1 < 4096 µs, 1.5 MiB of
/// 100 MiB, 12 keys in db0 and 1 in db3, its replica 300 bytes behind) and `10.0.0.2:7001`
/// (replica, down for 8 s with an error that contains HTML), and two commands.
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
            last_up_ms: Some(NOW_MS - 3_000),
            down_since_ms: None,
            figures: NodeFigures {
                redis_version: "7.0.15".into(),
                used_memory: 1_572_864,
                maxmemory: 100 * 1024 * 1024,
                total_system_memory: 8 << 30,
                evicted_keys: 5,
                db_keys: vec![("db0".into(), 12), ("db3".into(), 1)],
                master_repl_offset: 1500,
                replicas: vec![ReplicaLink {
                    addr: "10.0.0.2:7001".into(),
                    state: "online".into(),
                    offset: 1200,
                    lag_secs: 1,
                }],
                master_link_up: None,
                total_net_input_bytes: 9876,
                total_net_output_bytes: 54321,
                input_kbps: 1.5,
                output_kbps: 0.5,
            },
        }),
        connections: 2,
        replies: 4,
        errors: 1,
        ops_per_sec: Some(250.0),
        latency_p50_us: latency.percentile_us(0.5),
        latency_p99_us: latency.percentile_us(0.99),
        latency: latency.clone(),
        replication: None,
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
            last_up_ms: Some(NOW_MS - 9_000),
            down_since_ms: Some(NOW_MS - 8_000),
            figures: NodeFigures::default(),
        }),
        connections: 0,
        replies: 0,
        errors: 0,
        ops_per_sec: Some(0.0),
        latency_p50_us: None,
        latency_p99_us: None,
        latency: Default::default(),
        replication: Some(Replication {
            master: "10.0.0.1:7000".into(),
            behind_bytes: 300,
            lag_secs: Some(1),
            state: "online".into(),
        }),
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
            clients_peak: 5,
            clients_max: 10_000,
            clients_total: 10,
            clients_rejected: 0,
            bytes_in: 4096,
            bytes_out: 3 << 20,
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
            rates: Some(Rates {
                window_secs: 5.0,
                ops_per_sec: 1234.0,
                errors_per_sec: 0.5,
                bytes_in_per_sec: 2048.0,
                bytes_out_per_sec: 1_572_864.0,
                ..Default::default()
            }),
        },
        cluster: ClusterSummary { state: "ok", masters: 1, slots_uncovered: 0 },
        nodes: vec![up, down],
        commands: vec![
            CommandSnapshot {
                name: "get".into(),
                calls: 40,
                errors: 0,
                ops_per_sec: Some(1200.0),
                errors_per_sec: Some(0.0),
                latency_p50_us: latency.estimate_us(0.5).map(|us| us.round() as u64),
                latency_p99_us: latency.estimate_us(0.99).map(|us| us.round() as u64),
                latency: latency.clone(),
            },
            CommandSnapshot {
                name: "set".into(),
                calls: 2,
                errors: 1,
                ops_per_sec: Some(34.0),
                errors_per_sec: Some(0.5),
                latency_p50_us: None,
                latency_p99_us: None,
                latency: Default::default(),
            },
        ],
    }
}
