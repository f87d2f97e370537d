//! TLS to the nodes: a real redis-server that speaks TLS only (`port 0`, `tls-port`), with
//! certificates made for the test (rcgen, IP SAN 127.0.0.1). Node connections (the ones every
//! admin command and the proxy's backends open, through `cluster::net::connect_node`) work
//! with the node's CA and a client certificate, and are refused with a clear error when they
//! trust another CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::admin::AdminConn;
use cluster::net::{NodeTls, set_node_tls};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use resp::Value;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn make_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate signed by `ca` for 127.0.0.1, for both server and client use.
fn leaf(dir: &Path, name: &str, ca: &Ca) -> (PathBuf, PathBuf) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn write_ca(dir: &Path, name: &str, ca: &Ca) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.cert.pem()).unwrap();
    path
}

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
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("redkeep test CA");
    let ca_path = write_ca(dir.path(), "ca", &ca);
    let (node_cert, node_key) = leaf(dir.path(), "node", &ca);
    let (client_cert, client_key) = leaf(dir.path(), "client", &ca);
    let port = deploy::ports::free_block(1).expect("a free port");
    let _node = start_tls_node(dir.path(), port, &node_cert, &node_key, &ca_path);
    let addr = format!("127.0.0.1:{port}");

    let tls = NodeTls { ca: ca_path.clone(), client: Some((client_cert, client_key)) };
    set_node_tls(Some(&tls)).unwrap();
    let mut conn = connect_until_up(&addr).await;
    conn.query_ok(&["SET", "k", "over tls"]).await.unwrap();
    assert_eq!(conn.query(&["GET", "k"]).await.unwrap(), Value::Bulk("over tls".into()));

    // A node whose certificate another CA signed is refused, saying why.
    let other = make_ca("another CA");
    let other_path = write_ca(dir.path(), "other", &other);
    set_node_tls(Some(&NodeTls { ca: other_path, client: tls.client.clone() })).unwrap();
    let err = AdminConn::connect(&addr, Duration::from_secs(2)).await.err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("TLS handshake failed"), "{text}");
    assert!(text.contains("UnknownIssuer") || text.contains("unknown issuer"), "{text}");

    // Plain connections to the TLS port get no reply.
    set_node_tls(None).unwrap();
    let err =
        AdminConn::connect(&addr, Duration::from_secs(2)).await.unwrap().query(&["PING"]).await;
    assert!(err.is_err(), "a plain PING to the TLS port must fail: {err:?}");
}
