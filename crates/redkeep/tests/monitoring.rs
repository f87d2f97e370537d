//! Monitoring with the real tools: `promtool` checks and unit-tests redkeep's Prometheus rules;
//! a real Prometheus (Debian `prometheus`) scrapes `redkeep monitor` and `redkeep proxy`,
//! evaluates the rules, and a real Alertmanager (Debian `prometheus-alertmanager`) routes the
//! alert to the monitor's `POST /api/v1/alerts` when a node is killed, and the resolution when
//! it is back.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deploy::testing::TestCluster;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

/// A process this test started, killed (by its pid) and reaped on drop, also when the test fails.
struct Process {
    child: Child,
    name: &'static str,
}

impl Process {
    fn start(
        name: &'static str,
        program: impl AsRef<std::ffi::OsStr>,
        args: &[String],
        log: &Path,
    ) -> Process {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts (is it installed? `make deps`): {e}"));
        Process { child, name }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("stopped {} (pid {})", self.name, self.child.id());
    }
}

fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (is it installed? `make deps`): {e}"));
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_and_unit_tests_the_rules_and_amtool_the_example_config() {
    let checked = run_tool("promtool", &["check", "rules", "redkeep.rules.yml"]);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = run_tool("promtool", &["test", "rules", "redkeep.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    run_tool("promtool", &["check", "config", "prometheus.yml"]);
    run_tool("amtool", &["check-config", "alertmanager.yml"]);
}

#[test]
fn every_rule_of_the_monitor_has_its_promql_twin() {
    let rules = std::fs::read_to_string(rules_dir().join("redkeep.rules.yml")).unwrap();
    for rule in monitor::rules::CATALOGUE {
        assert!(
            rules.contains(&format!("alert: {}\n", rule.alertname)),
            "{} is missing",
            rule.alertname
        );
    }
}

/// `GET path` on `addr`, the body; `None` when nothing answers (yet).
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// Waits (up to two minutes: a bound against hanging, not a timing assertion) until `ready`.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if Instant::now() > deadline {
            let mut dump = String::new();
            for entry in std::fs::read_dir(logs).unwrap().flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                dump += &format!(
                    "--- {}\n{}\n",
                    entry.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            panic!("gave up waiting until {what}\n{dump}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn loopback() -> String {
    format!("127.0.0.1:{}", deploy::ports::free_port())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Prometheus' answer to an instant query has a series with `up` 1 for `job`.
fn target_up(prometheus: &str, job: &str) -> bool {
    let Some(body) = http_get(prometheus, "/api/v1/query?query=up") else { return false };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
    json["data"]["result"].as_array().is_some_and(|series| {
        series.iter().any(|s| s["metric"]["job"] == job && s["value"][1] == "1")
    })
}

/// The monitor's events say it received `status` `alertname` for `addr` from Alertmanager.
fn received(monitor: &str, status: &str, alertname: &str, addr: &str) -> bool {
    let Some(body) = http_get(monitor, "/api/v1/events") else { return false };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else { return false };
    json["events"].as_array().is_some_and(|events| {
        events.iter().any(|e| {
            e["kind"] == "received"
                && e["detail"]["status"] == status
                && e["detail"]["labels"]["alertname"] == alertname
                && e["detail"]["labels"]["addr"] == addr
        })
    })
}

#[test]
fn prometheus_scrapes_the_monitor_and_alertmanager_routes_node_down_to_it() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let temp = tempfile::tempdir().unwrap();
    let logs = temp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let seed = cluster.addrs()[0].clone();
    let (proxy_addr, stats, monitor) = (loopback(), loopback(), loopback());
    let (alertmanager, prometheus) = (loopback(), loopback());
    let redkeep = env!("CARGO_BIN_EXE_redkeep");

    let _proxy = Process::start(
        "redkeep proxy",
        redkeep,
        &strings(&[
            "proxy",
            "--seed",
            &seed,
            "--listen",
            &proxy_addr,
            "--stats",
            &stats,
            "--threads",
            "1",
        ]),
        &logs.join("proxy.log"),
    );
    // The monitor's own node-down rule is off: a healing plan for the killed node can then
    // only come from the alert Alertmanager delivers.
    let monitor_config = temp.path().join("monitor.toml");
    std::fs::write(&monitor_config, "[rules.node_down]\nenabled = false\n").unwrap();
    let cluster_dir = cluster.local_dir().root.display().to_string();
    let _monitor = Process::start(
        "redkeep monitor",
        redkeep,
        &strings(&[
            "monitor",
            "--seed",
            &seed,
            "--listen",
            &monitor,
            "--heal",
            "dry-run",
            "--proxy",
            &proxy_addr,
            "--dir",
            &cluster_dir,
            "--config",
            &monitor_config.display().to_string(),
            "--log",
            "info",
        ]),
        &logs.join("monitor.log"),
    );

    let am_config = temp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: redkeep\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: redkeep\n    webhook_configs:\n      - url: http://{monitor}/api/v1/alerts\n        send_resolved: true\n"
        ),
    )
    .unwrap();
    let _alertmanager = Process::start(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", temp.path().join("am-data").display()),
            format!("--web.listen-address={alertmanager}"),
            // No gossip: a single Alertmanager, nothing listening beyond its API.
            "--cluster.listen-address=".to_string(),
        ],
        &logs.join("alertmanager.log"),
    );

    let prom_config = temp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n\
             scrape_configs:\n  - job_name: redkeep-monitor\n    static_configs:\n      - targets: [\"{monitor}\"]\n\
             \x20 - job_name: redkeep-proxy\n    static_configs:\n      - targets: [\"{stats}\"]\n",
            rules_dir().join("redkeep.rules.yml").canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let _prometheus = Process::start(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", temp.path().join("tsdb").display()),
            format!("--web.listen-address={prometheus}"),
        ],
        &logs.join("prometheus.log"),
    );

    wait_until(
        "Prometheus scrapes the monitor",
        || target_up(&prometheus, "redkeep-monitor"),
        &logs,
    );
    wait_until("Prometheus scrapes the proxy", || target_up(&prometheus, "redkeep-proxy"), &logs);

    let port = cluster.ports()[4];
    let addr = format!("127.0.0.1:{port}");
    cluster.kill9(port);
    wait_until(
        "Alertmanager delivers RedisNodeDown to the monitor",
        || received(&monitor, "firing", "RedisNodeDown", &addr),
        &logs,
    );
    let alerts = http_get(&prometheus, "/api/v1/alerts").unwrap_or_default();
    assert!(alerts.contains("RedisNodeDown") && alerts.contains(&addr), "{alerts}");
    let firing = http_get(&monitor, "/api/v1/alarms").unwrap_or_default();
    assert!(firing.contains("\"received\"") && firing.contains("RedisNodeDown"), "{firing}");

    let planned = format!(
        "heal (dry-run, not applied): restart node {addr} (local supervisor) (RedisNodeDown)"
    );
    wait_until(
        "the received alert gives a healing plan (dry-run)",
        || http_get(&monitor, "/api/v1/events").is_some_and(|events| events.contains(&planned)),
        &logs,
    );
    let own = http_get(&monitor, "/api/v1/alarms").unwrap_or_default();
    assert!(!own.contains("\"rule\":\"node_down\""), "the monitor's own rule is off: {own}");

    rt.block_on(cluster.restart_stopped());
    wait_until(
        "Alertmanager delivers the resolution",
        || received(&monitor, "resolved", "RedisNodeDown", &addr),
        &logs,
    );
}

