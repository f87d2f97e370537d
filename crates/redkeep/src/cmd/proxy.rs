//! `redkeep proxy`: the cluster-aware proxy, one address for any Redis client.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use proxy::{ProxyConfig, ReadFrom};

/// Serve a Redis Cluster on one address: every command goes to the master owning its keys'
/// slot, multi-key commands are split and merged, failovers and slot moves are followed.
///
/// Any Redis client works through it, cluster-aware or not: `redis-cli -p 7010`. It learns
/// the cluster from the first seed that answers and keeps its slot map current on its own.
/// SIGTERM or Ctrl-C stops accepting, lets clients get the replies to what they sent, then
/// exits.
#[derive(clap::Args)]
pub struct ProxyArgs {
    /// A node of the cluster, HOST:PORT; repeat for more. Any one that answers is enough.
    #[arg(long = "seed", default_value = "127.0.0.1:7001")]
    seeds: Vec<String>,
    /// Address clients connect to.
    #[arg(long, default_value = "127.0.0.1:7010")]
    listen: SocketAddr,
    /// Address of the stats page (`/stats`), Prometheus metrics (`/metrics`) and the JSON API
    /// (`/api/v1/stats`); `off` serves none.
    #[arg(long, default_value = "127.0.0.1:7020", value_parser = parse_stats)]
    stats: StatsListen,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Where reads go: `master`, or `replica` (READONLY replicas; reads may be slightly old).
    #[arg(long, default_value = "master", value_parser = parse_read_from)]
    read_from: ReadFrom,
    /// Most clients at once; more are refused with an error.
    #[arg(long, default_value_t = 10_000)]
    max_clients: usize,
    /// Requests one client may have in flight before the proxy stops reading from it.
    #[arg(long, default_value_t = 1024)]
    max_pending: usize,
    /// Largest bulk argument a client may send (Redis' proto-max-bulk-len).
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    max_bulk: usize,
    /// Close clients idle this long (0: never, like Redis' `timeout 0`).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// How long a command keeps being retried through a failover or a slot move.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    retry_budget: Duration,
    /// How often the slot map is re-read even when nothing says it changed.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    refresh_interval: Duration,
    /// Refuse FLUSHALL and FLUSHDB (otherwise they empty every master).
    #[arg(long)]
    no_flush: bool,
    /// Refuse CONFIG SET (otherwise it reaches every node).
    #[arg(long)]
    no_config_set: bool,
}

fn parse_read_from(text: &str) -> Result<ReadFrom, String> {
    match text {
        "master" => Ok(ReadFrom::Master),
        "replica" => Ok(ReadFrom::Replica),
        _ => Err(format!("expected `master` or `replica`, got `{text}`")),
    }
}

/// Where the stats page listens, if anywhere.
#[derive(Clone, Copy)]
struct StatsListen(Option<SocketAddr>);

fn parse_stats(text: &str) -> Result<StatsListen, String> {
    if text == "off" {
        return Ok(StatsListen(None));
    }
    text.parse()
        .map(|a| StatsListen(Some(a)))
        .map_err(|e| format!("{e}: expected HOST:PORT or `off`"))
}

fn parse_size(text: &str) -> Result<usize, String> {
    let size = text.parse::<bytesize::ByteSize>().map_err(|e| e.to_string())?;
    usize::try_from(size.as_u64()).map_err(|_| "too large".to_string())
}

impl ProxyArgs {
    /// The proxy settings for a local cluster brought up by `redkeep up`.
    pub fn for_local(
        seeds: Vec<String>,
        listen: SocketAddr,
        stats: Option<SocketAddr>,
    ) -> ProxyArgs {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ProxyArgs,
        }
        let mut args = Wrapper::parse_from(["proxy"]).args;
        args.seeds = seeds;
        args.listen = listen;
        args.stats = StatsListen(stats);
        args
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The arguments of `redkeep proxy` that reproduce these settings (for a detached proxy).
    pub fn to_command_line(&self) -> Vec<String> {
        let mut line = vec!["proxy".to_string()];
        for seed in &self.seeds {
            line.extend(["--seed".to_string(), seed.clone()]);
        }
        line.extend(["--listen".to_string(), self.listen.to_string()]);
        let stats = self.stats.0.map_or_else(|| "off".to_string(), |s| s.to_string());
        line.extend(["--stats".to_string(), stats]);
        line
    }

    pub fn config(&self) -> ProxyConfig {
        let mut config = ProxyConfig::new(self.seeds.clone());
        config.listen = self.listen;
        if let Some(threads) = self.threads {
            config.threads = threads.max(1);
        }
        config.read_from = self.read_from;
        config.max_clients = self.max_clients;
        config.max_pending_per_client = self.max_pending.max(1);
        config.limits.max_bulk_len = self.max_bulk;
        config.client_idle_timeout = (!self.idle_timeout.is_zero()).then_some(self.idle_timeout);
        config.retry_budget = self.retry_budget;
        config.refresh_interval = self.refresh_interval;
        config.allow_flush = !self.no_flush;
        config.allow_config_set = !self.no_config_set;
        config
    }
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let handle = args.start().await?;
        super::shutdown_signal().await;
        println!("Stopping the proxy (draining in-flight requests)...");
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

impl ProxyArgs {
    /// Starts the proxy and its stats server on the current runtime, saying where they are.
    pub async fn start(&self) -> anyhow::Result<proxy::ProxyHandle> {
        let handle = proxy::start(self.config()).await.context("the proxy did not start")?;
        println!(
            "Proxy listening on {} (cluster seeds: {})",
            handle.local_addr,
            self.seeds.join(", ")
        );
        if let Some(stats) = self.stats.0 {
            match web::serve(handle.shared.clone(), handle.local_addr.to_string(), stats).await {
                Ok(server) => println!("Proxy stats: http://{}/stats", server.local_addr),
                Err(e) => {
                    handle.shutdown().await;
                    return Err(
                        anyhow::Error::new(e).context("the proxy's stats page did not start")
                    );
                }
            }
        }
        Ok(handle)
    }
}
