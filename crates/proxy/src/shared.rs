//! State every worker thread sees: the configuration, the command table, the newest slot map
//! and the counters. Workers read the map only when its epoch changed, so the lock is not on
//! the per-request path.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::commands::CommandTable;
use crate::config::ProxyConfig;
use crate::slotmap::SlotMap;

pub struct Shared {
    pub config: ProxyConfig,
    pub table: CommandTable,
    map: RwLock<Arc<SlotMap>>,
    /// Bumped after each new map.
    epoch: AtomicU64,
    /// Wakes the refresher: a redirect or a broken connection says the map is stale.
    pub refresh_wanted: Notify,
    pub shutdown: CancellationToken,
    pub stats: Stats,
    /// Per-worker statistics blocks (per node, per command).
    pub registry: crate::metrics::Registry,
    /// The last seconds of sampled totals, for per-second rates (see [`crate::rates`]).
    pub rates: std::sync::Mutex<crate::rates::RateWindow>,
    /// The health checker's last word on each node.
    pub health: std::sync::Mutex<std::collections::HashMap<String, crate::health::NodeHealth>>,
    pub started: Instant,
    next_client_id: AtomicU64,
    /// Every client, for CLIENT LIST.
    pub clients: Arc<crate::clients::ClientRegistry>,
    /// The cluster's Redis version (`redis_version` of INFO), as HELLO reports it: the seed's
    /// at start, then the lowest of the nodes the health checker reached in its last round.
    redis_version: RwLock<Arc<str>>,
    /// INFO's `run_id`: 40 hex characters, new on every start, as Redis' own.
    pub run_id: String,
    /// When the slot map was last read from a node, and why the refreshes since failed.
    freshness: std::sync::Mutex<crate::freshness::Freshness>,
    /// Users and the command policy, compiled against `table`.
    pub security: Arc<crate::security::Security>,
}

/// What HELLO says before any node told its version (the built-in command table's).
pub const FALLBACK_REDIS_VERSION: &str = "7.0.15";

impl Shared {
    pub fn new(
        config: ProxyConfig,
        table: CommandTable,
        map: SlotMap,
        security: crate::security::Security,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            security: Arc::new(security),
            config,
            table,
            map: RwLock::new(Arc::new(map)),
            epoch: AtomicU64::new(1),
            refresh_wanted: Notify::new(),
            shutdown: CancellationToken::new(),
            stats: Stats::default(),
            registry: crate::metrics::Registry::default(),
            rates: Default::default(),
            health: std::sync::Mutex::new(std::collections::HashMap::new()),
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            clients: Arc::default(),
            redis_version: RwLock::new(FALLBACK_REDIS_VERSION.into()),
            run_id: format!(
                "{:016x}{:016x}{:08x}",
                rand::random::<u64>(),
                rand::random::<u64>(),
                rand::random::<u32>()
            ),
            freshness: std::sync::Mutex::new(crate::freshness::Freshness::new(Instant::now())),
        })
    }

    pub fn freshness(&self) -> std::sync::MutexGuard<'_, crate::freshness::Freshness> {
        self.freshness.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn redis_version(&self) -> Arc<str> {
        self.redis_version.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_redis_version(&self, version: &str) {
        let mut current = self.redis_version.write().unwrap_or_else(|e| e.into_inner());
        if &**current != version {
            *current = version.into();
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn map(&self) -> Arc<SlotMap> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_map(&self, map: SlotMap) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.stats.topology_refreshes.fetch_add(1, Relaxed);
    }

    /// Asks for a refresh of the slot map soon; many asks make one refresh.
    pub fn want_refresh(&self) {
        self.refresh_wanted.notify_one();
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Relaxed)
    }
}

/// Counters, written with relaxed atomics (each is its own fact; none orders others).
#[derive(Default)]
pub struct Stats {
    pub clients_connected: AtomicUsize,
    /// The most clients connected at once since the proxy started.
    pub clients_peak: AtomicUsize,
    pub clients_total: AtomicU64,
    pub clients_rejected: AtomicU64,
    pub commands: AtomicU64,
    /// Error replies sent to clients (from nodes or from the proxy).
    pub errors: AtomicU64,
    pub moved: AtomicU64,
    pub ask: AtomicU64,
    /// Commands sent again after TRYAGAIN, CLUSTERDOWN, LOADING or a lost connection.
    pub retries: AtomicU64,
    /// Commands whose connection broke after they were sent and that could not be retried.
    pub outcome_unknown: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// With `--write-ack replica`: writes a replica confirmed before their reply went out.
    pub acks_confirmed: AtomicU64,
    /// With `--write-ack replica`: writes that ran on the master but that no replica confirmed
    /// in time (or whose connection broke before it could), answered with `NOREPLICAACK`.
    pub acks_missing: AtomicU64,
    pub topology_refreshes: AtomicU64,
    /// With `--fast-failover`: replicas this proxy told to take over from a dead master.
    pub forced_failovers: AtomicU64,
    pub backend_connects: AtomicU64,
    pub backend_failures: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// `CONFIG RESETSTAT`: the counters start again from zero, as Redis' INFO stats do (the
    /// gauge of connected clients is left alone).
    pub fn reset_counters(&self) {
        let counters = [
            &self.clients_total,
            &self.clients_rejected,
            &self.commands,
            &self.errors,
            &self.moved,
            &self.ask,
            &self.retries,
            &self.outcome_unknown,
            &self.protocol_errors,
            &self.acks_confirmed,
            &self.acks_missing,
            &self.topology_refreshes,
            &self.forced_failovers,
            &self.backend_connects,
            &self.backend_failures,
        ];
        for counter in counters {
            counter.store(0, Relaxed);
        }
    }
}
