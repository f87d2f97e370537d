//! redkeep's cluster-aware proxy: one address that serves any Redis client by sending each
//! command to the master owning its keys' slot, following failovers and slot moves itself.
//!
//! Layout: [`commands`] (what each command is and how it is served), [`plan`] (a request
//! classified once into what to do with it), [`slotmap`] (which node serves a slot),
//! [`fanout`] (merging split commands) are pure. [`session`] reads a client's requests and
//! executes their plans, [`worker`] routes them, [`backend`] is a pipelined node connection
//! (it reports to its worker through [`backend::Owner`]), [`request`] is what travels between
//! them, [`client`] keeps replies in request order. What the proxy answers about the whole
//! cluster is pure too: [`cluster_view`] (the proxy as a one-node cluster, for cluster-aware
//! clients), [`info`] (INFO's sections merged from the masters'), [`reports`] (SLOWLOG,
//! LATENCY, MEMORY merged and labelled), [`client_admin`] (CLIENT KILL/REPLY/UNBLOCK),
//! [`freshness`] (how old the slot map is). Each worker thread runs its own current-thread runtime and
//! owns its clients and backend connections; the accept loop and the topology refresher run on
//! the caller's runtime.

pub mod acl;
pub mod backend;
pub mod client;
pub mod client_admin;
pub mod clients;
pub mod cluster_view;
pub mod commands;
pub mod config;
pub mod failover;
pub mod fanout;
mod fasthash;
pub mod freshness;
pub mod health;
pub mod info;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod pubsub;
pub mod rates;
pub mod reports;
pub mod request;
pub mod security;
pub mod session;
pub mod shared;
pub mod slotmap;
pub mod snapshot;
pub mod tls;
pub mod worker;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use cluster::admin::AdminConn;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use commands::CommandTable;
pub use config::{ProxyConfig, ReadFrom, WriteAck};
pub use shared::{Shared, Stats};
pub use slotmap::SlotMap;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no seed node answered CLUSTER NODES ({tried}): start the cluster (`redkeep up`) or give --seed HOST:PORT of a running node"
    )]
    NoSeed { tried: String },
    #[error("cannot listen on {addr}: {error} (is another proxy or Redis using that port?)")]
    Bind { addr: SocketAddr, error: std::io::Error },
    #[error("--announce {0}")]
    Announce(String),
    #[error("{0}")]
    Security(security::SecurityError),
    #[error("cannot start a worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running proxy.
pub struct ProxyHandle {
    pub local_addr: SocketAddr,
    pub shared: Arc<Shared>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Learns the cluster from the seeds, listens, and starts serving.
/// File descriptors the proxy keeps beside its clients: node connections (several per node
/// and worker), the listeners, the stats server's clients, logs.
const FD_RESERVE: u64 = 1024;

/// Raises the open-file limit so that `max_clients` clients fit (as Redis does for its
/// `maxclients`): the default soft limit of many systems, 1024, would refuse the 1,000th
/// client with "Too many open files". Never above the hard limit; says so when that is short.
fn raise_fd_limit(max_clients: usize) {
    let wanted = max_clients as u64 + FD_RESERVE;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 || limit.rlim_cur >= wanted
    {
        return;
    }
    let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 || raised.rlim_cur < wanted {
        tracing::warn!(
            max_clients,
            open_files = raised.rlim_cur.max(limit.rlim_cur),
            "the open-file limit is below what --max-clients needs; raise the hard limit \
             (ulimit -Hn, LimitNOFILE= in a systemd unit) or lower --max-clients"
        );
    }
}

pub async fn start(config: ProxyConfig) -> Result<ProxyHandle, StartError> {
    if let Some(announce) = &config.announce {
        cluster_view::parse_announce(announce).map_err(StartError::Announce)?;
    }
    // Every connection to a node authenticates with them: admin ones and the backends.
    if config.security.node_credentials.is_some() {
        cluster::admin::set_credentials(config.security.node_credentials.clone());
    }
    raise_fd_limit(config.max_clients);
    let (map, table, version) = learn(&config.seeds).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|error| StartError::Bind { addr: config.listen, error })?;
    let local_addr =
        listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen, error })?;
    let threads = config.threads.max(1);
    let security =
        security::Security::new(&config.security, &table).map_err(StartError::Security)?;
    let shared = Shared::new(config, table, map, security);
    if let Some(version) = version {
        shared.set_redis_version(&version);
    }
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel();
        let worker_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("redkeep-proxy-{i}"))
            .spawn(move || run_worker(worker_shared, rx))
            .map_err(StartError::Thread)?;
        senders.push(tx);
        workers.push(handle);
    }
    tokio::spawn(accept_loop(shared.clone(), listener, senders));
    tokio::spawn(refresh_loop(shared.clone()));
    tokio::spawn(health::check_loop(shared.clone(), shared.config.health_interval));
    tokio::spawn(rates::sample_loop(shared.clone()));
    tracing::info!(%local_addr, threads, "proxy listening");
    Ok(ProxyHandle { local_addr, shared, workers })
}

