//! The monitor against a real local cluster (deploy::testing::TestCluster): a node killed
//! raises node-down, which a webhook receiver gets in Alertmanager's format and which resolves
//! when the node is back; with `--heal auto` the monitor itself restarts a killed node and
//! re-attaches a wiped one as a replica.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deploy::testing::TestCluster;
use monitor::heal::{Mode, Supervisor};
use monitor::notify::Payload;
use monitor::runner::{Monitor, Options};

/// Restarts nodes of the test cluster's dir, as `redkeep monitor --dir` does with deploy::local.
struct TestSupervisor(deploy::local::LocalDir);

impl TestSupervisor {
    fn port(&self, addr: &str) -> Option<u16> {
        let port: u16 = addr.strip_prefix("127.0.0.1:")?.parse().ok()?;
        self.0.manifest.ports.contains(&port).then_some(port)
    }
}

impl Supervisor for TestSupervisor {
    fn owns(&self, addr: &str) -> bool {
        self.port(addr).is_some()
    }
    fn restart(&self, addr: &str) -> Result<(), String> {
        let port = self.port(addr).ok_or("not ours")?;
        self.0.start_node(port).map_err(|e| e.to_string())
    }
}

/// A webhook receiver on a free port, keeping every payload.
async fn receiver() -> (String, Arc<Mutex<Vec<Payload>>>) {
    let got: Arc<Mutex<Vec<Payload>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(p): axum::Json<Payload>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(p);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

async fn start_monitor(cluster: &TestCluster, heal: Mode, webhooks: Vec<String>) -> Monitor {
    let config = monitor::Config { webhooks, ..monitor::Config::default() };
    let options = Options {
        seeds: cluster.addrs(),
        config,
        heal,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        supervisor: Arc::new(TestSupervisor(cluster.local_dir().clone())),
        print: Some(Arc::new(|line: &str| eprintln!("monitor: {line}"))),
    };
    monitor::runner::start(options).await.expect("monitor starts")
}

/// Waits (up to a minute: a bound against hanging, not a timing assertion) until `ready`.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` on the monitor's API, the body.
async fn http_get(monitor: &Monitor, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = monitor.addr.expect("API listens");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

fn node_down_alerts<'a>(
    payloads: &'a [Payload],
    addr: &str,
    status: &str,
) -> Vec<&'a monitor::notify::Alert> {
    payloads
        .iter()
        .flat_map(|p| &p.alerts)
        .filter(|a| {
            a.labels["alertname"] == "RedisNodeDown"
                && a.labels.get("addr").map(String::as_str) == Some(addr)
        })
        .filter(|a| a.status == status)
        .collect()
}

