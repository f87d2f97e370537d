//! `bench merge` (several clients' runs as one: totals per phase) and `bench compare` (two
//! runs side by side as ratios). Pure.

use std::fmt::Write as _;

use crate::engine::{histogram_of, latency_of};
use crate::results::{Phase, RunResults};
use crate::values::show_size;

/// Adds up clients' runs: per (operation, size), requests and errors add up, the phase lasts
/// as long as the longest client's, latency histograms are added (not averaged). Batches are
/// left out: they are per client, in the clients' own files.
///
/// Runs that differ (see [`differences`]) are added up all the same: the caller decides.
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

/// How the runs given to [`merge`] differ in what makes their sums meaningful: the target, the
/// workload and its settings, the phases (value sizes), the client ids (a run given twice).
/// Empty when they can be added up.
pub fn differences(runs: &[RunResults]) -> Vec<String> {
    let Some(first) = runs.first() else { return Vec::new() };
    let mut found = Vec::new();
    let phases = |r: &RunResults| -> Vec<String> {
        r.phases.iter().map(|p| format!("{} {}", p.op, show_size(p.size))).collect()
    };
    let settings = |r: &RunResults| {
        let m = &r.meta;
        format!(
            "{}, {}, {} connections, pipeline {}, rate {}",
            m.workload,
            m.key_pattern,
            m.connections,
            m.pipeline,
            m.rate.map_or("unlimited".into(), |r| format!("{r}/s"))
        )
    };
    let mut seen_ids: Vec<u32> = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let which = format!("run {} (client {:?})", i + 1, run.meta.client_ids);
        if (&run.meta.target, &run.meta.mode) != (&first.meta.target, &first.meta.mode) {
            found.push(format!(
                "{which} ran against {} ({}), run 1 against {} ({})",
                run.meta.target, run.meta.mode, first.meta.target, first.meta.mode
            ));
        }
        if settings(run) != settings(first) {
            found.push(format!("{which} ran {}, run 1 ran {}", settings(run), settings(first)));
        }
        if phases(run) != phases(first) {
            found.push(format!(
                "{which} has the phases [{}], run 1 [{}]",
                phases(run).join(", "),
                phases(first).join(", ")
            ));
        }
        for id in &run.meta.client_ids {
            if seen_ids.contains(id) {
                found.push(format!("client {id} is in more than one run (the same file twice?)"));
            }
            seen_ids.push(*id);
        }
    }
    found
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Latency, RunMeta};

    fn run(client: u32, target: &str, sizes: &[usize], pipeline: usize) -> RunResults {
        RunResults {
            meta: RunMeta {
                client_ids: vec![client],
                target: target.into(),
                mode: "proxy".into(),
                topology: Vec::new(),
                redis_version: "7.0".into(),
                redkeep_version: "0".into(),
                command_line: "bench".into(),
                started_at: "now".into(),
                connections: 50,
                pipeline,
                workload: "set-then-get".into(),
                key_pattern: "a new key per SET".into(),
                rate: None,
            },
            phases: sizes
                .iter()
                .map(|&size| Phase {
                    op: "SET".into(),
                    size,
                    requests: 10,
                    errors: 0,
                    missing: 0,
                    wrong: 0,
                    seconds: 1.0,
                    latency: Latency::default(),
                    batches: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn runs_of_the_same_workload_have_no_differences() {
        let runs = [run(1, "h:7010", &[16, 1024], 1), run(2, "h:7010", &[16, 1024], 1)];
        assert_eq!(differences(&runs), Vec::<String>::new());
    }

    #[test]
    fn differences_name_the_target_sizes_settings_and_a_repeated_client() {
        let base = run(1, "h:7010", &[16, 1024], 1);
        let other_target = differences(&[base.clone(), run(2, "h:7001", &[16, 1024], 1)]);
        assert!(other_target.len() == 1 && other_target[0].contains("h:7001"), "{other_target:?}");
        let other_sizes = differences(&[base.clone(), run(2, "h:7010", &[16], 1)]);
        assert!(other_sizes.len() == 1 && other_sizes[0].contains("phases"), "{other_sizes:?}");
        let other_pipeline = differences(&[base.clone(), run(2, "h:7010", &[16, 1024], 8)]);
        assert!(other_pipeline[0].contains("pipeline 8"), "{other_pipeline:?}");
        let twice = differences(&[base.clone(), base]);
        assert!(twice[0].contains("client 1 is in more than one run"), "{twice:?}");
    }
}
