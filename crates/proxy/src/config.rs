//! What the proxy can be told, with the defaults a user would expect.

use std::net::SocketAddr;
use std::time::Duration;

use resp::Limits;

/// Where reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// Every command to the slot's master (what a cluster-aware client does by default).
    #[default]
    Master,
    /// Read-only commands to a healthy replica of the slot's master (after READONLY), writes
    /// to the master. Reads may then see slightly old data, as with any Redis replica.
    Replica,
}

/// When a write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteAck {
    /// As soon as the master ran it, as Redis does: a write acknowledged just before its
    /// master fails may be lost (replication is asynchronous).
    #[default]
    Master,
    /// Only once a replica of its master confirmed it (`WAIT 1 <timeout>` on the connection
    /// that wrote). A write no replica confirmed in time gets a `NOREPLICAACK` error, though
    /// it ran on the master. Costs a replica round trip per write batch.
    Replica,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Nodes to learn the cluster from; any one that answers is enough.
    pub seeds: Vec<String>,
    pub listen: SocketAddr,
    /// Worker threads; each owns its clients and its backend connections.
    pub threads: usize,
    pub max_clients: usize,
    /// Requests a client may have in flight before the proxy stops reading from it.
    pub max_pending_per_client: usize,
    /// Close clients idle this long; `None` keeps them forever (Redis' `timeout 0`).
    pub client_idle_timeout: Option<Duration>,
    /// Request limits, as Redis' `proto-max-bulk-len` and friends.
    pub limits: Limits,
    /// How long a command may keep being retried through failovers and slot moves.
    pub retry_budget: Duration,
    pub refresh_interval: Duration,
    /// How often every node gets PING, ROLE and INFO.
    pub health_interval: Duration,
    pub connect_timeout: Duration,
    pub read_from: ReadFrom,
    pub write_ack: WriteAck,
    /// With [`WriteAck::Replica`], how long a write waits for a replica's confirmation
    /// (`WAIT`'s timeout; at least 1 ms, as `WAIT 1 0` would wait forever).
    pub write_ack_timeout: Duration,
    /// FLUSHALL/FLUSHDB reach every master; off makes them an error.
    pub allow_flush: bool,
    /// CONFIG SET reaches every node; off makes it an error.
    pub allow_config_set: bool,
    /// How long a graceful shutdown waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Force a replica's takeover when its master refuses connections (see
    /// [`crate::failover`]); off leaves every failover to the cluster.
    pub fast_failover: bool,
    /// `HOST:PORT` that cluster-aware clients are told to connect to (CLUSTER SLOTS, SHARDS,
    /// NODES show the proxy as the one node owning every slot), e.g. the VIP. `None`: the
    /// address each client reached the proxy at.
    pub announce: Option<String>,
    /// Users, AUTH and the command policy (see [`crate::security`]).
    pub security: crate::security::SecurityConfig,
}

impl ProxyConfig {
    pub fn new(seeds: Vec<String>) -> ProxyConfig {
        ProxyConfig {
            seeds,
            listen: "127.0.0.1:7010".parse().expect("a valid address"),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_clients: 10_000,
            max_pending_per_client: 1024,
            client_idle_timeout: None,
            limits: Limits::default(),
            // Twice redkeep's cluster-node-timeout of 5 s: a failover completes within it.
            retry_budget: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(2),
            health_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            read_from: ReadFrom::Master,
            write_ack: WriteAck::Master,
            write_ack_timeout: Duration::from_secs(1),
            allow_flush: true,
            allow_config_set: true,
            drain_timeout: Duration::from_secs(5),
            fast_failover: false,
            announce: None,
            security: crate::security::SecurityConfig::default(),
        }
    }
}
