//! Fast failover (opt-in, `--fast-failover`): a master whose port *refuses* connections has no
//! process listening, so waiting for Redis Cluster to notice (node-timeout, up to 1.5 times it,
//! then a 0.5-1 s election delay) only prolongs the outage. The proxy then asks the master's
//! replica for `CLUSTER FAILOVER FORCE`, which the majority of masters still has to vote for.
//!
//! Only a refused connection counts, twice in a row: a node that does not answer (a partition,
//! a hung host) is left to the cluster's own failure detection, which can tell a partition from
//! a death; a slow or loading node accepts connections and is left alone too.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster::admin::{AdminConn, info_field};
use tokio::net::TcpStream;

use crate::shared::{Shared, Stats};
use crate::slotmap::SlotMap;

/// How long after the first refusal the master is tried again before it is declared dead.
const RECHECK_AFTER: Duration = Duration::from_millis(200);
/// One forced failover per master in this time, whatever happens.
const QUIET_AFTER_FORCING: Duration = Duration::from_secs(15);
const ADMIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Remembers the failovers this proxy forced, so that one dead master gets one.
#[derive(Default)]
pub struct FastFailover {
    forced: HashMap<String, Instant>,
}

impl FastFailover {
    /// Called after `addr` failed a health check: forces its replica's takeover when `addr`
    /// is a master serving slots, refuses connections twice, and has a replica whose link to
    /// it is down.
    pub async fn after_failed_check(&mut self, shared: &Shared, map: &SlotMap, addr: &str) {
        let Some(replica) = takeover_candidate(map, addr) else { return };
        if self.forced.get(addr).is_some_and(|at| at.elapsed() < QUIET_AFTER_FORCING) {
            return;
        }
        if !refuses(addr).await {
            return;
        }
        tokio::time::sleep(RECHECK_AFTER).await;
        if !refuses(addr).await {
            return;
        }
        match force_failover(&replica).await {
            Ok(()) => {
                self.forced.insert(addr.to_string(), Instant::now());
                Stats::add(&shared.stats.forced_failovers, 1);
                tracing::warn!(master = %addr, %replica, "master refuses connections: forced its replica's takeover");
                shared.want_refresh();
            }
            Err(reason) => tracing::warn!(master = %addr, %replica, %reason, "no forced failover"),
        }
    }
}

/// The replica to promote when `addr` is a master serving slots: its first replica that the
/// map does not mark failing.
pub fn takeover_candidate(map: &SlotMap, addr: &str) -> Option<String> {
    let master = map.index_of(addr)?;
    if !map.serving_masters().contains(&master) {
        return None;
    }
    map.replicas_of(master).next().map(|r| map.addr(r).to_string())
}

/// Does a connection to `addr` get refused (nothing listens there)?
async fn refuses(addr: &str) -> bool {
    match tokio::time::timeout(ADMIN_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// `CLUSTER FAILOVER FORCE` on `replica`, once it confirms its master link is down.
async fn force_failover(replica: &str) -> Result<(), String> {
    let mut conn = AdminConn::connect(replica, ADMIN_TIMEOUT).await.map_err(|e| e.to_string())?;
    let info = conn.info("replication").await.map_err(|e| e.to_string())?;
    if info_field(&info, "role") != Some("slave") {
        return Err("it is not a replica (any more)".into());
    }
    if info_field(&info, "master_link_status") != Some("down") {
        return Err("its link to the master is up".into());
    }
    conn.query_ok(&["CLUSTER", "FAILOVER", "FORCE"]).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> SlotMap {
        let text = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-16383
b2 127.0.0.1:7002@17002 slave a1 0 0 1 connected
c3 127.0.0.1:7003@17003 master - 0 0 2 connected
d4 127.0.0.1:7004@17004 slave,fail a1 0 0 1 connected
";
        SlotMap::from_topology(&cluster::topology::parse_cluster_nodes(text).unwrap())
    }

    #[test]
    fn only_a_serving_master_with_a_live_replica_is_taken_over() {
        let map = map();
        assert_eq!(takeover_candidate(&map, "127.0.0.1:7001").as_deref(), Some("127.0.0.1:7002"));
        assert_eq!(takeover_candidate(&map, "127.0.0.1:7002"), None, "a replica");
        assert_eq!(takeover_candidate(&map, "127.0.0.1:7003"), None, "a master without slots");
        assert_eq!(takeover_candidate(&map, "127.0.0.1:7999"), None, "unknown");
    }
}
