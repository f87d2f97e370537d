//! TLS on the client listener (`--tls-cert`, `--tls-key`, `--tls-ca`), with rustls' own
//! synchronous connection state: a client's session feeds it the bytes it reads, and its
//! replies are encrypted where they are written ([`crate::client`] writes without waiting,
//! from wherever a reply arrives, so the TLS state is shared on the worker thread rather than
//! owned by an async stream).
//!
//! A client that speaks plain RESP to the TLS port gets one plain-text error line saying so,
//! and is closed; a certificate the CA did not sign ends the handshake with rustls' alert.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::client::Writer;
use crate::shared::Shared;

/// Whether clients must show a certificate the CA signed, as Redis' `tls-auth-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// With `--tls-ca`: a client without a valid certificate is refused.
    #[default]
    Required,
    /// A client may show none; one it shows must be valid.
    Optional,
    /// Client certificates are not asked for.
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The proxy's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) client certificates are checked against; `None`: none asked.
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// A TLS file that cannot be used: the one loader of `cluster::net` reads them all.
pub use cluster::net::TlsError;
use cluster::net::{load_certs, load_key, load_roots, provider};

/// The server side of TLS, read from the PEM files.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = load_certs(&config.cert, "the certificate")?;
    let key = load_key(&config.key, "the private key")?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (&config.ca, config.client_auth) {
        (Some(ca), auth) if auth != ClientAuth::No => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(load_roots(ca)?.into(), provider());
            let verifier = match auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| TlsError::Config(e.to_string()))?,
            )
        }
        _ => builder.with_no_client_auth(),
    };
    let mut server = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(format!("certificate and key: {e}")))?;
    // Replies are encrypted as they come; the client's pending-request limit bounds them.
    server.send_tls13_tickets = 0;
    Ok(Arc::new(server))
}

/// What a read of TLS bytes gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Plaintext appended to the input (maybe none yet: a handshake in progress).
    Data,
    /// The client closed the TLS session.
    Closed,
}

/// The first byte of a TLS handshake record.
const HANDSHAKE: u8 = 0x16;

/// What a client that speaks plain RESP to the TLS port is told before it is closed.
pub const PLAINTEXT_ERROR: &[u8] =
    b"-ERR this port speaks TLS: connect with TLS (redis-cli --tls --cacert CA ...)\r\n";

/// One client's TLS connection and the sending half of its socket, shared by its session and
/// its reply side on one worker thread.
pub struct TlsStream {
    conn: RefCell<ServerConnection>,
    socket: OwnedWriteHalf,
    /// No byte has come yet (the first one tells TLS from plain RESP).
    fresh: Cell<bool>,
}

impl TlsStream {
    pub fn new(
        config: Arc<ServerConfig>,
        socket: OwnedWriteHalf,
    ) -> Result<TlsStream, rustls::Error> {
        let mut conn = ServerConnection::new(config)?;
        conn.set_buffer_limit(None);
        Ok(TlsStream { conn: RefCell::new(conn), socket, fresh: Cell::new(true) })
    }

    pub fn socket(&self) -> &OwnedWriteHalf {
        &self.socket
    }

    /// Takes the bytes read from the socket, appending what they decrypt to `input`. A TLS
    /// error (or plain RESP) is an error; whatever alert or line it calls for is queued or
    /// written first.
    pub fn received(&self, mut raw: &[u8], input: &mut BytesMut) -> io::Result<Received> {
        if self.fresh.get() && !raw.is_empty() {
            self.fresh.set(false);
            if raw[0] != HANDSHAKE {
                let _ = self.socket.try_write(PLAINTEXT_ERROR);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "plain RESP on the TLS port",
                ));
            }
        }
        let mut conn = self.conn.borrow_mut();
        while !raw.is_empty() {
            conn.read_tls(&mut raw)?;
            if let Err(e) = conn.process_new_packets() {
                drop(conn);
                // The alert rustls queued for it.
                let _ = self.write_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match conn.reader().read(&mut chunk) {
                    Ok(0) => return Ok(Received::Closed),
                    Ok(n) => input.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Received::Data)
    }

    /// Hands plaintext to rustls (it keeps it until the handshake is done).
    pub fn send(&self, plaintext: &[u8]) -> io::Result<()> {
        self.conn.borrow_mut().writer().write_all(plaintext)
    }

    /// Whether encrypted bytes wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.conn.borrow().wants_write()
    }

    /// Writes the waiting TLS records as far as the socket takes them without waiting:
    /// `Ok(true)` when all went out.
    pub fn write_pending(&self) -> io::Result<bool> {
        let mut conn = self.conn.borrow_mut();
        while conn.wants_write() {
            match conn.write_tls(&mut TryWrite(&self.socket)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// The socket's non-waiting write, as `io::Write` for rustls.
struct TryWrite<'a>(&'a OwnedWriteHalf);

impl Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The receiving side of a client connection: its socket, or TLS over it.
pub enum ClientReader {
    Plain(OwnedReadHalf),
    Tls { socket: OwnedReadHalf, raw: BytesMut, tls: Rc<TlsStream> },
}

impl ClientReader {
    /// Both sides of a new client's connection, with TLS when the proxy has it.
    pub fn new(
        shared: &Shared,
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
    ) -> Result<(ClientReader, Writer), rustls::Error> {
        let Some(config) = &shared.security.tls else {
            return Ok((ClientReader::Plain(reader), Writer::Plain(writer)));
        };
        let tls = Rc::new(TlsStream::new(config.clone(), writer)?);
        let raw = BytesMut::with_capacity(RAW_READ);
        Ok((ClientReader::Tls { socket: reader, raw, tls: tls.clone() }, Writer::Tls(tls)))
    }

    /// Reads what comes next into `input` (plaintext), waiting for it: `Ok(0)` when the client
    /// is gone. Cancel-safe as `read_buf` is: what was decrypted is in `input` already.
    pub async fn read(&mut self, input: &mut BytesMut) -> io::Result<usize> {
        let (socket, raw, tls) = match self {
            ClientReader::Plain(socket) => return socket.read_buf(input).await,
            ClientReader::Tls { socket, raw, tls } => (socket, raw, tls),
        };
        loop {
            raw.clear();
            raw.reserve(RAW_READ);
            if socket.read_buf(raw).await? == 0 {
                return Ok(0);
            }
            let before = input.len();
            let received = tls.received(raw, input)?;
            // Handshake records go out now; replies go out with the client's writes.
            while !tls.write_pending()? {
                tls.socket().as_ref().writable().await?;
            }
            if received == Received::Closed {
                return Ok(0);
            }
            if input.len() > before {
                return Ok(input.len() - before);
            }
        }
    }
}

/// Bytes one read of a TLS client's socket takes (a TLS record is at most 16 KiB and a bit).
const RAW_READ: usize = 32 * 1024;
