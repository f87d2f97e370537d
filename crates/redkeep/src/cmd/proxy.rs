//! `redkeep proxy`: the cluster-aware proxy, one address for any Redis client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use proxy::{ProxyConfig, ReadFrom, WriteAck};

/// Serve a Redis Cluster on one address: every command goes to the master owning its keys'
/// slot, multi-key commands are split and merged, failovers and slot moves are followed.
///
/// Any Redis client works through it, cluster-aware or not: `redis-cli -p 7010`. It learns
/// the cluster from the first seed that answers and keeps its slot map current on its own.
/// SIGTERM or Ctrl-C stops accepting, lets clients get the replies to what they sent, then
/// exits.
///
/// Settings can also come from a TOML file (`--config`), with the options' names as keys
/// (`seeds = ["10.0.0.1:6379"]`, `listen`, `stats`, `threads`, `read-from`, `write-ack`,
/// `write-ack-timeout`, `max-clients`,
/// `max-pending`, `max-bulk`, `idle-timeout`, `retry-budget`, `refresh-interval`, and
/// `flush = false` / `config-set = false` / `fast-failover = true`, `announce`, `monitor-url`);
/// options given on
/// the command line win.
#[derive(clap::Args, Default)]
pub struct ProxyArgs {
    /// TOML file with settings; command-line options override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A node of the cluster, HOST:PORT; repeat for more. Any one that answers is enough.
    /// [default: 127.0.0.1:7001]
    #[arg(long = "seed")]
    seeds: Vec<String>,
    /// Address clients connect to. [default: 127.0.0.1:7010]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the stats page (`/stats`), Prometheus metrics (`/metrics`) and the JSON API
    /// (`/api/v1/stats`); `off` serves none. [default: 127.0.0.1:7020]
    #[arg(long, value_parser = parse_stats)]
    stats: Option<StatsListen>,
    /// A bearer token the stats server wants on every path (`Authorization: Bearer TOKEN`;
    /// 401 without it), e.g. for Prometheus' `authorization` setting. Prefer the environment
    /// variable: a flag shows in the process list.
    #[arg(long, value_name = "TOKEN", env = "REDKEEP_STATS_TOKEN", hide_env_values = true)]
    stats_token: Option<String>,
    /// The monitor (`redkeep monitor`'s API, http://HOST:PORT) whose alarms and event timeline
    /// the stats page shows, instead of the page's own alarms; when it does not answer within
    /// a second, the page shows its own and says so. [default: none]
    #[arg(long, value_name = "URL")]
    monitor_url: Option<String>,
    /// Worker threads. [default: one per core]
    #[arg(long)]
    threads: Option<usize>,
    /// Where reads go: `master`, or `replica` (READONLY replicas; reads may be slightly old).
    /// [default: master]
    #[arg(long, value_parser = parse_read_from)]
    read_from: Option<ReadFrom>,
    /// When a write is answered. `master`: as soon as the master ran it, as Redis does;
    /// replication is asynchronous, so a write acknowledged just before its master fails can
    /// be lost in the failover. `replica`: only once a replica of that master confirmed it
    /// (the proxy sends `WAIT 1 <timeout>` after writes on the same connection), so an
    /// acknowledged write survives its master failing, when the replica that takes over is one
    /// that confirmed it (with one replica per master, always; Redis Cluster promotes the most
    /// up-to-date replica first). A write no
    /// replica confirmed within `--write-ack-timeout` gets a `NOREPLICAACK` error: it did run
    /// on the master and may be lost. Writes are commands flagged `write` plus scripts (EVAL,
    /// EVALSHA, FCALL), FLUSHALL and EXEC of a transaction that writes. A write to a master
    /// the cluster lists with no live replica is refused before it runs (`NOREPLICAS`). The
    /// cost: every write waits for a replica round trip, and while a replica that is not
    /// marked failed does not answer, each batch of writes to its shard waits the whole
    /// timeout, and the commands behind them on the proxy's connection to that master wait
    /// too. [default: master]
    #[arg(long, value_parser = parse_write_ack)]
    write_ack: Option<WriteAck>,
    /// With `--write-ack replica`, how long a write waits for a replica's confirmation
    /// before it gets `NOREPLICAACK` (at least 1ms). [default: 1s]
    #[arg(long, value_parser = humantime::parse_duration)]
    write_ack_timeout: Option<Duration>,
    /// Most clients at once; more are refused with an error. [default: 10000]
    #[arg(long)]
    max_clients: Option<usize>,
    /// Requests one client may have in flight before the proxy stops reading from it.
    /// [default: 1024]
    #[arg(long)]
    max_pending: Option<usize>,
    /// Largest bulk argument a client may send (Redis' proto-max-bulk-len). [default: 512MiB]
    #[arg(long, value_parser = parse_size)]
    max_bulk: Option<usize>,
    /// Close clients idle this long (0s: never, like Redis' `timeout 0`). [default: 0s]
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// How long a command keeps being retried through a failover or a slot move.
    /// [default: 10s]
    #[arg(long, value_parser = humantime::parse_duration)]
    retry_budget: Option<Duration>,
    /// How often the slot map is re-read even when nothing says it changed. [default: 2s]
    #[arg(long, value_parser = humantime::parse_duration)]
    refresh_interval: Option<Duration>,
    /// HOST:PORT that cluster-aware clients (redis-py RedisCluster, ioredis Cluster, Jedis
    /// JedisCluster, ...) are told to connect to: CLUSTER SLOTS, SHARDS and NODES show the
    /// proxy as the one node that owns all 16384 slots, at this address. Give the VIP (and the
    /// same --announce on every proxy behind it) so that clients reconnect to whichever proxy
    /// holds it. [default: the address each client connected to]
    #[arg(long, value_parser = parse_announce)]
    announce: Option<String>,
    /// Refuse FLUSHALL and FLUSHDB (otherwise they empty every master).
    #[arg(long)]
    no_flush: bool,
    /// Refuse CONFIG SET (otherwise it reaches every node).
    #[arg(long)]
    no_config_set: bool,
    /// When a master refuses connections twice in a row (no process listens: it crashed or
    /// was killed), tell its replica to take over at once (`CLUSTER FAILOVER FORCE`, still
    /// voted by the masters) instead of waiting for the cluster's own detection
    /// (node-timeout and more). A master that does not answer at all (a partition) is left to
    /// the cluster. The replica may lack the master's last unreplicated writes, as after any
    /// failover; a crashed master restarted within node-timeout would have kept them.
    #[arg(long)]
    fast_failover: bool,
    /// Hold a floating IP with keepalived while this proxy is healthy: with --vip, the proxy
    /// writes a keepalived.conf into --vrrp-dir and runs keepalived (restarting it if it dies,
    /// stopping it with the proxy, which hands the VIP to another LB at once).
    #[command(flatten, next_help_heading = "Floating IP (keepalived, with --vip)")]
    vrrp: super::keepalived::VrrpArgs,
    /// Where keepalived's config, pid files and logs go. [default: ./vrrp]
    #[arg(long, requires = "vip", help_heading = "Floating IP (keepalived, with --vip)")]
    vrrp_dir: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Security")]
    security: SecurityArgs,
    /// TLS to the nodes, for a detached proxy's command line (the global --node-tls-*
    /// options set it for this process; `redkeep up --tls` sets this).
    #[arg(skip)]
    node_tls: Option<cluster::net::NodeTls>,
}

