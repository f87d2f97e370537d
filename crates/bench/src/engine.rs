//! The workload: for each value size a SET phase then a GET phase over exactly the keys the
//! SET phase wrote (or one mixed phase with `--ratio`), on `connections` pipelined
//! connections. Latency goes into HDR histograms (1 µs to 60 s, 3 significant digits), and
//! every batch of 1,000 operations is recorded as the old client's raw files did.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::SeedableRng;

use crate::conn::{Client, Op, OpKind, Outcome, SlotTable};
use crate::results::{Batch, Latency, Phase};

/// How operations pick their keys when `--keyspace` bounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPattern {
    Sequential,
    Random,
    /// Normal around the middle of the keyspace (standard deviation: a sixth of it).
    Gaussian,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub target: String,
    /// Direct to the cluster's nodes with the client's own slot routing.
    pub cluster: bool,
    pub client_id: u32,
    pub sizes: Vec<usize>,
    /// Each phase runs this long, or until `requests` operations.
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub connections: usize,
    pub pipeline: usize,
    /// `Some((set, get))`: one mixed phase per size with this ratio.
    pub ratio: Option<(u32, u32)>,
    pub keyspace: Option<u64>,
    pub key_pattern: KeyPattern,
    /// Without `keyspace`: the most value bytes one size may hold in the cluster; SETs past it
    /// overwrite earlier keys, so a long phase of large values cannot fill the memory.
    pub max_data: u64,
    /// Leave each size's keys in place instead of unlinking them after its phases.
    pub keep_keys: bool,
    /// Set (by Ctrl-C) to end the run after the operations in flight: the phase under way ends
    /// early and counts what it did, the rest do not run.
    pub stop: Arc<AtomicBool>,
    /// Open loop: this many requests per second in all, latency measured from when each
    /// request should have been sent (no coordinated omission).
    pub rate: Option<u64>,
}

/// Live progress of a phase, for the progress bar.
#[derive(Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

/// Shared by the connections of one phase.
struct PhaseState {
    next: AtomicU64,
    /// The run's stop flag (Ctrl-C).
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    limit: Option<u64>,
    started: Instant,
    progress: Arc<Progress>,
}

impl PhaseState {
    /// Claims the next `n` operation numbers; fewer (or none) near the end.
    fn claim(&self, n: u64) -> Option<std::ops::Range<u64>> {
        if self.stop.load(Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let first = self.next.fetch_add(n, Relaxed);
        let end = match self.limit {
            Some(limit) if first >= limit => return None,
            Some(limit) => (first + n).min(limit),
            None => first + n,
        };
        Some(first..end)
    }
}

/// What one connection measured in a phase.
struct Tally {
    /// Latency of the operations that succeeded (a failed one is not served throughput).
    histogram: Histogram<u64>,
    /// Operations done, failed or not.
    ops: u64,
    errors: u64,
    missing: u64,
    wrong: u64,
    /// Batch number → (operations, errors, first start, last end) in seconds since the start.
    batches: BTreeMap<u64, (u64, u64, f64, f64)>,
    failed_sets: Vec<u64>,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid HDR bounds"),
            ops: 0,
            errors: 0,
            missing: 0,
            wrong: 0,
            batches: BTreeMap::new(),
            failed_sets: Vec::new(),
            first_error: None,
        }
    }
}

/// Where the operations of a phase go and what they do.
#[derive(Clone)]
enum Kind {
    Set,
    /// Reads keys `0..written` that the SET phase wrote, skipping those whose SET failed.
    Get {
        written: u64,
        failed: Arc<HashSet<u64>>,
    },
    Mixed {
        set: u32,
        get: u32,
    },
}

/// Runs the whole workload; `on_phase` hears of each phase as it starts (op, size) with its
/// live progress, and of its result when done.
pub async fn run(
    workload: &Workload,
    mut on_phase: impl FnMut(&str, usize, Option<&Phase>, &Arc<Progress>),
) -> Result<Vec<Phase>, String> {
    let table = if workload.cluster {
        Some(Arc::new(RwLock::new(SlotTable::load(&workload.target).await?)))
    } else {
        // As with --cluster, a target that does not answer ends the run before it starts,
        // with one error, instead of phases of failed operations.
        crate::conn::probe(&workload.target).await?;
        None
    };
    let mut phases = Vec::new();
    for &size in &workload.sizes {
        let kinds: Vec<(&str, Kind)> = match workload.ratio {
            Some((set, get)) => vec![("MIXED", Kind::Mixed { set, get })],
            None => vec![("SET", Kind::Set)],
        };
        for (name, kind) in kinds {
            let progress = Arc::new(Progress::default());
            on_phase(name, size, None, &progress);
            let (phase, failed) = run_phase(workload, &table, name, kind, size, &progress).await?;
            on_phase(name, size, Some(&phase), &progress);
            let written = phase.requests;
            phases.push(phase);
            let stopped = workload.stop.load(Relaxed);
            if workload.ratio.is_none() && !stopped && written > 0 {
                let progress = Arc::new(Progress::default());
                on_phase("GET", size, None, &progress);
                let written = written.min(key_space(workload, size));
                let kind = Kind::Get { written, failed: Arc::new(failed) };
                let (phase, _) = run_phase(workload, &table, "GET", kind, size, &progress).await?;
                on_phase("GET", size, Some(&phase), &progress);
                phases.push(phase);
            }
            if !workload.keep_keys {
                clean_up(workload, &table, size, written).await;
            }
        }
        if workload.stop.load(Relaxed) {
            break;
        }
    }
    Ok(phases)
}

