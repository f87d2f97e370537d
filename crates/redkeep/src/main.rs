//! `redkeep`: one binary for a highly available Redis Cluster. Each subcommand lives in its own
//! module under `cmd/`; this file only declares them and dispatches.

use clap::{Parser, Subcommand};

// First, so that its `print!`/`println!` (a closed stdout ends redkeep quietly) are the ones
// every command uses.
#[macro_use]
mod out;
mod cmd;

/// Highly available Redis Cluster without hand work: one command brings up a 3-master /
/// 3-replica cluster, a cluster-aware proxy serves every client on one address, and redkeep
/// checks, fixes, fails over and benchmarks it.
#[derive(Parser)]
#[command(name = "redkeep", version, propagate_version = true)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `redkeep=debug`.
    #[arg(long, global = true, env = "REDKEEP_LOG", default_value = "warn")]
    log: String,

    /// The nodes' password (their `requirepass`), sent with AUTH on every connection redkeep
    /// opens to a node. Prefer the environment variable: an option shows in the process list.
    #[arg(long, global = true, env = "REDKEEP_PASSWORD", hide_env_values = true)]
    password: Option<String>,

    /// Connect to the nodes with TLS, verifying them against this CA (PEM); the nodes'
    /// certificates must carry the IPs they announce. Every connection redkeep opens to a
    /// node (commands, the proxy's backends, the monitor) then speaks TLS.
    #[arg(long, global = true, value_name = "FILE", env = "REDKEEP_NODE_TLS_CA")]
    node_tls_ca: Option<std::path::PathBuf>,
    /// The client certificate (PEM) shown to the nodes (Redis' `tls-auth-clients` is on by
    /// default); with --node-tls-key and --node-tls-ca.
    #[arg(long, global = true, value_name = "FILE", requires_all = ["node_tls_key", "node_tls_ca"])]
    node_tls_cert: Option<std::path::PathBuf>,
    /// The private key of --node-tls-cert (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "node_tls_cert")]
    node_tls_key: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // Commands are registered here, one line each, with their handler in `dispatch`.
    Up(cmd::up::UpArgs),
    Down(cmd::down::DownArgs),
    Status(cmd::status::StatusArgs),
    Create(cmd::create::CreateArgs),
    Check(cmd::check::CheckArgs),
    Fix(cmd::fix::FixArgs),
    Failover(cmd::failover::FailoverArgs),
    Call(cmd::call::CallArgs),
    // Boxed: its options are by far the largest.
    Proxy(Box<cmd::proxy::ProxyArgs>),
    Bench(cmd::bench::BenchArgs),
    Health(cmd::health::HealthArgs),
    Keepalived(cmd::keepalived::KeepalivedArgs),
    Lab(cmd::lab::LabArgs),
    // Live scaling (cmd/scaling.rs, cmd/backup.rs).
    AddNode(cmd::scaling::AddNodeArgs),
    DelNode(cmd::scaling::DelNodeArgs),
    Reshard(cmd::scaling::ReshardArgs),
    Rebalance(cmd::scaling::RebalanceArgs),
    SetTimeout(cmd::scaling::SetTimeoutArgs),
    Backup(cmd::backup::BackupArgs),
    Restore(cmd::backup::RestoreArgs),
    Monitor(cmd::monitor::MonitorArgs),
    Deploy(cmd::engines::DeployArgs),
    Controller(cmd::controller::ControllerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: in a file or a pipe they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(password) = cli.password.clone() {
        cluster::admin::set_credentials(Some(cluster::admin::Credentials { user: None, password }));
    }
    if let Some(ca) = cli.node_tls_ca.clone() {
        let client = cli.node_tls_cert.clone().zip(cli.node_tls_key.clone());
        let tls = cluster::net::NodeTls { ca, client };
        if let Err(e) = cluster::net::set_node_tls(Some(&tls)) {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs one command. Async commands build their own runtime with [`cmd::block_on`].
fn dispatch(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Up(args) => cmd::up::run(args),
        Command::Down(args) => cmd::down::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Create(args) => cmd::create::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Fix(args) => cmd::fix::run(args),
        Command::Failover(args) => cmd::failover::run(args),
        Command::Call(args) => cmd::call::run(args),
        Command::Proxy(args) => cmd::proxy::run(*args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Health(args) => cmd::health::run(args),
        Command::Keepalived(args) => cmd::keepalived::run(args),
        Command::Lab(args) => cmd::lab::run(args),
        // Live scaling.
        Command::AddNode(args) => cmd::scaling::run_add_node(args),
        Command::DelNode(args) => cmd::scaling::run_del_node(args),
        Command::Reshard(args) => cmd::scaling::run_reshard(args),
        Command::Rebalance(args) => cmd::scaling::run_rebalance(args),
        Command::SetTimeout(args) => cmd::scaling::run_set_timeout(args),
        Command::Backup(args) => cmd::backup::run_backup(args),
        Command::Restore(args) => cmd::backup::run_restore(args),
        Command::Monitor(args) => cmd::monitor::run(args),
        Command::Deploy(args) => cmd::engines::run(args),
        Command::Controller(args) => cmd::controller::run(args),
    }
}

/// The error and its causes, joined with `: `, leaving out a cause whose text an outer message
/// already quotes (our errors often include their source's text, as `{source}`).
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
