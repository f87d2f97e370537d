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
    /// When a check last passed (Unix ms); `None` before the first that did.
    pub last_up_ms: Option<u64>,
    /// While down: when the first failed check of this outage finished (Unix ms).
    pub down_since_ms: Option<u64>,
    /// Memory, keys, replication and traffic from the node's INFO at the last passed check.
    pub figures: NodeFigures,
}

/// What the node's INFO says about it (zero where a field is missing).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NodeFigures {
    pub redis_version: String,
    pub used_memory: u64,
    /// `maxmemory`: 0 means no limit.
    pub maxmemory: u64,
    /// The host's memory, what `used_memory` is measured against when there is no limit.
    pub total_system_memory: u64,
    pub evicted_keys: u64,
    /// Keys per database (`db0` ...), from INFO keyspace.
    pub db_keys: Vec<(String, u64)>,
    /// The replication stream position: a master's, or as far as a replica got.
    pub master_repl_offset: u64,
    /// A master's replicas, as it sees them (INFO replication `slaveN`).
    pub replicas: Vec<ReplicaLink>,
    /// A replica: whether its link to the master is up (`master_link_status:up`).
    pub master_link_up: Option<bool>,
    pub total_net_input_bytes: u64,
    pub total_net_output_bytes: u64,
    pub input_kbps: f64,
    pub output_kbps: f64,
}

/// One replica as its master's INFO lists it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReplicaLink {
    /// `ip:port` of the replica.
    pub addr: String,
    pub state: String,
    /// How far the replica got in the master's replication stream.
    pub offset: u64,
    /// Seconds since the replica last acknowledged.
    pub lag_secs: u64,
}

impl NodeFigures {
    pub fn from_info(info: &[(String, String)]) -> NodeFigures {
        let number = |field: &str| -> u64 {
            info_field(info, field).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        };
        let float = |field: &str| -> f64 {
            info_field(info, field).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
        };
        let db_keys = info
            .iter()
            .filter(|(k, _)| k.strip_prefix("db").is_some_and(|n| n.parse::<u32>().is_ok()))
            .map(|(k, v)| (k.clone(), attribute(v, "keys").and_then(|n| n.parse().ok())))
            .filter_map(|(k, keys)| Some((k, keys?)))
            .collect();
        let replicas = info
            .iter()
            .filter(|(k, _)| k.strip_prefix("slave").is_some_and(|n| n.parse::<u32>().is_ok()))
            .filter_map(|(_, v)| replica_link(v))
            .collect();
        NodeFigures {
            redis_version: info_field(info, "redis_version").unwrap_or("").to_string(),
            used_memory: number("used_memory"),
            maxmemory: number("maxmemory"),
            total_system_memory: number("total_system_memory"),
            evicted_keys: number("evicted_keys"),
            db_keys,
            master_repl_offset: number("master_repl_offset"),
            replicas,
            master_link_up: info_field(info, "master_link_status").map(|s| s == "up"),
            total_net_input_bytes: number("total_net_input_bytes"),
            total_net_output_bytes: number("total_net_output_bytes"),
            input_kbps: float("instantaneous_input_kbps"),
            output_kbps: float("instantaneous_output_kbps"),
        }
    }

    pub fn keys(&self) -> u64 {
        self.db_keys.iter().map(|(_, n)| n).sum()
    }
}

/// `keys` of `keys=3,expires=0,avg_ttl=0`.
fn attribute<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(',').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == name)).map(|p| p.1)
}

