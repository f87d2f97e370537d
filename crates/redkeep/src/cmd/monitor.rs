//! `redkeep monitor`: watch the cluster, raise alarms, heal within guardrails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use monitor::heal::{Mode, NoSupervisor, Supervisor};

/// Watch a Redis Cluster, its proxies and its floating IP; raise alarms; heal what can be
/// healed.
///
/// Every second (`interval` in the config) it asks every node `INFO all`, `CLUSTER INFO`,
/// `CLUSTER NODES`, `LATENCY LATEST` and `SLOWLOG LEN`, each proxy `INFO proxy`, and each load
/// balancer whether it holds the VIP, and builds one health model. Alarm rules (cluster state,
/// failing slots, open slots, node down, node back empty, master without replica, replica link
/// down, replication lag, master beside its replica, two masters on a host, memory, evictions,
/// rejected connections, latency spikes, proxy down, VIP on none or two, shard imbalance,
/// node restarted, healing failed) go pending -> firing -> resolved; every transition is
/// printed, logged, kept in the event timeline and sent to the config's webhooks in
/// Alertmanager's format.
///
/// HTTP API on --listen: GET /api/v1/alarms, GET /api/v1/events, GET /api/v1/model,
/// GET /metrics (Prometheus; redis_exporter's names), POST /api/v1/alerts (Alertmanager
/// webhooks: alerts from Prometheus drive healing too).
///
/// Healing (--heal): each firing alarm maps to a plan (restart a dead local node; re-attach a
/// node that came back empty as a replica; give a replica-less master a spare, a replica of a
/// master with two, or a new node started by the supervisor (--dir: a new port in the dir;
/// --lab: a host with none of the shard's nodes); fail over back when two masters share a
/// host; fix open slots; rebalance slots on shard imbalance, as `redkeep rebalance`), printed
/// before it runs and verified after. Guardrails: one action at a time per shard, at most
/// `heal.max_actions` per `heal.window`, none while this monitor sees no majority of masters,
/// none unless this monitor's LB holds the VIP (`vip.local_lb`), and an action that does not
/// verify is retried then raised as `healing_failed`.
#[derive(clap::Args)]
pub struct MonitorArgs {
    /// A node of the cluster, HOST:PORT; repeat for more. [default: the nodes of --dir, else
    /// 127.0.0.1:7001]
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// Local cluster dir (`redkeep up --dir`): its nodes are the seeds when none is given, and
    /// healing may restart them.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
    /// `off`: alarms only. `dry-run`: print the healing plans, apply none. `auto`: apply them.
    #[arg(long, default_value = "dry-run", value_parser = parse_mode)]
    heal: Mode,
    /// TOML config: interval, timeout, proxies, webhooks, vip, rules.<name> overrides, heal
    /// (see the README, "Monitoring, alarms and healing").
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address of the HTTP API and /metrics; `off` for none.
    #[arg(long, default_value = "127.0.0.1:7030")]
    listen: String,
    /// A redkeep proxy to watch, HOST:PORT; repeat for more (added to the config's).
    #[arg(long = "proxy")]
    proxies: Vec<String>,
    /// The dir of a `redkeep lab` (its lab.json): healing may start the lab's nodes again,
    /// each in its host's namespace. `redkeep lab up` runs a monitor so on every LB host.
    #[arg(long)]
    lab: Option<PathBuf>,
}

pub fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse()
}

/// The nodes of a local dir, restartable by healing, which may add nodes to it.
pub struct LocalSupervisor {
    root: PathBuf,
    /// Kept to start nodes with when the dir cannot be read again.
    dir: std::sync::Mutex<deploy::local::LocalDir>,
}

impl LocalSupervisor {
    pub fn open(dir: &std::path::Path) -> Option<LocalSupervisor> {
        let local = deploy::local::open(dir).ok()?;
        Some(LocalSupervisor { root: dir.to_path_buf(), dir: std::sync::Mutex::new(local) })
    }

