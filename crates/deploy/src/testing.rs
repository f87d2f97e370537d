//! A throw-away local cluster for integration tests of every crate: real `redis-server`
//! processes on free ports in a temporary dir, killed and deleted on drop, also when the test
//! panics.
//!
//! ```no_run
//! # async fn demo() {
//! let cluster = deploy::testing::TestCluster::start(3, 1).await;
//! let seed = cluster.addrs()[0].clone();
//! // ... talk to the cluster; dropping `cluster` stops it.
//! # }
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::local::{self, LocalDir, LocalSpec};
use crate::{ports, process};

/// Node timeout of test clusters: short, so failover tests do not wait long.
pub const TEST_NODE_TIMEOUT: Duration = Duration::from_millis(2000);

/// A running cluster owned by one test.
pub struct TestCluster {
    dir: LocalDir,
}

impl TestCluster {
    /// Starts `masters` masters with `replicas` replicas each, formed and healthy. Panics with
    /// the reason when it cannot (a test cannot go on without its cluster).
    pub async fn start(masters: usize, replicas: usize) -> TestCluster {
        Self::start_with(masters, replicas, true).await
    }

    /// Starts the nodes of `masters` masters with `replicas` replicas each, as empty cluster
    /// nodes that never met: what `redkeep create` expects to be given.
    pub async fn start_blank(masters: usize, replicas: usize) -> TestCluster {
        Self::start_with(masters, replicas, false).await
    }

    async fn start_with(masters: usize, replicas: usize, form: bool) -> TestCluster {
        static REAPED: std::sync::Once = std::sync::Once::new();
        REAPED.call_once(reap_orphans);
        let nodes = (masters * (1 + replicas)) as u16;
        let mut last_error = String::new();
        // A free block can be taken between the check and the start: try a few blocks.
        for _ in 0..5 {
            let base_port = ports::free_block(nodes).expect("a block of free ports on 127.0.0.1");
            let spec = LocalSpec {
                dir: unique_temp_dir(),
                host: "127.0.0.1".into(),
                base_port,
                masters,
                replicas,
                node_timeout: TEST_NODE_TIMEOUT,
            };
            match Self::start_at(spec, form).await {
                Ok(cluster) => return cluster,
                Err(e) => last_error = e,
            }
        }
        panic!("test cluster did not start: {last_error}");
    }

    async fn start_at(spec: LocalSpec, form: bool) -> Result<TestCluster, String> {
        let (dir, _) = local::prepare(&spec).map_err(|e| e.to_string())?;
        // From here on, Drop cleans up whatever was started.
        let cluster = TestCluster { dir };
        let dir = cluster.dir.clone();
        tokio::task::spawn_blocking(move || dir.start())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if form {
            let formation = cluster::ops::Formation::plan(&cluster.addrs(), spec.replicas)
                .map_err(|e| e.to_string())?;
            cluster::ops::create(&formation, &mut |_| {}, Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(cluster)
    }

    /// `127.0.0.1:port` of every node, in port order (masters first as planned).
    pub fn addrs(&self) -> Vec<String> {
        self.dir.manifest.addrs()
    }

    pub fn ports(&self) -> &[u16] {
        &self.dir.manifest.ports
    }

    /// The dir the nodes live in.
    pub fn local_dir(&self) -> &LocalDir {
        &self.dir
    }

    /// The pid of the node on `port`, when it runs.
    pub fn pid(&self, port: u16) -> Option<u32> {
        self.dir.running_pid(port)
    }

    /// `kill -9` of one node, as a crash.
    pub fn kill9(&self, port: u16) {
        if let Some(pid) = self.pid(port) {
            process::signal(pid, libc::SIGKILL);
            process::wait_gone(pid, Duration::from_secs(5));
        }
    }

    /// Stops every node (SHUTDOWN: each saves), moves each to a new port of a free block with
    /// its data and its nodes.conf, which still names the old ports, and starts them there:
    /// the cluster's nodes all came back at new addresses, as pods after a full restart.
    pub async fn move_to_new_ports(&mut self) {
        let mut dir = self.dir.clone();
        let moved = tokio::task::spawn_blocking(move || {
            dir.stop();
            let count = dir.manifest.ports.len() as u16;
            let old = dir.manifest.ports.clone();
            let base = loop {
                let base = ports::free_block(count).expect("a block of free ports on 127.0.0.1");
                if !old.iter().any(|p| (base..base + count).contains(p)) {
                    break base;
                }
            };
            let new: Vec<u16> = (base..base + count).collect();
            for (&from, &to) in old.iter().zip(&new) {
                std::fs::rename(dir.node_dir(from), dir.node_dir(to)).expect("node dir moves");
            }
            dir.manifest.ports = new;
            dir.write_manifest().expect("manifest is written");
            dir.start().map(|_| dir)
        })
        .await
        .expect("move task");
        self.dir = moved.expect("the moved nodes start");
    }

    /// Starts again every node that is not running (a crashed node comes back from its
    /// nodes.conf).
    pub async fn restart_stopped(&self) {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.start())
            .await
            .expect("start task")
            .expect("stopped nodes start again");
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for &port in &self.dir.manifest.ports {
            if let Some(pid) = self.dir.running_pid(port) {
                process::signal(pid, libc::SIGKILL);
                process::wait_gone(pid, Duration::from_secs(5));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir.root);
    }
}

/// Stops the nodes of test clusters whose test process died without cleaning up (a test
/// aborted, or was killed), and deletes their dirs. Only processes running in such a dir, which
/// only these tests make, are signalled.
fn reap_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) =
            name.strip_prefix("redkeep-test-").and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(owner) = owner.parse::<u32>() else { continue };
        if process::is_alive(owner) {
            continue;
        }
        let Ok(nodes) = std::fs::read_dir(entry.path()) else { continue };
        for node in nodes.flatten() {
            let node_dir = node.path();
            if let Some(pid) = process::read_pid_file(&node_dir.join("redis.pid"))
                && process::runs_in(pid, &node_dir)
            {
                process::terminate(pid, Duration::from_secs(2));
            }
        }
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("redkeep-test-{}-{n}", std::process::id()))
}

/// One standalone `redis-server` (not in cluster mode) on a free port, killed on drop: the
/// wrong kind of node for cluster commands, and a plain Redis for benchmarks.
pub struct StandaloneServer {
    child: std::process::Child,
    pub port: u16,
}

impl StandaloneServer {
    pub fn start() -> StandaloneServer {
        let server = local::redis_server_path().expect("redis-server on PATH");
        let port = ports::free_port();
        let child = std::process::Command::new(server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no", "--logfile", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let standalone = StandaloneServer { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !local::ping("127.0.0.1", port) {
            assert!(
                std::time::Instant::now() < deadline,
                "standalone redis-server on {port} did not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        standalone
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for StandaloneServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
