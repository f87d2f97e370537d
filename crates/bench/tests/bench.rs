//! Short benchmarks against a real 3+1 cluster, through the proxy and directly with slot
//! routing: every file is written and reads back, the raw batches add up to the totals, a
//! healthy cluster gives no error, and a value changed behind the benchmark's back is caught.

use std::io::{Read, Write};
use std::time::Duration;

use bench::engine::{KeyPattern, Workload};
use bench::results::{RunMeta, RunResults};
use deploy::testing::TestCluster;

fn workload(target: &str, cluster: bool) -> Workload {
    Workload {
        target: target.to_string(),
        cluster,
        client_id: 7,
        sizes: vec![16, 4096, 64 * 1024],
        duration: None,
        requests: Some(3_000),
        connections: 8,
        pipeline: 4,
        ratio: None,
        keyspace: None,
        key_pattern: KeyPattern::Sequential,
        max_data: 256 << 20,
        keep_keys: false,
        stop: Default::default(),
        rate: None,
    }
}

fn meta(w: &Workload) -> RunMeta {
    RunMeta {
        client_ids: vec![w.client_id],
        target: w.target.clone(),
        mode: if w.cluster { "cluster".into() } else { "proxy".into() },
        topology: Vec::new(),
        redis_version: "test".into(),
        redkeep_version: "test".into(),
        command_line: "test".into(),
        started_at: "now".into(),
        connections: w.connections,
        pipeline: w.pipeline,
        workload: "set-then-get".into(),
        key_pattern: "a new key per SET".into(),
        rate: None,
    }
}

async fn start_proxy(cluster: &TestCluster) -> proxy::ProxyHandle {
    let mut config = proxy::ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
    proxy::start(config).await.expect("proxy starts")
}