async fn run_phase(
    workload: &Workload,
    table: &Option<Arc<RwLock<SlotTable>>>,
    name: &str,
    kind: Kind,
    size: usize,
    progress: &Arc<Progress>,
) -> Result<(Phase, HashSet<u64>), String> {
    if let Kind::Get { written: 0, .. } = kind {
        return Err(format!("the SET phase of {size} B wrote nothing to read back"));
    }
    let started = Instant::now();
    let state = Arc::new(PhaseState {
        next: AtomicU64::new(0),
        stop: workload.stop.clone(),
        deadline: workload.duration.map(|d| started + d),
        limit: workload.requests,
        started,
        progress: progress.clone(),
    });
    let mut tasks = Vec::new();
    for c in 0..workload.connections.max(1) {
        let client = match table {
            Some(table) => Client::cluster(table.clone()),
            None => Client::plain(&workload.target),
        };
        let (state, kind, workload) = (state.clone(), kind.clone(), workload.clone());
        tasks.push(tokio::spawn(async move {
            connection(client, &workload, &state, &kind, size, c).await
        }));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await.map_err(|e| format!("a benchmark connection panicked: {e}"))?);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(summarize(name, size, seconds, tallies))
}

/// One connection's loop: claim operations, run them as one pipeline, tally the outcomes.
async fn connection(
    mut client: Client,
    workload: &Workload,
    state: &PhaseState,
    kind: &Kind,
    size: usize,
    index: usize,
) -> Tally {
    let mut tally = Tally::new();
    let pipeline = if workload.rate.is_some() { 1 } else { workload.pipeline.max(1) } as u64;
    let interval = workload
        .rate
        .map(|r| Duration::from_secs_f64(workload.connections.max(1) as f64 / r.max(1) as f64));
    // Open loop: each connection's requests are due at fixed times, staggered by connection.
    let mut due = state.started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / workload.connections.max(1) as f64)
        });
    let mut ops: Vec<Op> = Vec::with_capacity(pipeline as usize);
    let mut numbers: Vec<u64> = Vec::with_capacity(pipeline as usize);
    let mut outcomes = Vec::new();
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    while let Some(range) = state.claim(pipeline) {
        numbers.clear();
        numbers.extend(range);
        // Reuse the operations (and their key strings) of the last pipeline.
        ops.truncate(numbers.len());
        while ops.len() < numbers.len() {
            ops.push(Op { kind: OpKind::Get, key: String::new(), size });
        }
        for (op, &n) in ops.iter_mut().zip(&numbers) {
            make_op(workload, kind, size, n, &mut rng, op);
        }
        let sent = match interval {
            Some(interval) => {
                tokio::time::sleep_until(due.into()).await;
                let intended = due;
                due += interval;
                intended
            }
            None => Instant::now(),
        };
        client.run(&ops, &mut outcomes).await;
        let end = Instant::now();
        let latency = end.saturating_duration_since(sent).as_micros().max(1) as u64;
        let (start_s, end_s) = (
            sent.saturating_duration_since(state.started).as_secs_f64(),
            end.saturating_duration_since(state.started).as_secs_f64(),
        );
        let mut errors = 0;
        for (i, outcome) in outcomes.iter().enumerate() {
            let failed = match outcome {
                Outcome::Ok | Outcome::Match => false,
                Outcome::Missing => {
                    tally.missing += 1;
                    // In a mixed workload a GET may come before any SET of its key.
                    !matches!(kind, Kind::Mixed { .. })
                }
                Outcome::Wrong => {
                    tally.wrong += 1;
                    true
                }
                Outcome::Error(text) => {
                    tally.first_error.get_or_insert_with(|| text.clone());
                    if ops[i].kind == OpKind::Set {
                        tally.failed_sets.push(numbers[i] % key_space(workload, size));
                    }
                    true
                }
            };
            if failed {
                errors += 1;
            } else {
                let _ = tally.histogram.record(latency.min(60_000_000));
            }
            add_to_batch(
                &mut tally.batches,
                numbers[i] / 1000,
                (1, u64::from(failed), start_s, end_s),
            );
        }
        tally.ops += outcomes.len() as u64;
        tally.errors += errors;
        state.progress.done.fetch_add(outcomes.len() as u64, Relaxed);
        state.progress.errors.fetch_add(errors, Relaxed);
    }
    tally
}

