//! The stats server in front of a real proxy and a real 3+3 test cluster: `/metrics` and the
//! JSON API over raw HTTP, and the `/stats` page as a headless Chromium renders it (with its
//! script running).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deploy::testing::TestCluster;
use proxy::{ProxyConfig, ProxyHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A 3+1 test cluster, a proxy in front of it and the stats server, all on free ports.
async fn start_all() -> (TestCluster, ProxyHandle, SocketAddr) {
    start_with(|_| {}).await
}

/// [`start_all`] with the proxy's settings changed by `configure`.
async fn start_with(
    configure: impl FnOnce(&mut ProxyConfig),
) -> (TestCluster, ProxyHandle, SocketAddr) {
    let cluster = TestCluster::start(3, 1).await;
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
    configure(&mut config);
    let handle = proxy::start(config).await.expect("proxy starts");
    let stats = web::serve(
        handle.shared.clone(),
        handle.local_addr.to_string(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("stats server starts");
    (cluster, handle, stats.local_addr)
}

/// Sends a few commands through the proxy and checks their replies.
async fn some_traffic(proxy: SocketAddr) {
    let mut stream = TcpStream::connect(proxy).await.expect("connects to the proxy");
    let mut expected = Vec::new();
    for i in 0..10 {
        let (key, value) = (format!("key:{i}"), format!("v{i}"));
        let set = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
        stream.write_all(set.as_bytes()).await.unwrap();
        stream.write_all(get.as_bytes()).await.unwrap();
        expected.extend_from_slice(b"+OK\r\n");
        expected.extend_from_slice(format!("${}\r\n{value}\r\n", value.len()).as_bytes());
    }
    let mut got = vec![0; expected.len()];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut got))
        .await
        .expect("replies within 30 s")
        .expect("replies");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected));
}

/// `GET path` as a raw HTTP/1.1 request: status, headers (lower-cased names) and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connects to the stats server");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an HTTP answer within 10 s");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let mut lines = head.lines();
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// Sends `requests` (RESP) on one connection and reads `replies` bytes back.
async fn exchange(proxy: SocketAddr, requests: &str, replies: usize) -> String {
    let mut stream = TcpStream::connect(proxy).await.expect("connects to the proxy");
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut got = vec![0; replies];
    tokio::time::timeout(Duration::from_secs(30), stream.read_exact(&mut got))
        .await
        .expect("replies within 30 s")
        .expect("replies");
    String::from_utf8(got).unwrap()
}