/// The `--config` file: the same settings, written as on the command line.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ProxyFile {
    seeds: Option<Vec<String>>,
    listen: Option<String>,
    stats: Option<String>,
    monitor_url: Option<String>,
    threads: Option<usize>,
    read_from: Option<String>,
    write_ack: Option<String>,
    write_ack_timeout: Option<String>,
    max_clients: Option<usize>,
    max_pending: Option<usize>,
    max_bulk: Option<String>,
    idle_timeout: Option<String>,
    retry_budget: Option<String>,
    refresh_interval: Option<String>,
    flush: Option<bool>,
    config_set: Option<bool>,
    fast_failover: Option<bool>,
    announce: Option<String>,
    // Security: as the options of the same names (`user = ["app:pw"]`, `users = "FILE"`,
    // `allow = ["debug"]`).
    user: Option<Vec<String>>,
    users: Option<PathBuf>,
    allow: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    tls_auth_clients: Option<String>,
    node_user: Option<String>,
    node_password: Option<String>,
}

/// Everything the proxy runs with, once flags, file and defaults are combined.
pub struct ProxySettings {
    pub config: ProxyConfig,
    pub stats: Option<SocketAddr>,
    pub stats_token: Option<String>,
    pub monitor: Option<web::monitor::MonitorUrl>,
}

