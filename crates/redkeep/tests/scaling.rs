//! Live scaling on real clusters: a 4th master added and rebalanced under a checked load
//! through the proxy, a master removed after its slots moved away, a rebalance killed mid-way
//! and resumed, a 50 MB key moved (and one above the limit refused without leaving its slot
//! open), a key on both sides rolled back, and a backup restored into another cluster.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::admin::AdminConn;
use cluster::slot::key_slot;
use common::{DirGuard, describe, ok, redkeep};
use deploy::testing::TestCluster;
use resp::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn admin(addr: &str) -> AdminConn {
    AdminConn::connect(addr, Duration::from_secs(30)).await.unwrap()
}

async fn start_proxy(cluster: &TestCluster) -> proxy::ProxyHandle {
    let mut config = proxy::ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
    proxy::start(config).await.expect("proxy starts")
}

async fn my_id(addr: &str) -> String {
    admin(addr).await.query_text(&["CLUSTER", "MYID"]).await.unwrap().trim().to_string()
}

/// Slot counts per master address, as `seed` sees them.
async fn slot_counts(seed: &str) -> Vec<(String, u64)> {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let mut counts: Vec<(String, u64)> =
        topology.masters().map(|m| (m.addr(), m.slot_count())).collect();
    counts.sort();
    counts
}

fn seed_value(i: usize) -> String {
    format!("value-{i}-{}", "x".repeat(90))
}

/// Writes `count` keys through `addr` (the proxy), 1000 per pipeline.
async fn fill(addr: &str, count: usize) {
    let mut conn = admin(addr).await;
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let commands: Vec<Vec<String>> =
            chunk.iter().map(|&i| vec!["SET".into(), format!("seed:{i}"), seed_value(i)]).collect();
        for reply in conn.pipeline(&commands).await.unwrap() {
            assert_eq!(reply, Value::Simple(b"OK".to_vec()));
        }
    }
}

/// Reads the `count` keys back through `addr`; returns the ones that are wrong.
async fn wrong_keys(addr: &str, count: usize) -> Vec<String> {
    let mut conn = admin(addr).await;
    let mut wrong = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let commands: Vec<Vec<String>> =
            chunk.iter().map(|&i| vec!["GET".into(), format!("seed:{i}")]).collect();
        for (&i, reply) in chunk.iter().zip(conn.pipeline(&commands).await.unwrap()) {
            if reply != Value::Bulk(seed_value(i).into_bytes()) {
                wrong.push(format!("seed:{i} = {reply:?}"));
            }
        }
    }
    wrong
}

/// A client through the proxy that writes its keys in turn and reads another back after
/// each write, checking it holds the last value acknowledged. Every error and wrong value is
/// recorded.
struct CheckedLoad {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadBook>>,
}

#[derive(Debug, Default)]
struct LoadBook {
    task: usize,
    ops: u64,
    problems: Vec<String>,
    acked: Vec<u64>,
}

impl CheckedLoad {
    fn start(rt: &tokio::runtime::Runtime, proxy: &str, tasks: usize, keys: usize) -> CheckedLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..tasks)
            .map(|task| rt.spawn(load_task(proxy.to_string(), task, keys, stop.clone())))
            .collect();
        CheckedLoad { stop, tasks }
    }

    async fn stop(self) -> Vec<LoadBook> {
        self.stop.store(true, Ordering::SeqCst);
        let mut books = Vec::new();
        for task in self.tasks {
            books.push(task.await.unwrap());
        }
        books
    }
}

async fn load_task(proxy: String, task: usize, keys: usize, stop: Arc<AtomicBool>) -> LoadBook {
    let mut conn = admin(&proxy).await;
    let mut book = LoadBook { task, acked: vec![0; keys], ..LoadBook::default() };
    let key = |k: usize| format!("load:{task}:{k}");
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let k = i % keys;
        let next = book.acked[k] + 1;
        match conn.query(&["SET", &key(k), &next.to_string()]).await {
            Ok(Value::Simple(s)) if s == b"OK" => book.acked[k] = next,
            other => book.problems.push(format!("SET {}: {other:?}", key(k))),
        }
        let r = (i * 7 + 3) % keys;
        let expected = match book.acked[r] {
            0 => Value::Null,
            n => Value::Bulk(n.to_string().into_bytes()),
        };
        match conn.query(&["GET", &key(r)]).await {
            Ok(value) if value == expected => {}
            other => {
                book.problems.push(format!("GET {}: {other:?}, expected {expected:?}", key(r)))
            }
        }
        book.ops += 2;
        i += 1;
    }
    book
}

