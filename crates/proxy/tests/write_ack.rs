//! `--write-ack replica`: a write is answered only once a replica of its master has it, and
//! says so when no replica confirmed it in time. The default never waits for replicas.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use cluster::topology::Topology;
use common::*;
use deploy::testing::TestCluster;
use proxy::WriteAck;
use resp::Value;

/// Each master of the cluster with its (one) replica and the slots it serves.
struct Shards {
    topology: Topology,
}

impl Shards {
    async fn of(cluster: &TestCluster) -> Shards {
        Shards { topology: cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap() }
    }

    /// The master serving `key`, and its replica.
    fn of_key(&self, key: &str) -> (String, String) {
        let slot = cluster::key_slot(key.as_bytes());
        let master = self
            .topology
            .masters()
            .find(|m| m.slots.iter().any(|r| r.contains(slot)))
            .expect("every slot has a master");
        let replica = self.topology.replicas_of(&master.id).next().expect("a replica");
        (master.addr(), replica.addr())
    }

    fn masters(&self) -> Vec<String> {
        self.topology.masters().map(|m| m.addr()).collect()
    }
}

/// One READONLY connection per node, made on first use: reads straight from a replica.
#[derive(Default)]
struct Direct(HashMap<String, Conn>);

impl Direct {
    async fn get(&mut self, addr: &str, key: &str) -> Value {
        if !self.0.contains_key(addr) {
            let mut conn = Conn::connect(addr).await;
            assert_eq!(conn.call(&["READONLY"]).await, ok());
            self.0.insert(addr.to_string(), conn);
        }
        self.0.get_mut(addr).unwrap().call(&["GET", key]).await
    }
}