fn parse_write_ack(text: &str) -> Result<WriteAck, String> {
    match text {
        "master" => Ok(WriteAck::Master),
        "replica" => Ok(WriteAck::Replica),
        _ => Err(format!("expected `master` or `replica`, got `{text}`")),
    }
}

fn parse_announce(text: &str) -> Result<String, String> {
    proxy::cluster_view::parse_announce(text).map(|_| text.to_string())
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// `flag`, else the file's `value` parsed with `parse`, else `default`; a bad file value is an
/// error naming its key.
fn pick<T>(
    flag: Option<T>,
    value: Option<&str>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    default: T,
) -> anyhow::Result<T> {
    match (flag, value) {
        (Some(v), _) => Ok(v),
        (None, Some(text)) => {
            parse(text).map_err(|e| anyhow::anyhow!("`{key}` in the config file: {e}"))
        }
        (None, None) => Ok(default),
    }
}

impl ProxyArgs {
    /// The proxy settings for a local cluster brought up by `redkeep up`.
    pub fn for_local(
        seeds: Vec<String>,
        listen: SocketAddr,
        stats: Option<SocketAddr>,
    ) -> ProxyArgs {
        // The nodes share this machine with the proxy: half the cores, so that the proxy's
        // threads do not take the CPU the nodes need (measured in docs/benchmarks.md).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ProxyArgs {
            seeds,
            listen: Some(listen),
            stats: Some(StatsListen(stats)),
            threads: Some((cores / 2).max(1)),
            ..ProxyArgs::default()
        }
    }

    /// Sets the stats server's bearer token (`redkeep up --stats-token`).
    pub fn set_stats_token(&mut self, token: Option<String>) {
        self.stats_token = token;
    }

    /// Sets the monitor the stats page shows (`redkeep up` runs one).
    pub fn set_monitor_url(&mut self, url: Option<String>) {
        self.monitor_url = url;
    }

    /// The environment a detached proxy needs besides [`ProxyArgs::to_command_line`]: the
    /// secrets, which go there and not on its command line (visible to every local user).
    pub fn secret_env(&self) -> Vec<(String, String)> {
        let secrets = [
            ("REDKEEP_STATS_TOKEN", &self.stats_token),
            ("REDKEEP_NODE_PASSWORD", &self.security.node_password),
            ("REDKEEP_CLIENT_PASSWORD", &self.security.client_password),
        ];
        secrets
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.clone()?)))
            .collect()
    }

    /// The password of a cluster of `redkeep up --auth`: the proxy authenticates to the nodes
    /// with it and wants it of its clients (user `default`), as the nodes do.
    pub fn set_auth(&mut self, password: Option<String>) {
        self.security.node_password = password.clone();
        self.security.client_password = password;
    }

    /// The TLS of a cluster of `redkeep up --tls`: the proxy serves its clients with the
    /// proxy certificate (a client certificate is optional: one shown must be the CA's) and
    /// talks TLS to the nodes with the client certificate.
    pub fn set_tls(&mut self, tls: Option<&deploy::tls::TlsFiles>) {
        use deploy::tls::{CA_CERT, PROXY_CERT, PROXY_KEY};
        let Some(tls) = tls else { return };
        self.security.tls_cert = Some(tls.file(PROXY_CERT));
        self.security.tls_key = Some(tls.file(PROXY_KEY));
        self.security.tls_ca = Some(tls.file(CA_CERT));
        self.security.tls_auth_clients = Some(proxy::tls::ClientAuth::Optional);
        self.node_tls = Some(tls.node_tls());
    }

    /// The arguments of `redkeep proxy` that reproduce these settings (for a detached proxy).
    pub fn to_command_line(&self) -> Vec<String> {
        let mut line = vec!["proxy".to_string()];
        line.extend(self.security.tls_command_line());
        if let Some(tls) = &self.node_tls {
            let path = |p: &std::path::Path| p.display().to_string();
            line.extend(["--node-tls-ca".to_string(), path(&tls.ca)]);
            if let Some((cert, key)) = &tls.client {
                line.extend(["--node-tls-cert".to_string(), path(cert)]);
                line.extend(["--node-tls-key".to_string(), path(key)]);
            }
        }
        for seed in &self.seeds {
            line.extend(["--seed".to_string(), seed.clone()]);
        }
        if let Some(listen) = self.listen {
            line.extend(["--listen".to_string(), listen.to_string()]);
        }
        if let Some(StatsListen(stats)) = self.stats {
            line.extend([
                "--stats".to_string(),
                stats.map_or_else(|| "off".to_string(), |s| s.to_string()),
            ]);
        }
        if let Some(threads) = self.threads {
            line.extend(["--threads".to_string(), threads.to_string()]);
        }
        if let Some(url) = &self.monitor_url {
            line.extend(["--monitor-url".to_string(), url.clone()]);
        }
        line
    }

    /// Flags, then the `--config` file, then the defaults.
    pub fn settings(&self) -> anyhow::Result<ProxySettings> {
        let file = match &self.config {
            None => ProxyFile::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("the config file {} is not valid", path.display()))?
            }
        };
        let security = self.security.config(&file)?;
        let seeds = match (self.seeds.is_empty(), file.seeds) {
            (false, _) => self.seeds.clone(),
            (true, Some(seeds)) if !seeds.is_empty() => seeds,
            _ => vec!["127.0.0.1:7001".to_string()],
        };
        let mut config = ProxyConfig::new(seeds);
        let parse_addr = |t: &str| t.parse::<SocketAddr>().map_err(|e| e.to_string());
        config.listen =
            pick(self.listen, file.listen.as_deref(), "listen", parse_addr, config.listen)?;
        let default_stats = StatsListen(Some("127.0.0.1:7020".parse().expect("a valid address")));
        let stats = pick(self.stats, file.stats.as_deref(), "stats", parse_stats, default_stats)?.0;
        config.threads = self.threads.or(file.threads).unwrap_or(config.threads).max(1);
        config.read_from = pick(
            self.read_from,
            file.read_from.as_deref(),
            "read-from",
            parse_read_from,
            config.read_from,
        )?;
        config.write_ack = pick(
            self.write_ack,
            file.write_ack.as_deref(),
            "write-ack",
            parse_write_ack,
            config.write_ack,
        )?;
        config.write_ack_timeout = pick(
            self.write_ack_timeout,
            file.write_ack_timeout.as_deref(),
            "write-ack-timeout",
            parse_duration,
            config.write_ack_timeout,
        )?
        .max(Duration::from_millis(1));
        config.max_clients = self.max_clients.or(file.max_clients).unwrap_or(config.max_clients);
        config.max_pending_per_client =
            self.max_pending.or(file.max_pending).unwrap_or(config.max_pending_per_client).max(1);
        config.limits.max_bulk_len = pick(
            self.max_bulk,
            file.max_bulk.as_deref(),
            "max-bulk",
            parse_size,
            config.limits.max_bulk_len,
        )?;
        let idle = pick(
            self.idle_timeout,
            file.idle_timeout.as_deref(),
            "idle-timeout",
            parse_duration,
            Duration::ZERO,
        )?;
        config.client_idle_timeout = (!idle.is_zero()).then_some(idle);
        config.retry_budget = pick(
            self.retry_budget,
            file.retry_budget.as_deref(),
            "retry-budget",
            parse_duration,
            config.retry_budget,
        )?;
        config.refresh_interval = pick(
            self.refresh_interval,
            file.refresh_interval.as_deref(),
            "refresh-interval",
            parse_duration,
            config.refresh_interval,
        )?;
        config.allow_flush = !self.no_flush && file.flush.unwrap_or(true);
        config.allow_config_set = !self.no_config_set && file.config_set.unwrap_or(true);
        config.fast_failover = self.fast_failover || file.fast_failover.unwrap_or(false);
        config.announce = pick(
            self.announce.clone().map(Some),
            file.announce.as_deref(),
            "announce",
            |text| parse_announce(text).map(Some),
            None,
        )?;
        config.security = security;
        if self.stats_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            anyhow::bail!(
                "--stats-token (or REDKEEP_STATS_TOKEN) is empty: give a token, or unset it to \
                 serve the stats without one"
            );
        }
        let monitor = match self.monitor_url.as_ref().or(file.monitor_url.as_ref()) {
            Some(url) => Some(web::monitor::MonitorUrl::parse(url).map_err(anyhow::Error::msg)?),
            None => None,
        };
        Ok(ProxySettings { config, stats, stats_token: self.stats_token.clone(), monitor })
    }
}