/// Runs the workload and checks what every healthy run must show.
async fn run_and_check_files(w: &Workload) {
    let phases = bench::engine::run(w, |_, _, _, _| {}).await.expect("the benchmark runs");
    let results = RunResults { meta: meta(w), phases };
    assert_eq!(results.phases.len(), 2 * w.sizes.len(), "a SET and a GET phase per size");
    for phase in &results.phases {
        assert_eq!(phase.requests, 3_000, "{} {}", phase.op, phase.size);
        assert_eq!(
            phase.errors, 0,
            "a healthy cluster gives no error: {} {}",
            phase.op, phase.size
        );
        let in_batches: u64 = phase.batches.iter().map(|b| b.last_op - b.first_op + 1).sum();
        assert_eq!(in_batches, phase.requests, "the raw batches add up to the total");
        assert!(phase.batches.iter().all(|b| b.end >= b.start));
        assert!(phase.latency.p50 > 0 && phase.latency.p50 <= phase.latency.p99);
    }

    let dir = tempfile::tempdir().unwrap();
    let written = bench::files::write_all(&results, dir.path()).unwrap();
    for name in [
        "results-set-client7.txt",
        "results-get-client7.txt",
        "results-raw-set-client7.txt",
        "results-raw-get-client7.txt",
        "results-client7.json",
        "results-client7.csv",
    ] {
        assert!(written.contains(&dir.path().join(name)), "{name} written: {written:?}");
    }
    let json = std::fs::read_to_string(dir.path().join("results-client7.json")).unwrap();
    let back: RunResults = serde_json::from_str(&json).unwrap();
    // Floats may differ in their last digit after JSON; everything counted must be equal.
    assert_eq!(back.meta, results.meta);
    for (b, r) in back.phases.iter().zip(&results.phases) {
        assert_eq!((&b.op, b.size, b.requests, b.errors), (&r.op, r.size, r.requests, r.errors));
        assert_eq!(
            (b.latency.p50, b.latency.p99, &b.latency.histogram),
            (r.latency.p50, r.latency.p99, &r.latency.histogram)
        );
        assert_eq!(b.batches.len(), r.batches.len());
        assert!((b.seconds - r.seconds).abs() < 1e-9);
    }
    let table = std::fs::read_to_string(dir.path().join("results-get-client7.txt")).unwrap();
    assert_eq!(table.lines().filter(|l| !l.starts_with('#')).count(), 1 + w.sizes.len(), "{table}");
    let raw = std::fs::read_to_string(dir.path().join("results-raw-set-client7.txt")).unwrap();
    let ops: u64 = raw
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("size"))
        .map(|l| {
            let f: Vec<u64> = l.split(' ').take(3).map(|x| x.parse().unwrap()).collect();
            f[2] - f[1] + 1
        })
        .sum();
    assert_eq!(ops, 3_000 * w.sizes.len() as u64, "raw SET batches add up");
    let csv = std::fs::read_to_string(dir.path().join("results-client7.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + results.phases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_runs_through_the_proxy_and_directly_write_every_file() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster).await;
    run_and_check_files(&workload(&proxy.local_addr.to_string(), false)).await;
    run_and_check_files(&workload(&cluster.addrs()[0], true)).await;
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_changed_behind_the_benchmarks_back_is_an_error() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster).await;
    let mut w = workload(&proxy.local_addr.to_string(), false);
    w.sizes = vec![64];
    w.requests = Some(2_000);
    let addr = proxy.local_addr;
    let tampered = 5u64;
    let phases = bench::engine::run(&w, |op, size, done, _| {
        if op == "GET" && done.is_none() {
            // Before any GET: overwrite the last keys the SET phase wrote.
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            for n in 2_000 - tampered..2_000 {
                let key = bench::values::key(7, size, n);
                let mut out = Vec::new();
                resp::write::command(&mut out, &[b"SET".as_slice(), key.as_bytes(), b"tampered"]);
                conn.write_all(&out).unwrap();
                let mut reply = [0u8; 5];
                conn.read_exact(&mut reply).unwrap();
                assert_eq!(&reply, b"+OK\r\n");
            }
        }
    })
    .await
    .unwrap();
    let get = phases.iter().find(|p| p.op == "GET").unwrap();
    assert_eq!(get.wrong, tampered, "each tampered key read once is a wrong value");
    assert_eq!(get.errors, tampered);
    assert_eq!(phases.iter().find(|p| p.op == "SET").unwrap().errors, 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_and_keys_are_cleaned_up() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster).await;
    let target = proxy.local_addr.to_string();
    let dbsize = |addr: String| async move {
        let mut conn =
            cluster::admin::AdminConn::connect(&addr, Duration::from_secs(2)).await.unwrap();
        conn.query_int(&["DBSIZE"]).await.unwrap()
    };
    // 100 values' worth of data for 64 B values: 2,000 SETs overwrite 100 keys.
    let mut w = workload(&target, false);
    w.sizes = vec![64];
    w.requests = Some(2_000);
    w.max_data = 64 * 100;
    w.keep_keys = true;
    let phases = bench::engine::run(&w, |_, _, _, _| {}).await.unwrap();
    assert!(phases.iter().all(|p| p.errors == 0), "GET read back only the 100 keys written");
    assert_eq!(dbsize(target.clone()).await, 100, "no more keys than --max-data allows");
    // By default the keys of each size are unlinked after its phases.
    w.keep_keys = false;
    w.client_id = 8;
    bench::engine::run(&w, |_, _, _, _| {}).await.unwrap();
    assert_eq!(dbsize(target.clone()).await, 100, "only the kept run's keys remain");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_open_loop_and_stopped_runs_count_what_they_did() {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster).await;
    let target = proxy.local_addr.to_string();

    // Mixed 1:3 over a small keyspace: GETs of keys not written yet are missing, not errors.
    let mut w = workload(&target, false);
    w.sizes = vec![128];
    w.ratio = Some((1, 3));
    w.keyspace = Some(500);
    w.key_pattern = KeyPattern::Random;
    let phases = bench::engine::run(&w, |_, _, _, _| {}).await.unwrap();
    assert_eq!(phases.len(), 1);
    assert_eq!((phases[0].op.as_str(), phases[0].requests, phases[0].errors), ("MIXED", 3_000, 0));

    // Open loop at a fixed rate: every request is made and measured.
    let mut w = workload(&target, false);
    w.sizes = vec![16];
    w.requests = Some(600);
    w.rate = Some(3_000);
    let phases = bench::engine::run(&w, |_, _, _, _| {}).await.unwrap();
    assert!(phases.iter().all(|p| p.requests == 600 && p.errors == 0 && p.latency.p50 > 0));

    // Stopped (as by Ctrl-C) when the first GET phase starts: no further size runs.
    let w = workload(&target, false);
    let stop = w.stop.clone();
    let phases = bench::engine::run(&w, |op, _, done, _| {
        if op == "GET" && done.is_none() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .await
    .unwrap();
    w.stop.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(phases.len(), 2, "the first size's SET and its (stopped) GET only");
    assert_eq!(phases[1].errors, 0);

    // Two clients' results merge into totals; compare prints a row per phase.
    let a = bench::results::RunResults { meta: meta(&w), phases: phases.clone() };
    let mut b = a.clone();
    b.meta.client_ids = vec![8];
    let merged = bench::merge::merge(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(merged.meta.client_ids, [7, 8]);
    assert_eq!(merged.phases[0].requests, 2 * a.phases[0].requests);
    assert_eq!(merged.phases[0].latency.p99, a.phases[0].latency.p99, "same histograms added");
    let table = bench::merge::compare(&a, &b);
    assert_eq!(table.lines().count(), 1 + a.phases.len(), "{table}");
    assert!(table.lines().nth(1).unwrap().contains("1.00"), "{table}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operations_are_errors_not_throughput() {
    // A Redis that refuses every SET: out of memory, and no eviction.
    let server = deploy::testing::StandaloneServer::start();
    let mut conn =
        cluster::admin::AdminConn::connect(&server.addr(), Duration::from_secs(2)).await.unwrap();
    conn.query_ok(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await.unwrap();
    conn.query_ok(&["CONFIG", "SET", "maxmemory", "1"]).await.unwrap();
    let mut w = workload(&server.addr(), false);
    w.sizes = vec![64];
    w.requests = Some(500);
    let phases = bench::engine::run(&w, |_, _, _, _| {}).await.unwrap();
    let set = phases.iter().find(|p| p.op == "SET").unwrap();
    assert_eq!((set.requests, set.errors), (500, 500), "every SET was refused");
    assert_eq!(set.ops_per_sec(), 0.0, "refused operations are not throughput");
    assert_eq!(set.latency.histogram, Vec::new(), "nor latency of served requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_ends_the_run_before_it_starts() {
    let target = format!("127.0.0.1:{}", deploy::ports::free_port());
    let mut phases_started = 0;
    let w = workload(&target, false);
    let result = bench::engine::run(&w, |_, _, _, _| phases_started += 1).await;
    let Err(error) = result else { panic!("a run against nothing did not fail") };
    assert!(error.contains(&target) && error.contains("cannot connect"), "{error}");
    assert_eq!(phases_started, 0, "no phase ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_version_behind_a_proxy_is_recorded() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster).await;
    let mut conn = cluster::admin::AdminConn::connect(&cluster.addrs()[0], Duration::from_secs(2))
        .await
        .unwrap();
    let info = conn.info("server").await.unwrap();
    let version = cluster::admin::info_field(&info, "redis_version").unwrap().to_string();
    let (mode, seen, _) = bench::describe_target(&proxy.local_addr.to_string(), None).await;
    assert_eq!((mode.as_str(), seen.as_str()), ("proxy", version.as_str()));
    proxy.shutdown().await;
}