impl ProxyHandle {
    /// Stops accepting, lets clients get the replies to what they sent (up to the drain
    /// timeout), then stops.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
    }
}

/// The slot map, the command table and the Redis version, from the first seed that answers.
async fn learn(seeds: &[String]) -> Result<(SlotMap, CommandTable, Option<String>), StartError> {
    let mut tried = Vec::new();
    for seed in seeds {
        match cluster::ops::topology_of(seed).await {
            Ok(topology) => {
                let table = command_table(seed).await;
                let version = redis_version(seed).await;
                return Ok((SlotMap::from_topology(&topology), table, version));
            }
            Err(e) => tried.push(format!("{seed}: {e}")),
        }
    }
    Err(StartError::NoSeed { tried: tried.join("; ") })
}

/// `redis_version` from the node's INFO server.
async fn redis_version(addr: &str) -> Option<String> {
    let mut conn = AdminConn::connect(addr, ADMIN_TIMEOUT).await.ok()?;
    let info = tokio::time::timeout(ADMIN_TIMEOUT, conn.info("server")).await.ok()?.ok()?;
    cluster::admin::info_field(&info, "redis_version").map(str::to_string)
}

/// The node's own command table, or the built-in one when it cannot be read.
async fn command_table(addr: &str) -> CommandTable {
    let read = async {
        let mut conn = AdminConn::connect(addr, ADMIN_TIMEOUT).await.ok()?;
        let value = conn.query(&["COMMAND"]).await.ok()?;
        let mut raw = Vec::new();
        resp::write::value(&mut raw, &value);
        CommandTable::from_reply(&raw).ok()
    };
    match read.await {
        Some(table) => table,
        None => {
            tracing::warn!(%addr, "COMMAND failed; using the built-in table of Redis 7.0");
            CommandTable::builtin()
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    workers: Vec<mpsc::UnboundedSender<std::net::TcpStream>>,
) {
    let mut next = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.cancelled() => return,
        };
        let (mut stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.stats.clients_connected.load(Relaxed) >= shared.config.max_clients {
            Stats::add(&shared.stats.clients_rejected, 1);
            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
            continue;
        }
        let connected = shared.stats.clients_connected.fetch_add(1, Relaxed) + 1;
        shared.stats.clients_peak.fetch_max(connected, Relaxed);
        Stats::add(&shared.stats.clients_total, 1);
        let Ok(stream) = stream.into_std() else { continue };
        if workers[next % workers.len()].send(stream).is_err() {
            return;
        }
        next += 1;
    }
}

fn run_worker(shared: Arc<Shared>, mut incoming: mpsc::UnboundedReceiver<std::net::TcpStream>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return tracing::error!(error = %e, "cannot build a worker runtime"),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let ctx = worker::Ctx::new(shared.clone());
        tokio::task::spawn_local(ctx.flush_queue.clone().run());
        let active = Rc::new(std::cell::Cell::new(0usize));
        while let Some(stream) = incoming.recv().await {
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else {
                shared.stats.clients_connected.fetch_sub(1, Relaxed);
                continue;
            };
            active.set(active.get() + 1);
            let (ctx, active, shared) = (ctx.clone(), active.clone(), shared.clone());
            tokio::task::spawn_local(async move {
                let _counted = Connected { active, shared };
                session::serve(ctx, stream).await;
            });
        }
        // Shutting down: clients finish what they sent, within the drain timeout.
        let deadline = tokio::time::Instant::now() + shared.config.drain_timeout;
        while active.get() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}

/// A client counted in: counted out when its session ends, also by a panic (the task unwinds;
/// the worker and its other clients go on).
struct Connected {
    active: Rc<std::cell::Cell<usize>>,
    shared: Arc<Shared>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.active.set(self.active.get() - 1);
        self.shared.stats.clients_connected.fetch_sub(1, Relaxed);
    }
}