/// Sends `requests` (RESP) on one connection and reads replies until `lines` CRLF-ended lines
/// came back.
async fn exchange_lines(proxy: SocketAddr, requests: &str, lines: usize) -> String {
    let mut stream = TcpStream::connect(proxy).await.expect("connects to the proxy");
    stream.write_all(requests.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let read = async {
        while got.windows(2).filter(|w| w == b"\r\n").count() < lines {
            let mut buf = [0; 4096];
            let n = stream.read(&mut buf).await.expect("replies");
            assert!(n > 0, "the proxy closed the connection: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("replies within 30 s");
    String::from_utf8(got).unwrap()
}

fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out
}

async fn stats_json(stats: SocketAddr) -> serde_json::Value {
    let (status, _, body) = http_get(stats, "/api/v1/stats").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON stats")
}

/// The command row `name` of a stats snapshot.
fn command<'a>(snap: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    snap["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no command row {name}: {snap:#}"))
}

/// The value of the sample `series` (name and labels, exactly) in a `/metrics` text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Waits (15 s at most) until the health checker has found all six nodes up.
async fn wait_all_up(stats: SocketAddr) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = http_get(stats, "/api/v1/nodes").await;
        assert_eq!(status, 200, "{body}");
        let nodes: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON nodes");
        if nodes.len() == 6 && nodes.iter().all(|n| n["state"] == "up") {
            return nodes;
        }
        assert!(Instant::now() < deadline, "not all six nodes up after 15 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_json_api_show_the_cluster() {
    let (cluster, handle, stats) = start_all().await;
    some_traffic(handle.local_addr).await;
    wait_all_up(stats).await;

    let (status, headers, metrics) = http_get(stats, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let commands: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("redkeep_proxy_commands_total "))
        .expect("redkeep_proxy_commands_total in /metrics")
        .parse()
        .unwrap();
    assert!(commands >= 20, "{commands} commands counted, 20 sent");
    let up: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("redkeep_proxy_node_up{")).collect();
    assert_eq!(up.len(), 6, "{up:#?}");
    assert!(up.iter().all(|l| l.ends_with("} 1")), "{up:#?}");
    for addr in cluster.addrs() {
        assert!(up.iter().any(|l| l.contains(&format!("node=\"{addr}\""))), "{addr}: {up:#?}");
    }
    assert!(metrics.contains("redkeep_proxy_command_calls_total{command=\"set\"} 10"), "{metrics}");
    assert!(metrics.contains("redkeep_proxy_command_latency_seconds_count{command=\"get\"} 10"));

    let (status, headers, body) = http_get(stats, "/api/v1/stats").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").unwrap().starts_with("application/json"));
    let snap: serde_json::Value = serde_json::from_str(&body).expect("JSON stats");
    let nodes = snap["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "master").count(), 3);
    assert_eq!(snap["cluster"]["state"], "ok");
    assert_eq!(snap["cluster"]["masters"], 3);
    assert_eq!(snap["proxy"]["listen"], handle.local_addr.to_string());

    let (status, headers, _) = http_get(stats, "/").await;
    assert!((300..400).contains(&status), "{status}");
    assert_eq!(header(&headers, "location"), Some("/stats"));

    let (status, headers, page) = http_get(stats, "/stats").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").unwrap().starts_with("text/html"));
    assert_eq!(page.matches("class=\"node\"").count(), 6);

    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_page_renders_in_a_headless_browser() {
    let chromium = chromium_path();
    let (cluster, handle, stats) = start_all().await;
    some_traffic(handle.local_addr).await;
    wait_all_up(stats).await;
    // Rates need two samples of the counters; the browser's virtual time does not wait for
    // the proxy's real-time sampler, so the page is loaded once the rates exist.
    wait_command_rates(stats).await;

    let url = format!("http://{stats}/stats");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&chromium, &url))
        .await
        .expect("the chromium task");
    handle.shutdown().await;
    let dom = dom.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(dom.matches("class=\"node\"").count(), 6, "{dom}");
    // Each row as the browser holds it after the script's refreshes: its address and `up`.
    let rows: Vec<&str> = dom
        .split("<tr class=\"node\"")
        .skip(1)
        .map(|rest| rest.split("</tr>").next().unwrap())
        .collect();
    assert_eq!(rows.len(), 6, "{dom}");
    for addr in cluster.addrs() {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("data-addr=\"{addr}\"")))
            .unwrap_or_else(|| panic!("no row for {addr} in\n{dom}"));
        assert!(row.contains(&format!(">{addr}<")), "{row}");
        assert!(row.contains(">up<"), "{addr} is not up on the page: {row}");
    }
    assert!(dom.contains(">master<") && dom.contains(">replica<"));
    // The script ran and refreshed the page from the server (the virtual time budget covers
    // two 2 s refreshes).
    assert!(dom.contains(">updated "), "the page did not refresh itself:\n{dom}");

    // The page's structure, compared with what an operator should find on it.
    let structure = PageStructure::of(&dom);
    assert_eq!(
        structure,
        PageStructure {
            cards: ["Proxy", "Clients", "Traffic", "Backends", "Cluster"]
                .map(String::from)
                .to_vec(),
            card_rates: 4,
            node_rows: 6,
            node_rows_with_memory_bar: 6,
            node_rows_with_keys: 6,
            replica_rows_with_lag: 3,
            command_rows_with_rate: 2,
            estimate_headers: 4,
            alarms: 0,
            says_no_alarms: true,
        },
        "{dom}"
    );
}

