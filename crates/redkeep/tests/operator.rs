//! The operator commands on real redis-server nodes: `create` refuses nodes it must not touch
//! (naming them) and forms a cluster from blank ones; `fix` repairs an uncovered slot and an
//! open slot that both hold keys, without losing a key.

mod common;

use std::time::Duration;

use cluster::admin::AdminConn;
use cluster::slot::key_slot;
use common::{describe, redkeep};
use deploy::testing::{StandaloneServer, TestCluster};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn admin(addr: &str) -> AdminConn {
    AdminConn::connect(addr, Duration::from_secs(5)).await.unwrap()
}

/// `create` with `nodes`, expected to fail with an error that contains every `expected` text.
fn assert_create_refused(nodes: &[String], expected: &[&str]) {
    let mut args = vec!["create", "--replicas", "1", "--yes"];
    args.extend(nodes.iter().map(String::as_str));
    let output = redkeep(&args);
    assert!(!output.status.success(), "create accepted bad nodes: {}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for text in expected {
        assert!(stderr.contains(text), "error should mention {text:?}: {}", describe(&output));
    }
}

#[test]
fn create_refuses_unusable_nodes_by_name_then_forms_the_cluster() {
    let rt = runtime();
    let blank = rt.block_on(TestCluster::start_blank(3, 1));
    let addrs = blank.addrs();
    let standalone = StandaloneServer::start();

    // A node not in cluster mode.
    let mut with_standalone = addrs[..5].to_vec();
    with_standalone.push(standalone.addr());
    assert_create_refused(&with_standalone, &[&standalone.addr(), "cluster"]);

    // A node that is not empty: it holds a slot already.
    rt.block_on(async { admin(&addrs[2]).await.query_ok(&["CLUSTER", "ADDSLOTS", "7"]).await })
        .unwrap();
    assert_create_refused(&addrs, &[&addrs[2], "serves 1 slots"]);
    rt.block_on(async { admin(&addrs[2]).await.query_ok(&["CLUSTER", "DELSLOTS", "7"]).await })
        .unwrap();

    // A node nobody listens on.
    let mut with_unreachable = addrs[..5].to_vec();
    let nobody = format!("127.0.0.1:{}", deploy::ports::free_port());
    with_unreachable.push(nobody.clone());
    assert_create_refused(&with_unreachable, &[&nobody]);

    // None of the refusals changed a node: the blank nodes still form a healthy cluster.
    let mut args = vec!["create", "--replicas", "1", "--yes"];
    args.extend(addrs.iter().map(String::as_str));
    let output = redkeep(&args);
    assert!(output.status.success(), "create failed: {}", describe(&output));
    let check = redkeep(&["check", &addrs[0]]);
    assert!(check.status.success(), "check after create failed: {}", describe(&check));
}

/// The id of the master that serves `slot`, as `seed` sees it.
async fn owner_of(seed: &str, slot: u16) -> (String, String) {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let node = topology
        .masters()
        .find(|n| n.slots.iter().any(|r| r.contains(slot)))
        .expect("slot has an owner");
    (node.id.clone(), node.addr())
}

async fn other_master(seed: &str, not: &str) -> (String, String) {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let node = topology.masters().find(|n| n.id != not && !n.slots.is_empty()).unwrap();
    (node.id.clone(), node.addr())
}

#[test]
fn fix_repairs_an_uncovered_and_an_open_slot_that_hold_keys() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let addrs = cluster.addrs();
    let seed = addrs[0].clone();
    let keys_of = |tag: &str| (0..20).map(|i| format!("{{{tag}}}:{i}")).collect::<Vec<_>>();
    let uncovered_keys = keys_of("uncovered");
    let open_keys = keys_of("open");
    let uncovered_slot = key_slot(b"uncovered");
    let open_slot = key_slot(b"open");

    rt.block_on(async {
        // Write both key sets to their owners.
        for (keys, slot) in [(&uncovered_keys, uncovered_slot), (&open_keys, open_slot)] {
            let (_, owner) = owner_of(&seed, slot).await;
            let mut conn = admin(&owner).await;
            for key in keys.iter() {
                conn.query_ok(&["SET", key, &format!("value of {key}")]).await.unwrap();
            }
        }

        // Leave another slot half-migrated: open on both sides, half of its keys moved.
        let (from_id, from) = owner_of(&seed, open_slot).await;
        let (to_id, to) = other_master(&seed, &from_id).await;
        let slot = open_slot.to_string();
        admin(&to)
            .await
            .query_ok(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id])
            .await
            .unwrap();
        admin(&from)
            .await
            .query_ok(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id])
            .await
            .unwrap();
        let (host, port) = to.rsplit_once(':').unwrap();
        let mut source = admin(&from).await;
        for key in &open_keys[..10] {
            source.query_ok(&["MIGRATE", host, port, key, "0", "5000"]).await.unwrap();
        }

        // Then uncover one slot (last: the cluster goes down without it): every node forgets it; its keys stay on the old owner.
        for addr in &addrs {
            admin(addr)
                .await
                .query_ok(&["CLUSTER", "DELSLOTS", &uncovered_slot.to_string()])
                .await
                .ok();
        }
    });

    let check = redkeep(&["check", &seed]);
    assert!(!check.status.success(), "check passes a broken cluster: {}", describe(&check));
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains(&open_slot.to_string()), "check names the open slot: {report}");
    assert!(
        report.contains(&uncovered_slot.to_string()),
        "check names the uncovered slot: {report}"
    );

    let fix = redkeep(&["fix", &seed, "--yes"]);
    assert!(fix.status.success(), "fix failed: {}", describe(&fix));
    let check = redkeep(&["check", &seed]);
    assert!(check.status.success(), "check after fix failed: {}", describe(&check));

    // Every key is where the cluster says, with its value.
    rt.block_on(async {
        for key in uncovered_keys.iter().chain(&open_keys) {
            let (_, owner) = owner_of(&seed, key_slot(key.as_bytes())).await;
            let value = admin(&owner).await.query_text(&["GET", key]).await.unwrap();
            assert_eq!(value, format!("value of {key}"), "{key} on {owner}");
        }
    });
}

#[test]
fn failover_promotes_the_replica_and_call_labels_every_reply() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let seed = cluster.addrs()[0].clone();
    let (replica, old_master) = rt.block_on(async {
        let topology = cluster::ops::topology_of(&seed).await.unwrap();
        let replica = topology.nodes.iter().find(|n| !n.is_master()).unwrap();
        let master = topology.by_id(replica.master_id.as_deref().unwrap()).unwrap();
        (replica.addr(), master.addr())
    });

    let output = redkeep(&["failover", &replica]);
    assert!(output.status.success(), "failover failed: {}", describe(&output));
    rt.block_on(async {
        let topology = cluster::ops::topology_of(&replica).await.unwrap();
        assert!(topology.by_addr(&replica).unwrap().is_master(), "{replica} was promoted");
        // The old master hears of it through gossip and turns into a replica.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let topology = cluster::ops::topology_of(&old_master).await.unwrap();
            let old = topology.by_addr(&old_master).unwrap();
            if !old.is_master() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{old_master} is still a master");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let output = redkeep(&["call", &seed, "DBSIZE"]);
    assert!(output.status.success(), "call failed: {}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let labels: Vec<&str> =
        stdout.lines().filter_map(|l| l.split_once(": ")).map(|(a, _)| a).collect();
    let every_node = cluster.addrs(); // in port order
    assert_eq!(labels, every_node, "one labelled reply per node, in address order: {stdout}");
    assert!(stdout.lines().all(|l| l.ends_with("(integer) 0")), "{stdout}");
}