/// Every key of every load task holds its last acknowledged value.
async fn wrong_load_values(proxy: &str, books: &[LoadBook]) -> Vec<String> {
    let mut conn = admin(proxy).await;
    let mut wrong = Vec::new();
    for book in books {
        for (k, &acked) in book.acked.iter().enumerate() {
            let key = format!("load:{}:{k}", book.task);
            let value = conn.query(&["GET", &key]).await.unwrap();
            let expected = match acked {
                0 => Value::Null,
                n => Value::Bulk(n.to_string().into_bytes()),
            };
            if value != expected {
                wrong.push(format!("{key} = {value:?}, expected {expected:?}"));
            }
        }
    }
    wrong
}

fn assert_check_clean(seed: &str) {
    let output = redkeep(&["check", seed, "--replicas", "0"]);
    assert!(output.status.success(), "check after the move: {}", describe(&output));
}

#[test]
fn a_fourth_master_is_added_and_rebalanced_under_load_with_no_client_error() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let spare = rt.block_on(TestCluster::start_blank(3, 0));
    let seed = cluster.addrs()[0].clone();
    let new = spare.addrs()[0].clone();
    let proxy = rt.block_on(start_proxy(&cluster));
    let proxy_addr = proxy.local_addr.to_string();
    rt.block_on(fill(&proxy_addr, 20_000));

    let out = ok(&["add-node", &new, &seed]);
    assert!(out.contains("joined as an empty master"), "{out}");
    let out = ok(&["rebalance", &seed, "--yes"]);
    assert!(out.contains("No rebalancing needed"), "an empty master needs the flag: {out}");

    let load = CheckedLoad::start(&rt, &proxy_addr, 4, 200);
    let plan = tempfile::tempdir().unwrap();
    let plan_file = plan.path().join("plan.json");
    let out = ok(&[
        "rebalance",
        &seed,
        "--use-empty-masters",
        "--yes",
        "--slots-at-once",
        "16",
        "--batch",
        "100",
        "--plan-file",
        plan_file.to_str().unwrap(),
    ]);
    let books = rt.block_on(load.stop());
    assert!(out.contains(">>> Moving 4096 slots"), "{out}");
    assert!(out.contains("Every node agrees"), "{out}");
    assert!(plan_file.exists(), "the plan was saved");

    let problems: Vec<&String> = books.iter().flat_map(|b| &b.problems).collect();
    let ops: u64 = books.iter().map(|b| b.ops).sum();
    assert!(ops > 0);
    assert!(
        problems.is_empty(),
        "{} client errors in {ops} requests: {problems:?}",
        problems.len()
    );
    assert_eq!(rt.block_on(wrong_load_values(&proxy_addr, &books)), Vec::<String>::new());
    assert_eq!(rt.block_on(wrong_keys(&proxy_addr, 20_000)), Vec::<String>::new());
    let counts = rt.block_on(slot_counts(&seed));
    assert_eq!(counts.len(), 4);
    assert!(counts.iter().all(|(_, n)| *n == 4096), "{counts:?}");
    assert_check_clean(&seed);
    rt.block_on(proxy.shutdown());
}

