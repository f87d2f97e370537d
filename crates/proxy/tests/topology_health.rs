//! A proxy that cannot refresh its slot map is not healthy: `INFO proxy` says how old the map
//! is and why, and `redkeep health` (deploy::health::proxy_verdict) fails with that reason.

mod common;

use std::time::Duration;

use common::{Conn, ok, start_proxy};
use deploy::health::proxy_verdict;
use deploy::testing::TestCluster;

/// Polls the verdict until `want(verdict)`; panics after 60 s (a hang guard, not a threshold).
async fn verdict_until(
    addr: &str,
    want: impl Fn(&Result<String, String>) -> bool,
) -> Result<String, String> {
    for _ in 0..600 {
        let verdict = proxy_verdict(addr, Duration::from_secs(2)).await;
        if want(&verdict) {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the health verdict of {addr} never changed as expected");
}

#[tokio::test]
async fn health_fails_while_the_nodes_demand_a_password_and_recovers_after() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| c.refresh_interval = Duration::from_millis(200)).await;
    let addr = proxy.local_addr.to_string();
    let healthy = proxy_verdict(&addr, Duration::from_secs(2)).await;
    assert!(healthy.is_ok(), "{healthy:?}");
    // Directly on the nodes, not through the proxy: the proxy now gets NOAUTH from all.
    for node in cluster.addrs() {
        let mut conn = Conn::connect(node.as_str()).await;
        assert_eq!(conn.call(&["CONFIG", "SET", "requirepass", "s3cret"]).await, ok());
    }
    let verdict = verdict_until(&addr, |v| v.is_err()).await;
    let reason = verdict.unwrap_err();
    assert!(reason.contains("could not refresh its slot map"), "{reason}");
    assert!(reason.contains("NOAUTH"), "{reason}");
    let mut conn = Conn::connect(proxy.local_addr).await;
    let resp::Value::Bulk(info) = conn.call(&["INFO", "proxy"]).await else { panic!() };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("topology_stale:1\r\n"), "{info}");
    assert!(info.contains("topology_last_error:127.0.0.1:"), "{info}");
    // The password gone, the next refresh succeeds and health is back.
    for node in cluster.addrs() {
        let mut conn = Conn::connect(node.as_str()).await;
        assert_eq!(conn.call(&["AUTH", "s3cret"]).await, ok());
        assert_eq!(conn.call(&["CONFIG", "SET", "requirepass", ""]).await, ok());
    }
    let verdict = verdict_until(&addr, |v| v.is_ok()).await;
    assert!(verdict.unwrap().starts_with("healthy"));
}

#[tokio::test]
async fn health_fails_when_every_node_is_gone() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| c.refresh_interval = Duration::from_millis(200)).await;
    let addr = proxy.local_addr.to_string();
    assert!(proxy_verdict(&addr, Duration::from_secs(2)).await.is_ok());
    for &port in cluster.ports() {
        cluster.kill9(port);
    }
    let reason = verdict_until(&addr, |v| v.is_err()).await.unwrap_err();
    assert!(reason.contains("could not refresh its slot map"), "{reason}");
}
