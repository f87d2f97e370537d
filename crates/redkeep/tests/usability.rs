//! What a new user runs into (issue 12, "CLI"), each checked against real redis-server
//! processes and a real proxy: a closed pipe, addresses without a port, a proxy's address given
//! where a node's is needed, `call` with its options after the command, failovers in a row and
//! one that Redis gives up, `up --detach` whose proxy cannot start, a second `up`, a corrupted
//! nodes.conf, `down` with nothing running, the keepalived options, and `bench` against a dead
//! target, without a terminal, and `bench merge` of runs that differ.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use cluster::admin::{AdminConn, info_field};
use common::{DirGuard, describe, redkeep, stderr, stdout};
use deploy::testing::{StandaloneServer, TestCluster};

/// A runtime whose worker thread keeps serving an in-process proxy while the test waits on a
/// redkeep process.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
}

async fn admin(addr: &str) -> AdminConn {
    AdminConn::connect(addr, Duration::from_secs(5)).await.unwrap()
}

async fn start_proxy(cluster: &TestCluster) -> proxy::ProxyHandle {
    let mut config = proxy::ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 1;
    proxy::start(config).await.expect("proxy starts")
}

/// A replica and its master, by address.
async fn replica_and_master(seed: &str) -> (String, String) {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let replica = topology.nodes.iter().find(|n| !n.is_master()).expect("a replica");
    let master = topology.by_id(replica.master_id.as_deref().unwrap()).unwrap();
    (replica.addr(), master.addr())
}

async fn role_of(addr: &str) -> String {
    let info = admin(addr).await.info("replication").await.unwrap();
    info_field(&info, "role").unwrap_or("?").to_string()
}

fn test_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("redkeep-usability-{name}-{}", std::process::id()))
}

/// `up --detach` flags for a dir on free ports: (base port, the flags).
fn up_args(dir: &Path, proxy_port: u16) -> (u16, Vec<String>) {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let args = [
        "up",
        "--dir",
        dir.to_str().unwrap(),
        "--base-port",
        &base_port.to_string(),
        "--node-timeout",
        "2s",
        "--proxy-port",
        &proxy_port.to_string(),
        "--stats-port",
        &deploy::ports::free_port().to_string(),
    ];
    (base_port, args.iter().map(|s| s.to_string()).collect())
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// A closed stdout

/// Runs redkeep with its stdout a pipe whose reading end is already closed, as in
/// `redkeep status | head` once head has gone.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(assert_cmd::cargo::cargo_bin("redkeep"))
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_as_sigpipe_does() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let node = cluster.addrs()[0].clone();
    let commands: [&[&str]; 4] = [
        &["status", "--json", &node],
        &["call", &node, "DBSIZE"],
        &["check", &node],
        &["keepalived", "render", "--vip", "10.0.0.1/24", "--interface", "eth0", "--priority", "9"],
    ];
    for args in commands {
        let output = with_closed_stdout(args);
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} should end by SIGPIPE like cat: {}",
            describe(&output)
        );
        assert!(output.stderr.is_empty(), "{args:?} printed on stderr: {}", describe(&output));
    }
}

// ---------------------------------------------------------------------------------------------
// Error texts

#[test]
fn an_address_without_host_or_port_is_refused_with_a_hint() {
    for (args, hint) in [
        (["status", "127.0.0.1"], "127.0.0.1:7001"),
        (["check", "7001"], "did you mean 127.0.0.1:7001"),
        (["failover", "7004"], "did you mean 127.0.0.1:7004"),
    ] {
        let output = redkeep(&args);
        assert!(!output.status.success(), "{args:?}: {}", describe(&output));
        let text = stderr(&output);
        assert!(
            text.contains("HOST:PORT") && text.contains(hint),
            "{args:?}: {}",
            describe(&output)
        );
    }
}