#[test]
fn del_node_refuses_a_master_with_slots_then_removes_it_once_emptied() {
    let rt = runtime();
    let plan = tempfile::tempdir().unwrap();
    let plan_file = plan.path().join("plan.json").to_string_lossy().into_owned();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let spare = rt.block_on(TestCluster::start_blank(4, 0));
    let seed = cluster.addrs()[0].clone();
    let (new, its_replica) = (spare.addrs()[0].clone(), spare.addrs()[1].clone());
    let proxy = rt.block_on(start_proxy(&cluster));
    let proxy_addr = proxy.local_addr.to_string();
    rt.block_on(fill(&proxy_addr, 2_000));
    ok(&["add-node", &new, &seed]);
    let new_id = rt.block_on(my_id(&new));
    let out = ok(&["add-node", &its_replica, &seed, "--replica-of", &new_id[..10]]);
    assert!(out.contains("joined as a replica"), "{out}");
    ok(&["rebalance", &seed, "--use-empty-masters", "--yes", "--plan-file", &plan_file]);

    let refused = redkeep(&["del-node", &seed, &new_id]);
    assert!(!refused.status.success());
    let text = describe(&refused);
    assert!(text.contains("serves 4096 slots") && text.contains("--weight"), "{text}");

    let weight = format!("{new_id}=0");
    ok(&["rebalance", &seed, "--weight", &weight, "--yes", "--plan-file", &plan_file]);
    let out = ok(&["del-node", &seed, &new_id]);
    assert!(out.contains("Forgotten by 4 nodes"), "{out}");

    let topology = rt.block_on(cluster::ops::topology_of(&seed)).unwrap();
    assert!(topology.by_id(&new_id).is_none(), "the seed forgot it");
    assert_eq!(topology.nodes.len(), 4, "3 masters and the moved replica: {topology:?}");
    // Its replica follows a remaining master (moved by del-node, or by Redis' replica
    // migration once its master lost its last slot and became a replica itself).
    let replica = topology.by_addr(&its_replica).unwrap();
    let master = topology.by_id(replica.master_id.as_deref().unwrap()).unwrap();
    assert!(master.is_master() && master.slot_count() > 0, "{topology:?}");
    let removed = rt.block_on(cluster::ops::topology_of(&new)).unwrap();
    assert_eq!(removed.nodes.len(), 1, "the removed node was reset");
    assert_eq!(rt.block_on(wrong_keys(&proxy_addr, 2_000)), Vec::<String>::new());
    rt.block_on(proxy.shutdown());
    let output = redkeep(&["check", &seed, "--replicas", "0"]);
    assert!(output.status.success(), "{}", describe(&output));

    // A master without slots that has a replica: the replica moves to another master first.
    let (empty, follower) = (spare.addrs()[2].clone(), spare.addrs()[3].clone());
    ok(&["add-node", &empty, &seed]);
    let empty_id = rt.block_on(my_id(&empty));
    ok(&["add-node", &follower, &seed, "--replica-of", &empty_id]);
    let out = ok(&["del-node", &seed, &empty_id]);
    assert!(out.contains(&format!("{follower} now replicates")), "{out}");
    // The follower's own view: it follows a master that serves slots.
    let topology = rt.block_on(cluster::ops::topology_of(&follower)).unwrap();
    let moved = topology.myself().unwrap();
    let master = topology.by_id(moved.master_id.as_deref().unwrap()).unwrap();
    assert!(master.slot_count() > 0, "{topology:?}");

    ok(&["set-timeout", &seed, "4321"]);
    for addr in cluster.addrs() {
        let reply = rt.block_on(async {
            admin(&addr).await.query(&["CONFIG", "GET", "cluster-node-timeout"]).await.unwrap()
        });
        assert_eq!(reply.as_list().unwrap()[1], Value::Bulk(b"4321".to_vec()), "{addr}");
    }
}

