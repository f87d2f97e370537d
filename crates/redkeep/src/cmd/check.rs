//! `redkeep check`: what `redis-cli --cluster check` verifies, and more.

use std::path::PathBuf;
use std::process::ExitCode;

/// Verify the cluster: all nodes agree on the slot configuration, all 16384 slots are covered,
/// no slot is open (migrating/importing), no node is failing, every master has its replicas,
/// and no replica shares a host with its master (a warning when every node runs on one host).
/// Exits non-zero when anything is wrong, naming each problem.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Any node of the cluster, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    node: Option<String>,
    /// Replicas every master should have.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Local cluster dir to find a node in when HOST:PORT is not given.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
}

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let candidates = super::seed_candidates(args.node.as_deref(), &args.dir);
    let views = super::block_on(async {
        if let Some(node) = &args.node {
            super::refuse_proxy(node, "check").await?;
        }
        super::first_answer(&candidates, cluster::ops::gather_views).await
    })?;
    let report = cluster::check::check(&views, args.replicas);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
