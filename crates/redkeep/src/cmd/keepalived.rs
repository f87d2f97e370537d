//! `redkeep keepalived`: the keepalived side of the floating IP.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use deploy::keepalived::{VrrpSpec, notify_line, render};

/// keepalived for a floating IP (VIP) over two or more redkeep proxies: `render` writes the
/// config of one load-balancer host, `notify` is the hook keepalived calls on each transition.
#[derive(clap::Args)]
pub struct KeepalivedArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print (or write with --out) a keepalived.conf whose health script is
    /// `redkeep health --proxy ...`, so the VIP leaves a host whose proxy does not answer or has
    /// lost part of the slot map. Run it on each LB host with the same --vip, --router-id and
    /// --auth-pass and a different --priority; check it with `keepalived --config-test -f FILE`.
    Render {
        /// The floating address with its prefix, e.g. 10.0.0.100/24.
        #[arg(long)]
        vip: String,
        /// The interface the VIP lives on.
        #[arg(long)]
        interface: String,
        /// Higher wins (e.g. 150 on the first LB, 100 on the second).
        #[arg(long)]
        priority: u8,
        /// VRRP router id (1-255), the same on every LB host of this VIP.
        #[arg(long, default_value_t = 51)]
        router_id: u8,
        /// VRRP PASS authentication (up to 8 characters), the same on every LB host.
        #[arg(long)]
        auth_pass: Option<String>,
        /// Seconds between VRRP adverts.
        #[arg(long, default_value_t = 1)]
        advert_int: u32,
        /// The proxy the health script checks.
        #[arg(long, default_value = "127.0.0.1:7010")]
        proxy: String,
        /// Where the notify hook logs transitions.
        #[arg(long, default_value = "/var/log/redkeep-vrrp.log")]
        notify_log: String,
        /// Write the config here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The notify hook: appends `TIME TYPE NAME STATE PRIORITY` (keepalived's arguments) to
    /// --file.
    Notify {
        #[arg(long)]
        file: PathBuf,
        /// What keepalived passes: TYPE NAME STATE [PRIORITY].
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        event: Vec<String>,
    },
}

pub fn run(args: KeepalivedArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Render {
            vip,
            interface,
            priority,
            router_id,
            auth_pass,
            advert_int,
            proxy,
            notify_log,
            out,
        } => {
            let redkeep = std::env::current_exe().context("cannot find the redkeep binary")?;
            let spec = VrrpSpec {
                vip,
                interface,
                priority,
                virtual_router_id: router_id,
                auth_pass,
                advert_int,
                redkeep: redkeep.display().to_string(),
                proxy,
                notify_log,
            };
            let text = render(&spec)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Notify { file: log, event } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_context(|| format!("cannot open {}", log.display()))?;
            writeln!(file, "{}", notify_line(now.as_secs(), &event))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
