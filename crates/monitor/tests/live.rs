//! The monitor against a real local cluster (deploy::testing::TestCluster): a node killed
//! raises node-down, which a webhook receiver gets in Alertmanager's format and which resolves
//! when the node is back; with `--heal auto` the monitor itself restarts a killed node and
//! re-attaches a wiped one as a replica.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::admin::AdminConn;
use deploy::testing::TestCluster;
use monitor::heal::{Mode, Supervisor};
use monitor::notify::Payload;
use monitor::runner::{Monitor, Options};

/// Restarts nodes of the test cluster's dir, as `redkeep monitor --dir` does with
/// deploy::local, and adds nodes to it; `lost` nodes are gone for good (never restarted).
struct TestSupervisor {
    dir: Mutex<deploy::local::LocalDir>,
    lost: Vec<u16>,
}

impl TestSupervisor {
    fn new(dir: &deploy::local::LocalDir) -> TestSupervisor {
        TestSupervisor { dir: Mutex::new(dir.clone()), lost: Vec::new() }
    }

    fn port(&self, addr: &str) -> Option<u16> {
        let port: u16 = addr.strip_prefix("127.0.0.1:")?.parse().ok()?;
        let owned = self.dir.lock().unwrap().manifest.ports.contains(&port);
        (owned && !self.lost.contains(&port)).then_some(port)
    }
}

impl Supervisor for TestSupervisor {
    fn owns(&self, addr: &str) -> bool {
        self.port(addr).is_some()
    }
    fn restart(&self, addr: &str) -> Result<(), String> {
        let port = self.port(addr).ok_or("not ours")?;
        self.dir.lock().unwrap().start_node(port).map_err(|e| e.to_string())
    }
    fn place_new_node(&self, _: &[String]) -> Result<String, String> {
        Ok("127.0.0.1".into())
    }
    fn start_new_node(&self, _: &str) -> Result<String, String> {
        let port = self.dir.lock().unwrap().add_node().map_err(|e| e.to_string())?;
        Ok(format!("127.0.0.1:{port}"))
    }
}

/// Stops every node the dir's manifest lists when dropped: nodes a healing added are not in
/// the TestCluster's own list.
struct StopAdded(std::path::PathBuf);

