//! The proxy's security settings (users, what the command policy lets through) and their
//! compiled, shared form. The rules themselves are in [`crate::acl`].

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::acl::user::UserSpec;
use crate::acl::{Allowed, AuthError, AuthLimiter, UserId, Users, UsersError};
use crate::commands::CommandTable;

/// What the proxy is told about security.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// The users of `--user` and `--users`; none: no AUTH, every right (as a Redis without
    /// `requirepass`).
    pub users: Vec<UserSpec>,
    /// What `--allow` lets through the command policy.
    pub allow: Allowed,
    /// Failed AUTH attempts one client address may make at once...
    pub auth_burst: u32,
    /// ...and then one per this long.
    pub auth_interval: Duration,
    /// TLS on the client listener; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsConfig>,
    /// What the proxy authenticates to the nodes with (`--node-user`, `--node-password`).
    pub node_credentials: Option<cluster::admin::Credentials>,
}

impl Default for SecurityConfig {
    fn default() -> SecurityConfig {
        SecurityConfig {
            users: Vec::new(),
            allow: Allowed::none(),
            auth_burst: 10,
            auth_interval: Duration::from_secs(1),
            tls: None,
            node_credentials: None,
        }
    }
}

/// Addresses the AUTH limiter remembers at most.
const LIMITER_CAPACITY: usize = 65536;

/// The security settings compiled against the cluster's command table, shared by workers.
#[derive(Debug)]
pub struct Security {
    pub users: Users,
    pub allow: Allowed,
    /// Failed AUTH per client address; locked only on AUTH, never per request.
    limiter: Mutex<AuthLimiter>,
    /// The client listener's TLS, read from its files at start.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Security settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("the proxy's users do not fit the cluster's commands: {0}")]
    Users(#[from] UsersError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Security {
    pub fn new(config: &SecurityConfig, table: &CommandTable) -> Result<Security, SecurityError> {
        let tls = config.tls.as_ref().map(crate::tls::server_config).transpose()?;
        Ok(Security {
            tls,
            users: Users::compile(&config.users, table)?,
            allow: config.allow,
            limiter: Mutex::new(AuthLimiter::new(
                config.auth_burst,
                config.auth_interval,
                LIMITER_CAPACITY,
            )),
        })
    }

    /// An AUTH attempt from `peer`: limited per address, then checked.
    pub fn authenticate(
        &self,
        peer: Option<IpAddr>,
        username: Option<&[u8]>,
        password: &[u8],
    ) -> Result<UserId, AuthError> {
        let now = Instant::now();
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = peer {
            limiter.check(ip, now).map_err(AuthError::Limited)?;
        }
        let result = crate::acl::auth::authenticate(&self.users, username, password);
        if let (Err(AuthError::WrongPass), Some(ip)) = (result, peer) {
            limiter.failed(ip, now);
        }
        result
    }
}
