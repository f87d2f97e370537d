//! Opening a stream to a node, plain or TLS: the one place every node connection is made
//! (the proxy's backend connections and every [`crate::admin`] connection).
//!
//! TLS is configured once per process with [`set_node_tls`] (as the credentials are with
//! [`crate::admin::set_credentials`]): the nodes of one cluster share a CA and a client
//! certificate. Nodes are verified against that CA with the node's IP as the server name
//! (their certificates carry IP SANs for the addresses they announce).

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Where the TLS files for node connections are (`--node-tls-ca`, `--node-tls-cert`,
/// `--node-tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTls {
    /// CA certificates (PEM) the nodes' certificates must be signed by.
    pub ca: PathBuf,
    /// A client certificate and key (PEM) for nodes with `tls-auth-clients yes` (Redis'
    /// default); `None`: none shown.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A TLS file that cannot be used, on either side (node connections here, the proxy's client
/// listener in `proxy::tls`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {error}")]
    Read { what: &'static str, path: PathBuf, error: String },
    #[error("{path} holds no {what}")]
    Empty { what: &'static str, path: PathBuf },
    #[error("the TLS settings do not fit together: {0}")]
    Config(String),
}

/// The error of the node side's settings.
pub type NodeTlsError = TlsError;

/// The one crypto provider of every TLS connection redkeep makes (ring; see DESIGN.md).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates (PEM) in `path`, at least one; `what` names them in errors.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |e: rustls::pki_types::pem::Error| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error: e.to_string(),
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what: "certificate", path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The private key (PEM: PKCS#8, PKCS#1 or SEC1) in `path`.
pub fn load_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        error: e.to_string(),
    })
}

/// The CA certificates in `path` as trust roots.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "the CA")? {
        roots.add(cert).map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The connector of every node connection, and the CA it trusts (named in errors).
static CONNECTOR: std::sync::RwLock<Option<(TlsConnector, PathBuf)>> = std::sync::RwLock::new(None);

/// Sets (or with `None` clears) TLS for every node connection opened after.
pub fn set_node_tls(tls: Option<&NodeTls>) -> Result<(), NodeTlsError> {
    let connector = match tls {
        Some(tls) => Some((TlsConnector::from(client_config(tls)?), tls.ca.clone())),
        None => None,
    };
    *CONNECTOR.write().unwrap_or_else(|e| e.into_inner()) = connector;
    Ok(())
}

/// Whether node connections speak TLS.
pub fn node_tls_enabled() -> bool {
    CONNECTOR.read().unwrap_or_else(|e| e.into_inner()).is_some()
}

fn connector() -> Option<(TlsConnector, PathBuf)> {
    CONNECTOR.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The client side of TLS to the nodes, read from the PEM files.
pub fn client_config(tls: &NodeTls) -> Result<Arc<ClientConfig>, NodeTlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(load_roots(&tls.ca)?);
    let config = match &tls.client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                load_certs(cert, "the client certificate")?,
                load_key(key, "the client key")?,
            )
            .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A connection to a node: plain TCP, or TLS over it. An enum, so the plain path costs a
/// branch and no boxing (the TLS state is boxed: it is large).
pub enum NodeStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `addr` (`ip:port`), with TLS when [`set_node_tls`] set it. Callers bound it
/// with their own timeout; a failed handshake is an error saying so.
pub async fn connect_node(addr: &str) -> io::Result<NodeStream> {
    secure(addr, connect_tcp(addr).await?).await
}

/// The TCP connection of [`connect_node`], without TLS yet.
pub async fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true).ok();
    Ok(stream)
}

/// The TLS handshake of [`connect_node`] over `stream` (connected to `addr`), when TLS is set;
/// else `stream` as it is. A failure is a [`HandshakeError`] inside the `io::Error`.
pub async fn secure(addr: &str, stream: TcpStream) -> io::Result<NodeStream> {
    let Some((connector, ca)) = connector() else {
        return Ok(NodeStream::Plain(stream));
    };
    let name = server_name(addr)?;
    match connector.connect(name, stream).await {
        Ok(tls) => Ok(NodeStream::Tls(Box::new(tls))),
        Err(e) => Err(io::Error::new(e.kind(), HandshakeError(explain_handshake(&e, &ca)))),
    }
}

/// The error for a handshake that got no answer within `timeout`: a plain redis-server reads
/// a TLS hello as the start of a command and waits for its end, silently.
pub fn handshake_timeout(timeout: std::time::Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        HandshakeError(format!(
            "no answer to the TLS hello within {timeout:?}: a node without TLS stays silent so \
             (leave out --node-tls-ca for plain nodes, or give the node's TLS port)"
        )),
    )
}

/// A TLS handshake with a node that failed: what failed and what to do (see
/// [`explain_handshake`]). Carried inside the `io::Error` of [`connect_node`], so that a
/// caller can tell it from a node that is not there.
#[derive(Debug)]
pub struct HandshakeError(pub String);

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS handshake failed: {}", self.0)
    }
}

impl std::error::Error for HandshakeError {}

/// What a failed handshake means for the operator, from rustls' error: a certificate the CA
/// in `ca` (--node-tls-ca) did not sign, one for another address, a node that answers in
/// plain text, or one that refused us.
pub fn explain_handshake(error: &io::Error, ca: &Path) -> String {
    use rustls::CertificateError as Cert;
    let ca = ca.display();
    let Some(tls) = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => format!(
                "the node closed the connection ({error}): is this its TLS port (tls-port)?"
            ),
            _ => error.to_string(),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer | Cert::BadSignature) => format!(
            "the node's certificate is not trusted by --node-tls-ca {ca} ({tls}): give the CA \
             that signed the nodes' certificates (for a cluster of `redkeep up --tls`, \
             DIR/tls/ca.crt, which --dir finds itself)"
        ),
        rustls::Error::InvalidCertificate(
            Cert::NotValidForName | Cert::NotValidForNameContext { .. },
        ) => format!(
            "the node's certificate does not name the address redkeep connects to ({tls}): \
             give the node a certificate with an IP SAN for each address it announces"
        ),
        rustls::Error::InvalidCertificate(
            Cert::Expired | Cert::ExpiredContext { .. } | Cert::NotValidYet,
        ) => format!("the node's certificate is out of its validity ({tls}): renew it"),
        rustls::Error::InvalidCertificate(_) => {
            format!("the node's certificate is refused ({tls}), checked against --node-tls-ca {ca}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the node does not speak TLS on this port ({tls}): it is a plain node (leave out \
             --node-tls-ca) or this is not its TLS port"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "the node refused the handshake (alert {alert:?}): does it want a client \
             certificate its CA signed (--node-tls-cert, --node-tls-key)?"
        ),
        other => other.to_string(),
    }
}

/// The name a node's certificate is checked against: its IP (or host name) without the port.
fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))
}

impl AsyncRead for NodeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            NodeStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            NodeStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_flush(cx),
            NodeStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            NodeStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_the_node_ip() {
        let ip = |s: &str| ServerName::IpAddress(s.parse::<IpAddr>().unwrap().into());
        assert_eq!(server_name("127.0.0.1:7000").unwrap(), ip("127.0.0.1"));
        assert_eq!(server_name("[::1]:7000").unwrap(), ip("::1"));
        assert_eq!(
            server_name("redis-a:7000").unwrap(),
            ServerName::try_from("redis-a".to_string()).unwrap()
        );
    }
}
