//! Cluster-aware clients through the proxy: the proxy shows itself as the one node that owns
//! every slot, so real cluster clients (redis-py's RedisCluster, ioredis' Cluster, from their
//! registries; `make deps` installs them) work through it and never see a redirect.
//!
//! These tests fail, not skip, when python3, node or the client packages are missing: a
//! machine without them cannot say the proxy works with them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{Conn, bulk, cluster_and_proxy, error_text, ok, start_proxy};
use deploy::testing::TestCluster;
use resp::Value;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `program args...` in the clients' dir and returns its output; panics with what it
/// printed when it fails, and with how to install it when it is missing. The child is killed
/// if the test ends first (also on a timeout).
async fn run_client(program: &str, args: &[String], install_hint: &str) -> String {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {install_hint}"));
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within 180 s"))
        .expect("the client ran");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}):\n{stdout}\n{stderr}\n(if a package is missing: \
         {install_hint})",
        output.status
    );
    assert!(stdout.starts_with("ok:"), "{stdout}\n{stderr}");
    stdout
}

const PY_HINT: &str =
    "run `make deps` (it makes crates/proxy/tests/clients/.venv with redis-py, pinned)";
const NODE_HINT: &str = "run `make deps` (it runs `npm ci` in crates/proxy/tests/clients)";

#[tokio::test]
async fn redis_py_cluster_client_works_through_the_proxy() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let python = clients_dir().join(".venv/bin/python");
    assert!(python.is_file(), "no python with redis-py at {}: {PY_HINT}", python.display());
    let python = python.to_str().expect("a UTF-8 path");
    let port = proxy.local_addr.port().to_string();
    for protocol in ["2", "3"] {
        let args = ["cluster_client.py".into(), "127.0.0.1".into(), port.clone(), protocol.into()];
        let out = run_client(python, &args, PY_HINT).await;
        println!("{out}");
    }
    assert_eq!(proxy.shared.stats.moved.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn ioredis_cluster_client_works_through_the_proxy() {
    assert!(
        clients_dir().join("node_modules/ioredis").is_dir(),
        "ioredis is not installed: {NODE_HINT}"
    );
    let (_cluster, proxy) = cluster_and_proxy().await;
    let port = proxy.local_addr.port().to_string();
    let args = ["cluster_client.js".into(), "127.0.0.1".into(), port];
    let out = run_client("node", &args, NODE_HINT).await;
    println!("{out}");
}

#[tokio::test]
async fn node_redis_cluster_client_works_through_the_proxy() {
    assert!(
        clients_dir().join("node_modules/redis").is_dir(),
        "node-redis is not installed: {NODE_HINT}"
    );
    let (_cluster, proxy) = cluster_and_proxy().await;
    let port = proxy.local_addr.port().to_string();
    let args = ["cluster_client_node_redis.js".into(), "127.0.0.1".into(), port];
    let out = run_client("node", &args, NODE_HINT).await;
    println!("{out}");
}

/// With `--announce`, the one node is at the announced address (a VIP, a DNS name), with an ID
/// derived from it; READONLY, READWRITE and ASKING are accepted; keys are never redirected.
#[tokio::test]
async fn the_proxy_announces_itself_as_one_node_owning_every_slot() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| c.announce = Some("rk-vip.example:6399".into())).await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let id = proxy::cluster_view::node_id("rk-vip.example:6399");
    let node = Value::Array(vec![
        bulk("rk-vip.example"),
        Value::Integer(6399),
        bulk(&id),
        Value::Array(vec![]),
    ]);
    let range = Value::Array(vec![Value::Integer(0), Value::Integer(16383), node]);
    assert_eq!(conn.call(&["CLUSTER", "SLOTS"]).await, Value::Array(vec![range]));
    assert_eq!(conn.call(&["CLUSTER", "MYID"]).await, bulk(&id));
    let nodes = conn.call(&["CLUSTER", "NODES"]).await;
    let line = format!("{id} rk-vip.example:6399@0 myself,master - 0 0 1 connected 0-16383\n");
    assert_eq!(nodes, bulk(&line));
    let Value::Bulk(info) = conn.call(&["CLUSTER", "INFO"]).await else { panic!("a bulk") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:1"), "{info}");
    for command in ["READONLY", "READWRITE", "ASKING"] {
        assert_eq!(conn.call(&[command]).await, ok(), "{command}");
    }
    // A key of every master, through the one node: no redirect.
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(conn.call(&["SET", &key, "v"]).await, ok());
        let slot = conn.call(&["CLUSTER", "KEYSLOT", &key]).await;
        assert_eq!(slot, Value::Integer(i64::from(cluster::key_slot(key.as_bytes()))));
    }
    // Asked of the slot's real master.
    let slot = cluster::key_slot(b"k1").to_string();
    assert_eq!(conn.call(&["CLUSTER", "COUNTKEYSINSLOT", &slot]).await, Value::Integer(1));
    let keys = conn.call(&["CLUSTER", "GETKEYSINSLOT", &slot, "10"]).await;
    assert_eq!(keys, Value::Array(vec![bulk("k1")]));
    // Changing the cluster is refused: by the command policy by default, and by the one-node
    // view when the policy allows it (the proxy cannot run it for a cluster).
    let refused = error_text(&conn.call(&["CLUSTER", "FAILOVER"]).await);
    assert!(refused.contains("--allow cluster-admin"), "{refused}");
    let admin = start_proxy(&cluster, |c| {
        use proxy::acl::policy::{Allowed, Kind};
        c.security.allow = Allowed::none().with(Kind::ClusterAdmin);
    })
    .await;
    let mut admin_conn = Conn::connect(admin.local_addr).await;
    let refused = error_text(&admin_conn.call(&["CLUSTER", "FAILOVER"]).await);
    assert!(refused.contains("run it on a node"), "{refused}");
    // Without --announce: the address the client connected to.
    let plain = start_proxy(&cluster, |_| {}).await;
    let mut conn = Conn::connect(plain.local_addr).await;
    let Value::Array(ranges) = conn.call(&["CLUSTER", "SLOTS"]).await else { panic!() };
    let Value::Array(range) = &ranges[0] else { panic!() };
    let Value::Array(node) = &range[2] else { panic!() };
    assert_eq!(node[0], bulk("127.0.0.1"));
    assert_eq!(node[1], Value::Integer(i64::from(plain.local_addr.port())));
}
