//! The result files of one run, named as the old client named them, per client id:
//! `results-set-client<ID>.txt` / `results-get-client<ID>.txt` (a table per size),
//! `results-raw-set-client<ID>.txt` / `results-raw-get-client<ID>.txt` (every batch of 1,000
//! operations), `results-client<ID>.json` (everything, with the run's metadata) and
//! `results-client<ID>.csv` (one row per phase); then the plots (`throughput-client<ID>.png`/`.svg`,
//! `latency-client<ID>.png`/`.svg`, see [`crate::plot`]) and `report-client<ID>.html` (see
//! [`crate::report`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::results::{Phase, RunResults};
use crate::values::show_size;

/// The name part that tells clients apart: `client1`, or `clients1-2-3` after a merge.
pub fn client_tag(results: &RunResults) -> String {
    match results.meta.client_ids.as_slice() {
        [one] => format!("client{one}"),
        many => format!("clients{}", many.iter().map(u32::to_string).collect::<Vec<_>>().join("-")),
    }
}

/// Writes every file into `dir` (created if needed); returns their paths.
pub fn write_all(results: &RunResults, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let tag = client_tag(results);
    let mut written = Vec::new();
    let mut write = |name: String, text: String| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    let ops: Vec<&str> = {
        let mut ops: Vec<&str> = results.phases.iter().map(|p| p.op.as_str()).collect();
        ops.dedup();
        ops.sort_unstable();
        ops.dedup();
        ops
    };
    for op in ops {
        let lower = op.to_ascii_lowercase();
        write(format!("results-{lower}-{tag}.txt"), table(results, op))?;
        write(format!("results-raw-{lower}-{tag}.txt"), raw(results, op))?;
    }
    write(
        format!("results-{tag}.json"),
        serde_json::to_string_pretty(results).map_err(std::io::Error::other)?,
    )?;
    write(format!("results-{tag}.csv"), csv(results))?;

    // The plots, then the HTML report with the SVGs just written inlined.
    let plots = crate::plot::render(results, dir)?;
    let mut svgs = Vec::new();
    for path in plots.iter().filter(|p| p.extension().is_some_and(|e| e == "svg")) {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        svgs.push((name, std::fs::read_to_string(path)?));
    }
    written.extend(plots);
    let report = dir.join(format!("report-{tag}.html"));
    std::fs::write(&report, crate::report::render(results, &svgs))?;
    written.push(report);
    Ok(written)
}

fn header(results: &RunResults, what: &str) -> String {
    let m = &results.meta;
    format!(
        "# redkeep bench: {what}\n# target {} ({}), {} connections, pipeline {}, workload {}, keys {}\n\
         # started {}, redis {}, redkeep {}\n# command: {}\n",
        m.target,
        m.mode,
        m.connections,
        m.pipeline,
        m.workload,
        m.key_pattern,
        m.started_at,
        m.redis_version,
        m.redkeep_version,
        m.command_line
    )
}

/// The readable table of one operation: a row per size.
pub fn table(results: &RunResults, op: &str) -> String {
    let mut out = header(results, &format!("{op} per value size"));
    let _ = writeln!(
        out,
        "{:>9} {:>10} {:>7} {:>11} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "size",
        "requests",
        "error%",
        "ops/s",
        "MB/s",
        "mean_us",
        "p50_us",
        "p90_us",
        "p99_us",
        "p99.9_us",
        "max_us"
    );
    for p in results.phases.iter().filter(|p| p.op == op) {
        let l = &p.latency;
        let _ = writeln!(
            out,
            "{:>9} {:>10} {:>7.3} {:>11.0} {:>9.2} {:>9.1} {:>8} {:>8} {:>8} {:>9} {:>9}",
            show_size(p.size).replace(' ', ""),
            p.requests,
            p.error_percent(),
            p.ops_per_sec(),
            p.mb_per_sec(),
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    }
    out
}

/// Every batch of 1,000 operations of one operation, as the old client's raw files.
pub fn raw(results: &RunResults, op: &str) -> String {
    let mut out = header(results, &format!("{op}, every batch of 1000 operations"));
    let _ = writeln!(out, "size first_op last_op errors start_s end_s");
    for p in results.phases.iter().filter(|p| p.op == op) {
        for b in &p.batches {
            let _ = writeln!(
                out,
                "{} {} {} {} {:.6} {:.6}",
                p.size, b.first_op, b.last_op, b.errors, b.start, b.end
            );
        }
    }
    out
}

pub fn csv(results: &RunResults) -> String {
    let mut out = String::from(
        "op,size,requests,errors,missing,wrong,seconds,ops_per_sec,mb_per_sec,mean_us,p50_us,p90_us,p99_us,p999_us,max_us\n",
    );
    for p in &results.phases {
        let l = &p.latency;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.6},{:.1},{:.3},{:.1},{},{},{},{},{}",
            p.op,
            p.size,
            p.requests,
            p.errors,
            p.missing,
            p.wrong,
            p.seconds,
            p.ops_per_sec(),
            p.mb_per_sec(),
            l.mean,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    }
    out
}

/// The phases of `results` of one operation, in size order.
pub fn phases_of<'a>(results: &'a RunResults, op: &'a str) -> impl Iterator<Item = &'a Phase> + 'a {
    results.phases.iter().filter(move |p| p.op == op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::tests::sample;

    #[test]
    fn write_all_adds_plots_and_report() {
        let dir = tempfile::tempdir().unwrap();
        let results = sample(&[16, 4096, 65536], &["SET", "GET"]);
        let written = write_all(&results, dir.path()).unwrap();
        for name in [
            "results-client1.json",
            "results-client1.csv",
            "throughput-client1.png",
            "throughput-client1.svg",
            "latency-client1.png",
            "latency-client1.svg",
            "report-client1.html",
        ] {
            let path = dir.path().join(name);
            assert!(written.contains(&path), "{name} listed: {written:?}");
            assert!(path.is_file(), "{name} written");
        }
        let html = std::fs::read_to_string(dir.path().join("report-client1.html")).unwrap();
        assert_eq!(html.matches("<svg").count(), 2, "both plots inlined");
        assert!(
            html.contains("value size") && html.contains("latency (ms") && html.contains("MB/s")
        );
        assert!(html.contains("id=\"table-set\"") && html.contains("id=\"table-get\""));
        assert!(html.contains("&lt;a&amp;b&gt;") && !html.contains("<a&b>"));
    }
}