async fn proxy_with_write_ack(cluster: &TestCluster, timeout: Duration) -> proxy::ProxyHandle {
    start_proxy(cluster, |c| {
        c.write_ack = WriteAck::Replica;
        c.write_ack_timeout = timeout;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_already_on_the_replica_of_its_master() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = proxy_with_write_ack(&cluster, Duration::from_secs(5)).await;
    let shards = Shards::of(&cluster).await;
    let mut replicas = Direct::default();
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys = keys_on_every_master(3, 100);

    // One write at a time: each is on the replica the moment its OK arrives.
    for key in &keys {
        let value = format!("one {key}");
        assert_eq!(conn.call(&["SET", key, &value]).await, ok(), "SET {key}");
        let (_, replica) = shards.of_key(key);
        assert_eq!(replicas.get(&replica, key).await, bulk(&value), "{key} on {replica}");
    }

    // Pipelined writes and reads of all shards: replies in request order, each write on its
    // replica once answered.
    let mut sent = Vec::new();
    for key in &keys {
        let value = format!("pipelined {key}");
        conn.send(&[b"SET", key.as_bytes(), value.as_bytes()]).await;
        conn.send(&[b"GET", key.as_bytes()]).await;
        sent.push((key, value));
    }
    for (key, value) in &sent {
        assert_eq!(conn.reply().await, ok(), "SET {key}");
        assert_eq!(conn.reply().await, bulk(value), "GET {key} after its SET");
    }
    for (key, value) in &sent {
        let (_, replica) = shards.of_key(key);
        assert_eq!(replicas.get(&replica, key).await, bulk(value), "{key} on {replica}");
    }

    // An MSET split over the three shards: its OK means every part is on its replica.
    let mut mset = vec!["MSET".to_string()];
    for key in keys.iter().step_by(10) {
        mset.extend([key.clone(), format!("mset {key}")]);
    }
    let args: Vec<&str> = mset.iter().map(String::as_str).collect();
    assert_eq!(conn.call(&args).await, ok());
    for key in keys.iter().step_by(10) {
        let (_, replica) = shards.of_key(key);
        assert_eq!(replicas.get(&replica, key).await, bulk(&format!("mset {key}")), "{key}");
    }

    // A script, and a transaction (EXEC waits for the replica, the queued commands do not).
    let key = &keys[1];
    let script = "return redis.call('SET', KEYS[1], ARGV[1])";
    assert_eq!(conn.call(&["EVAL", script, "1", key, "by script"]).await, ok());
    let (_, replica) = shards.of_key(key);
    assert_eq!(replicas.get(&replica, key).await, bulk("by script"));
    assert_eq!(conn.call(&["MULTI"]).await, ok());
    assert_eq!(
        conn.call(&["SET", key, "in a transaction"]).await,
        Value::Simple(b"QUEUED".to_vec())
    );
    assert_eq!(conn.call(&["EXEC"]).await, Value::Array(vec![ok()]));
    assert_eq!(replicas.get(&replica, key).await, bulk("in a transaction"));
    // Reads need no confirmation and still work in the transaction's neighbourhood.
    assert_eq!(conn.call(&["GET", key]).await, bulk("in a transaction"));

    let stats = &proxy.shared.stats;
    assert!(stats.acks_confirmed.load(Relaxed) >= 2 * keys.len() as u64);
    assert_eq!(stats.acks_missing.load(Relaxed), 0);
    let info = match conn.call(&["INFO"]).await {
        Value::Bulk(text) => String::from_utf8(text).unwrap(),
        other => panic!("INFO: {other:?}"),
    };
    assert!(info.contains("write_acks_missing:0\r\n"), "{info}");
    proxy.shutdown().await;
}

/// A process of the test cluster stopped with SIGSTOP, continued when dropped (also when the
/// test fails).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        deploy::process::signal(pid, libc::SIGSTOP);
        let stopped = Stopped(pid);
        // The signal is delivered asynchronously: wait until the kernel reports it stopped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while process_state(pid) != Some('T') {
            assert!(Instant::now() < deadline, "{pid} did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        stopped
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        deploy::process::signal(self.0, libc::SIGCONT);
    }
}

/// The state letter of `/proc/<pid>/stat` (`T`: stopped).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_replica_confirms_gets_noreplicaack_and_other_shards_go_on() {
    let cluster = TestCluster::start(3, 1).await;
    // Long enough for a healthy replica on a loaded machine; each unconfirmed write waits it.
    let proxy = proxy_with_write_ack(&cluster, Duration::from_secs(2)).await;
    let shards = Shards::of(&cluster).await;
    let keys = keys_on_every_master(3, 1);
    let (silent_master, silent_replica) = shards.of_key(&keys[0]);
    let others: Vec<&String> =
        keys.iter().filter(|k| shards.of_key(k).0 != silent_master).collect();
    assert_eq!(others.len(), 2);
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut master = Conn::connect(silent_master.as_str()).await;

    let port: u16 = silent_replica.rsplit_once(':').unwrap().1.parse().unwrap();
    let stopped = Stopped::new(cluster.pid(port).expect("the replica runs"));
    let reply = conn.call(&["SET", &keys[0], "unconfirmed"]).await;
    let text = error_text(&reply);
    assert!(text.starts_with("NOREPLICAACK "), "{text}");
    assert!(text.contains("ran on the master") && text.contains("within 2000 ms"), "{text}");
    assert_eq!(master.call(&["GET", &keys[0]]).await, bulk("unconfirmed"), "it ran on the master");
    for key in &others {
        assert_eq!(conn.call(&["SET", key, "confirmed"]).await, ok(), "{key} on a healthy shard");
    }
    // An MSET over the silent shard and a healthy one: the silent part makes it an error.
    let reply = conn.call(&["MSET", &keys[0], "m0", others[0], "m1"]).await;
    assert!(error_text(&reply).starts_with("NOREPLICAACK "), "{reply:?}");
    assert_eq!(master.call(&["GET", &keys[0]]).await, bulk("m0"));
    assert!(proxy.shared.stats.acks_missing.load(Relaxed) >= 2);

    // The replica back: writes to its shard are confirmed again once it caught up.
    drop(stopped);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match conn.call(&["SET", &keys[0], "confirmed again"]).await {
            reply if reply == ok() => break,
            reply => {
                assert!(Instant::now() < deadline, "never confirmed again: {reply:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut replica = Direct::default();
    assert_eq!(replica.get(&silent_replica, &keys[0]).await, bulk("confirmed again"));
    proxy.shutdown().await;
}

/// `cmdstat_wait` of `INFO commandstats` on `addr`: how many WAITs the node ran.
async fn waits_on(addr: &str) -> u64 {
    let mut conn = Conn::connect(addr).await;
    let text = match conn.call(&["INFO", "commandstats"]).await {
        Value::Bulk(text) => String::from_utf8(text).unwrap(),
        other => panic!("INFO commandstats: {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_answered_only_after_its_replica_confirmed_it() {
    let cluster = TestCluster::start(3, 1).await;
    // Longer than the test can take: the reply must wait for the replica, not the timeout.
    let proxy = proxy_with_write_ack(&cluster, Duration::from_secs(600)).await;
    let shards = Shards::of(&cluster).await;
    let key = &keys_on_every_master(3, 1)[1];
    let (master_addr, replica_addr) = shards.of_key(key);
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut master = Conn::connect(master_addr.as_str()).await;
    let port: u16 = replica_addr.rsplit_once(':').unwrap().1.parse().unwrap();

    let stopped = Stopped::new(cluster.pid(port).expect("the replica runs"));
    conn.send(&[b"SET", key.as_bytes(), b"waited"]).await;
    // The master ran it...
    let deadline = Instant::now() + Duration::from_secs(30);
    while master.call(&["GET", key]).await != bulk("waited") {
        assert!(Instant::now() < deadline, "the SET never reached {master_addr}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... but the client has no reply while the replica cannot confirm it.
    let early = conn.reply_within(Duration::from_millis(300)).await;
    assert_eq!(early, None, "answered before the replica confirmed");
    drop(stopped);
    assert_eq!(conn.reply().await, ok());
    assert_eq!(Direct::default().get(&replica_addr, key).await, bulk("waited"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_never_sends_wait() {
    let cluster = TestCluster::start(3, 1).await;
    let shards = Shards::of(&cluster).await;
    let keys = keys_on_every_master(3, 20);
    let write_all = |addr| {
        let keys = keys.clone();
        async move {
            let mut conn = Conn::connect(addr).await;
            for key in &keys {
                assert_eq!(conn.call(&["SET", key, "v"]).await, ok());
            }
            let mut mset = vec!["MSET"];
            for key in &keys {
                mset.extend([key.as_str(), "m"]);
            }
            assert_eq!(conn.call(&mset).await, ok());
            assert!(matches!(conn.call(&["INCR", "counter"]).await, Value::Integer(_)));
        }
    };
    let proxy = start_proxy(&cluster, |_| {}).await;
    write_all(proxy.local_addr).await;
    proxy.shutdown().await;
    for master in shards.masters() {
        assert_eq!(waits_on(&master).await, 0, "WAIT ran on {master} in the default mode");
    }
    // The same writes with --write-ack replica do send WAIT, to every master.
    let proxy = proxy_with_write_ack(&cluster, Duration::from_secs(5)).await;
    write_all(proxy.local_addr).await;
    for master in shards.masters() {
        assert!(waits_on(&master).await > 0, "no WAIT on {master} with --write-ack replica");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_master_without_a_live_replica_is_refused_before_it_runs() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = proxy_with_write_ack(&cluster, Duration::from_millis(200)).await;
    let shards = Shards::of(&cluster).await;
    let keys = keys_on_every_master(3, 1);
    let (lonely_master, dead_replica) = shards.of_key(&keys[0]);
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut master = Conn::connect(lonely_master.as_str()).await;
    let port: u16 = dead_replica.rsplit_once(':').unwrap().1.parse().unwrap();
    cluster.kill9(port);

    // Until the proxy's map shows the replica failed, writes run and wait for the ack in vain;
    // then they are refused without running.
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        let value = format!("attempt-{attempt}");
        let reply = conn.call(&["SET", &keys[0], &value]).await;
        let text = error_text(&reply);
        if text.starts_with("NOREPLICAS ") {
            assert!(text.contains(&lonely_master) && text.contains("not run"), "{text}");
            assert_ne!(master.call(&["GET", &keys[0]]).await, bulk(&value), "it must not run");
            break;
        }
        assert!(text.starts_with("NOREPLICAACK "), "{reply:?}");
        assert!(Instant::now() < deadline, "the proxy never saw the replica fail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Other shards, and reads of this one, go on.
    assert_eq!(conn.call(&["SET", &keys[1], "fine"]).await, ok());
    assert!(matches!(conn.call(&["GET", &keys[0]]).await, Value::Bulk(_)));

    // The replica back: writes are confirmed again.
    cluster.restart_stopped().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while conn.call(&["SET", &keys[0], "confirmed"]).await != ok() {
        assert!(Instant::now() < deadline, "writes never confirmed again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.shutdown().await;
}