fn has_event(monitor: &Monitor, needle: &str) -> bool {
    monitor.events().iter().any(|e| e.text.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_raises_node_down_which_resolves_when_it_is_back() {
    let cluster = TestCluster::start(3, 1).await;
    let (url, payloads) = receiver().await;
    let monitor = start_monitor(&cluster, Mode::Off, vec![url]).await;
    let port = cluster.ports()[4];
    let addr = format!("127.0.0.1:{port}");
    wait_until("the first poll is published", || {
        !monitor.state.lock().unwrap().model.nodes.is_empty()
    })
    .await;

    cluster.kill9(port);
    let killed = Instant::now();
    wait_until("a firing node-down reaches the webhook", || {
        !node_down_alerts(&payloads.lock().unwrap(), &addr, "firing").is_empty()
    })
    .await;
    println!("kill -> node-down at the webhook: {:.1} s", killed.elapsed().as_secs_f64());
    let alarms = http_get(&monitor, "/api/v1/alarms").await;
    let alarms: serde_json::Value = serde_json::from_str(&alarms).expect("alarms are JSON");
    let firing = alarms["alarms"].as_array().unwrap().iter().any(|a| {
        a["labels"]["alertname"] == "RedisNodeDown"
            && a["labels"]["addr"] == addr.as_str()
            && a["state"] == "firing"
    });
    assert!(firing, "{alarms:#}");
    let metrics = http_get(&monitor, "/metrics").await;
    assert!(
        metrics.contains(&format!("redis_up{{addr=\"{addr}\",role=\"replica\"}} 0")),
        "{metrics}"
    );
    assert!(
        metrics.contains("redkeep_alarm_firing{addr=\"")
            && metrics.contains("alertname=\"RedisNodeDown\""),
        "{metrics}"
    );
    {
        let payloads = payloads.lock().unwrap();
        let alert = node_down_alerts(&payloads, &addr, "firing")[0];
        assert_eq!(alert.ends_at, "0001-01-01T00:00:00Z");
        assert_eq!(alert.labels["severity"], "critical");
        assert_eq!(alert.fingerprint.len(), 16);
    }
    assert!(has_event(&monitor, "RedisNodeDown"), "{:#?}", monitor.events());

    cluster.restart_stopped().await;
    wait_until("a resolved node-down reaches the webhook", || {
        !node_down_alerts(&payloads.lock().unwrap(), &addr, "resolved").is_empty()
    })
    .await;
    let payloads = payloads.lock().unwrap().clone();
    let resolved = node_down_alerts(&payloads, &addr, "resolved")[0];
    assert_ne!(resolved.ends_at, "0001-01-01T00:00:00Z");
    let events = monitor.events();
    assert!(
        !events.iter().any(|e| e.kind == "heal" && e.text.starts_with("heal:")),
        "--heal off acts on nothing"
    );
    monitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_restarts_a_killed_node_it_owns() {
    let cluster = TestCluster::start(3, 1).await;
    let monitor = start_monitor(&cluster, Mode::Auto, vec![]).await;
    let port = cluster.ports()[3];
    wait_until("the first poll is published", || {
        !monitor.state.lock().unwrap().model.nodes.is_empty()
    })
    .await;
    cluster.kill9(port);
    assert!(cluster.pid(port).is_none());
    let killed = Instant::now();
    wait_until("the monitor says the restart healed", || {
        has_event(&monitor, &format!("healed: restart node 127.0.0.1:{port}"))
    })
    .await;
    println!("kill -> healed: {:.1} s", killed.elapsed().as_secs_f64());
    assert!(cluster.pid(port).is_some(), "the node runs again");
    monitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_replica_comes_back_as_a_replica_of_the_master_it_left() {
    let cluster = TestCluster::start(3, 1).await;
    let seed = cluster.addrs()[0].clone();
    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let replica = topology.nodes.iter().find(|n| !n.is_master()).expect("a replica").clone();
    let master_id = replica.master_id.clone().unwrap();
    let monitor = start_monitor(&cluster, Mode::Auto, vec![]).await;
    wait_until("the first poll is published", || {
        !monitor.state.lock().unwrap().model.nodes.is_empty()
    })
    .await;

    cluster.kill9(replica.port);
    std::fs::remove_dir_all(cluster.local_dir().node_dir(replica.port)).unwrap();
    let killed = Instant::now();
    wait_until("the re-attached replica is verified", || {
        has_event(&monitor, "healed: forget old id")
    })
    .await;
    println!("kill+wipe -> master has a replica again: {:.1} s", killed.elapsed().as_secs_f64());

    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let back = topology.by_addr(&replica.addr()).expect("listed under its address");
    assert_ne!(back.id, replica.id, "it is a new node");
    assert_eq!(
        back.master_id.as_deref(),
        Some(master_id.as_str()),
        "it replicates the master it left"
    );
    assert!(topology.by_id(&replica.id).is_none(), "the old id is forgotten");
    let events = monitor.events();
    let order: Vec<&str> =
        events.iter().filter(|e| e.kind == "heal").map(|e| e.text.as_str()).collect();
    assert!(order.iter().any(|t| t.starts_with("heal: restart node")), "{order:#?}");
    monitor.stop().await;
}

/// Owns every node but cannot start any: each restart fails.
struct BrokenSupervisor;

impl Supervisor for BrokenSupervisor {
    fn owns(&self, _: &str) -> bool {
        true
    }
    fn restart(&self, addr: &str) -> Result<(), String> {
        Err(format!("cannot start {addr}: no redis-server here"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_that_does_not_heal_is_retried_then_raises_healing_failed() {
    let cluster = TestCluster::start(3, 1).await;
    let (url, payloads) = receiver().await;
    let mut config = monitor::Config { webhooks: vec![url], ..monitor::Config::default() };
    config.heal.retries = 1;
    let options = Options {
        seeds: cluster.addrs(),
        config,
        heal: Mode::Auto,
        listen: None,
        supervisor: Arc::new(BrokenSupervisor),
        print: Some(Arc::new(|line: &str| eprintln!("monitor: {line}"))),
    };
    let monitor = monitor::runner::start(options).await.unwrap();
    wait_until("the first poll is published", || {
        !monitor.state.lock().unwrap().model.nodes.is_empty()
    })
    .await;
    let port = cluster.ports()[5];
    cluster.kill9(port);
    wait_until("healing_failed reaches the webhook", || {
        payloads
            .lock()
            .unwrap()
            .iter()
            .flat_map(|p| &p.alerts)
            .any(|a| a.labels["alertname"] == "RedkeepHealingFailed" && a.status == "firing")
    })
    .await;
    let failed = monitor
        .events()
        .into_iter()
        .find(|e| e.text.starts_with("healing failed"))
        .expect("logged");
    assert!(failed.text.contains("no redis-server here"), "{}", failed.text);
    // Given up on: not tried again while the alarm stands (the rate limit would allow it).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = monitor.state.lock().unwrap().heal_counts.clone();
    assert_eq!((counts.get("failed"), counts.get("applied")), (Some(&1), Some(&1)), "{counts:?}");
    monitor.stop().await;
}
