//! `redkeep controller --monitor` against real parts: a local cluster whose every node came back
//! at a new port (nodes.conf still naming the old ones), a real `redkeep monitor` server in this
//! process, and the controller binary run once. The monitor's timeline shows the controller's
//! re-MEETs, its alarm list the node the controller could not reach, and no healing plan is
//! made for either.

use std::sync::Arc;

use assert_cmd::Command;
use deploy::testing::TestCluster;
use monitor::heal::{Mode, NoSupervisor};
use monitor::runner::{Monitor, Options};

async fn start_monitor(seeds: Vec<String>) -> Monitor {
    let options = Options {
        seeds,
        config: monitor::Config::default(),
        // Dry-run: a plan the monitor made would show as a `heal (dry-run…)` event.
        heal: Mode::DryRun,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        supervisor: Arc::new(NoSupervisor),
        print: Some(Arc::new(|line: &str| eprintln!("monitor: {line}"))),
    };
    monitor::runner::start(options).await.expect("monitor starts")
}

/// `GET path` on the monitor's API, the body as JSON.
async fn get_json(monitor: &Monitor, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = monitor.addr.expect("API listens");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let body = reply.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {reply}"))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_records_the_controllers_re_meets_and_lists_what_it_cannot_reach() {
    let mut cluster = TestCluster::start(3, 1).await;
    cluster.move_to_new_ports().await;
    let new = cluster.addrs();
    let monitor = start_monitor(new.clone()).await;
    let api = format!("http://{}", monitor.addr.unwrap());
    let dead = format!("127.0.0.1:{}", closed_port());
    let nodes = [new.clone(), vec![dead.clone()]].concat().join(",");

    let out = Command::cargo_bin("redkeep")
        .unwrap()
        .args(["controller", "--once", "--nodes", &nodes, "--monitor", &api])
        .args(["--stuck-after", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("done: ") && stdout.contains("CLUSTER MEET"), "{stdout}");
    assert!(!stderr.contains("cannot report"), "{stderr}");

    // The timeline: every re-MEET fired then resolved, as the controller printed it.
    let events = get_json(&monitor, "/api/v1/events").await;
    let events = events["events"].as_array().unwrap().clone();
    let received = |status: &str, alertname: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["kind"] == "received")
            .map(|e| e["detail"].clone())
            .filter(|a| a["status"] == status && a["labels"]["alertname"] == alertname)
            .collect()
    };
    let meets = received("firing", "RedkeepControllerAction");
    let done_lines = stdout.lines().filter(|l| l.starts_with("done: ")).count();
    assert_eq!(meets.len(), done_lines, "one alert per action: {events:#?}");
    for alert in &meets {
        assert_eq!(alert["labels"]["action"], "meet", "{alert:#}");
        assert_eq!(alert["labels"]["severity"], "info");
        let summary = alert["annotations"]["summary"].as_str().unwrap();
        assert!(stdout.contains(summary), "{summary} is what the controller printed");
    }
    assert_eq!(received("resolved", "RedkeepControllerAction").len(), meets.len());
    let stuck = received("firing", "RedkeepControllerStuck");
    assert!(stuck.iter().any(|a| a["labels"]["addr"] == dead.as_str()), "{events:#?}");

    // The alarm list: the unreachable node stands, the resolved actions do not.
    let alarms = get_json(&monitor, "/api/v1/alarms").await;
    let listed = alarms["received"].as_array().unwrap();
    let standing = |alertname: &str| {
        listed.iter().filter(|r| r["alert"]["labels"]["alertname"] == alertname).count()
    };
    assert!(
        listed.iter().any(|r| {
            r["alert"]["labels"]["alertname"] == "RedkeepControllerStuck"
                && r["alert"]["labels"]["addr"] == dead.as_str()
        }),
        "{alarms:#}"
    );
    assert_eq!(standing("RedkeepControllerAction"), 0, "{alarms:#}");

    // Wait for a model from a poll that started after the alerts arrived: its pass of the
    // loop has had them among the firing alarms when it planned healing.
    let after = monitor::poll::now_ms();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while get_json(&monitor, "/api/v1/model").await["at_ms"].as_u64().unwrap() <= after {
        assert!(std::time::Instant::now() < deadline, "the monitor polls again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let heals: Vec<String> = monitor
        .events()
        .into_iter()
        .filter(|e| e.kind == "heal" && e.text.contains("RedkeepController"))
        .map(|e| e.text)
        .collect();
    assert!(heals.is_empty(), "no healing plan for the controller's alerts: {heals:?}");
    monitor.stop().await;
}