#[test]
fn health_on_a_closed_port_names_the_proxy() {
    let addr = format!("127.0.0.1:{}", deploy::ports::free_port());
    let output = redkeep(&["health", "--proxy", &addr]);
    assert!(!output.status.success(), "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains(&format!("no redkeep proxy answers on {addr}")), "{}", describe(&output));
    assert!(!text.contains("redis-server"), "it is a proxy that should run there: {text}");
}

#[test]
fn keepalived_render_refuses_priority_0_and_takes_the_binary_s_path() {
    let render = ["keepalived", "render", "--vip", "10.0.0.100/24", "--interface", "eth0"];
    let mut args = render.to_vec();
    args.extend(["--priority", "0"]);
    let output = redkeep(&args);
    assert!(!output.status.success(), "priority 0 accepted: {}", describe(&output));
    assert!(stderr(&output).contains("1..=255"), "{}", describe(&output));

    let mut args = render.to_vec();
    args.extend(["--priority", "150", "--redkeep-bin", "/opt/redkeep/bin/redkeep"]);
    let output = redkeep(&args);
    assert!(output.status.success(), "{}", describe(&output));
    let conf = stdout(&output);
    assert!(conf.contains("script \"/opt/redkeep/bin/redkeep health --proxy"), "{conf}");
    assert!(conf.contains("\"/opt/redkeep/bin/redkeep keepalived notify --file"), "{conf}");

    // Without the option, the binary that renders: the one that runs the scripts.
    let mut args = render.to_vec();
    args.extend(["--priority", "150"]);
    let exe = assert_cmd::cargo::cargo_bin("redkeep");
    assert!(stdout(&redkeep(&args)).contains(&format!("script \"{} health", exe.display())));

    let help = stdout(&redkeep(&["keepalived", "notify", "--help"]));
    let file_line = help.lines().find(|l| l.trim_start().starts_with("--file")).unwrap();
    assert!(file_line.len() > "      --file <FILE>".len() + 4, "--file has help text: {help}");
}

#[test]
fn down_with_nothing_running_says_so() {
    let dir = test_dir("down-idle");
    let _guard = DirGuard(dir.clone());
    let spec = deploy::local::LocalSpec {
        dir: dir.clone(),
        host: "127.0.0.1".into(),
        base_port: deploy::ports::free_block(6).unwrap(),
        masters: 3,
        replicas: 1,
        node_timeout: Duration::from_secs(2),
    };
    deploy::local::prepare(&spec).unwrap();
    let output = redkeep(&["down", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stdout(&output).contains("Nothing was running in"), "{}", describe(&output));
}

// ---------------------------------------------------------------------------------------------
// call, and a proxy where a node is needed

#[test]
fn call_takes_its_own_options_after_the_command_and_indents_long_replies() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let seed = cluster.addrs()[0].clone();
    let output = redkeep(&["call", &seed, "CONFIG", "GET", "maxmemory", "--masters-only"]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    let labels: Vec<&str> = text.lines().filter_map(|l| l.strip_suffix(':')).collect();
    let mut masters: Vec<String> = rt.block_on(async {
        let topology = cluster::ops::topology_of(&seed).await.unwrap();
        topology.masters().map(|m| m.addr()).collect()
    });
    masters.sort();
    assert_eq!(labels, masters, "only the masters, each on a line of its own: {text}");
    let replies: Vec<&str> = text.lines().filter(|l| !l.ends_with(':')).collect();
    assert_eq!(replies.len(), 6, "two lines of reply per master: {text}");
    assert!(
        replies
            .iter()
            .all(|l| l.starts_with("   1) \"maxmemory\"") || l.starts_with("   2) \"0\"")),
        "indented under the address: {text}"
    );

    // After `--`, everything goes to Redis.
    let output = redkeep(&["call", &seed, "--", "ECHO", "--masters-only"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(stdout(&output).matches("\"--masters-only\"").count(), 6, "{}", describe(&output));
}

#[test]
fn check_and_failover_given_the_proxy_say_it_is_a_proxy() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let proxy = rt.block_on(start_proxy(&cluster));
    let addr = proxy.local_addr.to_string();
    for command in ["check", "failover"] {
        let output = redkeep(&[command, &addr]);
        assert!(!output.status.success(), "{command}: {}", describe(&output));
        let text = stderr(&output);
        assert!(text.contains(&format!("{addr} is a redkeep proxy")), "{command}: {text}");
        assert!(text.contains("--seed"), "{command} says what to pass instead: {text}");
    }
    rt.block_on(proxy.shutdown());
}

// ---------------------------------------------------------------------------------------------
// failover

#[test]
fn two_failovers_in_a_row_both_succeed() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let (replica, master) = rt.block_on(replica_and_master(&cluster.addrs()[0]));
    let output = redkeep(&["failover", &replica]);
    assert!(output.status.success(), "first failover: {}", describe(&output));
    // At once: the command returned when the cluster agreed, so the old master can be promoted
    // back.
    let output = redkeep(&["failover", &master]);
    assert!(output.status.success(), "second failover: {}", describe(&output));
    rt.block_on(async {
        assert_eq!(role_of(&master).await, "master");
        assert_eq!(role_of(&replica).await, "slave");
    });
}

#[test]
fn a_failover_redis_gives_up_is_reported_at_once_with_the_right_hint() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let (replica, master) = rt.block_on(replica_and_master(&cluster.addrs()[0]));
    // The master stays up and answers, but the replica's replication link goes down and stays
    // down (it cannot authenticate any more), and a write after that puts the master ahead, so
    // the replica can never catch up with it.
    rt.block_on(async {
        let mut on_master = admin(&master).await;
        on_master.query_ok(&["CONFIG", "SET", "requirepass", "s3cret"]).await.unwrap();
        on_master.query_ok(&["AUTH", "s3cret"]).await.unwrap();
        let mut conn = admin(&replica).await;
        conn.query(&["CLIENT", "KILL", "TYPE", "master"]).await.unwrap();
        loop {
            let info = conn.info("replication").await.unwrap();
            if info_field(&info, "master_link_status") == Some("down") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let topology = cluster::ops::topology_of(&replica).await.unwrap();
        let own = &topology.by_addr(&master).unwrap().slots;
        let key = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| own.iter().any(|r| r.contains(cluster::key_slot(k.as_bytes()))))
            .unwrap();
        on_master.query_ok(&["SET", &key, "v"]).await.unwrap();
    });
    // A --timeout far longer than the command's own limit in `redkeep()`: the report must come
    // when Redis gives up, not when --timeout ends.
    let output = redkeep(&["failover", &replica, "--timeout", "10m"]);
    assert!(!output.status.success(), "{}", describe(&output));
    let text = stderr(&output);
    assert!(text.contains("Redis gives up a manual failover after 5s"), "{text}");
    assert!(text.contains(&format!("its master {master} answers")), "{text}");
    assert!(text.contains("link") && !text.contains("does not answer"), "{text}");
    rt.block_on(async { assert_eq!(role_of(&replica).await, "slave") });
}

// ---------------------------------------------------------------------------------------------
// up

#[test]
fn up_detach_fails_with_the_proxy_s_error_when_its_port_is_taken_and_leaves_nothing() {
    // Something that answers PING holds the proxy's port.
    let squatter = StandaloneServer::start();
    let dir = test_dir("proxy-port-taken");
    let _guard = DirGuard(dir.clone());
    let (_, mut args) = up_args(&dir, squatter.port);
    args.push("--detach".into());
    let output = redkeep(&strs(&args));
    assert!(!output.status.success(), "up --detach succeeded: {}", describe(&output));
    assert!(!stdout(&output).contains("Detached"), "{}", describe(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("127.0.0.1:{}", squatter.port)) && text.contains("in use"),
        "the proxy's own error: {}",
        describe(&output)
    );
    let local = deploy::local::open(&dir).unwrap();
    assert!(!local.proxy_dir().join("proxy.pid").exists(), "a stale proxy.pid was left");
    for &port in &local.manifest.ports {
        assert_eq!(local.running_pid(port), None, "node {port} was left running");
    }
}

/// A foreground `up`, killed (by its pid) when the test ends.
struct Foreground(Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        deploy::process::terminate(self.0.id(), Duration::from_secs(20));
        let _ = self.0.wait();
    }
}

