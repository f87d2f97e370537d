//! `redkeep health`: is this proxy fit to hold the floating IP?

use std::process::ExitCode;
use std::time::Duration;

use cluster::admin::info_field;

/// Exit 0 only when the proxy answers and holds a full slot map (every slot has a master): the
/// check keepalived runs (see `redkeep keepalived render`). Otherwise exit 1 and say why.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The proxy, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7010")]
    proxy: String,
    /// How long to wait for its answer.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let verdict = super::block_on(async {
        tokio::time::timeout(args.timeout, verdict(&args.proxy, args.timeout)).await.unwrap_or_else(
            |_| Err(format!("{} did not answer within {:?}", args.proxy, args.timeout)),
        )
    });
    match verdict {
        Ok(summary) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("unhealthy: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn verdict(proxy: &str, timeout: Duration) -> Result<String, String> {
    let info = super::proxy_info(proxy, timeout).await?;
    let number = |field: &str| info_field(&info, field).and_then(|v| v.parse::<u64>().ok());
    match (number("cluster_masters"), number("cluster_slots_uncovered")) {
        (Some(masters), Some(0)) if masters > 0 => {
            Ok(format!("healthy: {proxy} serves all 16384 slots over {masters} masters"))
        }
        (_, Some(uncovered)) if uncovered > 0 => {
            Err(format!("{proxy} has {uncovered} slots without a master"))
        }
        _ => Err(format!("{proxy} knows no master")),
    }
}
