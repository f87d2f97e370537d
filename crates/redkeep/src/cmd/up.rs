//! `redkeep up`: start the local nodes, form the cluster when it is new, wait until healthy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use deploy::local::{self, LocalDir, LocalSpec, Origin};

/// Start a local Redis Cluster (3 masters / 3 replicas by default) and keep it running.
///
/// On a new dir it starts the nodes, forms the cluster as `redis-cli --cluster create` would
/// (plan printed first), and waits until every node agrees and `cluster_state:ok`. On a dir
/// that already holds a cluster it brings the same cluster back from its `nodes.conf` files;
/// it never re-creates a cluster over existing data.
///
/// In the foreground (default) Ctrl-C stops every node cleanly; with `--detach` it returns
/// once the cluster is healthy and leaves it running (`redkeep down` stops it).
#[derive(clap::Args)]
pub struct UpArgs {
    /// Number of masters (Redis Cluster needs at least 3).
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Replicas per master.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Port of the first node; the others follow (each also uses port+10000 for its bus).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Directory holding every node's config, data and log.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
    /// Address the nodes bind and announce.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// cluster-node-timeout: how long a node may be unreachable before failover starts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    node_timeout: Duration,
    /// Return once the cluster is healthy and leave it running.
    #[arg(long)]
    detach: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let spec = LocalSpec {
        dir: args.dir.clone(),
        host: args.host.clone(),
        base_port: args.base_port,
        masters: args.masters,
        replicas: args.replicas,
        node_timeout: args.node_timeout,
    };
    let (dir, origin) = local::prepare(&spec)?;
    if origin == Origin::Existing {
        println!("Bringing back the cluster in {} (its own settings apply)", dir.root.display());
    }
    let started = dir.start()?;
    let started_now: Vec<u16> = started.iter().filter(|n| n.started_now).map(|n| n.port).collect();
    println!("{} redis-server nodes running ({} started now)", started.len(), started_now.len());
    if let Err(err) = super::block_on(form_and_wait(&dir)) {
        stop_ports(&dir, &started_now);
        return Err(err);
    }
    print_endpoints(&dir);
    if args.detach {
        println!("Detached. Stop it with: redkeep down --dir {}", dir.root.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("Running in the foreground; Ctrl-C stops every node.");
    super::block_on(super::shutdown_signal());
    println!("Stopping...");
    let stopped = dir.stop();
    println!("Stopped {} nodes; data kept in {}", stopped.len(), dir.root.display());
    Ok(ExitCode::SUCCESS)
}

/// Forms the cluster when its nodes are blank (a new dir, or an earlier `up` that stopped
/// before forming it), then waits until it is healthy.
async fn form_and_wait(dir: &LocalDir) -> anyhow::Result<()> {
    let addrs = dir.manifest.addrs();
    let mut blank = true;
    for addr in &addrs {
        blank &= cluster::ops::node_state(addr).await?.is_blank();
    }
    if blank {
        // Forming waits for health itself.
        super::create::form(&addrs, dir.manifest.replicas, true).await?;
    } else {
        println!("Waiting for every node to agree and report cluster_state:ok...");
    }
    let timeout = Duration::from_millis(dir.manifest.node_timeout_ms) * 4 + Duration::from_secs(30);
    cluster::ops::wait_healthy(&addrs, timeout).await.context("the cluster is not healthy")?;
    Ok(())
}

/// Stops only the given nodes of `dir` (those this attempt started).
fn stop_ports(dir: &LocalDir, ports: &[u16]) {
    let mut only_these = dir.clone();
    only_these.manifest.ports.retain(|p| ports.contains(p));
    only_these.stop();
}

fn print_endpoints(dir: &LocalDir) {
    println!("Cluster is up (cluster_state:ok). Nodes:");
    for addr in dir.manifest.addrs() {
        println!("  {addr}");
    }
    println!("Try: redis-cli -c -p {} ping", dir.manifest.ports[0]);
}
