//! What a benchmark run measured, as data: written to the result files, read back by
//! `bench merge` and `bench compare`, drawn by the plots. Everything here is plain data with
//! serde; the engine fills it, the writers and plots only read it.

use serde::{Deserialize, Serialize};

/// One client's run (or, after `merge`, several clients' runs added up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    pub meta: RunMeta,
    /// In the order they ran: for each size, its SET phase then its GET phase (or one MIXED
    /// phase per size for `--ratio`).
    pub phases: Vec<Phase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// Client ids whose results these are (one, or several after a merge).
    pub client_ids: Vec<u32>,
    /// HOST:PORT asked first.
    pub target: String,
    /// `proxy` (through a plain connection), `cluster` (direct, with slot routing) or
    /// `standalone`.
    pub mode: String,
    /// `ip:port role slots` per node, when the target is a cluster.
    pub topology: Vec<String>,
    /// The server's `redis_version` and redkeep's own version.
    pub redis_version: String,
    pub redkeep_version: String,
    /// The command line that ran the benchmark.
    pub command_line: String,
    /// RFC 3339 time the run started.
    pub started_at: String,
    pub connections: usize,
    pub pipeline: usize,
    /// `set-then-get`, or `mixed SET:GET` with the ratio.
    pub workload: String,
    pub key_pattern: String,
    /// Open-loop rate (requests per second), when the run used `--rate`.
    pub rate: Option<u64>,
}

/// One phase: one operation (or the mixed workload) at one value size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `SET`, `GET` or `MIXED`.
    pub op: String,
    /// Value size in bytes.
    pub size: usize,
    /// Operations completed (successful or not).
    pub requests: u64,
    /// Operations that failed: an error reply, a lost connection, a missing key or a wrong
    /// value on GET.
    pub errors: u64,
    /// Of the errors: GETs that found no value.
    pub missing: u64,
    /// Of the errors: GETs that found a value other than the one written.
    pub wrong: u64,
    /// Wall time of the phase in seconds.
    pub seconds: f64,
    pub latency: Latency,
    /// Every batch of 1,000 operations, in completion order (the last may be shorter).
    pub batches: Vec<Batch>,
}

impl Phase {
    /// Operations that succeeded per second: a failed one (an error, a lost connection, a
    /// wrong or missing value) is not throughput.
    pub fn ops_per_sec(&self) -> f64 {
        let served = self.requests.saturating_sub(self.errors);
        if self.seconds > 0.0 { served as f64 / self.seconds } else { 0.0 }
    }

    /// Value bytes moved per second, in MB (10^6 bytes).
    pub fn mb_per_sec(&self) -> f64 {
        self.ops_per_sec() * self.size as f64 / 1e6
    }

    pub fn error_percent(&self) -> f64 {
        if self.requests > 0 { 100.0 * self.errors as f64 / self.requests as f64 } else { 0.0 }
    }
}

/// Latency in microseconds, from an HDR histogram (1 µs resolution, up to 60 s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    /// The whole histogram as (value µs, count) for every distinct recorded value (3
    /// significant digits), so that merged runs add histograms rather than average percentiles.
    pub histogram: Vec<(u64, u64)>,
}

/// A batch of consecutive operations of a phase, as the old client's raw files recorded them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Number (from 0, in the phase) of the batch's first and last operation.
    pub first_op: u64,
    pub last_op: u64,
    pub errors: u64,
    /// Seconds since the phase started.
    pub start: f64,
    pub end: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(requests: u64, errors: u64) -> Phase {
        Phase {
            op: "SET".into(),
            size: 1000,
            requests,
            errors,
            missing: 0,
            wrong: 0,
            seconds: 2.0,
            latency: Latency::default(),
            batches: Vec::new(),
        }
    }

    #[test]
    fn failed_operations_are_not_throughput() {
        assert_eq!(phase(100, 100).ops_per_sec(), 0.0);
        assert_eq!(phase(100, 100).mb_per_sec(), 0.0);
        assert_eq!(phase(100, 20).ops_per_sec(), 40.0);
        assert_eq!(phase(100, 20).error_percent(), 20.0);
    }
}
