//! The certificates of `redkeep up --tls` (made with rcgen, kept in `DIR/tls/`), and a
//! blocking TLS stream for the supervisor's own PING and SHUTDOWN to a node.
//!
//! One CA signs three certificates: one the nodes share (server and client use: with
//! `tls-replication` and `tls-cluster` the nodes connect to each other with it), one redkeep's
//! own connections show the nodes (Redis wants a client certificate by default), and the
//! proxy's (the certificate clients see). The CA's key is not kept: nothing signs anything
//! after `up` made the dir, and a key that is not on disk cannot leak.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::local::DeployError;

/// The sub-dir of a redkeep dir holding its certificates.
pub const TLS_DIR: &str = "tls";

/// The files of `DIR/tls/`, by name.
pub const CA_CERT: &str = "ca.crt";
pub const NODE_CERT: &str = "node.crt";
pub const NODE_KEY: &str = "node.key";
pub const CLIENT_CERT: &str = "client.crt";
pub const CLIENT_KEY: &str = "client.key";
pub const PROXY_CERT: &str = "proxy.crt";
pub const PROXY_KEY: &str = "proxy.key";

/// Makes the CA and the three certificates for nodes and a proxy reachable at `ips`: every
/// certificate that a server shows carries each of them as an IP SAN (redkeep checks nodes
/// by the IP they announce). Returns `(file name, PEM)` pairs, the CA's key not among them.
pub fn make_certificates(ips: &[IpAddr]) -> Result<Vec<(&'static str, String)>, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "redkeep up CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let ip_names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let mut proxy_names = ip_names.clone();
    proxy_names.push("localhost".to_string());
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let leaves = [
        Leaf { cert: NODE_CERT, key: NODE_KEY, name: "redkeep node", sans: ip_names },
        Leaf { cert: CLIENT_CERT, key: CLIENT_KEY, name: "redkeep client", sans: vec![] },
        Leaf { cert: PROXY_CERT, key: PROXY_KEY, name: "redkeep proxy", sans: proxy_names },
    ];
    let mut files = vec![(CA_CERT, ca.pem())];
    for leaf in leaves {
        let mut params = CertificateParams::new(leaf.sans)?;
        params.distinguished_name.push(DnType::CommonName, leaf.name);
        params.extended_key_usages = match leaf.cert {
            // With tls-replication and tls-cluster a node is a client of the others too.
            NODE_CERT => vec![ServerAuth, ClientAuth],
            CLIENT_CERT => vec![ClientAuth],
            _ => vec![ServerAuth],
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        files.push((leaf.cert, cert.pem()));
        files.push((leaf.key, key.serialize_pem()));
    }
    Ok(files)
}

/// One certificate the CA signs: its files, its common name and its SANs.
struct Leaf {
    cert: &'static str,
    key: &'static str,
    name: &'static str,
    sans: Vec<String>,
}

/// The TLS files of a redkeep dir (`DIR/tls/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub dir: PathBuf,
}

impl TlsFiles {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What redkeep's own connections to the nodes use: the CA and the client certificate.
    pub fn node_tls(&self) -> cluster::net::NodeTls {
        cluster::net::NodeTls {
            ca: self.file(CA_CERT),
            client: Some((self.file(CLIENT_CERT), self.file(CLIENT_KEY))),
        }
    }

    /// The lines of a node's `redis.conf` that make it speak TLS only, on `port`: the plain
    /// port is closed (`port 0`), replication and the cluster bus speak TLS too, and clients
    /// must show a certificate the CA signed (Redis' default, spelled out).
    pub fn node_config(&self, port: u16) -> String {
        let file = |name| self.file(name).display().to_string();
        format!(
            "# TLS (redkeep up --tls): no plain port; clients, replicas and the bus speak TLS.\n\
             port 0\ntls-port {port}\n\
             tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
             tls-auth-clients yes\ntls-replication yes\ntls-cluster yes\n",
            file(NODE_CERT),
            file(NODE_KEY),
            file(CA_CERT)
        )
    }

    /// Writes new certificates for `ips` into the dir (0700; every file 0600).
    pub fn create(&self, ips: &[IpAddr]) -> Result<(), DeployError> {
        let files = make_certificates(ips).map_err(|e| DeployError::Io {
            what: format!("making the TLS certificates for {}", self.dir.display()),
            source: std::io::Error::other(e),
        })?;
        crate::local::create_private_dir(&self.dir)?;
        for (name, pem) in files {
            crate::local::write_private(&self.file(name), &pem)?;
        }
        Ok(())
    }

    /// The client side for the blocking [`connect`], read from the files.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, DeployError> {
        cluster::net::client_config(&self.node_tls()).map_err(|e| DeployError::Io {
            what: format!("reading the TLS files in {}", self.dir.display()),
            source: std::io::Error::other(e),
        })
    }
}

/// A blocking stream to a node: plain, or TLS with the dir's client certificate.
pub trait NodeIo: Read + Write {}
impl<T: Read + Write> NodeIo for T {}

/// Wraps `stream` (connected to `ip`) in TLS when `config` is given; the handshake happens
/// on the first read or write, bounded by the stream's timeouts.
pub fn connect(
    stream: TcpStream,
    ip: IpAddr,
    config: Option<Arc<rustls::ClientConfig>>,
) -> Option<Box<dyn NodeIo>> {
    let Some(config) = config else { return Some(Box::new(stream)) };
    let name = rustls::pki_types::ServerName::IpAddress(ip.into());
    let conn = rustls::ClientConnection::new(config, name).ok()?;
    Some(Box::new(rustls::StreamOwned::new(conn, stream)))
}

/// The certificates of `up --tls` in a redkeep dir's root, if it has them; the paths are
/// absolute, since the nodes and a detached proxy run in dirs of their own.
pub fn tls_files(root: &Path) -> Option<TlsFiles> {
    let dir = std::path::absolute(root.join(TLS_DIR)).ok()?;
    dir.join(CA_CERT).exists().then_some(TlsFiles { dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificates_are_pem_and_the_ca_key_is_not_kept() {
        let ips = ["127.0.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap()];
        let files = make_certificates(&ips).unwrap();
        let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [CA_CERT, NODE_CERT, NODE_KEY, CLIENT_CERT, CLIENT_KEY, PROXY_CERT, PROXY_KEY]
        );
        for (name, pem) in &files {
            let wanted =
                if name.ends_with(".key") { "PRIVATE KEY-----" } else { "CERTIFICATE-----" };
            assert!(pem.starts_with("-----BEGIN ") && pem.contains(wanted), "{name}: {pem}");
        }
    }

    #[test]
    fn a_node_config_closes_the_plain_port_and_speaks_tls_everywhere() {
        let files = TlsFiles { dir: PathBuf::from("/srv/rk/tls") };
        let text = files.node_config(7001);
        let lines: Vec<&str> = text.lines().collect();
        for wanted in [
            "port 0",
            "tls-port 7001",
            "tls-cert-file /srv/rk/tls/node.crt",
            "tls-key-file /srv/rk/tls/node.key",
            "tls-ca-cert-file /srv/rk/tls/ca.crt",
            "tls-replication yes",
            "tls-cluster yes",
        ] {
            assert!(lines.contains(&wanted), "missing {wanted:?} in\n{text}");
        }
    }
}