/// `ip=127.0.0.1,port=7004,state=online,offset=1234,lag=0`.
fn replica_link(value: &str) -> Option<ReplicaLink> {
    let ip = attribute(value, "ip")?;
    let port = attribute(value, "port")?;
    let addr = match ip.contains(':') {
        true => format!("[{ip}]:{port}"),
        false => format!("{ip}:{port}"),
    };
    Some(ReplicaLink {
        addr,
        state: attribute(value, "state").unwrap_or("").to_string(),
        offset: attribute(value, "offset").and_then(|v| v.parse().ok()).unwrap_or(0),
        lag_secs: attribute(value, "lag").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
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
    let previous = health.get(addr);
    let previous_failures = previous.map_or(0, |h| h.failures);
    let last_up_ms = previous.and_then(|h| h.last_up_ms);
    let down_since_ms = previous.and_then(|h| h.down_since_ms);
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
                last_up_ms: Some(now_ms),
                down_since_ms: None,
                figures: NodeFigures::from_info(&checked.info),
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
                last_up_ms,
                down_since_ms: None,
                figures: NodeFigures::default(),
            });
            // The outage began at its first failed check; later ones keep that time.
            entry.down_since_ms = Some(down_since_ms.unwrap_or(now_ms));
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
    use super::*;

    /// Parts of a real `INFO` of a Redis 7.0 master with one replica and keys in db0.
    const MASTER_INFO: &str = "# Server\r\nredis_version:7.0.15\r\n# Memory\r\n\
        used_memory:1543200\r\nused_memory_human:1.47M\r\ntotal_system_memory:25225551872\r\n\
        maxmemory:104857600\r\n# Stats\r\ntotal_net_input_bytes:9876\r\n\
        total_net_output_bytes:54321\r\ninstantaneous_input_kbps:1.25\r\n\
        instantaneous_output_kbps:0.50\r\nevicted_keys:7\r\n# Replication\r\nrole:master\r\n\
        connected_slaves:1\r\nslave0:ip=127.0.0.1,port=7004,state=online,offset=1200,lag=1\r\n\
        master_repl_offset:1500\r\n# Keyspace\r\ndb0:keys=12,expires=2,avg_ttl=0\r\n\
        db3:keys=1,expires=0,avg_ttl=0\r\n";

    #[test]
    fn figures_from_a_masters_info() {
        let f = NodeFigures::from_info(&cluster::admin::parse_info(MASTER_INFO));
        assert_eq!(f.redis_version, "7.0.15");
        assert_eq!((f.used_memory, f.maxmemory), (1_543_200, 104_857_600));
        assert_eq!(f.total_system_memory, 25_225_551_872);
        assert_eq!(f.evicted_keys, 7);
        assert_eq!(f.db_keys, [("db0".to_string(), 12), ("db3".to_string(), 1)]);
        assert_eq!(f.keys(), 13);
        assert_eq!(f.master_repl_offset, 1500);
        assert_eq!(
            f.replicas,
            [ReplicaLink {
                addr: "127.0.0.1:7004".into(),
                state: "online".into(),
                offset: 1200,
                lag_secs: 1
            }]
        );
        assert_eq!(f.master_link_up, None);
        assert_eq!((f.total_net_input_bytes, f.total_net_output_bytes), (9876, 54321));
        assert_eq!((f.input_kbps, f.output_kbps), (1.25, 0.5));
    }

    #[test]
    fn figures_of_a_replica_and_of_missing_fields() {
        let info = "role:slave\r\nmaster_link_status:down\r\nmaster_repl_offset:900\r\n\
            slave_read_only:1\r\nslave_priority:100\r\n";
        let f = NodeFigures::from_info(&cluster::admin::parse_info(info));
        assert_eq!(f.master_link_up, Some(false));
        assert_eq!(f.master_repl_offset, 900);
        // slave_read_only and slave_priority are not replicas.
        assert!(f.replicas.is_empty());
        assert_eq!((f.used_memory, f.keys()), (0, 0));
        assert_eq!(replica_link("ip=::1,port=7005,state=wait_bgsave").unwrap().addr, "[::1]:7005");
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_key("7.0.15") < version_key("7.2.4"));
        assert!(version_key("7.0.9") < version_key("7.0.15"));
        assert!(version_key("6.2.14") < version_key("7.0.0"));
    }
}
