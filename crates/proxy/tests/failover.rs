//! The proxy while the cluster changes under load: a slot migrated during traffic, and a master
//! killed with `kill -9`. Clients must never read a wrong value.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::admin::AdminConn;
use common::*;
use resp::Value;

/// What one load task saw.
#[derive(Default, Debug)]
struct Seen {
    ok: u64,
    errors: Vec<(Instant, String)>,
    /// GETs that returned a value never written to that key.
    wrong: Vec<String>,
}

/// SET then GET of its own keys until `stop`; every GET must return a value this task wrote
/// to that key (an older one is possible after a failover loses a write, never a foreign one).
async fn load(
    addr: std::net::SocketAddr,
    task: usize,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut conn = Conn::connect(addr).await;
    let mut written: HashMap<String, Vec<String>> = HashMap::new();
    let mut seen = Seen::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = &keys[n as usize % keys.len()];
        let value = format!("t{task}-{n}");
        written.entry(key.clone()).or_default().push(value.clone());
        match conn.call(&["SET", key, &value]).await {
            Value::Simple(_) => seen.ok += 1,
            other => seen.errors.push((Instant::now(), format!("SET: {other:?}"))),
        }
        match conn.call(&["GET", key]).await {
            Value::Bulk(got) => {
                let got = String::from_utf8_lossy(&got).into_owned();
                if written[key].contains(&got) {
                    seen.ok += 1;
                } else {
                    seen.wrong.push(format!("{key} = {got}"));
                }
            }
            Value::Null => seen.ok += 1, // a write lost in the failover: reported, not wrong
            other => seen.errors.push((Instant::now(), format!("GET: {other:?}"))),
        }
        n += 1;
    }
    seen
}

