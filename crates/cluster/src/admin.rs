//! An async connection for operator commands: `create`, `check`, `fix`, `status`, `call`.
//!
//! Not the proxy's hot path: it parses every reply into an owned [`Value`], sends one command
//! at a time, and bounds every step by a timeout, so that a dead or wedged node turns into an
//! error naming that node instead of a hang.

use std::time::Duration;

use bytes::BytesMut;
use resp::{Limits, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{NodeStream, connect_tcp, secure};

/// Default bound on connecting and on each command's round trip.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an admin command did not get a reply. Every variant names the node.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot connect to {addr}: {source} (is a redis-server running there?)")]
    Connect { addr: String, source: std::io::Error },
    /// Something answers, but the TLS handshake failed: the text says what and what to do.
    #[error("cannot connect to {addr}: {source}")]
    Handshake { addr: String, source: std::io::Error },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: std::io::Error },
    /// A plain connection reset at its first command: what a TLS-only node does to it.
    #[error(
        "connection to {addr} failed: {source} (a node that speaks TLS only, as those of \
         `redkeep up --tls`, does that to plain connections: give --dir of its cluster, or \
         --node-tls-ca)"
    )]
    ResetPlain { addr: String, source: std::io::Error },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error("{addr} sent a reply that is not valid RESP: {source}")]
    Protocol { addr: String, source: resp::ProtocolError },
    #[error("{addr} replied with an error to {command}: {message}")]
    Redis { addr: String, command: String, message: String },
    #[error("{addr} replied to {command} with an unexpected {got}")]
    Unexpected { addr: String, command: String, got: String },
}

/// The credentials every admin connection authenticates with (`AUTH [user] password` right
/// after connecting), set once per process from the command line or the environment: the
/// nodes of one cluster share them.
static CREDENTIALS: std::sync::RwLock<Option<Credentials>> = std::sync::RwLock::new(None);

/// A node user and password. `Debug` shows no password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `None`: the `default` user (`requirepass`).
    pub user: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `AUTH` command with these credentials.
    pub fn auth_args(&self) -> Vec<&str> {
        let mut args = vec!["AUTH"];
        args.extend(self.user.as_deref());
        args.push(&self.password);
        args
    }
}

/// Sets (or with `None` clears) the credentials of every admin connection opened after.
pub fn set_credentials(credentials: Option<Credentials>) {
    *CREDENTIALS.write().unwrap_or_else(|e| e.into_inner()) = credentials;
}

