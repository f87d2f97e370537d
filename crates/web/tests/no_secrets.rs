//! The stats server of a proxy that holds secrets (a password to the nodes, client users'
//! passwords, a stats token) shows none of them, nor their SHA-256 hashes (what the proxy
//! keeps of a user's password), on any page, after traffic that used them all, also failed
//! AUTHs.
//!
//! One test in its own binary: the node credentials are the process's, for every connection.

use std::net::SocketAddr;
use std::time::Duration;

use cluster::admin::{AdminConn, Credentials};
use deploy::testing::TestCluster;
use proxy::ProxyConfig;
use proxy::acl::user::parse_user_option;
use resp::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use web::WebOptions;

const NODE_SECRET: &str = "node-secret-5b1e";
const CLIENT_SECRET: &str = "client-secret-93ad";
const STATS_TOKEN: &str = "stats-token-0c77";

/// GET `path` with the token; the whole response.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {STATS_TOKEN}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("a response").unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends `args` on a plain connection to the proxy and returns the reply (not an AdminConn:
/// those AUTH with the process's node password first).
async fn call(conn: &mut TcpStream, args: &[&str]) -> Value {
    let mut out = Vec::new();
    resp::write::command(&mut out, args);
    conn.write_all(&out).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some((value, _)) = resp::parse_value(&buf, &resp::Limits::default()).unwrap() {
            return value;
        }
        let read = conn.read_buf(&mut buf);
        let n = tokio::time::timeout(Duration::from_secs(30), read).await.unwrap().unwrap();
        assert!(n > 0, "the proxy closed the connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_shows_a_password_a_hash_or_the_token() {
    let cluster = TestCluster::start(3, 1).await;
    for addr in cluster.addrs() {
        let mut node = AdminConn::connect(&addr, Duration::from_secs(5)).await.unwrap();
        node.query_ok(&["CONFIG", "SET", "requirepass", NODE_SECRET]).await.unwrap();
        node.query_ok(&["CONFIG", "SET", "masterauth", NODE_SECRET]).await.unwrap();
    }
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 1;
    config.security.node_credentials =
        Some(Credentials { user: None, password: NODE_SECRET.to_string() });
    let user = parse_user_option(&format!("app:{CLIENT_SECRET}")).unwrap();
    config.security.users.push(user);
    let proxy = proxy::start(config).await.expect("proxy starts");
    let options = WebOptions { token: Some(STATS_TOKEN.into()), ..WebOptions::default() };
    let listen = "127.0.0.1:0".parse().unwrap();
    let stats =
        web::serve_with(proxy.shared.clone(), proxy.local_addr.to_string(), listen, options)
            .await
            .unwrap();

    // Traffic that uses every secret, and AUTHs that fail with them (a node's password given
    // as a client's, a client's given to the wrong user).
    let mut client = TcpStream::connect(proxy.local_addr).await.unwrap();
    let wrong = call(&mut client, &["AUTH", "app", NODE_SECRET]).await;
    assert!(matches!(wrong, Value::Error(_)), "{wrong:?}");
    let wrong = call(&mut client, &["AUTH", "default", CLIENT_SECRET]).await;
    assert!(matches!(wrong, Value::Error(_)), "{wrong:?}");
    assert_eq!(
        call(&mut client, &["AUTH", "app", CLIENT_SECRET]).await,
        Value::Simple("OK".into())
    );
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(call(&mut client, &["SET", &key, "v"]).await, Value::Simple("OK".into()));
    }
    let refused = call(&mut client, &["CONFIG", "SET", "requirepass", CLIENT_SECRET]).await;
    assert!(matches!(refused, Value::Error(_)), "the policy refuses it: {refused:?}");

    let secrets = [NODE_SECRET, CLIENT_SECRET, STATS_TOKEN];
    let hashes: Vec<String> = secrets.iter().map(|s| sha256_hex(s)).collect();
    let paths = ["/stats", "/stats/parts", "/metrics", "/api/v1/stats", "/api/v1/nodes"];
    for path in paths {
        let page = get(stats.local_addr, path).await;
        assert!(page.starts_with("HTTP/1.1 200"), "GET {path}: {page}");
        for secret in secrets.iter().copied().chain(hashes.iter().map(String::as_str)) {
            assert!(!page.contains(secret), "{path} shows {secret}:\n{page}");
        }
    }
    // The pages are about this proxy and its nodes (what is checked is really there).
    let nodes = get(stats.local_addr, "/api/v1/nodes").await;
    assert!(nodes.contains(&cluster.addrs()[0]), "{nodes}");
    proxy.shutdown().await;
}
