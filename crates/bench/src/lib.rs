//! `redkeep bench`: the workload the system we replace judged the cluster with, measured
//! honestly. For each value size a SET phase, then a GET phase over exactly the keys it wrote,
//! every value checked; latency from HDR histograms; result files per client id as the old
//! client wrote them, plus JSON and CSV.
//!
//! [`values`] (keys, values, sizes) and [`results`] (the data written out) are pure;
//! [`conn`] talks RESP, [`engine`] runs the phases, [`files`] writes the files.

pub mod conn;
pub mod engine;
pub mod files;
pub mod merge;
pub mod plot;
pub mod report;
pub mod results;
pub mod values;

use cluster::admin::{AdminConn, info_field};

/// What the target is: `proxy` (a redkeep proxy), `cluster` or `standalone`, its Redis
/// version, and for a cluster its nodes (asked through `cluster_seed`, when given).
pub async fn describe_target(
    target: &str,
    cluster_seed: Option<&str>,
) -> (String, String, Vec<String>) {
    let mut mode = "standalone".to_string();
    let mut version = String::from("unknown");
    if let Ok(mut conn) = AdminConn::connect(target, std::time::Duration::from_secs(2)).await
        && let Ok(info) = conn.info("default").await
    {
        if info_field(&info, "redkeep_version").is_some() {
            mode = "proxy".into();
        } else if info_field(&info, "cluster_enabled") == Some("1") {
            mode = "cluster".into();
        }
        version = info_field(&info, "redis_version").unwrap_or("unknown").to_string();
    }
    let mut topology = Vec::new();
    if let Some(seed) = cluster_seed
        && let Ok(t) = cluster::ops::topology_of(seed).await
    {
        for n in &t.nodes {
            let slots = cluster::topology::format_ranges(&n.slots);
            topology.push(format!("{} {} {}", n.addr(), n.role.as_str(), slots));
            if version == "unknown"
                && let Ok(mut conn) =
                    AdminConn::connect(&n.addr(), std::time::Duration::from_secs(2)).await
                && let Ok(info) = conn.info("server").await
            {
                version = info_field(&info, "redis_version").unwrap_or("unknown").to_string();
            }
        }
    }
    (mode, version, topology)
}