/// Sets `op` to operation `n` of the phase, writing its key into the op's own string.
fn make_op(
    workload: &Workload,
    kind: &Kind,
    size: usize,
    n: u64,
    rng: &mut impl rand::Rng,
    op: &mut Op,
) {
    let (op_kind, k) = match kind {
        Kind::Set => (OpKind::Set, pick_key(workload, size, n, rng)),
        Kind::Get { written, failed } => {
            let mut k = n % written;
            // A key whose SET failed was never written: read the next one instead.
            let mut tries = 0;
            while failed.contains(&k) && tries < *written {
                k = (k + 1) % written;
                tries += 1;
            }
            (OpKind::Get, k)
        }
        Kind::Mixed { set, get } => {
            let is_set = n % u64::from(set + get) < u64::from(*set);
            (if is_set { OpKind::Set } else { OpKind::Get }, pick_key(workload, size, n, rng))
        }
    };
    op.kind = op_kind;
    op.size = size;
    crate::values::write_key(&mut op.key, workload.client_id, size, k);
}

/// Key numbers one size uses: `--keyspace`, else as many as `max_data` bytes hold.
pub fn key_space(workload: &Workload, size: usize) -> u64 {
    workload
        .keyspace
        .filter(|&s| s > 0)
        .unwrap_or_else(|| (workload.max_data / size.max(1) as u64).max(1))
}

/// The key number of operation `n`, within the size's key space by the key pattern.
fn pick_key(workload: &Workload, size: usize, n: u64, rng: &mut impl rand::Rng) -> u64 {
    let space = key_space(workload, size);
    match workload.key_pattern {
        KeyPattern::Sequential => n % space,
        KeyPattern::Random => rng.random_range(0..space),
        KeyPattern::Gaussian => {
            // Box-Muller: one normal sample from two uniform ones.
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let k = space as f64 / 2.0 + z * space as f64 / 6.0;
            (k.max(0.0) as u64).min(space - 1)
        }
    }
}

/// Unlinks the keys a size used (not measured), so that the next size starts from an empty
/// cluster and memory stays bounded.
async fn clean_up(
    workload: &Workload,
    table: &Option<Arc<RwLock<SlotTable>>>,
    size: usize,
    used: u64,
) {
    let mut client = match table {
        Some(table) => Client::cluster(table.clone()),
        None => Client::plain(&workload.target),
    };
    let used = used.min(key_space(workload, size));
    let mut outcomes = Vec::new();
    let mut first = 0;
    while first < used {
        let last = (first + 1000).min(used);
        let ops: Vec<Op> = (first..last)
            .map(|k| Op {
                kind: OpKind::Del,
                key: crate::values::key(workload.client_id, size, k),
                size,
            })
            .collect();
        client.run(&ops, &mut outcomes).await;
        first = last;
    }
}

/// Counts (operations, errors, start, end) into batch `number`: counts add up, the span widens.
fn add_to_batch(
    batches: &mut BTreeMap<u64, (u64, u64, f64, f64)>,
    number: u64,
    part: (u64, u64, f64, f64),
) {
    let batch = batches.entry(number).or_insert((0, 0, part.2, part.3));
    batch.0 += part.0;
    batch.1 += part.1;
    batch.2 = batch.2.min(part.2);
    batch.3 = batch.3.max(part.3);
}

fn summarize(name: &str, size: usize, seconds: f64, tallies: Vec<Tally>) -> (Phase, HashSet<u64>) {
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid HDR bounds");
    let mut batches: BTreeMap<u64, (u64, u64, f64, f64)> = BTreeMap::new();
    let (mut ops, mut errors, mut missing, mut wrong) = (0, 0, 0, 0);
    let mut failed = HashSet::new();
    let mut first_error = None;
    for tally in tallies {
        let _ = histogram.add(&tally.histogram);
        ops += tally.ops;
        errors += tally.errors;
        missing += tally.missing;
        wrong += tally.wrong;
        failed.extend(tally.failed_sets);
        first_error = first_error.or(tally.first_error);
        for (number, b) in tally.batches {
            add_to_batch(&mut batches, number, b);
        }
    }
    // One line per phase, not one per connection.
    if let Some(error) = &first_error {
        tracing::warn!(phase = name, size, errors, first = %error, "operations failed in this phase");
    }
    let batches = batches
        .into_iter()
        .map(|(number, (ops, errors, start, end))| Batch {
            first_op: number * 1000,
            last_op: number * 1000 + ops.saturating_sub(1),
            errors,
            start,
            end,
        })
        .collect();
    let phase = Phase {
        op: name.to_string(),
        size,
        requests: ops,
        errors,
        missing,
        wrong,
        seconds,
        latency: latency_of(&histogram),
        batches,
    };
    (phase, failed)
}

pub fn latency_of(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    Latency {
        mean: histogram.mean(),
        p50: histogram.value_at_quantile(0.5),
        p90: histogram.value_at_quantile(0.9),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
        histogram: histogram
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
    }
}

/// A histogram back from its recorded values (for merging runs).
pub fn histogram_of(latency: &Latency) -> Histogram<u64> {
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid HDR bounds");
    for &(value, count) in &latency.histogram {
        let _ = histogram.record_n(value.clamp(1, 60_000_000), count);
    }
    histogram
}
