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
    let cluster = TestCluster::start(3, 1).await;
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
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
    // The script ran and refreshed the page from the JSON API (the virtual time budget covers
    // two 2 s refreshes).
    assert!(dom.contains(">updated "), "the page did not refresh itself:\n{dom}");
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
