//! `redkeep down`: stop a dir's nodes, optionally delete their data.

use std::path::PathBuf;
use std::process::ExitCode;

/// Stop the nodes that `redkeep up` started in a dir: SHUTDOWN (which saves) first, then
/// SIGTERM/SIGKILL by their recorded and verified pid. `--purge` also deletes their data.
///
/// A detached monitor of the dir is stopped first (so that healing does not start the nodes
/// being stopped again), then a detached proxy, and so is an `up` still running the dir in the
/// foreground (it stops its proxy and nodes itself, as on Ctrl-C).
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
    let shown = args.dir.display();
    // A foreground `up` serves the cluster with a proxy in its own process: SIGTERM makes it
    // stop that proxy and its nodes in order, as Ctrl-C does.
    let up = dir.up_holder();
    if let Some(pid) = up {
        println!("Stopping the `redkeep up` that runs {shown} (pid {pid}), with its proxy...");
        deploy::process::terminate(pid, std::time::Duration::from_secs(30));
    }
    // Before the nodes: its healing would restart the nodes being stopped.
    let monitor = dir.stop_monitor();
    if monitor {
        println!("Stopped the monitor of {shown}");
    }
    let proxy = dir.stop_proxy();
    if proxy {
        println!("Stopped the proxy of {shown}");
    }
    let stopped = dir.stop();
    let known = dir.manifest.ports.len();
    match (up, proxy, stopped.len()) {
        (None, false, 0) if !monitor => {
            println!(
                "Nothing was running in {shown}: no node, proxy nor monitor of it ({known} nodes known)"
            )
        }
        (Some(_), _, 0) => println!("`redkeep up` stopped; no node of {shown} runs any more"),
        (_, _, n) => println!("Stopped {n} of {known} nodes in {shown}"),
    }
    if args.purge {
        dir.purge()?;
        println!("Deleted the data in {shown}");
    }
    Ok(ExitCode::SUCCESS)
}
