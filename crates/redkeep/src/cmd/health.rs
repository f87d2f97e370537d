//! `redkeep health`: is this proxy fit to hold the floating IP?

use std::process::ExitCode;
use std::time::Duration;

/// Exit 0 only when the proxy answers and holds a full slot map (every slot has a master): the
/// check keepalived runs (see `redkeep keepalived render`). Otherwise exit 1 and say why.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The proxy, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7010", value_parser = super::host_port)]
    proxy: String,
    /// How long to wait for its answer.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    match super::block_on(deploy::health::proxy_verdict(&args.proxy, args.timeout)) {
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
