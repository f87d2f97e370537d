//! `redkeep bench`: the old client's workload against the proxy, the cluster or one Redis.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use bench::engine::{KeyPattern, Progress, Workload};
use bench::results::{RunMeta, RunResults};
use bench::values::show_size;

/// Benchmark the whole path the way the old client did: for each value size from 16 B to
/// 512 KiB (doubling), SET for `--duration`, then GET of exactly the keys written, every value
/// checked (a missing or different value is an error). Latency percentiles from HDR
/// histograms. Files per client id go to `--out`: results-{set,get}-client<ID>.txt (a table per
/// size), results-raw-{set,get}-client<ID>.txt (every batch of 1,000 operations),
/// results-client<ID>.json and .csv.
///
/// Several clients (`--client-id 1`, `2`, ...) can run at once, on one or many machines: their
/// keys never collide; `redkeep bench merge` adds their JSON files up.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    action: Option<BenchAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand)]
enum BenchAction {
    /// Add several clients' results-client<ID>.json up into one (totals per size).
    ///
    /// The runs must be of one benchmark: the same target, sizes and settings (workload, key
    /// pattern, connections, pipeline, rate), each client once. Otherwise it refuses, naming
    /// the differences, unless --force.
    Merge {
        /// The JSON files.
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// Where the merged files go.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Merge runs that differ all the same (each difference is printed as a warning).
        #[arg(long)]
        force: bool,
    },
    /// Print two runs' per-size differences as ratios (B over A).
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(clap::Args)]
struct RunArgs {
    /// HOST:PORT: the proxy (default), any node with --cluster, or a standalone Redis.
    #[arg(long, default_value = "127.0.0.1:7010")]
    target: String,
    /// Talk to the cluster's nodes directly, routing by slot (follows MOVED and ASK).
    #[arg(long)]
    cluster: bool,
    /// A node of the cluster behind the proxy, to record its topology and version in the
    /// results (default: the target itself with --cluster).
    #[arg(long)]
    seed: Option<String>,
    /// This client's id: in its keys and its file names.
    #[arg(long, default_value_t = 1)]
    client_id: u32,
    /// Value sizes: `FROM..TO` (doubling) or a list `16B,4KiB`.
    #[arg(long, default_value = "16B..512KiB")]
    sizes: String,
    /// How long each phase runs.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Operations per phase, instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Connections (each pipelined).
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Threads of the benchmark itself (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Where the result files go.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// A smoke run: 2 s phases (unless --duration/--requests) and four sizes (unless --sizes).
    #[arg(long)]
    quick: bool,
    /// A mixed workload instead: SET:GET ratio, e.g. `1:10`.
    #[arg(long)]
    ratio: Option<String>,
    /// Keys per size to draw from (default: a new key per SET).
    #[arg(long)]
    keyspace: Option<u64>,
    /// How keys are drawn from --keyspace: sequential, random or gaussian (the last two only
    /// with --ratio: a GET must know its key was written).
    #[arg(long, default_value = "sequential")]
    key_pattern: String,
    /// Without --keyspace: the most value bytes one size keeps in the cluster (SETs past it
    /// overwrite earlier keys), so that a long phase of 512 KiB values cannot fill the memory.
    #[arg(long, default_value = "256MiB")]
    max_data: String,
    /// Leave each size's keys in the cluster (by default they are unlinked after the size).
    #[arg(long)]
    keep_keys: bool,
    /// Open loop at this many requests per second in all; latency counts from when each
    /// request was due (corrected for coordinated omission).
    #[arg(long)]
    rate: Option<u64>,
    /// No progress bars, only the summary.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(BenchAction::Merge { files, out, force }) => merge(&files, &out, force),
        Some(BenchAction::Compare { a, b }) => {
            print!("{}", bench::merge::compare(&read(&a)?, &read(&b)?));
            Ok(ExitCode::SUCCESS)
        }
        None => run_workload(args.run),
    }
}

fn read(path: &std::path::Path) -> anyhow::Result<RunResults> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a redkeep bench JSON file", path.display()))
}