#[test]
fn up_in_the_foreground_runs_the_monitor_which_restarts_a_killed_node() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("cluster");
    let base_port = deploy::ports::free_block(6).expect("free ports").to_string();
    let (proxy_port, stats_port, monitor_port) =
        (deploy::ports::free_port(), deploy::ports::free_port(), deploy::ports::free_port());
    let args = strings(&[
        "up",
        "--dir",
        &dir.display().to_string(),
        "--base-port",
        &base_port,
        "--node-timeout",
        "2s",
        "--proxy-port",
        &proxy_port.to_string(),
        "--stats-port",
        &stats_port.to_string(),
        "--monitor-port",
        &monitor_port.to_string(),
        "--heal",
        "auto",
    ]);
    let logs = temp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut up =
        Process::start("redkeep up", env!("CARGO_BIN_EXE_redkeep"), &args, &logs.join("up.log"));
    let monitor = format!("127.0.0.1:{monitor_port}");
    let sees_six = || {
        http_get(&monitor, "/api/v1/model")
            .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
            .is_some_and(|m| {
                m["nodes"]
                    .as_array()
                    .is_some_and(|n| n.iter().filter(|n| n["reachable"] == true).count() == 6)
            })
    };
    wait_until("up's monitor sees the six nodes", sees_six, &logs);

    let local = deploy::local::open(&dir).unwrap();
    let port = local.manifest.ports[3];
    let pid = local.running_pid(port).expect("node runs");
    deploy::process::signal(pid, libc::SIGKILL);
    assert!(deploy::process::wait_gone(pid, Duration::from_secs(5)));
    wait_until(
        "the monitor restarted the killed node",
        || {
            let log = std::fs::read_to_string(logs.join("up.log")).unwrap_or_default();
            log.contains(&format!("healed: restart node 127.0.0.1:{port}"))
                && local.running_pid(port).is_some_and(|p| p != pid)
        },
        &logs,
    );

    // SIGTERM: the monitor stops first, so the nodes `up` stops stay stopped.
    deploy::process::signal(up.child.id(), libc::SIGTERM);
    let status = up.child.wait().unwrap();
    assert!(status.success(), "up exited with {status}");
    let log = std::fs::read_to_string(logs.join("up.log")).unwrap();
    assert!(log.contains(&format!("healed: restart node 127.0.0.1:{port}")), "{log}");
    for &port in &local.manifest.ports {
        assert_eq!(
            local.running_pid(port),
            None,
            "node {port} still runs after up stopped:\n{log}"
        );
    }
}
