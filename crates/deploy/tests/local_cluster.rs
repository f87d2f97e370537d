//! The local supervisor and cluster formation with real redis-server processes.

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use deploy::testing::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_formed_cluster_serves_every_slot_with_its_replicas() {
    let cluster = TestCluster::start(3, 1).await;
    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    assert_eq!(topology.nodes.len(), 6);
    assert_eq!(topology.covered_slots(), 16384);
    for master in topology.masters() {
        assert_eq!(topology.replicas_of(&master.id).count(), 1);
    }
    // Every node runs from its own dir, under a pid we recorded.
    let pids: Vec<u32> =
        cluster.ports().iter().map(|&p| cluster.pid(p).expect("running")).collect();
    let dir = cluster.local_dir().root.clone();
    drop(cluster);
    for pid in pids {
        assert!(!deploy::process::is_alive(pid), "pid {pid} survived the drop");
    }
    assert!(!dir.exists(), "the test dir is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forming_refuses_nodes_that_already_hold_data() {
    let cluster = TestCluster::start(3, 0).await;
    // A formed cluster's nodes know each other and serve slots: not blank any more.
    let addrs = cluster.addrs();
    let formation = cluster::ops::Formation::plan(&addrs, 0).unwrap();
    let err = cluster::ops::create(&formation, &mut |_| {}, std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    assert!(err.to_string().contains(&addrs[0]), "names the node: {err}");
    let mut conn = AdminConn::connect(&addrs[0], DEFAULT_TIMEOUT).await.unwrap();
    assert_eq!(conn.query_text(&["PING"]).await.unwrap(), "PONG");
}