fn merge(files: &[PathBuf], out: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    let runs = files.iter().map(|f| read(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let differences = bench::merge::differences(&runs);
    if !differences.is_empty() {
        let list = differences.iter().map(|d| format!("\n  - {d}")).collect::<String>();
        anyhow::ensure!(
            force,
            "these runs are not of one benchmark, their sum would mean nothing:{list}\n\
             (runs 1.. are the files in the order given; --force merges them anyway)"
        );
        eprintln!("warning: merging runs that are not of one benchmark (--force):{list}");
    }
    let merged = bench::merge::merge(&runs).map_err(anyhow::Error::msg)?;
    for path in bench::files::write_all(&merged, out)
        .with_context(|| format!("cannot write to {}", out.display()))?
    {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn workload(args: &RunArgs) -> anyhow::Result<Workload> {
    let sizes = match (args.quick, args.sizes.as_str()) {
        (true, "16B..512KiB") => vec![16, 1024, 64 * 1024, 512 * 1024],
        (_, text) => {
            bench::values::parse_sizes(text).map_err(anyhow::Error::msg).context("--sizes")?
        }
    };
    let duration = match (args.duration, args.requests, args.quick) {
        (Some(d), _, _) => Some(d),
        (None, Some(_), _) => None,
        (None, None, true) => Some(Duration::from_secs(2)),
        (None, None, false) => Some(Duration::from_secs(60)),
    };
    let ratio = match &args.ratio {
        None => None,
        Some(text) => {
            let parsed =
                text.split_once(':').and_then(|(s, g)| Some((s.parse().ok()?, g.parse().ok()?)));
            match parsed {
                Some((s, g)) if s + g > 0 => Some((s, g)),
                _ => anyhow::bail!("--ratio `{text}`: expected SET:GET, e.g. 1:10"),
            }
        }
    };
    let key_pattern = match args.key_pattern.as_str() {
        "sequential" => KeyPattern::Sequential,
        "random" => KeyPattern::Random,
        "gaussian" => KeyPattern::Gaussian,
        other => anyhow::bail!("--key-pattern `{other}`: expected sequential, random or gaussian"),
    };
    if args.keyspace.is_none() && args.key_pattern != "sequential" {
        anyhow::bail!("--key-pattern needs --keyspace N (the keys to draw from)");
    }
    if ratio.is_none() && key_pattern != KeyPattern::Sequential {
        anyhow::bail!(
            "--key-pattern {} needs --ratio: the SET-then-GET workload reads back exactly the keys it wrote",
            args.key_pattern
        );
    }
    let max_data = args
        .max_data
        .parse::<bytesize::ByteSize>()
        .map_err(|e| anyhow::anyhow!("--max-data `{}`: {e}", args.max_data))?
        .as_u64();
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    Ok(Workload {
        target: args.target.clone(),
        cluster: args.cluster,
        client_id: args.client_id,
        sizes,
        duration,
        requests: args.requests,
        connections: args.connections,
        pipeline: args.pipeline.max(1),
        ratio,
        keyspace: args.keyspace,
        key_pattern,
        max_data,
        keep_keys: args.keep_keys,
        stop: Default::default(),
        rate: args.rate,
    })
}

fn run_workload(args: RunArgs) -> anyhow::Result<ExitCode> {
    let workload = workload(&args)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build().context("cannot start the benchmark's runtime")?;
    let results = runtime.block_on(async {
        // Ctrl-C ends the run after the operations in flight; what was measured is written.
        let stop = workload.stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\nStopping: finishing the operations in flight, then writing the results so far");
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let seed = args.seed.as_deref().or(workload.cluster.then_some(workload.target.as_str()));
        let (mode, redis_version, topology) = bench::describe_target(&workload.target, seed).await;
        let meta = RunMeta {
            client_ids: vec![workload.client_id],
            target: workload.target.clone(),
            mode: if workload.cluster { "cluster (direct, slot routing)".into() } else { mode },
            topology,
            redis_version,
            redkeep_version: env!("CARGO_PKG_VERSION").into(),
            command_line: std::env::args().collect::<Vec<_>>().join(" "),
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            connections: workload.connections,
            pipeline: workload.pipeline,
            workload: workload
                .ratio
                .map_or("set-then-get".into(), |(s, g)| format!("mixed {s}:{g}")),
            key_pattern: match workload.keyspace {
                Some(space) => format!("{} over {space} keys", args.key_pattern),
                None => "a new key per SET".into(),
            },
            rate: workload.rate,
        };
        let mut bar: Option<(indicatif::ProgressBar, tokio::task::JoinHandle<()>)> = None;
        // Progress bars only on a terminal (indicatif draws nothing elsewhere): in a pipe or a
        // log, one line per phase with its figures instead.
        let lines_only = args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr());
        let phases = bench::engine::run(&workload, |op, size, done, progress| {
            if lines_only {
                if let Some(p) = done {
                    println!("{}", phase_line(op, size, p));
                }
                return;
            }
            match done {
                None => bar = Some(start_bar(op, size, progress.clone(), &workload)),
                Some(phase) => {
                    if let Some((bar, ticker)) = bar.take() {
                        ticker.abort();
                        bar.finish_with_message(phase_figures(phase));
                    }
                }
            }
        })
        .await
        .map_err(anyhow::Error::msg)?;
        anyhow::Ok(RunResults { meta, phases })
    })?;
    let written = bench::files::write_all(&results, &args.out)
        .with_context(|| format!("cannot write the result files to {}", args.out.display()))?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let errors: u64 = results.phases.iter().map(|p| p.errors).sum();
    if errors > 0 {
        eprintln!(
            "{errors} operations failed (error replies, missing or wrong values): see the files"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A phase's figures, as its progress bar ends with them.
fn phase_figures(phase: &bench::results::Phase) -> String {
    format!(
        "{:.0} ops/s, {:.1} MB/s, p99 {} µs, {} errors",
        phase.ops_per_sec(),
        phase.mb_per_sec(),
        phase.latency.p99,
        phase.errors
    )
}

/// One line per phase, without progress bars.
fn phase_line(op: &str, size: usize, phase: &bench::results::Phase) -> String {
    format!("{op:>5} {:>8}: {}", show_size(size), phase_figures(phase))
}

/// A progress bar for one phase: elapsed time, operations and live ops/s.
fn start_bar(
    op: &str,
    size: usize,
    progress: Arc<Progress>,
    workload: &Workload,
) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = match (workload.requests, workload.duration) {
        (Some(n), _) => indicatif::ProgressBar::new(n),
        (None, Some(d)) => indicatif::ProgressBar::new(d.as_millis() as u64),
        (None, None) => indicatif::ProgressBar::no_length(),
    };
    let style =
        indicatif::ProgressStyle::with_template("{prefix:>14} [{elapsed_precise}] {bar:30} {msg}")
            .expect("a valid template");
    bar.set_style(style);
    bar.set_prefix(format!("{op} {}", show_size(size)));
    let by_time = workload.requests.is_none();
    let ticker_bar = bar.clone();
    let ticker = tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let done = progress.done.load(Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            ticker_bar.set_position(if by_time {
                started.elapsed().as_millis() as u64
            } else {
                done
            });
            ticker_bar.set_message(format!(
                "{done} ops, {:.0} ops/s, {} errors",
                done as f64 / secs,
                progress.errors.load(Relaxed)
            ));
        }
    });
    (bar, ticker)
}
