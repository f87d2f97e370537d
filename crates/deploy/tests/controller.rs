//! `redkeep controller` against real local clusters: it forms one from empty nodes, brings a
//! cluster whose every node came back at a new address to `ok` with the same node IDs and
//! every key, and joins an empty node as the replica a master lost.

use std::time::Duration;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use deploy::controller::{self, Action, PassReport, Sources, Want};
use deploy::testing::TestCluster;

const WANT: Want = Want { masters: 3, replicas: 1 };

/// Runs the controller on a thread of its own (its operations hold progress callbacks that
/// are not `Send`) until the returned sender fires or is dropped; every pass's report goes to
/// the receiver.
fn start_controller(addrs: Vec<String>) -> Controller {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let sources = Sources::Nodes(addrs);
        let mut report = |pass: &PassReport| {
            eprintln!("pass: {:?} {:?}", pass.decision, pass.unreachable);
            let _ = tx.send(pass.clone());
        };
        let stop = async move {
            let _ = stopped.await;
        };
        runtime.block_on(controller::run(
            &sources,
            WANT,
            Duration::from_millis(300),
            &mut report,
            stop,
        ));
    });
    Controller { stop, thread, reports: rx }
}

struct Controller {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    reports: tokio::sync::mpsc::UnboundedReceiver<PassReport>,
}

impl Controller {
    /// Stops the controller once its pass is over; every action it applied, with its error.
    fn stop(self) -> Vec<(Action, Option<String>)> {
        let Controller { stop, thread, mut reports } = self;
        let _ = stop.send(());
        thread.join().expect("the controller does not panic");
        let mut all = Vec::new();
        while let Ok(pass) = reports.try_recv() {
            all.extend(pass.applied);
        }
        all
    }
}

async fn id_of(addr: &str) -> String {
    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await.unwrap();
    conn.query_text(&["CLUSTER", "MYID"]).await.unwrap().trim().to_string()
}

/// The master serving `key`, as `seed` sees the cluster.
async fn owner(seed: &str, key: &str) -> String {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let slot = cluster::key_slot(key.as_bytes());
    topology
        .masters()
        .find(|m| m.slots.iter().any(|r| r.contains(slot)))
        .unwrap_or_else(|| panic!("no master serves slot {slot}"))
        .addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_back_at_a_new_address_converges_with_the_same_ids_and_every_key() {
    let mut cluster = TestCluster::start(3, 1).await;
    let old = cluster.addrs();
    let keys: Vec<String> = (0..300).map(|n| format!("readdress:{n}")).collect();
    for key in &keys {
        let mut conn =
            AdminConn::connect(&owner(&old[0], key).await, DEFAULT_TIMEOUT).await.unwrap();
        conn.query_ok(&["SET", key, &format!("value of {key}")]).await.unwrap();
    }
    // Every write on its replica too, so that a failover during the recovery loses nothing.
    let topology = cluster::ops::topology_of(&old[0]).await.unwrap();
    for master in topology.masters() {
        let mut conn = AdminConn::connect(&master.addr(), DEFAULT_TIMEOUT).await.unwrap();
        assert_eq!(conn.query_int(&["WAIT", "1", "5000"]).await.unwrap(), 1);
    }
    let mut ids = Vec::new();
    for addr in &old {
        ids.push(id_of(addr).await);
    }

    cluster.move_to_new_ports().await;
    let new = cluster.addrs();
    assert!(new.iter().all(|a| !old.contains(a)), "{old:?} -> {new:?}");
    let conf = std::fs::read_to_string(
        cluster.local_dir().node_dir(cluster.ports()[0]).join("nodes.conf"),
    )
    .unwrap();
    assert!(conf.contains(&old[1]), "nodes.conf still names the old addresses: {conf}");

    let controller = start_controller(new.clone());
    let healthy = cluster::ops::wait_healthy(&new, Duration::from_secs(90)).await;
    let actions = controller.stop();
    healthy.unwrap_or_else(|e| panic!("not healthy: {e}; actions: {actions:?}"));

    let meets = actions.iter().filter(|(a, _)| matches!(a, Action::Meet { .. })).count();
    assert!(meets > 0, "the controller re-met nodes: {actions:?}");
    assert!(actions.iter().all(|(a, _)| !matches!(a, Action::Form(_))), "no new cluster");
    for (addr, id) in new.iter().zip(&ids) {
        assert_eq!(&id_of(addr).await, id, "{addr} kept its node ID");
    }
    let topology = cluster::ops::topology_of(&new[0]).await.unwrap();
    assert_eq!(topology.nodes.len(), 6, "no node twice: {topology:?}");
    for node in &topology.nodes {
        assert!(new.contains(&node.addr()), "{} is a new address", node.addr());
    }
    for key in &keys {
        let mut conn =
            AdminConn::connect(&owner(&new[0], key).await, DEFAULT_TIMEOUT).await.unwrap();
        let value = conn.query_text(&["GET", key]).await.unwrap();
        assert_eq!(value, format!("value of {key}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_nodes_are_formed_into_a_cluster() {
    let cluster = TestCluster::start_blank(3, 1).await;
    let addrs = cluster.addrs();
    let controller = start_controller(addrs.clone());
    let healthy = cluster::ops::wait_healthy(&addrs, Duration::from_secs(90)).await;
    let actions = controller.stop();
    healthy.unwrap_or_else(|e| panic!("not healthy: {e}; actions: {actions:?}"));
    let forms = actions.iter().filter(|(a, _)| matches!(a, Action::Form(_))).count();
    assert_eq!(forms, 1, "{actions:?}");
    let topology = cluster::ops::topology_of(&addrs[0]).await.unwrap();
    assert_eq!(topology.masters().filter(|m| m.slot_count() > 0).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_node_replaces_the_replica_a_master_lost() {
    let cluster = TestCluster::start(3, 1).await;
    let addrs = cluster.addrs();
    let topology = cluster::ops::topology_of(&addrs[0]).await.unwrap();
    let replica = topology.nodes.iter().find(|n| !n.is_master()).unwrap().clone();
    let master = replica.master_id.clone().unwrap();
    // The replica's volume is lost: it comes back empty, a new node with a new ID.
    cluster.kill9(replica.port);
    std::fs::remove_dir_all(cluster.local_dir().node_dir(replica.port)).unwrap();
    cluster.restart_stopped().await;
    assert_ne!(id_of(&replica.addr()).await, replica.id);

    let controller = start_controller(addrs.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let joined = loop {
        let view = cluster::ops::topology_of(&replica.addr()).await.unwrap();
        let me = view.myself().unwrap().clone();
        if me.master_id.as_deref() == Some(master.as_str()) {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions = controller.stop();
    assert!(joined, "the empty node does not follow {master}: {actions:?}");
    assert!(actions.iter().any(|(a, e)| matches!(a, Action::Join { .. }) && e.is_none()));
}
