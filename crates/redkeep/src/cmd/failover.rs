//! `redkeep failover`: promote a replica, as an operator does before maintenance.

use std::process::ExitCode;
use std::time::Duration;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT, info_field};

/// Promote REPLICA to master with `CLUSTER FAILOVER` (coordinated with its master, so no
/// acknowledged write is lost), then wait until it reports `role:master`.
#[derive(clap::Args)]
pub struct FailoverArgs {
    /// The replica to promote, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    replica: String,
    /// `force` (master unreachable) or `takeover` (no agreement at all; last resort).
    #[arg(long, value_parser = ["force", "takeover"])]
    mode: Option<String>,
    /// How long to wait for the promotion.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub fn run(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    super::block_on(failover(args))
}

async fn failover(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    let mut conn = AdminConn::connect(&args.replica, DEFAULT_TIMEOUT).await?;
    let role = conn.info("replication").await?;
    if info_field(&role, "role") != Some("slave") {
        anyhow::bail!(
            "{} is not a replica (role:{}); name a replica to promote",
            args.replica,
            info_field(&role, "role").unwrap_or("?")
        );
    }
    let mut command = vec!["CLUSTER".to_string(), "FAILOVER".to_string()];
    command.extend(args.mode.as_deref().map(str::to_uppercase));
    conn.query_ok(&command).await?;
    println!("CLUSTER FAILOVER sent to {}; waiting for it to become master...", args.replica);
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let role = conn.info("replication").await?;
        if info_field(&role, "role") == Some("master") {
            println!("{} is now a master", args.replica);
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "{} is still a replica after {:?}: is its master reachable? (--mode force if not)",
                args.replica,
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