fn report(name: &str, seen: &[Seen]) -> (u64, usize) {
    let ok: u64 = seen.iter().map(|s| s.ok).sum();
    let errors: Vec<&(Instant, String)> = seen.iter().flat_map(|s| &s.errors).collect();
    let window = match (errors.iter().map(|e| e.0).min(), errors.iter().map(|e| e.0).max()) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    eprintln!(
        "{name}: {ok} successful replies, {} errors seen by clients over {window:?}; first: {:?}",
        errors.len(),
        errors.first().map(|e| &e.1)
    );
    for s in seen {
        assert!(s.wrong.is_empty(), "{name}: wrong values read: {:?}", s.wrong);
    }
    (ok, errors.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrated_during_traffic_causes_no_client_error() {
    let (cluster, proxy) = cluster_and_proxy().await;
    // Keys of one slot (hash tag), so every command meets the migration.
    let keys: Vec<String> = (0..200).map(|i| format!("{{mig}}:{i}")).collect();
    let slot = cluster::key_slot(b"mig");
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let keys = keys[t * 50..(t + 1) * 50].to_vec();
            tokio::spawn(load(proxy.local_addr, t, keys, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    let source = topology.masters().find(|m| m.slots.iter().any(|r| r.contains(slot))).unwrap();
    let target = topology.masters().find(|m| m.id != source.id).unwrap();
    let (mut src, mut dst) = (
        AdminConn::connect(&source.addr(), Duration::from_secs(2)).await.unwrap(),
        AdminConn::connect(&target.addr(), Duration::from_secs(2)).await.unwrap(),
    );
    let s = slot.to_string();
    dst.query_ok(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &source.id]).await.unwrap();
    src.query_ok(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &target.id]).await.unwrap();
    // A few keys at a time, with pauses, so that traffic meets every stage of the move.
    loop {
        let keys = match src.query(&["CLUSTER", "GETKEYSINSLOT", &s, "5"]).await.unwrap() {
            Value::Array(keys) => keys,
            other => panic!("GETKEYSINSLOT: {other:?}"),
        };
        if keys.is_empty() {
            break;
        }
        let mut migrate: Vec<Vec<u8>> = vec![
            b"MIGRATE".to_vec(),
            target.ip.clone().into(),
            target.port.to_string().into(),
            b"".to_vec(),
            b"0".to_vec(),
            b"5000".to_vec(),
            b"KEYS".to_vec(),
        ];
        migrate.extend(keys.iter().map(|k| k.as_bytes().unwrap().to_vec()));
        src.query_ok(&migrate).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in topology.masters().map(|m| m.addr()) {
        let mut conn = AdminConn::connect(&node, Duration::from_secs(2)).await.unwrap();
        conn.query_ok(&["CLUSTER", "SETSLOT", &s, "NODE", &target.id]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    let (ok, errors) = report("slot migration", &seen);
    assert!(ok > 0);
    assert_eq!(
        errors,
        0,
        "clients saw errors during the migration: {:?}",
        seen.iter().flat_map(|s| &s.errors).take(5).collect::<Vec<_>>()
    );
    let redirects = proxy.shared.stats.ask.load(Ordering::Relaxed)
        + proxy.shared.stats.moved.load(Ordering::Relaxed);
    assert!(redirects > 0, "the traffic met the migration (ASK or MOVED followed)");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_master_under_load_never_gives_a_wrong_value_and_service_resumes() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let keys = keys_on_every_master(3, 30);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let mine: Vec<String> = keys.iter().skip(t).step_by(8).cloned().collect();
            tokio::spawn(load(proxy.local_addr, t, mine, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    let victim = topology.masters().find(|m| m.port != cluster.ports()[0]).unwrap();
    let replica = topology.replicas_of(&victim.id).next().unwrap().addr();
    let killed_at = Instant::now();
    cluster.kill9(victim.port);
    // Wait for the promotion, as the cluster reports it.
    let promoted_after = loop {
        let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
        if topology.by_addr(&replica).is_some_and(|n| n.is_master() && !n.slots.is_empty()) {
            break killed_at.elapsed();
        }
        assert!(killed_at.elapsed() < Duration::from_secs(30), "{replica} was never promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    eprintln!("replica promoted {promoted_after:?} after the kill");
    report("master kill -9", &seen);

    // Service is back for every key, through the same proxy.
    let mut conn = Conn::connect(proxy.local_addr).await;
    for key in &keys {
        assert_eq!(conn.call(&["SET", key, "after"]).await, ok(), "SET {key} after the failover");
        assert_eq!(conn.call(&["GET", key]).await, bulk("after"));
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fast_failover_a_killed_master_is_replaced_without_waiting_for_the_cluster() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    // A node-timeout of a minute: a promotion within the test's 30 s is the proxy's doing.
    for addr in cluster.addrs() {
        let mut conn = AdminConn::connect(&addr, Duration::from_secs(5)).await.unwrap();
        conn.query_ok(&["CONFIG", "SET", "cluster-node-timeout", "60000"]).await.unwrap();
    }
    let proxy = start_proxy(&cluster, |c| c.fast_failover = true).await;
    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    let victim = topology.masters().find(|m| m.port != cluster.ports()[0]).unwrap();
    let replica = topology.replicas_of(&victim.id).next().unwrap().addr();
    // A replica that dies is no reason for a failover.
    let other = topology.masters().find(|m| m.id != victim.id).unwrap();
    let other_replica = topology.replicas_of(&other.id).next().unwrap();
    cluster.kill9(other_replica.port);
    cluster.kill9(victim.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let topology = cluster::ops::topology_of(&replica).await.unwrap();
        if topology.myself().is_some_and(|me| me.is_master() && !me.slots.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "{replica} was not promoted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(proxy.shared.stats.forced_failovers.load(Ordering::Relaxed), 1);
    // Its keys are served by the new master, through the proxy.
    let key = (0..)
        .map(|n| format!("ff:{n}"))
        .find(|k| victim.slots.iter().any(|r| r.contains(cluster::key_slot(k.as_bytes()))))
        .unwrap();
    let mut conn = Conn::connect(proxy.local_addr).await;
    assert_eq!(conn.call(&["SET", &key, "after"]).await, ok());
    assert_eq!(conn.call(&["GET", &key]).await, bulk("after"));
    proxy.shutdown().await;
}
