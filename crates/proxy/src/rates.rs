//! Per-second rates for the stats page and the JSON API: ops/s per command and per node,
//! errors/s, client bytes/s.
//!
//! The request path only adds to its per-worker counters (see [`crate::metrics`]); rates come
//! from sampling the totals once a second, off the workers, and dividing the growth over the
//! last few samples by the time between them. Prometheus computes its own rates from the
//! counters in `/metrics`, so these are for people looking at the page.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::shared::Shared;

/// How often the totals are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Rates are over the last this many sample intervals: steady enough to read, recent enough
/// to show a change within a few seconds.
const WINDOW: usize = 5;

/// The totals at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Calls and errors per command id (unknown commands under `usize::MAX`).
    pub commands: HashMap<usize, (u64, u64)>,
    /// Replies the proxy read, per node address.
    pub node_replies: HashMap<String, u64>,
}

impl Sample {
    /// The proxy's totals now.
    pub fn take(shared: &Shared) -> Sample {
        let (bytes_in, bytes_out) = shared.registry.traffic();
        let mut commands: HashMap<usize, (u64, u64)> = shared
            .registry
            .commands()
            .into_iter()
            .map(|(id, calls, errors, _)| (id, (calls, errors)))
            .collect();
        let unknown = shared.registry.unknown_errors();
        commands.insert(UNKNOWN, (unknown, unknown));
        let node_replies = shared.registry.nodes().into_iter().map(|n| (n.0, n.1)).collect();
        Sample { at: Instant::now(), bytes_in, bytes_out, commands, node_replies }
    }
}

/// Where a sample keeps the requests that named no known command.
pub const UNKNOWN: usize = usize::MAX;

/// Per-second rates over the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    /// The span the rates are over.
    pub window_secs: f64,
    pub ops_per_sec: f64,
    pub errors_per_sec: f64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    /// Calls and errors per second, per command id.
    #[serde(skip)]
    pub commands: HashMap<usize, (f64, f64)>,
    #[serde(skip)]
    pub node_replies: HashMap<String, f64>,
}

/// The last few samples.
#[derive(Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<Sample>,
}

impl RateWindow {
    pub fn push(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        while self.samples.len() > WINDOW + 1 {
            self.samples.pop_front();
        }
    }

    /// The rates between the oldest and the newest sample; none before there are two.
    pub fn rates(&self) -> Option<Rates> {
        let (older, newer) = (self.samples.front()?, self.samples.back()?);
        rates_between(older, newer)
    }
}

/// Growth per second from `older` to `newer`. A counter that went down (reset with CONFIG
/// RESETSTAT, a node gone from the map) reads as 0, never negative.
pub fn rates_between(older: &Sample, newer: &Sample) -> Option<Rates> {
    let secs = newer.at.checked_duration_since(older.at)?.as_secs_f64();
    if secs < 0.1 {
        return None;
    }
    let per_sec = |before: u64, after: u64| after.saturating_sub(before) as f64 / secs;
    let commands: HashMap<usize, (f64, f64)> = newer
        .commands
        .iter()
        .map(|(id, &(calls, errors))| {
            let (calls_before, errors_before) = older.commands.get(id).copied().unwrap_or((0, 0));
            (*id, (per_sec(calls_before, calls), per_sec(errors_before, errors)))
        })
        .collect();
    let node_replies = newer
        .node_replies
        .iter()
        .map(|(addr, &after)| {
            (addr.clone(), per_sec(older.node_replies.get(addr).copied().unwrap_or(0), after))
        })
        .collect();
    Some(Rates {
        window_secs: secs,
        ops_per_sec: commands.values().map(|r| r.0).sum(),
        errors_per_sec: commands.values().map(|r| r.1).sum(),
        bytes_in_per_sec: per_sec(older.bytes_in, newer.bytes_in),
        bytes_out_per_sec: per_sec(older.bytes_out, newer.bytes_out),
        commands,
        node_replies,
    })
}

/// Samples the proxy's totals every [`SAMPLE_EVERY`] until shutdown.
pub async fn sample_loop(shared: Arc<Shared>) {
    loop {
        let sample = Sample::take(&shared);
        shared.rates.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, get_calls: u64, get_errors: u64, replies: u64, bytes: u64) -> Sample {
        Sample {
            at,
            bytes_in: bytes,
            bytes_out: 2 * bytes,
            commands: HashMap::from([(3, (get_calls, get_errors)), (UNKNOWN, (0, 0))]),
            node_replies: HashMap::from([("n:1".to_string(), replies)]),
        }
    }

    #[test]
    fn rates_are_growth_over_the_time_between_samples() {
        let t0 = Instant::now();
        let rates = rates_between(
            &sample(t0, 100, 1, 50, 1_000),
            &sample(t0 + Duration::from_secs(2), 300, 5, 150, 3_000),
        )
        .unwrap();
        assert_eq!(rates.window_secs, 2.0);
        assert_eq!(rates.commands[&3], (100.0, 2.0));
        assert_eq!((rates.ops_per_sec, rates.errors_per_sec), (100.0, 2.0));
        assert_eq!(rates.node_replies["n:1"], 50.0);
        assert_eq!((rates.bytes_in_per_sec, rates.bytes_out_per_sec), (1_000.0, 2_000.0));
    }

    #[test]
    fn a_reset_counter_reads_as_zero_and_new_series_count_from_zero() {
        let t0 = Instant::now();
        let mut newer = sample(t0 + Duration::from_secs(1), 10, 0, 0, 0);
        newer.commands.insert(7, (4, 0));
        let rates = rates_between(&sample(t0, 500, 9, 40, 0), &newer).unwrap();
        assert_eq!(rates.commands[&3], (0.0, 0.0));
        assert_eq!(rates.commands[&7], (4.0, 0.0));
        assert_eq!(rates.node_replies["n:1"], 0.0);
    }

    #[test]
    fn the_window_keeps_the_last_samples_and_needs_two() {
        let t0 = Instant::now();
        let mut window = RateWindow::default();
        assert!(window.rates().is_none());
        window.push(sample(t0, 0, 0, 0, 0));
        assert!(window.rates().is_none(), "one sample has no rate");
        for i in 1..=10u64 {
            window.push(sample(t0 + Duration::from_secs(i), 10 * i, 0, 0, 0));
        }
        let rates = window.rates().unwrap();
        assert_eq!(rates.window_secs, WINDOW as f64);
        assert_eq!(rates.ops_per_sec, 10.0);
    }
}