    /// The dir as its manifest says now (`up --masters N` or a healing may have added nodes).
    fn current(&self) -> std::sync::MutexGuard<'_, deploy::local::LocalDir> {
        let mut dir = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(fresh) = deploy::local::open(&self.root) {
            *dir = fresh;
        }
        dir
    }

    fn port_of(dir: &deploy::local::LocalDir, addr: &str) -> Option<u16> {
        let (host, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        (host == dir.manifest.host && dir.manifest.ports.contains(&port)).then_some(port)
    }
}

impl Supervisor for LocalSupervisor {
    fn owns(&self, addr: &str) -> bool {
        Self::port_of(&self.current(), addr).is_some()
    }

    fn restart(&self, addr: &str) -> Result<(), String> {
        let dir = self.current();
        let port = Self::port_of(&dir, addr)
            .ok_or_else(|| format!("{addr} is not a node of {}", dir.root.display()))?;
        dir.start_node(port).map_err(|e| e.to_string())
    }

    /// Every node of a local dir is on its one host: a new one is too.
    fn place_new_node(&self, _avoid_hosts: &[String]) -> Result<String, String> {
        Ok(self.current().manifest.host.clone())
    }

    fn start_new_node(&self, host: &str) -> Result<String, String> {
        let mut dir = self.current();
        if host != dir.manifest.host {
            return Err(format!(
                "the nodes of {} run on {}, not {host}",
                dir.root.display(),
                dir.manifest.host
            ));
        }
        let port = dir.add_node().map_err(|e| e.to_string())?;
        Ok(format!("{host}:{port}"))
    }
}

/// The nodes of a lab (`--lab`), restartable by healing in their hosts' namespaces; new nodes
/// go on a Redis host with none of the shard's nodes.
pub struct LabSupervisor {
    lab: deploy::lab::Lab,
}

impl Supervisor for LabSupervisor {
    fn owns(&self, addr: &str) -> bool {
        self.lab.can_restart(addr)
    }

    fn restart(&self, addr: &str) -> Result<(), String> {
        self.lab.restart_node(addr).map_err(|e| e.to_string())
    }

    fn place_new_node(&self, avoid_hosts: &[String]) -> Result<String, String> {
        self.lab.place_new_node(avoid_hosts).map_err(|e| e.to_string())
    }

    fn start_new_node(&self, host: &str) -> Result<String, String> {
        self.lab.start_new_node(host).map_err(|e| e.to_string())
    }
}

/// The options `redkeep monitor` and `redkeep up` start the monitor with.
pub fn options(
    seeds: Vec<String>,
    config: monitor::Config,
    heal: Mode,
    listen: Option<SocketAddr>,
    dir: &std::path::Path,
) -> monitor::runner::Options {
    let supervisor: Arc<dyn Supervisor> = match LocalSupervisor::open(dir) {
        Some(local) => Arc::new(local),
        None => Arc::new(NoSupervisor),
    };
    monitor::runner::Options {
        seeds,
        config,
        heal,
        listen,
        supervisor,
        print: Some(Arc::new(|line: &str| println!("{line}"))),
    }
}

pub fn run(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            monitor::Config::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?
        }
        None => monitor::Config::default(),
    };
    config.proxies.extend(args.proxies.iter().cloned());
    let listen = match args.listen.as_str() {
        "off" => None,
        text => Some(text.parse::<SocketAddr>().with_context(|| {
            format!("--listen {text}: expected HOST:PORT such as 127.0.0.1:7030, or off")
        })?),
    };
    let seeds = if args.seeds.is_empty() {
        super::seed_candidates(None, &args.dir)
    } else {
        args.seeds.clone()
    };
    let mut options = options(seeds, config, args.heal, listen, &args.dir);
    if let Some(dir) = &args.lab {
        let lab = deploy::lab::Lab::open_dir(dir)
            .map_err(|e| anyhow::anyhow!("--lab {}: {e}", dir.display()))?;
        // Opening the lab made its password (a lab of `lab up --auth`) the one this monitor's
        // connections send: every node answers it (tests/lab.rs checks it on an auth lab).
        options.supervisor = Arc::new(LabSupervisor { lab });
    }
    super::block_on(async move {
        let monitor = monitor::runner::start(options).await?;
        if let Some(addr) = monitor.addr {
            println!("monitor: API and /metrics on http://{addr} (alarms: /api/v1/alarms)");
        }
        super::shutdown_signal().await;
        monitor.stop().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
