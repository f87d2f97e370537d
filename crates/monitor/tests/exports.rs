//! What the monitor exports for Prometheus and Grafana: `/metrics` text rendered from a model
//! built from recorded `CLUSTER NODES`, and the shipped dashboard only queries series it has.

mod common;

use common::*;

fn rendered() -> String {
    let mut model = healthy(0);
    model.proxies = vec![monitor::model::ProxyHealth {
        addr: "127.0.0.1:7010".into(),
        up: true,
        masters: 3,
        ..Default::default()
    }];
    model.vip = Some(monitor::model::VipHealth {
        address: "198.18.0.100".into(),
        holders: vec!["lb1".into()],
        unknown: vec![],
    });
    monitor::metrics::render(&model, &[], &[("verified".into(), 2)])
}

#[test]
fn metrics_use_redis_exporter_names_with_an_addr_label() {
    let text = rendered();
    for line in [
        "redis_up{addr=\"127.0.0.1:23001\",role=\"master\"} 1",
        "redis_cluster_state 1",
        "redis_cluster_slots_ok 16384",
        "redis_memory_used_bytes{addr=\"127.0.0.1:23004\",role=\"replica\"} 1000000",
        "redis_master_link_up{addr=\"127.0.0.1:23005\",role=\"replica\"} 1",
        "redis_db_keys_total{addr=\"127.0.0.1:23002\",role=\"master\"} 1000",
        "redkeep_master_healthy_replicas{addr=\"127.0.0.1:23001\"} 1",
        "redkeep_masters_visible 3",
        "redkeep_proxy_up{proxy=\"127.0.0.1:7010\"} 1",
        "redkeep_vip_holders{vip=\"198.18.0.100\"} 1",
        "redkeep_heal_actions_total{result=\"verified\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
    }
    // Every family once, with help and type.
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let unique: std::collections::BTreeSet<&str> = types.iter().copied().collect();
    assert_eq!(types.len(), unique.len());
}

#[test]
fn the_dashboard_queries_only_exported_series() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../deploy/grafana/redkeep-dashboard.json"))
            .expect("valid JSON");
    let text = rendered();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("redis_") || w.starts_with("redkeep_"));
            for name in names {
                assert!(
                    text.contains(&format!("# TYPE {name} ")),
                    "{name} (panel {}) is not exported",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10);
}
