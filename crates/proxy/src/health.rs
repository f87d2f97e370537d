//! Health checks: every node of the slot map gets `PING`, `ROLE` and `INFO` on an interval, on
//! a connection of the checker's own. A failed check marks the node down and asks for a
//! refresh of the slot map.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cluster::admin::{AdminConn, info_field};
use resp::Value;

use crate::shared::Shared;

/// The checker's last word on a node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeHealth {
    pub up: bool,
    /// `master` or `slave`, as the node's `ROLE` says.
    pub role: String,
    /// When the last check finished (Unix ms).
    pub checked_at_ms: u64,
    /// Round trip of the last PING (µs).
    pub ping_us: u64,
    pub error: Option<String>,
    pub ops_per_sec: u64,
    pub connected_clients: u64,
    pub used_memory_human: String,
    /// Consecutive failed checks.
    pub failures: u32,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Checks every node each `interval` until shutdown.
pub async fn check_loop(shared: Arc<Shared>, interval: Duration) {
    let mut conns: HashMap<String, AdminConn> = HashMap::new();
    let mut fast_failover = crate::failover::FastFailover::default();
    loop {
        let map = shared.map();
        let mut lowest_version: Option<String> = None;
        for node in &map.nodes {
            let result =
                tokio::time::timeout(CHECK_TIMEOUT * 3, check(&mut conns, &node.addr)).await;
            let result = result.unwrap_or_else(|_| Err("the check timed out".to_string()));
            if let Ok(checked) = &result
                && let Some(version) = info_field(&checked.info, "redis_version")
                && lowest_version.as_deref().is_none_or(|v| version_key(version) < version_key(v))
            {
                lowest_version = Some(version.to_string());
            }
            let failed = result.is_err();
            record(&shared, &node.addr, result);
            if failed && shared.config.fast_failover {
                fast_failover.after_failed_check(&shared, &map, &node.addr).await;
            }
            if shared.shutdown.is_cancelled() {
                return;
            }
        }
        // During a rolling upgrade the nodes differ: clients should expect the oldest.
        if let Some(version) = lowest_version {
            shared.set_redis_version(&version);
        }
        conns.retain(|addr, _| map.index_of(addr).is_some());
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// `7.0.15` as numbers, for comparing versions.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|part| part.parse().unwrap_or(0)).collect()
}

struct Checked {
    role: String,
    ping: Duration,
    info: Vec<(String, String)>,
}

async fn check(conns: &mut HashMap<String, AdminConn>, addr: &str) -> Result<Checked, String> {
    if !conns.contains_key(addr) {
        let conn = AdminConn::connect(addr, CHECK_TIMEOUT).await.map_err(|e| e.to_string())?;
        conns.insert(addr.to_string(), conn);
    }
    let conn = conns.get_mut(addr).expect("inserted above");
    let outcome = async {
        let started = Instant::now();
        conn.query(&["PING"]).await.map_err(|e| e.to_string())?;
        let ping = started.elapsed();
        let role = match conn.query(&["ROLE"]).await.map_err(|e| e.to_string())? {
            Value::Array(items) => items
                .first()
                .and_then(Value::as_bytes)
                .map(|r| String::from_utf8_lossy(r).into_owned()),
            _ => None,
        }
        .ok_or("ROLE gave no role")?;
        let info = conn.info("default").await.map_err(|e| e.to_string())?;
        Ok::<_, String>(Checked { role, ping, info })
    }
    .await;
    if outcome.is_err() {
        // A connection that failed a check is not trusted for the next one.
        conns.remove(addr);
    }
    outcome
}

fn record(shared: &Shared, addr: &str, result: Result<Checked, String>) {
    let now_ms =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis()
            as u64;
    let mut health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
    let previous_failures = health.get(addr).map_or(0, |h| h.failures);
    let entry = match result {
        Ok(checked) => {
            let number = |field: &str| {
                info_field(&checked.info, field).and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            NodeHealth {
                up: true,
                role: checked.role,
                checked_at_ms: now_ms,
                ping_us: checked.ping.as_micros() as u64,
                error: None,
                ops_per_sec: number("instantaneous_ops_per_sec"),
                connected_clients: number("connected_clients"),
                used_memory_human: info_field(&checked.info, "used_memory_human")
                    .unwrap_or("")
                    .to_string(),
                failures: 0,
            }
        }
        Err(error) => {
            tracing::warn!(node = %addr, %error, "health check failed");
            shared.want_refresh();
            let mut entry = health.get(addr).cloned().unwrap_or(NodeHealth {
                up: false,
                role: String::new(),
                checked_at_ms: 0,
                ping_us: 0,
                error: None,
                ops_per_sec: 0,
                connected_clients: 0,
                used_memory_human: String::new(),
                failures: 0,
            });
            entry.up = false;
            entry.error = Some(error);
            entry.checked_at_ms = now_ms;
            entry.failures = previous_failures + 1;
            entry
        }
    };
    health.insert(addr.to_string(), entry);
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_key("7.0.15") < version_key("7.2.4"));
        assert!(version_key("7.0.9") < version_key("7.0.15"));
        assert!(version_key("6.2.14") < version_key("7.0.0"));
    }
}
