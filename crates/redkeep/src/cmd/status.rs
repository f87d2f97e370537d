//! `redkeep status`: every node and the cluster summary.

use std::path::PathBuf;
use std::process::ExitCode;

/// Show every node (id, address, role, master, slots, flags, link, memory, ops/s, replication
/// offset and lag) and the cluster summary (state, slots ok/pfail/fail, known nodes, epoch).
///
/// Without HOST:PORT it asks the nodes of the local cluster in `--dir` (the first that
/// answers), or 127.0.0.1:7001.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Any node of the cluster.
    node: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Local cluster dir to find a node in when HOST:PORT is not given.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let candidates = super::seed_candidates(args.node.as_deref(), &args.dir);
    let report = super::block_on(super::first_answer(&candidates, cluster::ops::gather_status))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(ExitCode::SUCCESS)
}
