//! `redkeep fix`: repair uncovered and open slots, plan first.

use std::process::ExitCode;
use std::time::Duration;

/// Repair uncovered slots (no node serves them) and open slots (left migrating or importing
/// by an interrupted reshard), as `redis-cli --cluster fix` does. The plan is printed and
/// confirmed first; keys are moved with MIGRATE, never overwriting a key that exists on both
/// sides. Exits non-zero when something could not be fixed, saying what.
#[derive(clap::Args)]
pub struct FixArgs {
    /// Any node of the cluster, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    node: String,
    /// Apply the plan without asking.
    #[arg(long, short)]
    yes: bool,
}

pub fn run(args: FixArgs) -> anyhow::Result<ExitCode> {
    super::block_on(fix(args))
}

async fn fix(args: FixArgs) -> anyhow::Result<ExitCode> {
    super::refuse_proxy(&args.node, "fix").await?;
    let (views, keys) = cluster::ops::gather_fix_input(&args.node).await?;
    let plan = cluster::fix::plan_fix(&views, &keys);
    print!("{plan}");
    if plan.actions.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !super::create::confirm("Fix these slots? (type 'yes' to accept): ")? {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    let unfixable =
        cluster::ops::apply_fix(&plan, &views, &mut |step| println!(">>> {step}")).await?;
    let addrs: Vec<String> =
        views.iter().filter(|v| v.topology.is_ok()).map(|v| v.addr.clone()).collect();
    cluster::ops::wait_healthy(&addrs, Duration::from_secs(30)).await?;
    if unfixable > 0 {
        println!("[ERR] {unfixable} slot(s) need a human: see above");
        return Ok(ExitCode::FAILURE);
    }
    println!("[OK] Fixed; run `redkeep check {}` to verify.", args.node);
    Ok(ExitCode::SUCCESS)
}
