//! Counters and latency histograms the stats page and `/metrics` read.
//!
//! Each worker thread writes its own blocks (per node, per command), so the request path never
//! shares a cache line with another thread; readers add the blocks up. Latency buckets are
//! powers of two in microseconds: cheap to find (one `leading_zeros`) and fine enough for
//! p50/p99 on a page.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bucket `i` < `BUCKETS - 1` counts latencies below 2^i µs; the last one everything above.
pub const BUCKETS: usize = 26;

#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_us: AtomicU64::new(0) }
    }
}

/// Adds `n` to a counter that only one thread writes (each worker its own block; readers may
/// be anywhere): a plain load and store, not a locked read-modify-write, on the request path.
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Histogram {
    /// Counts one latency. One thread writes a histogram (see [`bump`]).
    pub fn record(&self, latency: Duration) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = (64 - us.leading_zeros() as usize).min(BUCKETS - 1);
        bump(&self.counts[bucket], 1);
        bump(&self.sum_us, us);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(|c| c.load(Relaxed)).collect(),
            sum_us: self.sum_us.load(Relaxed),
        }
    }
}

/// A histogram's counts at one moment; several add up into one.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum_us: u64,
}

impl HistogramSnapshot {
    pub fn add(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_us += other.sum_us;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// What was counted since `earlier`, a snapshot of the same histogram taken before.
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        let mut counts = self.counts.clone();
        for (a, b) in counts.iter_mut().zip(&earlier.counts) {
            *a = a.saturating_sub(*b);
        }
        HistogramSnapshot { counts, sum_us: self.sum_us.saturating_sub(earlier.sum_us) }
    }

    /// The upper bound (µs) of bucket `i`; `None` for the last, unbounded one.
    pub fn upper_bound_us(i: usize) -> Option<u64> {
        (i < BUCKETS - 1).then(|| 1u64 << i)
    }

    /// An estimate of the latency (µs) below which `q` of the samples fall: found by linear
    /// interpolation inside the bucket that holds the `q`-th sample, as Prometheus'
    /// `histogram_quantile` does. Bucket `i` holds [2^(i-1), 2^i) µs, so the true value is
    /// within a factor of two of the estimate; the last, unbounded bucket gives its lower
    /// bound.
    pub fn estimate_us(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (total as f64) * q.clamp(0.0, 1.0);
        let mut below = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (below + c) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { (1u64 << (i - 1)) as f64 };
                let Some(upper) = Self::upper_bound_us(i) else { return Some(lower) };
                let inside = ((rank - below as f64) / c as f64).clamp(0.0, 1.0);
                return Some(lower + (upper as f64 - lower) * inside);
            }
            below += c;
        }
        None
    }

    /// The latency (µs, a bucket's upper bound) below which `q` of the samples fall.
    pub fn percentile_us(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let wanted = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= wanted {
                return Some(Self::upper_bound_us(i).unwrap_or(1 << (BUCKETS - 1)));
            }
        }
        None
    }
}

/// What one worker saw of one node.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub replies: AtomicU64,
    pub errors: AtomicU64,
    /// Connections open to the node now.
    pub connections: AtomicI64,
    pub latency: Histogram,
}

/// What one worker saw of each command, indexed by [`crate::commands::CommandInfo::id`].
///
/// `errors` are error replies the client got for the command: from its node, or made by the
/// proxy (a refused command, an unreachable node once retries ran out). A redirect the proxy
/// followed, or an error it retried, is not one (those count as redirects and retries). A
/// command split over several nodes (MGET over slots, a fan-out) counts one latency and at
/// most one error per part, since the parts are answered separately: its rows may show more
/// latency samples and errors than calls.
#[derive(Debug)]
pub struct CommandStats {
    pub calls: Vec<AtomicU64>,
    pub errors: Vec<AtomicU64>,
    pub latency: Vec<Histogram>,
    /// Errors for requests that name no known command (`ERR unknown command`).
    pub unknown_errors: AtomicU64,
}

/// Counts one reply a client got for `command`: its latency from the proxy reading the
/// request, and whether it was an error. A request the proxy made without a command id (the
/// queued commands of a transaction replayed on its connection) is not counted.
pub fn answered(stats: &CommandStats, command: Option<u16>, latency: Duration, is_error: bool) {
    if let Some(id) = command {
        stats.latency[usize::from(id)].record(latency);
    }
    if is_error {
        command_error(stats, command);
    }
}

/// Counts one error reply a client got for `command` from a node, or from the proxy once the
/// request was sent (see [`answered`] for `None`).
pub fn command_error(stats: &CommandStats, command: Option<u16>) {
    if let Some(counter) = command.and_then(|id| stats.errors.get(usize::from(id))) {
        bump(counter, 1);
    }
}

