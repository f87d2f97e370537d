//! The stats server's guards, with real HTTP over real sockets: a bearer token on every
//! path, bounded request headers, a bounded number of connections.

use std::net::SocketAddr;
use std::time::Duration;

use deploy::testing::TestCluster;
use proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web::WebOptions;

/// A proxy in front of `cluster` and its stats server with `options`.
async fn stats_server(
    cluster: &TestCluster,
    options: WebOptions,
) -> (proxy::ProxyHandle, SocketAddr) {
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 1;
    let proxy = proxy::start(config).await.expect("proxy starts");
    let stats = web::serve_with(
        proxy.shared.clone(),
        proxy.local_addr.to_string(),
        "127.0.0.1:0".parse().unwrap(),
        options,
    )
    .await
    .unwrap();
    (proxy, stats.local_addr)
}

/// Sends `request` as it is and returns the whole response.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    read_all(&mut stream).await
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("a response")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn request(method: &str, path: &str, extra_headers: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{extra_headers}Content-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_wants_the_bearer_token() {
    let cluster = TestCluster::start(3, 0).await;
    let token = "st4ts-t0ken-81";
    let options = WebOptions { token: Some(token.into()), ..WebOptions::default() };
    let (proxy, addr) = stats_server(&cluster, options).await;
    let good = format!("Authorization: Bearer {token}\r\n");
    let paths = ["/", "/stats", "/stats/parts", "/metrics", "/api/v1/stats", "/api/v1/nodes"];
    for path in paths.iter().chain(&["/no-such-page"]) {
        for (who, headers) in [
            ("no token", String::new()),
            ("a wrong token", "Authorization: Bearer st4ts-t0ken-82\r\n".to_string()),
            ("the token without Bearer", format!("Authorization: {token}\r\n")),
            ("basic auth", "Authorization: Basic dXNlcjpwYXNz\r\n".to_string()),
        ] {
            for method in ["GET", "POST"] {
                let response = exchange(addr, &request(method, path, &headers)).await;
                assert!(response.starts_with("HTTP/1.1 401"), "{method} {path}, {who}: {response}");
                assert!(response.contains("www-authenticate: Bearer"), "{response}");
                assert!(!response.contains("redkeep_"), "{path} leaks metrics: {response}");
            }
        }
        // With the token, the server is what it was: reads served, writes refused.
        let response = exchange(addr, &request("POST", path, &good)).await;
        let expected = if *path == "/no-such-page" { "HTTP/1.1 404" } else { "HTTP/1.1 405" };
        assert!(response.starts_with(expected), "POST {path} with the token: {response}");
    }
    let response = exchange(addr, &request("GET", "/", &good)).await;
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    for path in &paths[1..] {
        let response = exchange(addr, &request("GET", path, &good)).await;
        assert!(response.starts_with("HTTP/1.1 200"), "GET {path} with the token: {response}");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_beyond_the_bound_get_431() {
    let cluster = TestCluster::start(3, 0).await;
    let options = WebOptions { max_header_bytes: 8 * 1024, ..WebOptions::default() };
    let (proxy, addr) = stats_server(&cluster, options).await;
    let small = format!("X-Padding: {}\r\n", "a".repeat(4 * 1024));
    let response = exchange(addr, &request("GET", "/metrics", &small)).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let big = format!("X-Padding: {}\r\n", "a".repeat(16 * 1024));
    let response = exchange(addr, &request("GET", "/metrics", &big)).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_bound_gets_503_and_the_server_recovers() {
    let cluster = TestCluster::start(3, 0).await;
    let options = WebOptions { max_connections: 2, ..WebOptions::default() };
    let (proxy, addr) = stats_server(&cluster, options).await;
    // Two idle connections hold both permits (they are accepted in order, before the third).
    let held = [TcpStream::connect(addr).await.unwrap(), TcpStream::connect(addr).await.unwrap()];
    let mut third = TcpStream::connect(addr).await.unwrap();
    let response = read_all(&mut third).await;
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.contains("too many connections"), "{response}");
    // Clients over the bound that send their request at once (most do) get the 503 too, not a
    // reset: the server closes only after it read what they sent.
    for attempt in 0..50 {
        let response = exchange(addr, &request("GET", "/metrics", "")).await;
        assert!(response.starts_with("HTTP/1.1 503"), "attempt {attempt}: {response}");
    }
    drop(held);
    // The permits come back once the server has seen both connections close.
    let served = async {
        loop {
            let response = exchange(addr, &request("GET", "/metrics", "")).await;
            if response.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(response.starts_with("HTTP/1.1 503"), "{response}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), served).await.expect("served again");
    proxy.shutdown().await;
}
