//! The whole life of a local cluster through the CLI, with real redis-server processes:
//! `up --detach` → `check` passes → `kill -9` a master → its replica is promoted and `status`
//! shows it, `check` names the failed node → `up` again brings the old master back as a
//! replica → `down` leaves no redis-server of that dir running.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{DirGuard, describe, redkeep, stdout};
use serde_json::Value;

fn status_json(seed: &str) -> Value {
    let output = redkeep(&["status", "--json", seed]);
    assert!(output.status.success(), "status failed: {}", describe(&output));
    serde_json::from_slice(&output.stdout).expect("status --json prints JSON")
}

fn node<'a>(status: &'a Value, addr: &str) -> &'a Value {
    status["nodes"].as_array().unwrap().iter().find(|n| n["addr"] == addr).unwrap_or_else(|| {
        panic!("{addr} not in status: {status:#}");
    })
}

/// Polls `status` until `done` holds (failover takes node-timeout plus an election).
fn wait_for_status(seed: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = status_json(seed);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last status: {status:#}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `GET path` over HTTP/1.1 from `addr`: the whole answer as text.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    answer
}

fn pid_of(dir: &Path, port: u16) -> u32 {
    deploy::local::open(dir).unwrap().running_pid(port).expect("node runs")
}

#[test]
fn up_check_failover_rejoin_down() {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let proxy_port = deploy::ports::free_port().to_string();
    let stats_port = deploy::ports::free_port().to_string();
    let monitor_port = deploy::ports::free_port().to_string();
    let dir = std::env::temp_dir().join(format!("redkeep-lifecycle-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    let dir_arg = dir.to_str().unwrap();
    let seed = format!("127.0.0.1:{}", base_port + 5); // a node we never kill

    let up_args = [
        "up",
        "--detach",
        "--dir",
        dir_arg,
        "--base-port",
        &base_port.to_string(),
        "--node-timeout",
        "2s",
        "--proxy-port",
        &proxy_port,
        "--stats-port",
        &stats_port,
        "--monitor-port",
        &monitor_port,
    ];
    let up = redkeep(&up_args);
    assert!(up.status.success(), "up failed: {}", describe(&up));
    // The detached proxy serves the cluster on its port.
    let local = deploy::local::open(&dir).unwrap();
    assert!(local.proxy_pid().is_some(), "up --detach started the proxy: {}", describe(&up));
    assert!(
        deploy::local::ping("127.0.0.1", proxy_port.parse().unwrap()),
        "the proxy answers PING"
    );

    // And the detached monitor answers on its port, the proxy's stats page showing its alarms.
    assert!(local.monitor_pid().is_some(), "up --detach started the monitor: {}", describe(&up));
    let alarms = http_get(&format!("127.0.0.1:{monitor_port}"), "/api/v1/alarms");
    assert!(alarms.starts_with("HTTP/1.1 200"), "{alarms}");
    assert!(alarms.contains("\"alarms\":"), "{alarms}");
    let page = http_get(&format!("127.0.0.1:{stats_port}"), "/stats");
    assert!(
        page.contains(&format!("Alarms from the monitor at 127.0.0.1:{monitor_port}")),
        "{page}"
    );

    // `up` in the foreground on it says it is up already, and starts nothing.
    let foreground: Vec<&str> = up_args.iter().copied().filter(|a| *a != "--detach").collect();
    let again = redkeep(&foreground);
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(!stdout(&again).contains("Cluster is up"), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already up, with a detached proxy"),
        "{}",
        describe(&again)
    );

    let check = redkeep(&["check", &seed]);
    assert!(check.status.success(), "check of a fresh cluster failed: {}", describe(&check));

    // Kill the master that owns slot 0 and find the replica that will replace it.
    let status = status_json(&seed);
    let victim = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["role"] == "master" && n["slots"].as_str().unwrap_or("").starts_with("0-"))
        .expect("a master owns slot 0")
        .clone();
    let victim_addr = victim["addr"].as_str().unwrap().to_string();
    let victim_id = victim["id"].as_str().unwrap().to_string();
    let victim_port: u16 = victim_addr.rsplit_once(':').unwrap().1.parse().unwrap();
    deploy::process::signal(pid_of(&dir, victim_port), libc::SIGKILL);

    let status = wait_for_status(&seed, "the replica to be promoted", |s| {
        s["nodes"].as_array().unwrap().iter().any(|n| {
            n["role"] == "master"
                && n["addr"] != victim_addr.as_str()
                && n["slots"].as_str().unwrap_or("").starts_with("0-")
        }) && s["summary"]["state"] == "ok"
    });
    assert!(
        node(&status, &victim_addr)["flags"].as_array().unwrap().iter().any(|f| f == "fail"),
        "status shows the killed master as failed: {status:#}"
    );

    let check = redkeep(&["check", &seed]);
    assert!(!check.status.success(), "check passes with a failed node: {}", describe(&check));
    assert!(
        stdout(&check).contains(&victim_addr),
        "check names {victim_addr}: {}",
        describe(&check)
    );

    // `up` again restarts the killed node; it rejoins as a replica of its old replica.
    let up = redkeep(&up_args);
    assert!(up.status.success(), "second up failed: {}", describe(&up));
    let status = wait_for_status(&seed, "the old master to rejoin as a replica", |s| {
        let old = node(s, &victim_addr);
        old["role"] == "replica" && old["flags"].as_array().unwrap().iter().all(|f| f != "fail")
    });
    assert_eq!(node(&status, &victim_addr)["id"], victim_id.as_str(), "same node, not a new one");

    let down = redkeep(&["down", "--dir", dir_arg]);
    assert!(down.status.success(), "down failed: {}", describe(&down));
    let local = deploy::local::open(&dir).unwrap();
    assert_eq!(local.proxy_pid(), None, "down stopped the proxy");
    assert_eq!(local.monitor_pid(), None, "down stopped the monitor");
    for &port in &local.manifest.ports {
        assert_eq!(local.running_pid(port), None, "node {port} still runs after down");
    }
}

#[test]
fn up_refuses_a_port_in_use_and_leaves_nothing_running() {
    let base_port = deploy::ports::free_block(6).expect("free ports");
    let taken = std::net::TcpListener::bind(("127.0.0.1", base_port + 3)).unwrap();
    let dir = std::env::temp_dir().join(format!("redkeep-port-taken-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    let output = redkeep(&[
        "up",
        "--detach",
        "--dir",
        dir.to_str().unwrap(),
        "--base-port",
        &base_port.to_string(),
        "--no-proxy",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("port {}", base_port + 3)), "names the port: {stderr}");
    let local = deploy::local::open(&dir).unwrap();
    for &port in &local.manifest.ports {
        assert_eq!(local.running_pid(port), None, "node {port} was left running");
    }
    drop(taken);
}

#[test]
fn up_refuses_fewer_than_three_masters() {
    let output = redkeep(&["up", "--masters", "2", "--dir", "/nonexistent/never-created"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("at least 3 masters"), "{stderr}");
    assert!(!Path::new("/nonexistent/never-created").exists());
}

#[test]
fn up_refuses_a_damaged_dir_and_deletes_nothing() {
    let dir = std::env::temp_dir().join(format!("redkeep-damaged-{}", std::process::id()));
    let _guard = DirGuard(dir.clone());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("redkeep.json"), "{ not json").unwrap();
    std::fs::write(dir.join("precious.rdb"), "data").unwrap();
    let output = redkeep(&["up", "--detach", "--dir", dir.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("damaged") && stderr.contains("Nothing was deleted"), "{stderr}");
    assert!(dir.join("precious.rdb").exists() && dir.join("redkeep.json").exists());
}
