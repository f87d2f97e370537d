//! TLS to the nodes: a real redis-server that speaks TLS only (`port 0`, `tls-port`), with
//! certificates made for the test (rcgen, IP SAN 127.0.0.1). Node connections (the ones every
//! admin command and the proxy's backends open, through `cluster::net::connect_node`) work
//! with the node's CA and a client certificate, and are refused with a clear error when they
//! trust another CA.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::admin::AdminConn;
use cluster::net::{NodeTls, set_node_tls};
use common::pki::{Ca, Pki, Usage};
use deploy::testing::StandaloneServer;
use resp::Value;

/// The redis-server this test started; stopped by its pid when the test ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_node(dir: &Path, port: u16, cert: &Path, key: &Path, ca: &Path) -> Node {
    let child = Command::new("redis-server")
        .current_dir(dir)
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--tls-cert-file")
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
        .arg("--tls-ca-cert-file")
        .arg(ca)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs");
    Node(child)
}

async fn connect_until_up(addr: &str) -> AdminConn {
    for _ in 0..100 {
        if let Ok(conn) = AdminConn::connect(addr, Duration::from_secs(2)).await {
            return conn;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the TLS node at {addr} never answered");
}

#[tokio::test]
async fn node_connections_speak_tls_and_a_wrong_ca_is_refused() {
    let pki = Pki::new();
    let ca = Ca::new("redkeep test CA");
    let ca_path = pki.write_ca("ca", &ca);
    let both = [Usage::ServerAuth, Usage::ClientAuth];
    let (node_cert, node_key) = pki.leaf("node", &ca, &both);
    let (client_cert, client_key) = pki.leaf("client", &ca, &both);
    let port = deploy::ports::free_block(1).expect("a free port");
    let _node = start_tls_node(pki.dir(), port, &node_cert, &node_key, &ca_path);
    let addr = format!("127.0.0.1:{port}");

    let tls = NodeTls { ca: ca_path.clone(), client: Some((client_cert, client_key)) };
    set_node_tls(Some(&tls)).unwrap();
    let mut conn = connect_until_up(&addr).await;
    conn.query_ok(&["SET", "k", "over tls"]).await.unwrap();
    assert_eq!(conn.query(&["GET", "k"]).await.unwrap(), Value::Bulk("over tls".into()));

    // A node whose certificate another CA signed is refused, saying what failed (not that
    // no redis-server runs there) and which CA to give.
    let other = Ca::new("another CA");
    let other_path = pki.write_ca("other", &other);
    set_node_tls(Some(&NodeTls { ca: other_path.clone(), client: tls.client.clone() })).unwrap();
    let err = AdminConn::connect(&addr, Duration::from_secs(2)).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("TLS handshake failed"), "{text}");
    let untrusted = format!("not trusted by --node-tls-ca {}", other_path.display());
    assert!(text.contains(&untrusted), "{text}");
    assert!(text.contains("UnknownIssuer") || text.contains("unknown issuer"), "{text}");
    assert!(text.contains("DIR/tls/ca.crt"), "says what to give: {text}");
    assert!(!text.contains("is a redis-server running"), "{text}");

    // A plain node asked with TLS (it waits, silent, for the end of what it takes for a
    // command): the error says that TLS got no answer and what to do.
    let plain = StandaloneServer::start();
    let err = AdminConn::connect(&plain.addr(), Duration::from_secs(2)).await.err();
    let text = err.expect("a plain node refuses a TLS handshake").to_string();
    assert!(text.contains("TLS handshake failed: no answer to the TLS hello"), "{text}");
    assert!(text.contains("leave out --node-tls-ca"), "{text}");
    assert!(!text.contains("is a redis-server running"), "{text}");

    // Plain connections to the TLS port are reset at their first command; the error says
    // that TLS may be what is missing.
    set_node_tls(None).unwrap();
    let err =
        AdminConn::connect(&addr, Duration::from_secs(2)).await.unwrap().query(&["PING"]).await;
    let text = err.expect_err("a plain PING to the TLS port must fail").to_string();
    assert!(text.contains("speaks TLS only"), "the error names the likely cause: {text}");
}
