//! `bench merge` (several clients' runs as one: totals per phase) and `bench compare` (two
//! runs side by side as ratios). Pure.

use std::fmt::Write as _;

use crate::engine::{histogram_of, latency_of};
use crate::results::{Phase, RunResults};
use crate::values::show_size;

/// Adds up clients' runs: per (operation, size), requests and errors add up, the phase lasts
/// as long as the longest client's, latency histograms are added (not averaged). Batches are
/// left out: they are per client, in the clients' own files.
pub fn merge(runs: &[RunResults]) -> Result<RunResults, String> {
    let first = runs.first().ok_or("nothing to merge")?;
    let mut merged = first.clone();
    merged.meta.client_ids = runs.iter().flat_map(|r| r.meta.client_ids.clone()).collect();
    merged.meta.client_ids.sort_unstable();
    merged.meta.connections = runs.iter().map(|r| r.meta.connections).sum();
    merged.meta.command_line = format!("merge of {} runs", runs.len());
    for phase in &mut merged.phases {
        let same: Vec<&Phase> = runs
            .iter()
            .flat_map(|r| r.phases.iter())
            .filter(|p| p.op == phase.op && p.size == phase.size)
            .collect();
        let mut histogram = histogram_of(&same[0].latency);
        for p in &same[1..] {
            histogram.add(histogram_of(&p.latency)).map_err(|e| e.to_string())?;
        }
        phase.requests = same.iter().map(|p| p.requests).sum();
        phase.errors = same.iter().map(|p| p.errors).sum();
        phase.missing = same.iter().map(|p| p.missing).sum();
        phase.wrong = same.iter().map(|p| p.wrong).sum();
        phase.seconds = same.iter().map(|p| p.seconds).fold(0.0, f64::max);
        phase.latency = latency_of(&histogram);
        phase.batches.clear();
    }
    Ok(merged)
}

/// Per phase of `a` that `b` also has: ops/s, p50 and p99 of `b` over `a`.
pub fn compare(a: &RunResults, b: &RunResults) -> String {
    let mut out = format!(
        "{:<6} {:>9} {:>12} {:>12} {:>8} {:>10} {:>10}\n",
        "op", "size", "A ops/s", "B ops/s", "B/A", "p50 B/A", "p99 B/A"
    );
    let ratio = |x: f64, y: f64| if x > 0.0 { format!("{:.2}", y / x) } else { "-".into() };
    for pa in &a.phases {
        let Some(pb) = b.phases.iter().find(|p| p.op == pa.op && p.size == pa.size) else {
            continue;
        };
        let _ = writeln!(
            out,
            "{:<6} {:>9} {:>12.0} {:>12.0} {:>8} {:>10} {:>10}",
            pa.op,
            show_size(pa.size).replace(' ', ""),
            pa.ops_per_sec(),
            pb.ops_per_sec(),
            ratio(pa.ops_per_sec(), pb.ops_per_sec()),
            ratio(pa.latency.p50 as f64, pb.latency.p50 as f64),
            ratio(pa.latency.p99 as f64, pb.latency.p99 as f64),
        );
    }
    out
}