/// Waits until every command row of `GET /api/v1/stats` has a rate.
async fn wait_command_rates(stats: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, body) = http_get(stats, "/api/v1/stats").await;
        assert_eq!(status, 200, "{body}");
        let snapshot: serde_json::Value = serde_json::from_str(&body).expect("JSON stats");
        let commands = snapshot["commands"].as_array().expect("a commands list");
        if !commands.is_empty() && commands.iter().all(|c| c["ops_per_sec"].is_number()) {
            return;
        }
        assert!(Instant::now() < deadline, "no command rates after 15 s: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a stats page holds, element by element (not how it looks).
#[derive(Debug, PartialEq)]
struct PageStructure {
    /// The titles of the summary cards, in order.
    cards: Vec<String>,
    /// Per-second rates in the cards (`<span class="rate">`).
    card_rates: usize,
    node_rows: usize,
    node_rows_with_memory_bar: usize,
    /// Rows whose keys cell holds a number.
    node_rows_with_keys: usize,
    /// Replica rows whose replication lag cell holds a value.
    replica_rows_with_lag: usize,
    command_rows_with_rate: usize,
    /// Column headers marked as estimates (p50/p99 of nodes and of commands).
    estimate_headers: usize,
    alarms: usize,
    says_no_alarms: bool,
}

impl PageStructure {
    fn of(dom: &str) -> PageStructure {
        let between = |text: &str, start: &str, end: &str| -> Vec<String> {
            text.split(start)
                .skip(1)
                .filter_map(|rest| Some(rest.split_once(end)?.0.to_string()))
                .collect()
        };
        let summary = between(dom, "<section id=\"summary\">", "</section>").concat();
        let nodes = between(dom, "<tr class=\"node\"", "</tr>");
        let commands = between(dom, "<tr class=\"command\">", "</tr>");
        let cell =
            |row: &str, class: &str| between(row, &format!("<td class=\"{class}\">"), "</td>");
        PageStructure {
            cards: between(&summary, "<div class=\"card\"><h3>", "</h3>"),
            card_rates: summary.matches("<span class=\"rate\">").count(),
            node_rows: nodes.len(),
            node_rows_with_memory_bar: nodes
                .iter()
                .filter(|r| r.contains("<div class=\"mem-bar"))
                .count(),
            node_rows_with_keys: nodes
                .iter()
                .filter(|r| cell(r, "num keys").first().is_some_and(|k| k.parse::<u64>().is_ok()))
                .count(),
            replica_rows_with_lag: nodes
                .iter()
                .filter(|r| r.contains("<td>replica</td>"))
                .filter(|r| cell(r, "lag").first().is_some_and(|l| l.contains(" B")))
                .count(),
            command_rows_with_rate: commands
                .iter()
                .filter(|r| cell(r, "num rate").first().is_some_and(|v| v.ends_with("/s")))
                .count(),
            estimate_headers: dom.matches("<th class=\"num est\"").count(),
            alarms: dom.matches("<li class=\"alarm").count(),
            says_no_alarms: dom.contains("<p class=\"no-alarms\">No alarms.</p>"),
        }
    }
}

/// The chromium binary; the test fails (it never skips) when there is none.
fn chromium_path() -> PathBuf {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "this test renders the stats page in a headless Chromium, and no `chromium` was \
             found on PATH: install it (`apt-get install chromium`)"
        )
    })
}

