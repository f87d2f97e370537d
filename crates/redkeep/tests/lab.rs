//! The multi-host lab and its drills, end to end (root, as CI runs): `redkeep lab up` builds
//! hosts of network namespaces with a real cluster, two proxies and keepalived; every drill
//! passes its checks; `redkeep lab down` leaves no namespace, process or file behind.

use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A lab of this test's own, removed on drop (also when the test fails).
struct TestLab {
    name: String,
    root: tempfile::TempDir,
}

impl TestLab {
    /// `tag` tells apart the labs of the tests running at once in this process.
    fn new(tag: char) -> TestLab {
        TestLab {
            name: format!("rkt{}{tag}", std::process::id() % 100_000),
            root: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let root = self.root.path().to_str().unwrap();
        Command::cargo_bin("redkeep")
            .unwrap()
            .args(["lab", "--name", &self.name, "--root", root])
            .args(args)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "redkeep lab {args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn namespaces(&self) -> Vec<String> {
        let output = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| ns.starts_with(&format!("{}-", self.name)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Processes whose working directory is under `dir` (the lab's nodes and proxies run there).
fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or(dir.to_path_buf());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn reports(json: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn assert_passed(report: &serde_json::Value) {
    eprintln!("{}", serde_json::to_string_pretty(report).unwrap());
    for check in report["checks"].as_array().unwrap() {
        assert_eq!(check["passed"], true, "{}: {check}", report["drill"]);
    }
    assert_eq!(report["passed"], true);
}

#[test]
fn every_drill_passes_in_a_lab_of_namespaces_and_down_leaves_nothing() {
    let lab = TestLab::new('d');
    let up = lab.ok(&["up"]);
    assert!(up.contains("198.18.0.100:7010"), "{up}");

    let status: serde_json::Value = serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["vip_holder"], "lb1", "{status}");
    let hosts = status["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 6, "3 Redis hosts, 2 LBs, 1 client: {status}");
    let nodes: Vec<&serde_json::Value> =
        hosts.iter().flat_map(|h| h["nodes"].as_array().unwrap()).collect();
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "master").count(), 3, "{status}");
    for host in hosts.iter().filter(|h| h["role"] == "redis") {
        let roles: Vec<&str> =
            host["nodes"].as_array().unwrap().iter().filter_map(|n| n["role"].as_str()).collect();
        assert_eq!(roles.iter().filter(|r| **r == "master").count(), 1, "{host}");
    }

    // Any client on the client host uses the one address.
    let cli = |args: &[&str]| {
        let mut line = vec!["exec", "c1", "--", "redis-cli", "-h", "198.18.0.100", "-p", "7010"];
        line.extend(args);
        lab.ok(&line)
    };
    assert_eq!(cli(&["SET", "lab:key", "v1"]).trim(), "OK");
    let get = cli(&["GET", "lab:key"]);
    assert_eq!(get.trim(), "v1");

    // The proxy supervises its keepalived: killed, it is started again.
    let pid_file = lab.root.path().join(&lab.name).join("lb2/vrrp/keepalived.pid");
    let first = read_pid(&pid_file).expect("lb2's keepalived runs");
    assert!(Command::new("kill").args(["-9", &first.to_string()]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match read_pid(&pid_file) {
            Some(pid) if pid != first && Path::new(&format!("/proc/{pid}")).exists() => break,
            _ => assert!(std::time::Instant::now() < deadline, "keepalived was not restarted"),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let all = reports(&lab.ok(&["drill", "all", "--json"]));
    let names: Vec<&str> = all.iter().filter_map(|r| r["drill"].as_str()).collect();
    assert_eq!(names, ["master-kill", "proxy-kill", "partition", "host-loss"]);
    for report in &all {
        assert_passed(report);
        assert!(report["figures"]["acked_writes"].as_f64().unwrap() > 0.0, "{report}");
    }
    assert!(all[0]["figures"]["replica_promoted_s"].is_number());
    assert!(all[1]["figures"]["vip_moved_s"].is_number());
    assert!(all[2]["figures"]["isolated_master_refuses_writes_s"].is_number());
    assert!(all[3]["figures"]["cluster_ok_again_s"].is_number());

    let acked = reports(&lab.ok(&["drill", "master-kill", "--write-ack", "--json"]));
    assert_passed(&acked[0]);
    assert_eq!(acked[0]["write_ack"], true);
    assert_eq!(acked[0]["figures"]["acked_writes_lost"], 0.0);

    let down = lab.ok(&["down"]);
    assert!(down.contains("namespace"), "{down}");
    assert!(lab.namespaces().is_empty(), "left: {:?}", lab.namespaces());
    assert!(processes_under(lab.root.path()).is_empty(), "processes left in the lab's dir");
    assert!(!lab.root.path().join(&lab.name).exists());

    // `down` also cleans up after a run that crashed and left only namespaces behind.
    let leftover = format!("{}-r1", lab.name);
    assert!(Command::new("ip").args(["netns", "add", &leftover]).status().unwrap().success());
    let down = lab.ok(&["down"]);
    assert!(down.contains(&leftover), "{down}");
    assert!(lab.namespaces().is_empty());
}

#[test]
fn a_bad_lab_request_is_refused_with_the_reason() {
    let lab = TestLab::new('b');
    let output = lab.run(&["up", "--hosts", "2"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("at least 3 Redis hosts"), "{}", text(&output));
    let output = lab.run(&["status"]);
    assert!(
        !output.status.success() && text(&output).contains("no lab named"),
        "{}",
        text(&output)
    );
    let output = lab.run(&["drill", "meteor-strike"]);
    assert!(!output.status.success());
}

#[test]
fn readdress_drills_bring_the_cluster_back_with_the_same_node_ids() {
    let lab = TestLab::new('a');
    lab.ok(&["up"]);
    let moved = reports(&lab.ok(&["drill", "readdress", "--json"]));
    assert_passed(&moved[0]);
    let figures = &moved[0]["figures"];
    assert_eq!(figures["hosts_moved"], 3.0);
    assert!(figures["acked_writes"].as_f64().unwrap() > 0.0, "{figures}");
    assert!(figures["cluster_ok_after_restart_s"].is_number(), "{figures}");
    // Every Redis host serves from its new address now.
    let status: serde_json::Value = serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
    for host in status["hosts"].as_array().unwrap().iter().filter(|h| h["role"] == "redis") {
        assert!(host["ip"].as_str().unwrap().starts_with("198.18.0.4"), "{host}");
        assert!(host["nodes"].as_array().unwrap().iter().all(|n| !n["pid"].is_null()), "{host}");
    }

    let one = reports(&lab.ok(&["drill", "readdress-one", "--json"]));
    assert_passed(&one[0]);
    assert_eq!(one[0]["figures"]["hosts_moved"], 1.0);
    // The controller's hosts file (the lab's DNS) goes with the drill.
    let etc = Path::new("/etc/netns").join(format!("{}-sw", lab.name));
    assert!(!etc.exists(), "{} left behind", etc.display());

    lab.ok(&["down"]);
    assert!(lab.namespaces().is_empty(), "left: {:?}", lab.namespaces());
    assert!(processes_under(lab.root.path()).is_empty(), "processes left in the lab's dir");
}

/// The check named `name` of a drill report passed.
fn check_passed(report: &serde_json::Value, name: &str) -> bool {
    report["checks"].as_array().unwrap().iter().any(|c| c["name"] == name && c["passed"] == true)
}

#[test]
fn the_lab_s_monitor_heals_node_and_replica_loss_and_the_layout_and_refuses_when_cut_off() {
    let lab = TestLab::new('h');
    lab.ok(&["up"]);
    // A monitor runs on every LB host, inside its namespace.
    for lb in ["lb1", "lb2"] {
        let dir = lab.root.path().join(&lab.name).join(lb);
        let pid = read_pid(&dir.join("monitor.pid")).expect("a monitor pid file");
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "{lb}'s monitor runs");
    }

    let heal = reports(&lab.ok(&["drill", "heal", "--json"]));
    let names: Vec<&str> = heal.iter().filter_map(|r| r["drill"].as_str()).collect();
    assert_eq!(names, ["heal-node-loss", "heal-replica-loss", "heal-layout", "heal-partition"]);
    for report in &heal {
        assert_passed(report);
        assert_eq!(report["figures"]["acked_writes_lost"], 0.0, "{report}");
        assert!(report["figures"]["acked_writes"].as_f64().unwrap() > 0.0, "{report}");
        assert!(report["figures"]["fault_to_alarm_s"].is_number(), "{report}");
    }
    let healed = "the monitor brought the node back as a replica of the master that lost it";
    assert!(check_passed(&heal[0], healed), "{}", heal[0]);
    let replaced = "the monitor gave the master a new replica, in sync";
    assert!(check_passed(&heal[1], replaced), "{}", heal[1]);
    let layout = "the monitor failed over back: the planned layout is restored";
    assert!(check_passed(&heal[2], layout), "{}", heal[2]);
    for check in [
        "the cut-off monitor refused to heal: no majority of masters",
        "the cut-off monitor took no action",
    ] {
        assert!(check_passed(&heal[3], check), "{check}: {}", heal[3]);
    }

    lab.ok(&["down"]);
    assert!(lab.namespaces().is_empty(), "left: {:?}", lab.namespaces());
    assert!(processes_under(lab.root.path()).is_empty(), "processes left (a monitor?)");
}

#[test]
fn an_auth_lab_has_nodes_that_want_the_password_and_its_drill_passes() {
    let lab = TestLab::new('p');
    let up = lab.ok(&["up", "--auth"]);
    assert!(up.contains("require a password"), "{up}");
    let password_file = lab.root.path().join(&lab.name).join("password");
    let password = std::fs::read_to_string(&password_file).expect("the password is kept");
    let password = password.trim().to_string();
    assert!(!up.contains(&password), "the lab prints where the password is, not it: {up}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&password_file).unwrap().permissions().mode() & 0o777, 0o600);

    // `redis-cli` on the client host, the password (when given) in its environment.
    let cli = |auth: bool, host: &str, port: &str, args: &[&str]| {
        let root = lab.root.path().to_str().unwrap();
        let mut command = Command::cargo_bin("redkeep").unwrap();
        command.args(["lab", "--name", &lab.name, "--root", root, "exec", "c1", "--"]);
        command.args(["redis-cli", "-h", host, "-p", port]).args(args);
        command.env_remove("REDISCLI_AUTH");
        if auth {
            command.env("REDISCLI_AUTH", &password);
        }
        text(&command.output().unwrap()).trim().to_string()
    };
    let status: serde_json::Value = serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
    let mut replicas = 0;
    for host in status["hosts"].as_array().unwrap().iter().filter(|h| h["role"] == "redis") {
        let ip = host["ip"].as_str().unwrap();
        for node in host["nodes"].as_array().unwrap() {
            let port = node["port"].to_string();
            let refused = cli(false, ip, &port, &["PING"]);
            assert!(refused.contains("NOAUTH"), "{ip}:{port} without AUTH: {refused}");
            assert_eq!(cli(true, ip, &port, &["PING"]), "PONG", "{ip}:{port}");
            let info = cli(true, ip, &port, &["INFO", "replication"]);
            if info.contains("role:slave") {
                replicas += 1;
                assert!(info.contains("master_link_status:up"), "{ip}:{port}: {info}");
            }
        }
    }
    assert_eq!(replicas, 3, "{status}");
    // The proxies authenticate to the nodes and want the password of their clients too; the
    // VIP stays up, so keepalived's health script authenticates (from the password file).
    let refused = cli(false, "198.18.0.100", "7010", &["SET", "lab:key", "v1"]);
    assert!(refused.contains("NOAUTH"), "the VIP without AUTH: {refused}");
    assert_eq!(cli(true, "198.18.0.100", "7010", &["SET", "lab:key", "v1"]), "OK");
    assert_eq!(cli(true, "198.18.0.100", "7010", &["GET", "lab:key"]), "v1");
    // The LB hosts' monitors give the nodes the password too: every node answers them.
    let model = lab.ok(&["exec", "c1", "--", "curl", "-s", "http://198.18.0.21:7030/api/v1/model"]);
    let model: serde_json::Value = serde_json::from_str(&model).expect("the model is JSON");
    let nodes = model["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 6, "{model}");
    for node in nodes {
        assert_eq!(
            node["reachable"], true,
            "the monitor cannot read {}: {}",
            node["addr"], node["error"]
        );
    }
    // A failover with masterauth: the killed master's replica takes over, it rejoins.
    let killed = reports(&lab.ok(&["drill", "master-kill", "--json"]));
    assert_passed(&killed[0]);
    // The health scripts passed all along: an LB holds the VIP (it leaves a failing one).
    let status: serde_json::Value = serde_json::from_str(&lab.ok(&["status", "--json"])).unwrap();
    assert!(status["vip_holder"].is_string(), "{status}");
    // No proxy has the password on its command line.
    for pid in processes_under(lab.root.path()) {
        let line = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let line = String::from_utf8_lossy(&line);
        assert!(!line.contains(&password), "pid {pid}: {line}");
    }
}