impl Drop for StopAdded {
    fn drop(&mut self) {
        if let Ok(dir) = deploy::local::open(&self.0) {
            dir.stop();
        }
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
    start_monitor_with(cluster, heal, config, TestSupervisor::new(cluster.local_dir())).await
}

async fn start_monitor_with(
    cluster: &TestCluster,
    heal: Mode,
    config: monitor::Config,
    supervisor: TestSupervisor,
) -> Monitor {
    let options = Options {
        seeds: cluster.addrs(),
        config,
        heal,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        supervisor: Arc::new(supervisor),
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

/// Each master's slot count, by id.
fn slot_counts(topology: &cluster::topology::Topology) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> =
        topology.masters().map(|m| (m.id.clone(), m.slot_count())).collect();
    counts.sort();
    counts
}

/// Writes `count` keys (`key:N` = `value:N`), each to the master serving its slot.
async fn write_keys(seed: &str, count: usize) {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let owners = topology.slot_owners();
    for i in 0..count {
        let key = format!("key:{i}");
        let owner = owners[usize::from(cluster::key_slot(key.as_bytes()))].unwrap();
        let mut conn = AdminConn::connect(&topology.nodes[owner].addr(), Duration::from_secs(5))
            .await
            .unwrap();
        conn.query_ok(&["SET", &key, &format!("value:{i}")]).await.unwrap();
    }
}

/// How many of the `count` keys read back with their value, each from its slot's master now.
async fn readable_keys(seed: &str, count: usize) -> usize {
    let topology = cluster::ops::topology_of(seed).await.unwrap();
    let owners = topology.slot_owners();
    let mut readable = 0;
    for i in 0..count {
        let key = format!("key:{i}");
        let owner = owners[usize::from(cluster::key_slot(key.as_bytes()))].unwrap();
        let mut conn = AdminConn::connect(&topology.nodes[owner].addr(), Duration::from_secs(5))
            .await
            .unwrap();
        if conn.query_text(&["GET", &key]).await.ok().as_deref() == Some(&format!("value:{i}")) {
            readable += 1;
        }
    }
    readable
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_whose_replica_is_gone_for_good_gets_a_new_node_as_replica() {
    let cluster = TestCluster::start(3, 1).await;
    let _stop_added = StopAdded(cluster.local_dir().root.clone());
    let seed = cluster.addrs()[0].clone();
    write_keys(&seed, 300).await;
    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let lost = topology.nodes.iter().find(|n| !n.is_master()).expect("a replica").clone();
    let master_id = lost.master_id.clone().unwrap();
    let master = topology.by_id(&master_id).unwrap().addr();
    // The lost replica's machine is gone: the supervisor may not start it again.
    let mut supervisor = TestSupervisor::new(cluster.local_dir());
    supervisor.lost.push(lost.port);
    let monitor =
        start_monitor_with(&cluster, Mode::Auto, monitor::Config::default(), supervisor).await;
    wait_until("the first poll is published", || {
        !monitor.state.lock().unwrap().model.nodes.is_empty()
    })
    .await;

    cluster.kill9(lost.port);
    std::fs::remove_dir_all(cluster.local_dir().node_dir(lost.port)).unwrap();
    let killed = Instant::now();
    wait_until("the new replica is verified", || has_event(&monitor, "healed: start a new node"))
        .await;
    println!(
        "replica lost -> new node replicates its master: {:.1} s",
        killed.elapsed().as_secs_f64()
    );

    let dir = deploy::local::open(&cluster.local_dir().root).unwrap();
    let added = *dir.manifest.ports.last().unwrap();
    assert!(!cluster.ports().contains(&added), "a new port in the dir's manifest");
    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let new = topology.by_addr(&format!("127.0.0.1:{added}")).expect("the new node is in");
    assert_eq!(new.master_id.as_deref(), Some(master_id.as_str()), "it replicates {master}");
    // In sync: the master has nothing the new replica lacks.
    let mut conn =
        AdminConn::connect(&format!("127.0.0.1:{added}"), Duration::from_secs(5)).await.unwrap();
    let info =
        cluster::admin::parse_info(&conn.query_text(&["INFO", "replication"]).await.unwrap());
    assert_eq!(cluster::admin::info_field(&info, "master_link_status"), Some("up"), "{info:?}");
    let mut to_master = AdminConn::connect(&master, Duration::from_secs(5)).await.unwrap();
    let mine = to_master.raw(&["DBSIZE"]).await.unwrap();
    assert_eq!(conn.raw(&["DBSIZE"]).await.unwrap(), mine, "the replica has every key");
    assert_eq!(readable_keys(&seed, 300).await, 300);
    // The lost node was never started again.
    assert!(cluster.pid(lost.port).is_none());
    monitor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uneven_slots_raise_shard_imbalance_and_are_rebalanced_by_the_scaling_planner() {
    use cluster::reshard::{MasterLoad, Sources, plan_reshard};
    let cluster = TestCluster::start(3, 0).await;
    let seed = cluster.addrs()[0].clone();
    write_keys(&seed, 3000).await;
    // Made uneven with the scaling planner and mover: 3000 slots from one master to another.
    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let masters = MasterLoad::from_topology(&topology);
    let uneven =
        plan_reshard(&masters, &Sources::Ids(vec![masters[1].id.clone()]), &masters[0].id, 3000)
            .unwrap();
    let addrs: Vec<String> = masters.iter().map(|m| m.addr.clone()).collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    cluster::mover::execute(&uneven, &addrs, &Default::default(), Arc::new(|_| {}), stop)
        .await
        .unwrap();
    cluster::ops::wait_healthy(&addrs, Duration::from_secs(30)).await.unwrap();
    let uneven_topology = cluster::ops::topology_of(&seed).await.unwrap();
    let gained = uneven_topology.by_id(&masters[0].id).unwrap().slot_count();
    assert_eq!(gained, masters[0].slots.len() as u64 + 3000);

    // The imbalance rule fires at once (its `for` is 5 minutes by default).
    let mut config = monitor::Config::default();
    config.rules.insert(
        "shard_imbalance_keys".into(),
        monitor::config::RuleOverride { for_: Some(Duration::ZERO), ..Default::default() },
    );
    // Dry-run first: the plan is printed, nothing moves.
    let dry = start_monitor_with(
        &cluster,
        Mode::DryRun,
        config.clone(),
        TestSupervisor::new(cluster.local_dir()),
    )
    .await;
    wait_until("the dry-run plan is printed", || {
        has_event(&dry, "heal (dry-run, not applied): rebalance")
    })
    .await;
    let line = dry
        .events()
        .into_iter()
        .find(|e| e.text.contains("dry-run, not applied): rebalance"))
        .unwrap();
    println!("{}", line.text);
    // About the 3000 slots moved away (one more or less as the shares round).
    assert!(line.text.contains(&format!("from {} to", masters[0].addr)), "{}", line.text);
    dry.stop().await;
    let after_dry = cluster::ops::topology_of(&seed).await.unwrap();
    assert_eq!(slot_counts(&after_dry), slot_counts(&uneven_topology), "dry-run moved nothing");

    let monitor =
        start_monitor_with(&cluster, Mode::Auto, config, TestSupervisor::new(cluster.local_dir()))
            .await;
    let started = Instant::now();
    wait_until("the rebalance is verified", || has_event(&monitor, "healed: rebalance")).await;
    println!("imbalance -> rebalanced: {:.1} s", started.elapsed().as_secs_f64());
    monitor.stop().await;

    let topology = cluster::ops::topology_of(&seed).await.unwrap();
    let counts: Vec<u64> = topology.masters().map(|m| m.slot_count()).collect();
    assert!(counts.iter().all(|&c| (5461..=5462).contains(&c)), "{counts:?}");
    let views = cluster::ops::gather_views(&seed).await.unwrap();
    let report = cluster::check::check(&views, 0);
    assert!(report.ok, "check: {:?}", report.problems);
    assert_eq!(readable_keys(&seed, 3000).await, 3000, "every key readable after the moves");
}
