//! Models for rule and healing tests, built by the real `build_model` from `CLUSTER NODES`
//! recorded on a Redis 7.0 cluster (the cluster crate's fixtures) and INFO text in Redis' format.
#![allow(dead_code)]

use monitor::Model;
use monitor::poll::{NodeSample, RawNode, build_model};

pub const HEALTHY: &str = include_str!("../../../cluster/tests/fixtures/nodes-healthy.txt");
pub const FAILOVER: &str = include_str!("../../../cluster/tests/fixtures/nodes-failover.txt");

/// The recorded view, as the node at `addr` prints it (`myself` on its own line).
pub fn as_seen_by(text: &str, addr: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace("myself,", "");
            if line.split_whitespace().nth(1).is_some_and(|a| a.starts_with(&format!("{addr}@"))) {
                let mut fields: Vec<String> = line.split_whitespace().map(String::from).collect();
                fields[2] = format!("myself,{}", fields[2]);
                fields.join(" ")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn info(role: &str, port: &str) -> String {
    let replication = if role == "master" {
        "role:master\r\nconnected_slaves:1\r\nmaster_repl_offset:5000\r\n".to_string()
    } else {
        "role:slave\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:1\r\nslave_repl_offset:5000\r\n"
            .to_string()
    };
    format!(
        "# Server\r\nrun_id:run{port}\r\nuptime_in_seconds:100\r\n# Clients\r\nconnected_clients:3\r\n\
         # Memory\r\nused_memory:1000000\r\nmaxmemory:0\r\n# Stats\r\nevicted_keys:0\r\n\
         rejected_connections:0\r\ninstantaneous_ops_per_sec:5\r\n# Replication\r\n{replication}\
         # Keyspace\r\ndb0:keys=1000,expires=0,avg_ttl=0\r\n"
    )
}

pub const CLUSTER_INFO_OK: &str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
cluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:6\r\ncluster_size:3\r\ncluster_current_epoch:6\r\n";

/// Every node of `text` answering, but those in `down`.
pub fn samples(text: &str, down: &[&str]) -> Vec<NodeSample> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = fields.get(1)?.split('@').next()?.to_string();
            let role = if fields[2].contains("master") { "master" } else { "replica" };
            let port = addr.rsplit(':').next()?.to_string();
            let answer = if down.contains(&addr.as_str()) {
                Err(format!("cannot connect to {addr}: Connection refused"))
            } else {
                Ok(RawNode {
                    info: info(role, &port),
                    cluster_info: CLUSTER_INFO_OK.into(),
                    cluster_nodes: as_seen_by(text, &addr),
                    latency: Vec::new(),
                    slowlog_len: 0,
                })
            };
            Some(NodeSample { addr, answer })
        })
        .collect()
}

/// The healthy 3+3 cluster (ports 23001-23006, 23001-23003 masters).
pub fn healthy(at_ms: u64) -> Model {
    build_model(
        at_ms,
        &["127.0.0.1:23001".into()],
        &samples(HEALTHY, &[]),
        Vec::new(),
        None,
        &Default::default(),
    )
}

pub fn node_mut<'a>(model: &'a mut Model, addr: &str) -> &'a mut monitor::model::NodeHealth {
    model.nodes.iter_mut().find(|n| n.addr == addr).expect("node in model")
}

pub fn own_mut<'a>(model: &'a mut Model, addr: &str) -> &'a mut monitor::model::OwnReport {
    node_mut(model, addr).own.as_mut().expect("node answered")
}

/// Spreads the nodes over hosts: port 2300N goes to 10.0.0.H with H from `hosts[N-1]`.
pub fn place(model: &mut Model, hosts: [u8; 6]) {
    for node in &mut model.nodes {
        let port = node.port().unwrap();
        let host = hosts[usize::from(port - 23001)];
        node.addr = format!("10.0.0.{host}:{port}");
    }
}