/// Counts an error the proxy answered a request with itself (a refused command, bad
/// arguments); `None`: the request named no known command.
pub fn proxy_error(stats: &CommandStats, command: Option<u16>) {
    match command.and_then(|id| stats.errors.get(usize::from(id))) {
        Some(counter) => bump(counter, 1),
        None => bump(&stats.unknown_errors, 1),
    }
}

/// Bytes between clients and one worker: what the proxy read from its clients and wrote to
/// them (RESP as on the wire).
#[derive(Debug, Default)]
pub struct ClientTraffic {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl CommandStats {
    pub fn new(commands: usize) -> CommandStats {
        CommandStats {
            calls: (0..commands).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..commands).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..commands).map(|_| Histogram::default()).collect(),
            unknown_errors: AtomicU64::new(0),
        }
    }
}

/// Every worker's blocks, for the readers. Locked only when a block is made or read.
#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mutex<Vec<(String, Arc<NodeStats>)>>,
    commands: Mutex<Vec<Arc<CommandStats>>>,
    traffic: Mutex<Vec<Arc<ClientTraffic>>>,
    /// The totals at the last `CONFIG RESETSTAT`, which readers subtract: the blocks have one
    /// writer each (their worker), so another thread must not store into them.
    baseline: Mutex<Baseline>,
}

/// What the readers of a [`Registry`] subtract: its totals when statistics were last reset.
#[derive(Debug, Default)]
struct Baseline {
    nodes: Vec<NodeTotals>,
    commands: Vec<CommandTotals>,
    unknown_errors: u64,
    traffic: (u64, u64),
}

/// Per node address: replies, errors, open connections (a gauge, never reset), latency.
pub type NodeTotals = (String, u64, u64, i64, HistogramSnapshot);
/// Per command id: calls, errors, latency.
pub type CommandTotals = (usize, u64, u64, HistogramSnapshot);

impl Registry {
    /// A new block for one worker's view of `addr`.
    pub fn node_block(&self, addr: &str) -> Arc<NodeStats> {
        let block = Arc::new(NodeStats::default());
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((addr.to_string(), block.clone()));
        block
    }

    /// A new block for one worker's commands.
    pub fn command_block(&self, commands: usize) -> Arc<CommandStats> {
        let block = Arc::new(CommandStats::new(commands));
        self.commands.lock().unwrap_or_else(|e| e.into_inner()).push(block.clone());
        block
    }

    /// A new block for one worker's client traffic.
    pub fn traffic_block(&self) -> Arc<ClientTraffic> {
        let block = Arc::new(ClientTraffic::default());
        self.traffic.lock().unwrap_or_else(|e| e.into_inner()).push(block.clone());
        block
    }

    /// `CONFIG RESETSTAT`: from now on every total counts from zero.
    pub fn reset(&self) {
        let baseline = Baseline {
            nodes: self.raw_nodes(),
            commands: self.raw_commands(),
            unknown_errors: self.raw_unknown_errors(),
            traffic: self.raw_traffic(),
        };
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = baseline;
    }

    fn baseline(&self) -> std::sync::MutexGuard<'_, Baseline> {
        self.baseline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes read from and written to clients, by every worker, since the last reset.
    pub fn traffic(&self) -> (u64, u64) {
        let (i, o) = self.raw_traffic();
        let (i0, o0) = self.baseline().traffic;
        (i.saturating_sub(i0), o.saturating_sub(o0))
    }

    /// Error replies to requests that named no known command, since the last reset.
    pub fn unknown_errors(&self) -> u64 {
        self.raw_unknown_errors().saturating_sub(self.baseline().unknown_errors)
    }

    /// Per node address: replies, errors, open connections, latency, since the last reset.
    pub fn nodes(&self) -> Vec<NodeTotals> {
        let baseline = self.baseline();
        let mut nodes = self.raw_nodes();
        for (addr, replies, errors, _, latency) in &mut nodes {
            if let Some(old) = baseline.nodes.iter().find(|n| &n.0 == addr) {
                *replies = replies.saturating_sub(old.1);
                *errors = errors.saturating_sub(old.2);
                *latency = latency.since(&old.4);
            }
        }
        nodes
    }

    /// Per command id: calls, errors, latency since the last reset (commands not called since
    /// are left out).
    pub fn commands(&self) -> Vec<CommandTotals> {
        let baseline = self.baseline();
        let mut commands = self.raw_commands();
        for (id, calls, errors, latency) in &mut commands {
            if let Some(old) = baseline.commands.iter().find(|c| c.0 == *id) {
                *calls = calls.saturating_sub(old.1);
                *errors = errors.saturating_sub(old.2);
                *latency = latency.since(&old.3);
            }
        }
        commands.retain(|c| c.1 > 0);
        commands
    }