#[test]
fn a_second_up_says_another_up_runs_the_cluster() {
    let dir = test_dir("second-up");
    let _guard = DirGuard(dir.clone());
    let (_, args) = up_args(&dir, deploy::ports::free_port());
    let mut first = Foreground(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("redkeep"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(first.0.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while !seen.contains("Running in the foreground") {
        let line = lines.next().unwrap_or_else(|| panic!("the first up ended: {seen}")).unwrap();
        seen.push_str(&line);
        seen.push('\n');
    }
    for extra in [None, Some("--detach")] {
        let mut second = args.clone();
        second.extend(extra.map(String::from));
        let output = redkeep(&strs(&second));
        assert!(!output.status.success(), "second up {extra:?}: {}", describe(&output));
        assert!(!stdout(&output).contains("Cluster is up"), "{}", describe(&output));
        assert!(
            stderr(&output).contains("already run by another `redkeep up` (pid"),
            "second up {extra:?}: {}",
            describe(&output)
        );
    }

    // `down` stops the foreground `up` too (which stops its proxy and nodes).
    let output = redkeep(&["down", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stdout(&output).contains("Stopping the `redkeep up`"), "{}", describe(&output));
    assert!(first.0.try_wait().unwrap().is_some(), "the first up has ended");
    let local = deploy::local::open(&dir).unwrap();
    for &port in &local.manifest.ports {
        assert_eq!(local.running_pid(port), None, "node {port} still runs after down");
    }
}

#[test]
fn a_corrupted_nodes_conf_says_which_file_and_how_to_recover() {
    let dir = test_dir("corrupt");
    let _guard = DirGuard(dir.clone());
    let (base_port, mut args) = up_args(&dir, deploy::ports::free_port());
    args.extend(["--detach".to_string(), "--no-proxy".to_string()]);
    let output = redkeep(&strs(&args));
    assert!(output.status.success(), "up: {}", describe(&output));
    let output = redkeep(&["down", "--dir", dir.to_str().unwrap()]);
    assert!(output.status.success(), "down: {}", describe(&output));

    let port = base_port + 2;
    let nodes_conf = dir.join(format!("node-{port}")).join("nodes.conf");
    std::fs::write(&nodes_conf, "this is not a nodes.conf\n").unwrap();
    let output = redkeep(&strs(&args));
    assert!(!output.status.success(), "up with a corrupted nodes.conf: {}", describe(&output));
    let text = stderr(&output);
    let canonical = dir.canonicalize().unwrap().join(format!("node-{port}/nodes.conf"));
    assert!(
        text.contains(&nodes_conf.display().to_string())
            || text.contains(&canonical.display().to_string()),
        "names the file: {text}"
    );
    assert!(text.contains("corrupted"), "{text}");
    assert!(
        text.contains("restore") && text.contains("--cluster-slave"),
        "says what to do: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// bench

#[test]
fn bench_against_a_dead_target_fails_at_once_with_one_error_and_no_colours() {
    let out = tempfile::tempdir().unwrap();
    let target = format!("127.0.0.1:{}", deploy::ports::free_port());
    let output =
        redkeep(&["bench", "--quick", "--target", &target, "--out", out.path().to_str().unwrap()]);
    assert!(!output.status.success(), "{}", describe(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "one error line: {}", describe(&output));
    assert!(text.starts_with("error: ") && text.contains(&target), "{}", describe(&output));
    assert!(!text.contains('\x1b'), "no colour codes outside a terminal: {text:?}");
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none(), "no result files");
}

#[test]
fn bench_without_a_terminal_prints_each_phase_and_the_redis_version() {
    let rt = runtime();
    let cluster = rt.block_on(TestCluster::start(3, 0));
    let proxy = rt.block_on(start_proxy(&cluster));
    let version = rt.block_on(async {
        let info = admin(&cluster.addrs()[0]).await.info("server").await.unwrap();
        info_field(&info, "redis_version").unwrap().to_string()
    });
    let out = tempfile::tempdir().unwrap();
    let output = redkeep(&[
        "bench",
        "--target",
        &proxy.local_addr.to_string(),
        "--sizes",
        "16B,1KiB",
        "--requests",
        "500",
        "--connections",
        "4",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = stdout(&output);
    let phases: Vec<&str> = text.lines().filter(|l| l.contains(" ops/s, ")).collect();
    assert_eq!(phases.len(), 4, "a line per phase (SET and GET of two sizes): {text}");
    assert!(phases.iter().all(|l| l.contains("MB/s") && l.contains("0 errors")), "{text}");
    assert!(!text.contains('\x1b') && !stderr(&output).contains('\x1b'), "no colour codes");
    let table = std::fs::read_to_string(out.path().join("results-set-client1.txt")).unwrap();
    assert!(table.contains(&version), "the header names redis {version}: {table}");
    rt.block_on(proxy.shutdown());
}

#[test]
fn bench_merge_refuses_runs_that_differ_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, client: u32, size: usize| {
        let run = bench::results::RunResults {
            meta: bench::results::RunMeta {
                client_ids: vec![client],
                target: "127.0.0.1:7010".into(),
                mode: "proxy".into(),
                topology: Vec::new(),
                redis_version: "7.0".into(),
                redkeep_version: "0".into(),
                command_line: "bench".into(),
                started_at: "now".into(),
                connections: 50,
                pipeline: 1,
                workload: "set-then-get".into(),
                key_pattern: "a new key per SET".into(),
                rate: None,
            },
            phases: vec![bench::results::Phase {
                op: "SET".into(),
                size,
                requests: 10,
                errors: 0,
                missing: 0,
                wrong: 0,
                seconds: 1.0,
                latency: Default::default(),
                batches: Vec::new(),
            }],
        };
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string(&run).unwrap()).unwrap();
        path.display().to_string()
    };
    let (a, b) = (write("a.json", 1, 16), write("b.json", 2, 4096));
    let merged = dir.path().join("merged");
    let merged = merged.to_str().unwrap();
    let output = redkeep(&["bench", "merge", &a, &b, "--out", merged]);
    assert!(!output.status.success(), "runs of other sizes merged: {}", describe(&output));
    assert!(stderr(&output).contains("phases"), "{}", describe(&output));
    assert!(!Path::new(merged).exists(), "nothing written");

    let output = redkeep(&["bench", "merge", &a, &b, "--out", merged, "--force"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(stderr(&output).contains("warning: merging runs"), "{}", describe(&output));

    let same = write("c.json", 3, 16);
    let output = redkeep(&["bench", "merge", &a, &same, "--out", merged]);
    assert!(output.status.success(), "runs of one benchmark: {}", describe(&output));
}
