//! `redkeep create`: form a cluster from nodes the user already runs.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cluster::ops::Formation;
use cluster::plan::{NodeAddr, plan_create};

/// Form a cluster from running, empty redis-server nodes (cluster-enabled yes), the way
/// `redis-cli --cluster create --cluster-replicas N` does: the plan is printed and confirmed
/// first. Nodes that are not in cluster mode or not empty are refused, by name, before
/// anything changes.
#[derive(clap::Args)]
pub struct CreateArgs {
    /// The nodes, HOST:PORT each (at least 3 masters' worth).
    #[arg(required = true, num_args = 3..)]
    nodes: Vec<String>,
    /// Replicas per master.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Apply the plan without asking.
    #[arg(long, short)]
    yes: bool,
}

pub fn run(args: CreateArgs) -> anyhow::Result<ExitCode> {
    super::block_on(form(&args.nodes, args.replicas, args.yes))?;
    Ok(ExitCode::SUCCESS)
}

/// Plans, prints, confirms (unless `yes`), and forms the cluster; shared with `redkeep up`.
pub async fn form(addrs: &[String], replicas: usize, yes: bool) -> anyhow::Result<()> {
    let nodes: Vec<NodeAddr> =
        addrs.iter().map(|a| NodeAddr::parse(a)).collect::<Result<_, _>>()?;
    let plan = plan_create(&nodes, replicas)?;
    // Refuse unusable nodes before asking anything.
    for addr in addrs {
        if let Some(problem) = cluster::ops::node_state(addr).await?.unusable_for_create() {
            return Err(problem.into());
        }
    }
    print!("{plan}");
    if !yes && !confirm("Can I set the above configuration? (type 'yes' to accept): ")? {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    let mut progress = |step: &str| println!(">>> {step}");
    cluster::ops::create(&Formation::from(&plan), &mut progress, Duration::from_secs(60))
        .await
        .context("forming the cluster")?;
    println!("[OK] All {} slots covered.", cluster::SLOT_COUNT);
    Ok(())
}

pub fn confirm(question: &str) -> anyhow::Result<bool> {
    print!("{question}");
    crate::out::flush_stdout();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