/// The credentials admin connections use, if any.
pub fn credentials() -> Option<Credentials> {
    CREDENTIALS.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// True for Redis' (and the proxy's) answer to AUTH when no password is set.
fn wants_no_password(message: &str) -> bool {
    message.contains("called without any password configured")
}

/// One connection to one node.
pub struct AdminConn {
    addr: String,
    stream: NodeStream,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
    timeout: Duration,
}

impl AdminConn {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Self, AdminError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let tcp = match tokio::time::timeout_at(deadline, connect_tcp(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(AdminError::Connect { addr: addr.to_string(), source }),
            Err(_) => return Err(AdminError::Timeout { addr: addr.to_string(), timeout }),
        };
        // Something listens: a failed (or unanswered) handshake says so, not that nothing runs.
        let handshake = |source| AdminError::Handshake { addr: addr.to_string(), source };
        let stream = match tokio::time::timeout_at(deadline, secure(addr, tcp)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(handshake(source)),
            Err(_) => return Err(handshake(crate::net::handshake_timeout(timeout))),
        };
        let mut conn = AdminConn {
            addr: addr.to_string(),
            stream,
            read_buf: BytesMut::with_capacity(16 * 1024),
            write_buf: Vec::with_capacity(256),
            timeout,
        };
        if let Some(credentials) = credentials() {
            // An error names the command (AUTH), never its arguments.
            match conn.query_ok(&credentials.auth_args()).await {
                // A server that wants no password serves without one (as `redis-cli -a`
                // does with it): the credentials are process-wide, and one process may talk
                // to nodes that want them and to a proxy that does not (the lab's drills).
                Err(AdminError::Redis { message, .. }) if wants_no_password(&message) => {}
                other => other?,
            }
        }
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one command and returns the reply as it came, error replies included.
    pub async fn raw<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, AdminError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.round_trip(args)).await {
            Ok(result) => result,
            Err(_) => Err(AdminError::Timeout { addr: self.addr.clone(), timeout }),
        }
    }

    /// Changes the bound on each round trip (a MIGRATE of a big key needs longer).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sends every command at once and returns their replies in order, error replies
    /// included: one round trip for many commands. The timeout bounds the whole batch.
    pub async fn pipeline<A: AsRef<[u8]>>(
        &mut self,
        commands: &[Vec<A>],
    ) -> Result<Vec<Value>, AdminError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.pipelined_round_trip(commands)).await {
            Ok(result) => result,
            Err(_) => Err(AdminError::Timeout { addr: self.addr.clone(), timeout }),
        }
    }

    async fn pipelined_round_trip<A: AsRef<[u8]>>(
        &mut self,
        commands: &[Vec<A>],
    ) -> Result<Vec<Value>, AdminError> {
        self.write_buf.clear();
        for args in commands {
            resp::write::command(&mut self.write_buf, args);
        }
        self.stream.write_all(&self.write_buf).await.map_err(|e| self.io(e))?;
        let mut replies = Vec::with_capacity(commands.len());
        while replies.len() < commands.len() {
            replies.push(self.read_reply().await?);
        }
        Ok(replies)
    }

    /// Sends one command; an error reply becomes [`AdminError::Redis`].
    pub async fn query<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, AdminError> {
        match self.raw(args).await? {
            Value::Error(message) => Err(AdminError::Redis {
                addr: self.addr.clone(),
                command: command_name(args),
                message: String::from_utf8_lossy(&message).into_owned(),
            }),
            value => Ok(value),
        }
    }

    /// Sends one command whose reply is text (a bulk or simple string), e.g. `CLUSTER NODES`.
    pub async fn query_text<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<String, AdminError> {
        match self.query(args).await? {
            Value::Bulk(bytes) | Value::Simple(bytes) | Value::Verbatim(_, bytes) => {
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            other => Err(self.unexpected(args, &other)),
        }
    }

    /// Sends one command that must answer `+OK`.
    pub async fn query_ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), AdminError> {
        match self.query(args).await? {
            Value::Simple(s) if s == b"OK" => Ok(()),
            other => Err(self.unexpected(args, &other)),
        }
    }

    /// Sends one command whose reply is an integer.
    pub async fn query_int<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<i64, AdminError> {
        match self.query(args).await? {
            Value::Integer(n) => Ok(n),
            other => Err(self.unexpected(args, &other)),
        }
    }

    /// `INFO [section]` as `field -> value` pairs (section headers and blank lines dropped).
    pub async fn info(&mut self, section: &str) -> Result<Vec<(String, String)>, AdminError> {
        let text = self.query_text(&["INFO", section]).await?;
        Ok(parse_info(&text))
    }

    fn unexpected<A: AsRef<[u8]>>(&self, args: &[A], got: &Value) -> AdminError {
        AdminError::Unexpected {
            addr: self.addr.clone(),
            command: command_name(args),
            got: format!("{got:?}"),
        }
    }

    async fn round_trip<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, AdminError> {
        self.write_buf.clear();
        resp::write::command(&mut self.write_buf, args);
        self.stream.write_all(&self.write_buf).await.map_err(|e| self.io(e))?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Value, AdminError> {
        loop {
            match resp::parse_value(&self.read_buf, &Limits::default()) {
                Ok(Some((value, consumed))) => {
                    let _ = self.read_buf.split_to(consumed);
                    return Ok(value);
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(AdminError::Protocol { addr: self.addr.clone(), source });
                }
            }
            let read = self.stream.read_buf(&mut self.read_buf).await.map_err(|e| self.io(e))?;
            if read == 0 {
                return Err(AdminError::Closed { addr: self.addr.clone() });
            }
        }
    }

    fn io(&self, source: std::io::Error) -> AdminError {
        let plain = matches!(self.stream, NodeStream::Plain(_));
        if plain && source.kind() == std::io::ErrorKind::ConnectionReset {
            return AdminError::ResetPlain { addr: self.addr.clone(), source };
        }
        AdminError::Io { addr: self.addr.clone(), source }
    }
}

/// The command's name, with its subcommand for container commands ("CLUSTER ADDSLOTSRANGE"),
/// for error messages.
fn command_name<A: AsRef<[u8]>>(args: &[A]) -> String {
    const CONTAINERS: &[&str] = &["CLUSTER", "CONFIG", "CLIENT", "SCRIPT", "FUNCTION", "COMMAND"];
    let word = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a.as_ref()).to_uppercase());
    match (word(0), word(1)) {
        (Some(name), Some(sub)) if CONTAINERS.contains(&name.as_str()) => format!("{name} {sub}"),
        (Some(name), _) => name,
        (None, _) => String::new(),
    }
}

/// Parses `INFO` text: `field:value` lines, `# Section` headers and blank lines skipped.
pub fn parse_info(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Looks a field up in parsed `INFO` output.
pub fn info_field<'a>(info: &'a [(String, String)], field: &str) -> Option<&'a str> {
    info.iter().find(|(k, _)| k == field).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_becomes_pairs() {
        let text = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\r\n# Keyspace\r\n";
        let info = parse_info(text);
        assert_eq!(info_field(&info, "role"), Some("master"));
        assert_eq!(info_field(&info, "connected_slaves"), Some("1"));
        assert_eq!(info.len(), 2);
    }

    #[test]
    fn command_names_for_errors() {
        assert_eq!(command_name(&["cluster", "addslotsrange", "0", "5"]), "CLUSTER ADDSLOTSRANGE");
        assert_eq!(command_name(&["get", "foo"]), "GET");
        assert_eq!(command_name(&["ping"]), "PING");
    }
}
