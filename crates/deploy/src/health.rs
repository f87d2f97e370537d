//! Is a redkeep proxy fit to serve (and to hold the VIP)? Asked by `redkeep health` (which
//! keepalived runs), `redkeep status` and the lab's drills.

use std::time::Duration;

use cluster::admin::{AdminConn, AdminError, info_field};

/// The `# Proxy` section of a redkeep proxy's INFO; an error saying why when there is none
/// (nothing answers, or what answers is not a redkeep proxy).
pub async fn proxy_info(addr: &str, timeout: Duration) -> Result<Vec<(String, String)>, String> {
    let mut conn = AdminConn::connect(addr, timeout).await.map_err(|e| match e {
        // The generic text asks whether a redis-server runs there; here a proxy should.
        AdminError::Connect { source, .. } => format!(
            "no redkeep proxy answers on {addr} ({source}): start one there (`redkeep proxy`, \
             or `redkeep up` for a local cluster), or name the right one with --proxy HOST:PORT"
        ),
        other => other.to_string(),
    })?;
    let info = conn.info("proxy").await.map_err(|e| e.to_string())?;
    match info_field(&info, "redkeep_version") {
        Some(_) => Ok(info),
        None => Err(format!("{addr} is not a redkeep proxy")),
    }
}

/// `Ok(summary)` when the proxy at `addr` answers within `timeout`, every slot of its map has
/// a master, and the map is not stale (the proxy could read it from a node lately); `Err(reason)`
/// otherwise.
pub async fn proxy_verdict(addr: &str, timeout: Duration) -> Result<String, String> {
    let asking = proxy_info(addr, timeout);
    let info = tokio::time::timeout(timeout, asking)
        .await
        .unwrap_or_else(|_| Err(format!("{addr} did not answer within {timeout:?}")))?;
    let number = |field: &str| info_field(&info, field).and_then(|v| v.parse::<u64>().ok());
    if number("topology_stale") == Some(1) {
        let age = number("topology_age_ms").unwrap_or(0) as f64 / 1000.0;
        let error = info_field(&info, "topology_last_error").unwrap_or("unknown");
        return Err(format!(
            "{addr} could not refresh its slot map for {age:.1}s (last error: {error}); check that \
             the nodes are up and reachable from the proxy, and do not demand a password"
        ));
    }
    match (number("cluster_masters"), number("cluster_slots_uncovered")) {
        (Some(masters), Some(0)) if masters > 0 => {
            Ok(format!("healthy: {addr} serves all 16384 slots over {masters} masters"))
        }
        (_, Some(uncovered)) if uncovered > 0 => {
            Err(format!("{addr} has {uncovered} slots without a master"))
        }
        _ => Err(format!("{addr} knows no master")),
    }
}
