//! What `redkeep up` does to make its nodes and files safe: hardened `redis.conf` settings
//! checked on a running node, and the modes of what it writes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use deploy::testing::TestCluster;
use resp::Value;

/// `CONFIG GET name` on a node, as the one value it returns.
async fn config_get(conn: &mut AdminConn, name: &str) -> String {
    match conn.query(&["CONFIG", "GET", name]).await.unwrap() {
        Value::Array(pair) => match pair.as_slice() {
            [_, Value::Bulk(value)] => String::from_utf8_lossy(value).into_owned(),
            other => panic!("CONFIG GET {name}: {other:?}"),
        },
        Value::Map(pairs) => match pairs.as_slice() {
            [(_, Value::Bulk(value))] => String::from_utf8_lossy(value).into_owned(),
            other => panic!("CONFIG GET {name}: {other:?}"),
        },
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

fn error_text(reply: Value) -> String {
    match reply {
        Value::Error(message) => String::from_utf8_lossy(&message).into_owned(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_node_refuses_debug_and_module_and_shows_its_hardening() {
    let cluster = TestCluster::start_blank(3, 0).await;
    let mut conn = AdminConn::connect(&cluster.addrs()[0], DEFAULT_TIMEOUT).await.unwrap();
    for (name, expected) in [
        ("enable-debug-command", "no"),
        ("enable-module-command", "no"),
        ("enable-protected-configs", "no"),
        ("protected-mode", "yes"),
        ("bind", "127.0.0.1"),
    ] {
        assert_eq!(config_get(&mut conn, name).await, expected, "CONFIG GET {name}");
    }
    let debug = error_text(conn.raw(&["DEBUG", "SLEEP", "0"]).await.unwrap());
    assert!(debug.contains("DEBUG command not allowed"), "{debug}");
    // Redis 7.0 guards MODULE LOAD/LOADEX/UNLOAD (its `protected` commands); MODULE LIST
    // only reads and stays allowed. The path need not exist: the refusal comes first.
    let module = error_text(conn.raw(&["MODULE", "LOAD", "/nonexistent.so"]).await.unwrap());
    assert!(module.contains("MODULE command not allowed"), "{module}");
    let protected = error_text(conn.raw(&["CONFIG", "SET", "dir", "/tmp"]).await.unwrap());
    assert!(protected.contains("protected config"), "{protected}");
    // The node still serves what it is for.
    assert_eq!(conn.query_text(&["PING"]).await.unwrap(), "PONG");
}

fn mode_of(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_dirs_configs_and_pid_files_are_the_owners_only() {
    let cluster = TestCluster::start_blank(3, 0).await;
    let local = cluster.local_dir();
    assert_eq!(mode_of(&local.root), 0o700, "the dir");
    assert_eq!(mode_of(&local.root.join(deploy::local::MANIFEST_FILE)), 0o600, "the manifest");
    for &port in cluster.ports() {
        let node = local.node_dir(port);
        assert_eq!(mode_of(&node), 0o700, "{}", node.display());
        // redis.conf is ours; the pid file, log and nodes.conf the node wrote itself.
        for file in ["redis.conf", "redis.pid", "redis.log", "nodes.conf"] {
            assert_eq!(mode_of(&node.join(file)), 0o600, "{}/{file}", node.display());
        }
    }

    // What `up --detach` writes for its proxy: any long-running program shows the files.
    let pid = local.start_proxy(Path::new("sleep"), &["60".to_string()], &[]).unwrap();
    let _stop = StopProxy(local);
    assert_eq!(local.proxy_pid(), Some(pid));
    let proxy = local.proxy_dir();
    assert_eq!(mode_of(&proxy), 0o700, "{}", proxy.display());
    for file in ["proxy.pid", "proxy.log"] {
        assert_eq!(mode_of(&proxy.join(file)), 0o600, "{}/{file}", proxy.display());
    }
}

/// Stops the detached stand-in proxy by its recorded pid, also when an assertion fails.
struct StopProxy<'a>(&'a deploy::local::LocalDir);

impl Drop for StopProxy<'_> {
    fn drop(&mut self) {
        self.0.stop_proxy();
    }
}
