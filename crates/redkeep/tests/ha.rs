//! The keepalived side of the floating IP: the rendered config passes the real keepalived's
//! config test, and `redkeep health` says yes only for a proxy that serves every slot.

use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;
use deploy::testing::TestCluster;

fn redkeep(args: &[&str]) -> Output {
    Command::cargo_bin("redkeep").unwrap().args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_rendered_keepalived_config_passes_keepalived_s_own_check() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("keepalived.conf");
    let log = dir.path().join("vrrp.log");
    // Without --out the config is printed.
    let output = redkeep(&[
        "keepalived",
        "render",
        "--vip",
        "198.18.0.100/24",
        "--interface",
        "lo",
        "--priority",
        "150",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("198.18.0.100/24 dev lo"), "{}", text(&output));
    // keepalived checks the interface exists and is not loopback: give it one end of a veth
    // pair in a network namespace of this test's own (root, as CI runs).
    let ns = Namespace::new(&format!("rk-ha-{}", std::process::id()));
    ns.run(&["ip", "link", "add", "rkha0", "type", "veth", "peer", "name", "rkha1"]);
    ns.run(&["ip", "link", "set", "rkha0", "up"]);
    let output = redkeep(&[
        "keepalived",
        "render",
        "--vip",
        "198.18.0.100/24",
        "--interface",
        "rkha0",
        "--priority",
        "150",
        "--auth-pass",
        "s3cret",
        "--notify-log",
        log.to_str().unwrap(),
        "--out",
        conf.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let check = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "keepalived",
            "--config-test",
            "-f",
            conf.to_str().unwrap(),
        ])
        .output()
        .expect("keepalived runs (apt-get install keepalived)");
    assert!(check.status.success(), "keepalived --config-test: {}", text(&check));

    // The notify hook appends what keepalived passes it.
    let output = redkeep(&[
        "keepalived",
        "notify",
        "--file",
        log.to_str().unwrap(),
        "INSTANCE",
        "redkeep_vip",
        "MASTER",
        "150",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.trim_end().ends_with("INSTANCE redkeep_vip MASTER 150"), "{logged}");

    let output = redkeep(&[
        "keepalived",
        "render",
        "--vip",
        "198.18.0.100",
        "--interface",
        "lo",
        "--priority",
        "1",
    ]);
    assert!(
        !output.status.success() && text(&output).contains("ADDRESS/PREFIX"),
        "{}",
        text(&output)
    );
}

#[test]
fn health_is_ok_only_for_a_proxy_serving_every_slot() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cluster = rt.block_on(TestCluster::start(3, 1));
    let proxy = rt.block_on(async {
        let mut config = proxy::ProxyConfig::new(cluster.addrs());
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.threads = 1;
        proxy::start(config).await.unwrap()
    });
    let addr = proxy.local_addr.to_string();
    let output = redkeep(&["health", "--proxy", &addr]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("serves all 16384 slots over 3 masters"), "{}", text(&output));

    // A Redis node is not a proxy; a port without a listener is not healthy either.
    let output = redkeep(&["health", "--proxy", &cluster.addrs()[0]]);
    assert!(
        !output.status.success() && text(&output).contains("not a redkeep proxy"),
        "{}",
        text(&output)
    );
    rt.block_on(proxy.shutdown());
    let output = redkeep(&["health", "--proxy", &addr, "--timeout", "500ms"]);
    assert!(!output.status.success() && text(&output).contains("unhealthy"), "{}", text(&output));
}

/// A network namespace this test made, deleted on drop (also when the test fails).
struct Namespace {
    name: String,
}

impl Namespace {
    fn new(name: &str) -> Namespace {
        let _ = Command::new("ip").args(["netns", "delete", name]).output(); // a crashed earlier run
        let status = Command::new("ip").args(["netns", "add", name]).status().expect("ip runs");
        assert!(status.success(), "ip netns add {name} (needs root)");
        Namespace { name: name.to_string() }
    }

    fn run(&self, args: &[&str]) {
        let output =
            Command::new("ip").args(["netns", "exec", &self.name]).args(args).output().unwrap();
        assert!(output.status.success(), "{args:?} in {}: {}", self.name, text(&output));
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).output();
    }
}