    fn raw_traffic(&self) -> (u64, u64) {
        let blocks = self.traffic.lock().unwrap_or_else(|e| e.into_inner());
        blocks
            .iter()
            .fold((0, 0), |(i, o), b| (i + b.bytes_in.load(Relaxed), o + b.bytes_out.load(Relaxed)))
    }

    fn raw_unknown_errors(&self) -> u64 {
        let blocks = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        blocks.iter().map(|b| b.unknown_errors.load(Relaxed)).sum()
    }

    fn raw_nodes(&self) -> Vec<NodeTotals> {
        let blocks = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<NodeTotals> = Vec::new();
        for (addr, block) in blocks.iter() {
            let i = match out.iter().position(|n| &n.0 == addr) {
                Some(i) => i,
                None => {
                    out.push((addr.clone(), 0, 0, 0, HistogramSnapshot::default()));
                    out.len() - 1
                }
            };
            let entry = &mut out[i];
            entry.1 += block.replies.load(Relaxed);
            entry.2 += block.errors.load(Relaxed);
            entry.3 += block.connections.load(Relaxed);
            entry.4.add(&block.latency.snapshot());
        }
        out
    }

    fn raw_commands(&self) -> Vec<CommandTotals> {
        let blocks = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        let Some(len) = blocks.first().map(|b| b.calls.len()) else { return Vec::new() };
        (0..len)
            .filter_map(|id| {
                let calls: u64 = blocks.iter().map(|b| b.calls[id].load(Relaxed)).sum();
                if calls == 0 {
                    return None;
                }
                let errors = blocks.iter().map(|b| b.errors[id].load(Relaxed)).sum();
                let mut latency = HistogramSnapshot::default();
                blocks.iter().for_each(|b| latency.add(&b.latency[id].snapshot()));
                Some((id, calls, errors, latency))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_power_of_two_buckets() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(Duration::from_micros(100)); // bucket < 128 µs
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(3)); // bucket < 4096 µs
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 100);
        assert_eq!(s.percentile_us(0.5), Some(128));
        assert_eq!(s.percentile_us(0.99), Some(4096));
        assert_eq!(s.sum_us, 90 * 100 + 10 * 3000);
        let mut total = HistogramSnapshot::default();
        total.add(&s);
        total.add(&s);
        assert_eq!(total.count(), 200);
    }

    #[test]
    fn estimates_interpolate_inside_the_bucket() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(Duration::from_micros(100)); // bucket [64, 128)
        }
        let s = h.snapshot();
        assert_eq!(s.estimate_us(0.5), Some(96.0));
        assert_eq!(s.estimate_us(1.0), Some(128.0));
        assert_eq!(HistogramSnapshot::default().estimate_us(0.5), None);
        // 90 fast, 10 slow: p50 among the fast, p99 among the slow ([2048, 4096) µs).
        for _ in 0..11 {
            h.record(Duration::from_millis(3));
        }
        let s = h.snapshot();
        assert!(s.estimate_us(0.5).unwrap() < 128.0);
        let p99 = s.estimate_us(0.99).unwrap();
        assert!((2048.0..=4096.0).contains(&p99), "{p99}");
        // The unbounded last bucket gives its lower bound.
        let slow = Histogram::default();
        slow.record(Duration::from_secs(3600));
        assert_eq!(slow.snapshot().estimate_us(0.5), Some((1u64 << (BUCKETS - 2)) as f64));
    }

    #[test]
    fn answers_count_errors_per_command_or_as_unknown() {
        let stats = CommandStats::new(3);
        answered(&stats, Some(1), Duration::from_micros(5), true);
        answered(&stats, Some(1), Duration::from_micros(5), false);
        answered(&stats, None, Duration::ZERO, true); // no command id: not counted
        command_error(&stats, Some(2));
        proxy_error(&stats, Some(2));
        proxy_error(&stats, None); // an unknown command
        proxy_error(&stats, Some(99)); // not in the table: counted, as unknown
        assert_eq!(stats.errors[1].load(Relaxed), 1);
        assert_eq!(stats.errors[2].load(Relaxed), 2);
        assert_eq!(stats.unknown_errors.load(Relaxed), 2);
        assert_eq!(stats.latency[1].snapshot().count(), 2);
    }

    #[test]
    fn blocks_of_several_workers_add_up() {
        let registry = Registry::default();
        for _ in 0..2 {
            let block = registry.node_block("n:1");
            block.replies.fetch_add(3, Relaxed);
            block.latency.record(Duration::from_micros(10));
            registry.command_block(4).calls[2].fetch_add(5, Relaxed);
        }
        let nodes = registry.nodes();
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].1, nodes[0].4.count()), (6, 2));
        let commands = registry.commands();
        assert_eq!(commands.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(), [(2, 10)]);
        for n in [3, 4] {
            bump(&registry.traffic_block().bytes_in, n);
        }
        assert_eq!(registry.traffic(), (7, 0));
    }
}