/// Loads `url` in a headless Chromium, lets its scripts run for 5 s of virtual time, and
/// returns the DOM. Killed after 60 s of real time; its profile dir is removed afterwards.
fn dump_dom(chromium: &std::path::Path, url: &str) -> Result<String, String> {
    let profile = std::env::temp_dir().join(format!(
        "redkeep-web-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
    let result = run_chromium(chromium, &profile, url);
    let _ = std::fs::remove_dir_all(&profile);
    result
}

fn run_chromium(
    chromium: &std::path::Path,
    profile: &std::path::Path,
    url: &str,
) -> Result<String, String> {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {}: {e} (install it: `apt-get install chromium`)",
                chromium.display()
            )
        })?;
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let (dom, log) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(s) if s.success() && dom.contains("</html>") => Ok(dom),
        Some(s) => Err(format!("chromium exited with {s} without a page:\n{dom}\n{log}")),
        None => Err(format!("chromium did not finish within 60 s:\n{log}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_agree_between_the_cards_and_the_command_rows() {
    let (_cluster, handle, stats) = start_all().await;
    // A node's error (WRONGTYPE), a command the proxy refuses (SELECT), an unknown command.
    let requests = [
        resp(&["SET", "agree:k", "v"]),
        resp(&["LPUSH", "agree:k", "x"]),
        resp(&["SELECT", "1"]),
        resp(&["NOSUCHCOMMAND", "a"]),
        resp(&["GET", "agree:k"]),
    ]
    .concat();
    let got = exchange_lines(handle.local_addr, &requests, 6).await;
    let lines: Vec<&str> = got.split("\r\n").collect();
    assert_eq!(
        lines[..3],
        [
            "+OK",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
            "-ERR SELECT is not allowed in cluster mode"
        ]
    );
    assert!(lines[3].starts_with("-ERR unknown command"), "{got}");
    assert_eq!(lines[4..6], ["$1", "v"]);
    let snap = stats_json(stats).await;
    assert_eq!(command(&snap, "lpush")["errors"], 1, "a node's error reply");
    assert_eq!(command(&snap, "select")["errors"], 1, "a command the proxy refused");
    assert_eq!(command(&snap, "set")["errors"], 0);
    let unknown = command(&snap, "(unknown)");
    assert_eq!((&unknown["calls"], &unknown["errors"]), (&1.into(), &1.into()));
    let rows: u64 =
        snap["commands"].as_array().unwrap().iter().map(|c| c["errors"].as_u64().unwrap()).sum();
    assert_eq!(rows, 3);
    assert_eq!(snap["proxy"]["errors"], rows, "the Traffic card's errors are the rows' sum");
    // The same in /metrics.
    let (_, _, metrics) = http_get(stats, "/metrics").await;
    assert_eq!(sample(&metrics, "redkeep_proxy_errors_total"), Some(3.0), "{metrics}");
    assert_eq!(
        sample(&metrics, r#"redkeep_proxy_command_errors_total{command="select"}"#),
        Some(1.0)
    );
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_the_proxy_followed_is_not_an_error_of_the_command() {
    // No periodic refresh: the proxy meets the slot's move through a MOVED.
    let (cluster, handle, stats) =
        start_with(|c| c.refresh_interval = Duration::from_secs(3600)).await;
    let key = "moved:key";
    let slot = cluster::key_slot(key.as_bytes());
    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    let owner = topology.masters().find(|m| m.slots.iter().any(|r| r.contains(slot))).unwrap();
    let target = topology.masters().find(|m| m.id != owner.id).unwrap();
    // The slot is empty (nothing was written): moving it is SETSLOT NODE on every master.
    let s = slot.to_string();
    for node in
        [target.addr(), owner.addr()].into_iter().chain(topology.masters().map(|m| m.addr()))
    {
        let mut conn =
            cluster::admin::AdminConn::connect(&node, Duration::from_secs(2)).await.unwrap();
        conn.query_ok(&["CLUSTER", "SETSLOT", &s, "NODE", &target.id]).await.unwrap();
    }
    let got = exchange(handle.local_addr, &resp(&["GET", key]), 5).await;
    assert_eq!(got, "$-1\r\n");
    let snap = stats_json(stats).await;
    assert!(snap["proxy"]["moved"].as_u64().unwrap() >= 1, "the GET met a MOVED: {snap:#}");
    assert_eq!(command(&snap, "get")["errors"], 0, "the client got no error");
    assert_eq!(command(&snap, "get")["calls"], 1);
    assert_eq!(
        command(&snap, "get")["latency"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum::<u64>(),
        1,
        "one latency per reply to the client"
    );
    assert_eq!(snap["proxy"]["errors"], 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_second_rates_of_commands_nodes_and_bytes() {
    let (_cluster, handle, stats) = start_all().await;
    // Traffic until the sampler's window shows it (it samples once a second).
    let deadline = Instant::now() + Duration::from_secs(20);
    let snap = loop {
        some_traffic(handle.local_addr).await;
        let snap = stats_json(stats).await;
        let get_rate = snap["commands"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "get")
            .and_then(|c| c["ops_per_sec"].as_f64());
        if get_rate.is_some_and(|r| r > 0.0) {
            break snap;
        }
        assert!(Instant::now() < deadline, "no GET rate after 20 s: {snap:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rates = &snap["proxy"]["rates"];
    assert!(rates["ops_per_sec"].as_f64().unwrap() > 0.0, "{rates}");
    assert!(rates["bytes_in_per_sec"].as_f64().unwrap() > 0.0, "{rates}");
    assert!(rates["bytes_out_per_sec"].as_f64().unwrap() > 0.0, "{rates}");
    assert!(rates["window_secs"].as_f64().unwrap() > 0.0);
    // Some master served the traffic: its proxy-side rate shows it.
    let nodes = snap["nodes"].as_array().unwrap();
    assert!(nodes.iter().any(|n| n["ops_per_sec"].as_f64().is_some_and(|r| r > 0.0)), "{snap:#}");
    // Bytes: each SET/GET pair of some_traffic is more than 40 bytes each way.
    assert!(snap["proxy"]["bytes_in"].as_u64().unwrap() >= 10 * 40);
    assert!(snap["proxy"]["bytes_out"].as_u64().unwrap() >= 10 * 10);
    assert!(snap["proxy"]["clients_peak"].as_u64().unwrap() >= 1);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_gauges_match_the_nodes_and_redis_up_drops_for_a_killed_node() {
    let (cluster, handle, stats) = start_all().await;
    some_traffic(handle.local_addr).await;
    wait_all_up(stats).await;
    // Each node's redis_db_keys equals its DBSIZE (replicas once they have the writes; the
    // checker reads INFO once a second).
    // Replication is asynchronous: the replicas' DBSIZE is read once they have the writes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let dbsize = loop {
        let mut dbsize = std::collections::HashMap::new();
        for addr in cluster.addrs() {
            let mut conn =
                cluster::admin::AdminConn::connect(&addr, Duration::from_secs(2)).await.unwrap();
            dbsize.insert(addr, conn.query_int(&["DBSIZE"]).await.unwrap() as f64);
        }
        if dbsize.values().sum::<f64>() == 20.0 {
            break dbsize;
        }
        assert!(
            Instant::now() < deadline,
            "not 10 keys, each on a master and its replica, after 20 s: {dbsize:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, _, metrics) = http_get(stats, "/metrics").await;
        let keys =
            |addr: &str| sample(&metrics, &format!(r#"redis_db_keys{{node="{addr}",db="db0"}}"#));
        if dbsize.iter().all(|(addr, n)| keys(addr).unwrap_or(0.0) == *n) {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "redis_db_keys is not DBSIZE after 20 s: {dbsize:?}\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&metrics, "redis_cluster_state"), Some(1.0));
    let info: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("redis_instance_info{")).collect();
    assert_eq!(info.iter().filter(|l| l.contains("role=\"master\"")).count(), 3, "{info:#?}");
    assert_eq!(info.iter().filter(|l| l.contains("role=\"slave\"")).count(), 3, "{info:#?}");
    let snap = stats_json(stats).await;
    for n in snap["nodes"].as_array().unwrap() {
        let addr = n["addr"].as_str().unwrap();
        let node = format!(r#"{{node="{addr}"}}"#);
        assert_eq!(sample(&metrics, &format!("redis_up{node}")), Some(1.0));
        let used = sample(&metrics, &format!("redis_memory_used_bytes{node}")).unwrap();
        assert!(used > 0.0, "{addr}");
        assert_eq!(
            sample(&metrics, &format!("redis_memory_max_bytes{node}")),
            Some(0.0),
            "test nodes have no maxmemory"
        );
        assert_eq!(sample(&metrics, &format!("redis_evicted_keys_total{node}")), Some(0.0));
        assert!(sample(&metrics, &format!("redis_connected_clients{node}")).unwrap() >= 1.0);
        assert!(sample(&metrics, &format!("redis_master_repl_offset{node}")).is_some());
        if n["role"] == "replica" {
            let master = n["master"].as_str().unwrap();
            let lag = format!(
                r#"redkeep_proxy_node_replication_lag_bytes{{node="{addr}",master="{master}"}}"#
            );
            assert!(sample(&metrics, &lag).is_some(), "{lag}\n{metrics}");
            let (ip, port) = addr.rsplit_once(':').unwrap();
            let listed = format!(
                r#"redis_connected_slave_lag_seconds{{node="{master}",slave_ip="{ip}",slave_port="{port}",slave_state="online"}}"#
            );
            assert!(sample(&metrics, &listed).is_some(), "{listed}\n{metrics}");
        }
    }

    // A replica killed: redis_up 0 and "down since" once the checker has seen it.
    let replica =
        snap["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "replica").unwrap();
    let addr = replica["addr"].as_str().unwrap().to_string();
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let killed_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as f64;
    cluster.kill9(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, _, metrics) = http_get(stats, "/metrics").await;
        if sample(&metrics, &format!(r#"redis_up{{node="{addr}"}}"#)) == Some(0.0) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "redis_up of the killed {addr} is not 0 after 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let node = format!(r#"{{node="{addr}"}}"#);
    let down_since =
        sample(&metrics, &format!("redkeep_proxy_node_down_since_timestamp_seconds{node}"))
            .unwrap();
    assert!(
        down_since * 1e3 >= killed_at_ms - 1.0,
        "down since {down_since}, killed at {killed_at_ms} ms"
    );
    let last_up =
        sample(&metrics, &format!("redkeep_proxy_node_last_up_timestamp_seconds{node}")).unwrap();
    assert!(last_up <= down_since);
    assert!(
        sample(&metrics, &format!("redis_memory_used_bytes{node}")).is_none(),
        "no stale figures of a node that is down"
    );
    // The page raises an alarm for it, with how long it has been down.
    let (_, _, page) = http_get(stats, "/stats").await;
    let alarm = page
        .split("<li class=\"alarm bad\">")
        .nth(1)
        .unwrap_or_else(|| panic!("no alarm on the page:\n{page}"));
    assert!(alarm.starts_with(&format!("{addr} (replica) is down for ")), "{alarm}");
    handle.shutdown().await;
}