// ---- Security options ----

/// Who may use the proxy and what the command policy lets through.
#[derive(clap::Args, Default, Clone)]
struct SecurityArgs {
    /// A user clients authenticate as (`AUTH NAME PASSWORD`, or `AUTH PASSWORD` for the user
    /// `default`), with every right; repeat for more. Once any user is given, clients must
    /// AUTH first (only AUTH, HELLO, QUIT and RESET run before), unless a user `default` with
    /// `nopass` is defined. The password shows in the process list: prefer --users FILE with
    /// `#<sha256>` hashes.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// ACL users, one per line as in a Redis ACL file: `user NAME [on|off] [>password |
    /// #<sha256 hex> | nopass] [+@category -@category +command -command|sub allcommands]
    /// [~pattern %R~pattern %W~pattern allkeys] [&channel allchannels]`; rules apply in order,
    /// as `ACL SETUSER`'s. A new user is off, with no rights. Lines starting with `#` are
    /// comments.
    #[arg(long = "users", value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Let a kind of command through that the proxy refuses by default, because it lets
    /// whoever reaches the proxy change or stop every node: `config-paths` (CONFIG SET dir,
    /// dbfilename, logfile, *-file...), `config-auth` (CONFIG SET requirepass, masterauth,
    /// bind, protected-mode, tls-*...), `module`, `debug`, `replication` (REPLICAOF,
    /// SLAVEOF, FAILOVER, SYNC, PSYNC), `cluster-admin` (CLUSTER MEET, FORGET, RESET,
    /// FAILOVER, SETSLOT, ADDSLOTS...), `shutdown`, `acl-admin` (ACL other than WHOAMI and
    /// CAT); repeat for more. FLUSHALL, FLUSHDB, SCRIPT FLUSH and FUNCTION FLUSH run only for
    /// users holding every command of `@dangerous` (without users: everyone).
    #[arg(long = "allow", value_name = "KIND")]
    allow: Vec<String>,
    /// Serve clients over TLS with this certificate chain (PEM); with --tls-key. Clients
    /// then connect with `redis-cli --tls --cacert CA.pem`; plain connections get an error.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates are checked against; with it, clients
    /// must show one it signed (see --tls-auth-clients).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// With --tls-ca, as Redis' tls-auth-clients: `yes` (a client certificate is required),
    /// `optional` (one shown must be valid) or `no`. [default: yes]
    #[arg(long, value_name = "MODE", requires = "tls_ca", value_parser = parse_client_auth)]
    tls_auth_clients: Option<proxy::tls::ClientAuth>,
    /// The ACL user the proxy authenticates to the nodes as, with --node-password.
    /// [default: default]
    #[arg(long, value_name = "NAME")]
    node_user: Option<String>,
    /// The password the proxy authenticates to the nodes with (`AUTH`, on every connection it
    /// opens to them); never logged nor shown on the stats page. [default: --password]
    #[arg(long, value_name = "PASSWORD", env = "REDKEEP_NODE_PASSWORD", hide_env_values = true)]
    node_password: Option<String>,
    /// The password of the user `default`, which clients AUTH with (`AUTH PASSWORD`, as with
    /// a node's requirepass): as `--user default:PASSWORD`, but it may come from the
    /// environment, which other local users cannot read.
    #[arg(long, value_name = "PASSWORD", env = "REDKEEP_CLIENT_PASSWORD", hide_env_values = true)]
    client_password: Option<String>,
}

