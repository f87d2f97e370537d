//! `redkeep down`: stop a dir's nodes, optionally delete their data.

use std::path::PathBuf;
use std::process::ExitCode;

/// Stop the nodes that `redkeep up` started in a dir: SHUTDOWN (which saves) first, then
/// SIGTERM/SIGKILL by their recorded and verified pid. `--purge` also deletes their data.
#[derive(clap::Args)]
pub struct DownArgs {
    /// Directory given to `redkeep up`.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
    /// Delete every node's config, data and log afterwards.
    #[arg(long)]
    purge: bool,
}

pub fn run(args: DownArgs) -> anyhow::Result<ExitCode> {
    let dir = deploy::local::open(&args.dir)?;
    let proxy_stopped = dir.stop_proxy();
    if proxy_stopped {
        println!("Stopped the proxy of {}", args.dir.display());
    }
    let stopped = dir.stop();
    if stopped.is_empty() && !proxy_stopped {
        println!(
            "Nothing was running in {}: no node and no detached proxy of it ({} nodes known)",
            args.dir.display(),
            dir.manifest.ports.len()
        );
    } else {
        println!(
            "Stopped {} of {} nodes in {}",
            stopped.len(),
            dir.manifest.ports.len(),
            args.dir.display()
        );
    }
    if args.purge {
        dir.purge()?;
        println!("Deleted the data in {}", args.dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