/// Keeps the shared slot map current: on an interval, and soon after a worker saw a redirect
/// or a broken connection. One refresh at a time; asks during a refresh make one more.
async fn refresh_loop(shared: Arc<Shared>) {
    loop {
        // While a master is failing, its replica's promotion is what clients wait for: look
        // often, so that the new master is used within a fraction of a second of it.
        let pause = match master_in_trouble(&shared) {
            true => Duration::from_millis(100),
            false => shared.config.refresh_interval,
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shared.refresh_wanted.notified() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        match fetch_map(&shared).await {
            Ok(map) => {
                shared.freshness().refreshed(std::time::Instant::now());
                if map != *shared.map() {
                    shared.set_map(map);
                }
            }
            Err(error) => {
                // Once per outage, not per attempt (every 100 ms while a master is down).
                if shared.freshness().failed(&error) {
                    tracing::warn!(%error, "no node answered CLUSTER NODES; keeping the old slot map");
                }
            }
        }
        // Many redirects in a burst make one refresh, not one each.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Is a master of the slot map marked failing by the cluster, or down by the health checker?
fn master_in_trouble(shared: &Shared) -> bool {
    let map = shared.map();
    let health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
    map.serving_masters().iter().any(|&m| {
        let node = &map.nodes[usize::from(m)];
        node.failing || health.get(&node.addr).is_some_and(|h| !h.up)
    })
}

/// The map as the first reachable node sees it: the current masters first, then the seeds;
/// when none answers, what the last one said.
async fn fetch_map(shared: &Shared) -> Result<SlotMap, String> {
    let current = shared.map();
    let masters = current.serving_masters();
    let mut candidates: Vec<String> = masters
        .iter()
        .map(|&m| current.addr(m).to_string())
        .chain(current.nodes.iter().map(|n| n.addr.clone()))
        .chain(shared.config.seeds.iter().cloned())
        .collect();
    drop(current);
    let mut tried = std::collections::HashSet::new();
    candidates.retain(|addr| tried.insert(addr.clone()));
    // Nodes the health checker found down go last: behind a partition each would cost the
    // whole timeout before the next node is asked (a stable sort keeps masters first).
    {
        let health = shared.health.lock().unwrap_or_else(|e| e.into_inner());
        candidates.sort_by_key(|addr| health.get(addr).is_some_and(|h| !h.up));
    }
    let mut last_error = "no node to ask".to_string();
    for addr in candidates {
        let topology = tokio::time::timeout(ADMIN_TIMEOUT, cluster::ops::topology_of(&addr)).await;
        match topology {
            Ok(Ok(topology)) => return Ok(SlotMap::from_topology(&topology)),
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => last_error = format!("{addr}: no answer within {ADMIN_TIMEOUT:?}"),
        }
    }
    Err(last_error)
}

/// How old the slot map may get before health fails (see [`freshness::stale_after`]).
pub fn topology_stale_after(config: &ProxyConfig) -> Duration {
    freshness::stale_after(config.refresh_interval, ADMIN_TIMEOUT)
}