fn parse_client_auth(text: &str) -> Result<proxy::tls::ClientAuth, String> {
    use proxy::tls::ClientAuth;
    match text {
        "yes" => Ok(ClientAuth::Required),
        "optional" => Ok(ClientAuth::Optional),
        "no" => Ok(ClientAuth::No),
        _ => Err(format!("expected `yes`, `optional` or `no`, got `{text}`")),
    }
}

impl SecurityArgs {
    /// Flags, else the config file's `user`, `users` and `allow`.
    fn config(&self, file: &ProxyFile) -> anyhow::Result<proxy::security::SecurityConfig> {
        use proxy::acl::user::{parse_user_option, parse_users_file};
        let mut config = proxy::security::SecurityConfig::default();
        let users = match (&self.users, &file.user) {
            (flags, _) if !flags.is_empty() => flags.clone(),
            (_, Some(from_file)) => from_file.clone(),
            _ => Vec::new(),
        };
        for user in &users {
            config.users.push(parse_user_option(user).map_err(anyhow::Error::msg)?);
        }
        if let Some(password) = &self.client_password {
            let user = format!("default:{password}");
            config.users.push(parse_user_option(&user).map_err(anyhow::Error::msg)?);
        }
        if let Some(path) = self.users_file.as_ref().or(file.users.as_ref()) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the users file {}", path.display()))?;
            let specs = parse_users_file(&text)
                .with_context(|| format!("the users file {} is not valid", path.display()))?;
            config.users.extend(specs);
        }
        let kinds = if self.allow.is_empty() {
            file.allow.clone().unwrap_or_default()
        } else {
            self.allow.clone()
        };
        for kind in kinds {
            let kind = proxy::acl::policy::Kind::parse(&kind).map_err(anyhow::Error::msg)?;
            config.allow = config.allow.with(kind);
        }
        config.tls = self.tls(file)?;
        let node_user = self.node_user.clone().or(file.node_user.clone());
        config.node_credentials = match self.node_password.clone().or(file.node_password.clone()) {
            Some(password) => Some(cluster::admin::Credentials { user: node_user, password }),
            None if node_user.is_some() => anyhow::bail!(
                "--node-user needs a password: give --node-password or set REDKEEP_NODE_PASSWORD"
            ),
            None => None,
        };
        if let Some(tls) = &config.tls {
            // The files are read now, so a wrong path or key fails before the proxy starts.
            proxy::tls::server_config(tls).context("the proxy's TLS settings are not usable")?;
        }
        // Rule names are checked against Redis 7.0's commands now, so a typo is an error
        // before the proxy starts (the cluster's own table is used once connected).
        proxy::acl::Users::compile(&config.users, &proxy::CommandTable::builtin())
            .context("a user's rules are not valid")?;
        Ok(config)
    }
}

