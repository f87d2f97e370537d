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
    let mut version = None;
    if let Ok(mut conn) = AdminConn::connect(target, std::time::Duration::from_secs(2)).await {
        if let Ok(info) = conn.info("default").await {
            if info_field(&info, "redkeep_version").is_some() {
                mode = "proxy".into();
            } else if info_field(&info, "cluster_enabled") == Some("1") {
                mode = "cluster".into();
            }
        }
        version = redis_version(&mut conn).await;
    }
    let mut topology = Vec::new();
    if let Some(seed) = cluster_seed
        && let Ok(t) = cluster::ops::topology_of(seed).await
    {
        for n in &t.nodes {
            let slots = cluster::topology::format_ranges(&n.slots);
            topology.push(format!("{} {} {}", n.addr(), n.role.as_str(), slots));
            if version.is_none()
                && let Ok(mut conn) =
                    AdminConn::connect(&n.addr(), std::time::Duration::from_secs(2)).await
            {
                version = redis_version(&mut conn).await;
            }
        }
    }
    (mode, version.unwrap_or_else(|| "unknown".into()), topology)
}

/// The Redis version behind a connection: `redis_version` of `INFO server` (a node, or a proxy
/// that gives the cluster's), else the `version` a `HELLO` answers with (a redkeep proxy gives
/// its nodes' version there).
async fn redis_version(conn: &mut AdminConn) -> Option<String> {
    if let Ok(info) = conn.info("server").await
        && let Some(version) = info_field(&info, "redis_version")
    {
        return Some(version.to_string());
    }
    let hello = conn.raw(&["HELLO", "2"]).await.ok()?;
    hello_field(&hello, "version")
}

/// A field of a HELLO reply (a flat array of name/value pairs in RESP2, a map in RESP3).
fn hello_field(reply: &resp::Value, name: &str) -> Option<String> {
    use resp::Value;
    let text = |v: &Value| match v {
        Value::Bulk(b) | Value::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    let pairs: Vec<(&Value, &Value)> = match reply {
        Value::Array(items) => {
            items.chunks(2).filter_map(|p| Some((p.first()?, p.get(1)?))).collect()
        }
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => return None,
    };
    pairs.into_iter().find(|(k, _)| text(k).as_deref() == Some(name)).and_then(|(_, v)| text(v))
}

#[cfg(test)]
mod tests {
    use resp::Value;

    #[test]
    fn hello_gives_its_version_in_resp2_and_resp3() {
        let bulk = |s: &str| Value::Bulk(s.as_bytes().to_vec());
        let resp2 =
            Value::Array(vec![bulk("server"), bulk("redis"), bulk("version"), bulk("7.0.15")]);
        assert_eq!(super::hello_field(&resp2, "version").as_deref(), Some("7.0.15"));
        let resp3 = Value::Map(vec![(bulk("version"), bulk("7.0.15"))]);
        assert_eq!(super::hello_field(&resp3, "version").as_deref(), Some("7.0.15"));
        assert_eq!(super::hello_field(&Value::Null, "version"), None);
    }
}