#[test]
fn a_rebalance_stopped_by_ctrl_c_then_killed_is_resumed_to_completion() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let spare = rt.block_on(TestCluster::start_blank(3, 0));
    let seed = cluster.addrs()[0].clone();
    let new = spare.addrs()[0].clone();
    let proxy = rt.block_on(start_proxy(&cluster));
    let proxy_addr = proxy.local_addr.to_string();
    rt.block_on(fill(&proxy_addr, 20_000));
    ok(&["add-node", &new, &seed]);

    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    let plan = plan_file.to_str().unwrap();
    let new_has_slots = || {
        rt.block_on(cluster::ops::topology_of(&new))
            .ok()
            .and_then(|t| t.myself().map(|m| m.slot_count()))
            .unwrap_or(0)
    };
    // Throttled, so that it is surely mid-way when interrupted.
    let throttled = ["--slots-at-once", "4", "--max-keys-per-sec", "1000", "--yes"];
    let spawn = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("redkeep"))
            .args(args)
            .args(throttled)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_for_slots = |child: &mut std::process::Child, at_least: u64| {
        while new_has_slots() < at_least {
            assert!(child.try_wait().unwrap().is_none(), "the rebalance ended too early");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Ctrl-C: it stops after the slots being moved, leaving none open.
    let mut child = spawn(&["rebalance", &seed, "--use-empty-masters", "--plan-file", plan]);
    wait_for_slots(&mut child, 16);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(describe(&output).contains("Stopped before the end"), "{}", describe(&output));
    assert!(plan_file.exists(), "the plan was saved before the first move");
    assert_check_clean(&seed);
    let after_ctrl_c = new_has_slots();

    // kill -9 of the resumed run: slots may be left open, for the next resume to finish.
    let mut child = spawn(&["rebalance", &seed, "--resume", plan]);
    wait_for_slots(&mut child, after_ctrl_c + 16);
    child.kill().unwrap();
    child.wait().unwrap();
    let moved_before = new_has_slots();
    assert!(moved_before < 4096, "killed mid-way: {moved_before} slots had moved");

    let out = ok(&["rebalance", &seed, "--resume", plan, "--yes"]);
    assert!(out.contains("Resuming"), "{out}");
    assert!(out.contains("slots were already moved"), "{out}");
    let counts = rt.block_on(slot_counts(&seed));
    assert!(counts.iter().all(|(_, n)| *n == 4096), "{counts:?}");
    assert_check_clean(&seed);
    assert_eq!(rt.block_on(wrong_keys(&proxy_addr, 20_000)), Vec::<String>::new());
    rt.block_on(proxy.shutdown());
}

/// A key whose slot is the lowest of the master serving slot 0 (the first a reshard takes).
fn key_in_slot_zero() -> String {
    (0..).map(|i| format!("big:{i}")).find(|k| key_slot(k.as_bytes()) == 0).unwrap()
}

#[test]
fn a_50_mb_key_is_moved_and_one_above_the_limit_is_refused_without_an_open_slot() {
    let rt = runtime();
    let plan = tempfile::tempdir().unwrap();
    let plan_file = plan.path().join("plan.json").to_string_lossy().into_owned();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let seed = cluster.addrs()[0].clone();
    let (source_id, target_id) = rt.block_on(async {
        let topology = cluster::ops::topology_of(&seed).await.unwrap();
        let owner = |slot: u16| {
            topology.masters().find(|m| m.slots.iter().any(|r| r.contains(slot))).unwrap().clone()
        };
        (owner(0), owner(16383))
    });
    let key = key_in_slot_zero();
    let value: Vec<u8> = (0..50 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    rt.block_on(async {
        let mut conn = admin(&source_id.addr()).await;
        conn.query_ok(&[b"SET".as_slice(), key.as_bytes(), &value]).await.unwrap();
    });
    let reshard = |extra: &[&str]| {
        let mut args = vec!["reshard", &seed, "--from", &source_id.id, "--to", &target_id.id];
        args.extend(["--slots", "1", "--yes", "--plan-file", &plan_file]);
        args.extend(extra);
        redkeep(&args)
    };
    let refused = reshard(&["--max-key-size", "10MB"]);
    assert!(!refused.status.success());
    let text = describe(&refused);
    assert!(
        text.contains(&format!("key `{key}` (slot 0)")) && text.contains("rolled back"),
        "{text}"
    );
    assert_check_clean(&seed);
    let still_there = rt.block_on(async {
        admin(&source_id.addr()).await.query(&[b"GET".as_slice(), key.as_bytes()]).await.unwrap()
    });
    assert!(still_there == Value::Bulk(value.clone()), "the key stayed on its source");

    let moved = reshard(&[]);
    assert!(moved.status.success(), "{}", describe(&moved));
    let on_target = rt.block_on(async {
        admin(&target_id.addr()).await.query(&[b"GET".as_slice(), key.as_bytes()]).await.unwrap()
    });
    assert!(on_target == Value::Bulk(value), "the 50 MB value arrived whole");
    assert_check_clean(&seed);
}

#[test]
fn a_key_on_both_sides_rolls_its_slot_back_and_keeps_every_key_served() {
    let rt = runtime();
    let plan = tempfile::tempdir().unwrap();
    let plan_file = plan.path().join("plan.json").to_string_lossy().into_owned();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let seed = cluster.addrs()[0].clone();
    let proxy = rt.block_on(start_proxy(&cluster));
    let proxy_addr = proxy.local_addr.to_string();
    rt.block_on(fill(&proxy_addr, 5_000));
    let topology = rt.block_on(cluster::ops::topology_of(&seed)).unwrap();
    let owner = |slot: u16| {
        topology.masters().find(|m| m.slots.iter().any(|r| r.contains(slot))).unwrap().clone()
    };
    let (source, target) = (owner(0), owner(16383));
    // Slots 0-9 move; slot 5 gets a stray copy of one of its keys on the target, as an
    // earlier half-done move could leave. The keys of slot 5 all move but that one.
    let stray = (0..).map(|i| format!("stray:{i}")).find(|k| key_slot(k.as_bytes()) == 5).unwrap();
    rt.block_on(async {
        admin(&proxy_addr).await.query_ok(&["SET", &stray, "real"]).await.unwrap();
        let mut t = admin(&target.addr()).await;
        t.query_ok(&["CLUSTER", "SETSLOT", "5", "IMPORTING", &source.id]).await.unwrap();
        t.query_ok(&["ASKING"]).await.unwrap();
        t.query_ok(&["SET", &stray, "stale copy"]).await.unwrap();
        t.query_ok(&["CLUSTER", "SETSLOT", "5", "STABLE"]).await.unwrap();
        assert_eq!(t.query_int(&["CLUSTER", "COUNTKEYSINSLOT", "5"]).await.unwrap(), 1);
    });
    let output = redkeep(&[
        "reshard",
        &seed,
        "--from",
        &source.id,
        "--to",
        &target.id,
        "--slots",
        "10",
        "--yes",
        "--slots-at-once",
        "10",
        "--plan-file",
        &plan_file,
    ]);
    let text = describe(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains(&format!("key `{stray}`")) && text.contains("BUSYKEY"), "{text}");
    // Nothing open, slots 0-9 still on the source, every key right through the proxy.
    assert_check_clean(&seed);
    let after = rt.block_on(cluster::ops::topology_of(&seed)).unwrap();
    let owner_now = after.masters().find(|m| m.slots.iter().any(|r| r.contains(5))).unwrap();
    assert_eq!(owner_now.id, source.id);
    assert_eq!(rt.block_on(wrong_keys(&proxy_addr, 5_000)), Vec::<String>::new());
    let real = rt.block_on(async { admin(&proxy_addr).await.query(&["GET", &stray]).await });
    assert_eq!(real.unwrap(), Value::Bulk(b"real".to_vec()));
    rt.block_on(proxy.shutdown());
}

#[test]
fn backup_then_restore_into_a_new_cluster_keeps_every_key() {
    let rt = runtime();
    let old = rt.block_on(TestCluster::start(3, 0));
    let new = rt.block_on(TestCluster::start(4, 0));
    let (old_seed, new_seed) = (old.addrs()[0].clone(), new.addrs()[0].clone());
    let proxy = rt.block_on(start_proxy(&old));
    let proxy_addr = proxy.local_addr.to_string();
    rt.block_on(async {
        fill(&proxy_addr, 5_000).await;
        let mut conn = admin(&proxy_addr).await;
        conn.query(&["HSET", "a:hash", "f1", "v1", "f2", "v2"]).await.unwrap();
        conn.query(&["RPUSH", "a:list", "x", "y", "z"]).await.unwrap();
        conn.query_ok(&["SET", "a:ttl", "soon", "EX", "3600"]).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup");
    let out = ok(&["backup", &old_seed, backup.to_str().unwrap()]);
    assert!(out.contains("Backed up 3 masters"), "{out}");
    assert!(backup.join("topology.json").exists());

    let out = ok(&["restore", backup.to_str().unwrap(), &new_seed]);
    assert!(out.contains("Restored 5003 keys"), "{out}");
    let new_proxy = rt.block_on(start_proxy(&new));
    let new_addr = new_proxy.local_addr.to_string();
    assert_eq!(rt.block_on(wrong_keys(&new_addr, 5_000)), Vec::<String>::new());
    rt.block_on(async {
        let (mut a, mut b) = (admin(&proxy_addr).await, admin(&new_addr).await);
        for key in ["a:hash", "a:list", "a:ttl"] {
            let before = a.query(&["DUMP", key]).await.unwrap();
            assert_eq!(before, b.query(&["DUMP", key]).await.unwrap(), "{key}");
        }
        let ttl = b.query_int(&["TTL", "a:ttl"]).await.unwrap();
        assert!(ttl > 0 && ttl <= 3600, "the TTL came along: {ttl}");
    });
    // A second restore finds every key there and overwrites nothing.
    let again = redkeep(&["restore", backup.to_str().unwrap(), &new_seed]);
    assert!(!again.status.success());
    assert!(describe(&again).contains("--replace"), "{}", describe(&again));
    rt.block_on(proxy.shutdown());
    rt.block_on(new_proxy.shutdown());
}

#[test]
fn up_with_another_number_of_masters_scales_a_local_cluster_out_and_in() {
    let rt = runtime();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let dir_arg = dir.to_str().unwrap().to_string();
    // Room for the nodes added later: their ports follow the last one.
    let base = deploy::ports::free_block(8).expect("free ports").to_string();
    let up = |masters: &str| {
        ok(&[
            "up",
            "--detach",
            "--no-proxy",
            "--dir",
            &dir_arg,
            "--base-port",
            &base,
            "--masters",
            masters,
            "--replicas",
            "1",
            "--node-timeout",
            "2s",
        ])
    };
    up("3");
    let _guard = DirGuard(dir.clone());
    let seed = format!("127.0.0.1:{base}");
    rt.block_on(fill(&seed_proxy(&rt, &seed), 3_000));

    let out = up("4");
    assert!(out.contains("Scaling out from 3 to 4 masters"), "{out}");
    let counts = rt.block_on(slot_counts(&seed));
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert!(counts.iter().all(|(_, n)| *n == 4096), "{counts:?}");
    let manifest = deploy::local::open(&dir).unwrap().manifest;
    assert_eq!((manifest.masters, manifest.ports.len()), (4, 8));
    let output = redkeep(&["check", &seed, "--replicas", "1"]);
    assert!(output.status.success(), "{}", describe(&output));

    let out = up("3");
    assert!(out.contains("Scaling in from 4 to 3 masters"), "{out}");
    let counts = rt.block_on(slot_counts(&seed));
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 16384);
    let manifest = deploy::local::open(&dir).unwrap().manifest;
    assert_eq!((manifest.masters, manifest.ports.len()), (3, 6));
    let output = redkeep(&["check", &seed, "--replicas", "1"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(rt.block_on(wrong_keys(&seed_proxy(&rt, &seed), 3_000)), Vec::<String>::new());
}

/// A proxy in front of the cluster of `seed`, shut down when the test's runtime ends.
fn seed_proxy(rt: &tokio::runtime::Runtime, seed: &str) -> String {
    let mut config = proxy::ProxyConfig::new(vec![seed.to_string()]);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 1;
    let handle = rt.block_on(proxy::start(config)).expect("proxy starts");
    let addr = handle.local_addr.to_string();
    rt.spawn(async move {
        std::future::pending::<()>().await;
        handle.shutdown().await;
    });
    addr
}