impl SecurityArgs {
    /// The `--tls-*` options as given (for a detached proxy's command line).
    fn tls_command_line(&self) -> Vec<String> {
        let mut line = Vec::new();
        let files = [("--tls-cert", &self.tls_cert), ("--tls-key", &self.tls_key)];
        for (option, path) in files.into_iter().chain([("--tls-ca", &self.tls_ca)]) {
            if let Some(path) = path {
                line.extend([option.to_string(), path.display().to_string()]);
            }
        }
        if let Some(mode) = self.tls_auth_clients {
            let mode = match mode {
                proxy::tls::ClientAuth::Required => "yes",
                proxy::tls::ClientAuth::Optional => "optional",
                proxy::tls::ClientAuth::No => "no",
            };
            line.extend(["--tls-auth-clients".to_string(), mode.to_string()]);
        }
        line
    }

    /// `--tls-*`, else the config file's `tls-*`.
    fn tls(&self, file: &ProxyFile) -> anyhow::Result<Option<proxy::tls::TlsConfig>> {
        let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>| flag.clone().or(key.clone());
        let (cert, key) =
            (pick(&self.tls_cert, &file.tls_cert), pick(&self.tls_key, &file.tls_key));
        let ca = pick(&self.tls_ca, &file.tls_ca);
        let client_auth = match (self.tls_auth_clients, &file.tls_auth_clients) {
            (Some(mode), _) => mode,
            (None, Some(text)) => parse_client_auth(text)
                .map_err(|e| anyhow::anyhow!("`tls-auth-clients` in the config file: {e}"))?,
            (None, None) => proxy::tls::ClientAuth::Required,
        };
        match (cert, key) {
            (Some(cert), Some(key)) => {
                Ok(Some(proxy::tls::TlsConfig { cert, key, ca, client_auth }))
            }
            (None, None) if ca.is_none() => Ok(None),
            _ => anyhow::bail!(
                "TLS needs both a certificate and its key: give --tls-cert and --tls-key (or \
                 `tls-cert` and `tls-key` in the config file)"
            ),
        }
    }
}

