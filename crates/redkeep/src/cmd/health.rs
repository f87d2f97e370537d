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
    /// AUTH to the proxy with the password in this file (user `default`), for a proxy that
    /// wants one of its clients; keepalived's health script uses it (a password on a command
    /// line shows in the process list). --password / REDKEEP_PASSWORD work too.
    #[arg(long, value_name = "FILE")]
    password_file: Option<std::path::PathBuf>,
}

pub fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the password file {}: {e}", path.display())
        })?;
        let password = text.trim_end_matches('\n').to_string();
        cluster::admin::set_credentials(Some(cluster::admin::Credentials { user: None, password }));
    }
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
