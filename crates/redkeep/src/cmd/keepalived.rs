//! `redkeep keepalived`: the keepalived side of the floating IP.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use std::net::SocketAddr;
use std::path::Path;

use deploy::keepalived::{Supervisor, VrrpSpec, notify_line, render};

/// keepalived for a floating IP (VIP) over two or more redkeep proxies: `render` writes the
/// config of one load-balancer host, `notify` is the hook keepalived calls on each transition.
#[derive(clap::Args)]
pub struct KeepalivedArgs {
    #[command(subcommand)]
    action: Action,
}

/// One load-balancer host's part of the VIP: the same --vip, --router-id and --auth-pass on
/// every host, a different --priority on each.
#[derive(clap::Args, Clone, Default)]
pub struct VrrpArgs {
    /// The floating address with its prefix, e.g. 10.0.0.100/24 (needs --interface and
    /// --priority).
    // Options rather than required args: `redkeep proxy` flattens these and runs without them.
    #[arg(long, requires_all = ["interface", "priority"])]
    pub vip: Option<String>,
    /// The interface the VIP lives on.
    #[arg(long, requires = "vip")]
    pub interface: Option<String>,
    /// VRRP priority, 1-255: higher wins (e.g. 150 on the first LB, 100 on the second).
    #[arg(long, requires = "vip", value_parser = clap::value_parser!(u8).range(1..))]
    pub priority: Option<u8>,
    /// VRRP router id (1-255), the same on every LB host of this VIP. [default: 51]
    #[arg(long, requires = "vip")]
    pub router_id: Option<u8>,
    /// VRRP PASS authentication (up to 8 characters), the same on every LB host.
    #[arg(long, requires = "vip")]
    pub auth_pass: Option<String>,
    /// Seconds between VRRP adverts. [default: 1]
    #[arg(long, requires = "vip")]
    pub advert_int: Option<u32>,
    /// A file holding the password the proxy wants of its clients (user `default`): the
    /// health script AUTHs with it (`redkeep health --password-file FILE`), since the password
    /// itself would show in keepalived's config and the process list.
    #[arg(long, value_name = "FILE", requires = "vip")]
    pub health_password_file: Option<PathBuf>,
}

impl VrrpArgs {
    /// The config of this host, whose health script checks `proxy` (HOST:PORT).
    pub fn spec(&self, proxy: String, notify_log: String) -> anyhow::Result<VrrpSpec> {
        let (Some(vip), Some(interface), Some(priority)) =
            (&self.vip, &self.interface, self.priority)
        else {
            anyhow::bail!("a VIP needs --vip, --interface and --priority");
        };
        let redkeep = std::env::current_exe().context("cannot find the redkeep binary")?;
        Ok(VrrpSpec {
            vip: vip.clone(),
            interface: interface.clone(),
            priority,
            virtual_router_id: self.router_id.unwrap_or(51),
            auth_pass: self.auth_pass.clone(),
            advert_int: self.advert_int.unwrap_or(1),
            redkeep: redkeep.display().to_string(),
            proxy,
            notify_log,
            health_password_file: self
                .health_password_file
                .as_ref()
                .map(|p| p.display().to_string()),
        })
    }

    /// Writes `dir/keepalived.conf` for a proxy listening on `proxy` and runs keepalived with
    /// it (transitions logged to `dir/vrrp-transitions.log`, keepalived's own log to
    /// `dir/keepalived.log`).
    pub fn supervise(&self, dir: &Path, proxy: SocketAddr) -> anyhow::Result<Supervisor> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // The health script runs on this host: a proxy listening on every address is checked
        // on loopback.
        let check = match proxy.ip().is_unspecified() {
            true => SocketAddr::from(([127, 0, 0, 1], proxy.port())),
            false => proxy,
        };
        let notify_log = dir.join("vrrp-transitions.log");
        let spec = self.spec(check.to_string(), notify_log.display().to_string())?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, render(&spec)?)
            .with_context(|| format!("cannot write {}", conf.display()))?;
        Supervisor::start(&conf, dir).context("keepalived did not start")
    }
}

#[derive(clap::Subcommand)]
enum Action {
    /// Print (or write with --out) a keepalived.conf whose health script is
    /// `redkeep health --proxy ...`, so the VIP leaves a host whose proxy does not answer or has
    /// lost part of the slot map. Run it on each LB host with the same --vip, --router-id and
    /// --auth-pass and a different --priority; check it with `keepalived --config-test -f FILE`.
    Render {
        #[command(flatten)]
        vrrp: VrrpArgs,
        /// The proxy the health script checks.
        #[arg(long, default_value = "127.0.0.1:7010")]
        proxy: String,
        /// Where the notify hook logs transitions.
        #[arg(long, default_value = "/var/log/redkeep-vrrp.log")]
        notify_log: String,
        /// The redkeep binary the health and notify scripts run on the LB host (default: this
        /// one, as installed: where it runs from now).
        #[arg(long)]
        redkeep_bin: Option<PathBuf>,
        /// Write the config here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The notify hook: appends `TIME TYPE NAME STATE PRIORITY` (keepalived's arguments) to
    /// --file.
    Notify {
        /// The file to append the transition to (created when missing), e.g.
        /// /var/log/redkeep-vrrp.log.
        #[arg(long)]
        file: PathBuf,
        /// What keepalived passes: TYPE NAME STATE [PRIORITY].
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        event: Vec<String>,
    },
}

pub fn run(args: KeepalivedArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Render { vrrp, proxy, notify_log, redkeep_bin, out } => {
            let mut spec = vrrp.spec(proxy, notify_log)?;
            if let Some(bin) = redkeep_bin {
                anyhow::ensure!(
                    bin.is_absolute(),
                    "--redkeep-bin {} must be an absolute path (keepalived runs its scripts \
                     without a PATH search)",
                    bin.display()
                );
                spec.redkeep = bin.display().to_string();
            }
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