pub fn run(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let handle = args.start().await?;
        let keepalived = match &args.vrrp {
            super::keepalived::VrrpArgs { vip: None, .. } => None,
            vrrp => {
                let dir = args.vrrp_dir.clone().unwrap_or_else(|| PathBuf::from("vrrp"));
                match vrrp.supervise(&dir, handle.local_addr) {
                    Ok(supervisor) => {
                        println!(
                            "keepalived runs for VIP {} (files in {})",
                            vrrp.vip.as_deref().unwrap_or_default(),
                            dir.display()
                        );
                        Some(supervisor)
                    }
                    Err(e) => {
                        handle.shutdown().await;
                        return Err(e);
                    }
                }
            }
        };
        super::shutdown_signal().await;
        if let Some(keepalived) = keepalived {
            // First, so that the VIP moves before clients see this proxy refuse them.
            keepalived.stop();
            println!("keepalived stopped (the VIP went to another LB)");
        }
        println!("Stopping the proxy (draining in-flight requests)...");
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

impl ProxyArgs {
    /// Starts the proxy and its stats server on the current runtime, saying where they are.
    pub async fn start(&self) -> anyhow::Result<proxy::ProxyHandle> {
        let settings = self.settings()?;
        let seeds = settings.config.seeds.join(", ");
        let handle = proxy::start(settings.config).await.context("the proxy did not start")?;
        println!("Proxy listening on {} (cluster seeds: {seeds})", handle.local_addr);
        if let Some(stats) = settings.stats {
            let options = web::WebOptions {
                token: settings.stats_token.clone(),
                monitor: settings.monitor.clone(),
                ..Default::default()
            };
            let served = web::serve_with(
                handle.shared.clone(),
                handle.local_addr.to_string(),
                stats,
                options,
            );
            match served.await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stats_token_stays_off_the_command_line_and_an_empty_one_is_refused() {
        let s = settings_with("", &["--stats-token", "t0k"]).unwrap();
        assert_eq!(s.stats_token.as_deref(), Some("t0k"));
        let mut args = ProxyArgs::for_local(
            vec!["127.0.0.1:7001".into()],
            "127.0.0.1:7010".parse().unwrap(),
            None,
        );
        args.set_stats_token(Some("t0k".into()));
        assert!(!args.to_command_line().iter().any(|a| a.contains("t0k")));
        assert_eq!(args.secret_env(), [("REDKEEP_STATS_TOKEN".to_string(), "t0k".to_string())]);
        let err = settings_with("", &["--stats-token", " "]).err().unwrap();
        assert!(err.to_string().contains("--stats-token"), "{err}");
    }

    #[test]
    fn the_monitor_url_comes_from_the_flag_or_the_file_is_checked_and_passed_on() {
        let s = settings_with("monitor-url = \"http://10.0.0.9:7030\"", &[]).unwrap();
        assert_eq!(s.monitor.unwrap().authority, "10.0.0.9:7030");
        let flags = ["--monitor-url", "http://127.0.0.1:7031/"];
        let s = settings_with("monitor-url = \"http://10.0.0.9:7030\"", &flags).unwrap();
        assert_eq!(s.monitor.unwrap().authority, "127.0.0.1:7031");
        assert!(settings_with("", &[]).unwrap().monitor.is_none());
        let err = settings_with("", &["--monitor-url", "10.0.0.9:7030"]).err().unwrap();
        assert!(err.to_string().contains("http://HOST:PORT"), "{err}");
        let mut args = ProxyArgs::for_local(vec![], "127.0.0.1:7010".parse().unwrap(), None);
        args.set_monitor_url(Some("http://127.0.0.1:7030".into()));
        let line = args.to_command_line();
        assert!(line.windows(2).any(|w| w == ["--monitor-url", "http://127.0.0.1:7030"]));
    }

    fn settings_with(file: &str, flags: &[&str]) -> anyhow::Result<ProxySettings> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ProxyArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv = vec!["proxy", "--config", path.to_str().unwrap()];
        argv.extend(flags);
        Wrapper::parse_from(argv).args.settings()
    }

    #[test]
    fn the_config_file_sets_what_flags_do_not_and_flags_win() {
        let file = r#"
            seeds = ["10.0.0.1:6379", "10.0.0.2:6379"]
            listen = "0.0.0.0:6380"
            stats = "off"
            retry-budget = "15s"
            max-bulk = "1MiB"
            flush = false
            write-ack = "replica"
            write-ack-timeout = "250ms"
        "#;
        let s = settings_with(file, &["--listen", "127.0.0.1:7777"]).unwrap();
        assert_eq!(s.config.seeds, ["10.0.0.1:6379", "10.0.0.2:6379"]);
        assert_eq!(s.config.listen.to_string(), "127.0.0.1:7777", "the flag wins");
        assert_eq!(s.stats, None);
        assert_eq!(s.config.retry_budget, Duration::from_secs(15));
        assert_eq!(s.config.limits.max_bulk_len, 1024 * 1024);
        assert!(!s.config.allow_flush && s.config.allow_config_set);
        assert_eq!(s.config.write_ack, WriteAck::Replica);
        assert_eq!(s.config.write_ack_timeout, Duration::from_millis(250));
        let s = settings_with("write-ack = \"replica\"", &["--write-ack", "master"]).unwrap();
        assert_eq!(s.config.write_ack, WriteAck::Master, "the flag wins");
    }

    #[test]
    fn defaults_apply_without_file_or_flags_and_bad_files_are_named() {
        let s = settings_with("", &[]).unwrap();
        assert_eq!(s.config.seeds, ["127.0.0.1:7001"]);
        assert_eq!(s.config.listen.to_string(), "127.0.0.1:7010");
        assert_eq!(s.stats.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:7020"));
        assert_eq!(s.config.write_ack, WriteAck::Master, "Redis' asynchronous default");
        assert_eq!(s.config.write_ack_timeout, Duration::from_secs(1));
        let err = settings_with("write-ack = \"all\"", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("`write-ack` in the config file"), "{err:#}");
        let err = settings_with("retry-budget = \"soon\"", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("`retry-budget` in the config file"), "{err:#}");
        let err = settings_with("listne = \"x\"", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("unknown field `listne`"), "{err:#}");
    }

    #[test]
    fn announce_comes_from_the_flag_or_the_file_and_is_checked() {
        assert_eq!(settings_with("", &[]).unwrap().config.announce, None);
        let s = settings_with("announce = \"10.0.0.100:7010\"", &[]).unwrap();
        assert_eq!(s.config.announce.as_deref(), Some("10.0.0.100:7010"));
        let s = settings_with("announce = \"10.0.0.100:7010\"", &["--announce", "vip:6379"]);
        assert_eq!(s.unwrap().config.announce.as_deref(), Some("vip:6379"), "the flag wins");
        let err = settings_with("announce = \"10.0.0.100\"", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("`announce` in the config file"), "{err:#}");
        assert!(format!("{err:#}").contains("HOST:PORT"), "{err:#}");
    }

    #[test]
    fn security_comes_from_flags_or_the_file_and_bad_values_are_named() {
        use proxy::acl::policy::Kind;
        let file = "user = [\"app:pw\"]\nallow = [\"debug\"]\n";
        let s = settings_with(file, &[]).unwrap();
        assert_eq!(s.config.security.users.len(), 1);
        assert!(s.config.security.allow.contains(Kind::Debug));
        let s = settings_with(file, &["--allow", "module", "--user", "a:1", "--user", "b:2"]);
        let security = s.unwrap().config.security;
        assert!(security.allow.contains(Kind::Module) && !security.allow.contains(Kind::Debug));
        assert_eq!(security.users.len(), 2, "the flags win");
        let err = settings_with("allow = [\"everything\"]", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("expected one of config-paths"), "{err:#}");
        let err = settings_with("", &["--user", "nopassword"]).err().unwrap();
        assert!(format!("{err:#}").contains("NAME:PASSWORD"), "{err:#}");
        let err = settings_with("tls-cert = \"/nonexistent.pem\"", &[]).err().unwrap();
        assert!(format!("{err:#}").contains("--tls-key"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.acl");
        std::fs::write(&users, "user a on >x +get ~*\nuser b on +nosuch\n").unwrap();
        let err = settings_with("", &["--users", users.to_str().unwrap()]).err().unwrap();
        assert!(format!("{err:#}").contains("+nosuch"), "{err:#}");
    }
}
