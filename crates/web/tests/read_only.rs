//! The stats server only answers reads: POST, PUT and DELETE get 405 on every path, and a
//! proxy with users and node credentials shows none of their secrets on any page.

use std::time::Duration;

use deploy::testing::TestCluster;
use proxy::ProxyConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("a response")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_get_405_and_no_secret_is_shown() {
    let cluster = TestCluster::start(3, 0).await;
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 1;
    config.security.users =
        vec![proxy::acl::user::parse_user_option("app:client-secret-93").unwrap()];
    let proxy = proxy::start(config).await.expect("proxy starts");
    let stats = web::serve(
        proxy.shared.clone(),
        proxy.local_addr.to_string(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let paths = ["/", "/stats", "/stats/parts", "/metrics", "/api/v1/stats", "/api/v1/nodes"];
    for path in paths {
        for method in ["POST", "PUT", "DELETE"] {
            let response = http(stats.local_addr, method, path).await;
            assert!(response.starts_with("HTTP/1.1 405"), "{method} {path}: {response}");
        }
        let response = http(stats.local_addr, "GET", path).await;
        assert!(!response.contains("client-secret-93"), "{path} shows the password");
        let hash = proxy::acl::user::hash_password(b"client-secret-93");
        let hex: String = hash.0.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!response.contains(&hex), "{path} shows the password's hash");
    }
    proxy.shutdown().await;
}
