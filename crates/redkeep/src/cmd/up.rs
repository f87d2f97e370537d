//! `redkeep up`: start the local nodes, form the cluster when it is new, wait until healthy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use deploy::local::{self, LocalDir, LocalSpec, Origin};

/// Start a local Redis Cluster (3 masters / 3 replicas by default) and keep it running.
///
/// On a new dir it starts the nodes, forms the cluster as `redis-cli --cluster create` would
/// (plan printed first), and waits until every node agrees and `cluster_state:ok`. On a dir
/// that already holds a cluster it brings the same cluster back from its `nodes.conf` files;
/// it never re-creates a cluster over existing data.
///
/// In the foreground (default) Ctrl-C stops every node cleanly; with `--detach` it returns
/// once the cluster is healthy and leaves it running, with the proxy and the monitor as
/// processes of their own (`redkeep down` stops them all).
#[derive(clap::Args)]
pub struct UpArgs {
    /// Number of masters (Redis Cluster needs at least 3) [default: 3]. On a dir that holds
    /// a cluster already, another number scales it live: new nodes are started, added and
    /// given slots (rebalance), or masters (the highest ports) are emptied, removed and
    /// stopped, with their replicas.
    #[arg(long)]
    masters: Option<usize>,
    /// Replicas per master.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Port of the first node; the others follow (each also uses port+10000 for its bus).
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Directory holding every node's config, data and log.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
    /// Address the nodes bind and announce.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// cluster-node-timeout: how long a node may be unreachable before failover starts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    node_timeout: Duration,
    /// Return once the cluster is healthy and leave it running.
    #[arg(long)]
    detach: bool,
    /// Port of the cluster-aware proxy, the one address for every client.
    #[arg(long, default_value_t = 7010)]
    proxy_port: u16,
    /// Port of the proxy's stats page (`/stats`), metrics and JSON API.
    #[arg(long, default_value_t = 7020)]
    stats_port: u16,
    /// Do not start the proxy.
    #[arg(long)]
    no_proxy: bool,
    /// A bearer token the proxy's stats server wants on every path (see `redkeep proxy
    /// --help`); a detached proxy gets it in its environment, not on its command line.
    #[arg(long, value_name = "TOKEN", env = "REDKEEP_STATS_TOKEN", hide_env_values = true)]
    stats_token: Option<String>,
    /// Nodes and proxy require a password (the nodes' requirepass/masterauth; AUTH on the
    /// proxy, user `default`): --password / REDKEEP_PASSWORD, else a generated one. It is
    /// kept in DIR/password (0600), where later commands given --dir find it; a cluster made
    /// with --auth keeps its password on every later `up`.
    #[arg(long)]
    auth: bool,
    /// Everything speaks TLS: the nodes (TLS port only, replication and cluster bus too;
    /// clients must show a certificate), redkeep's connections to them, and the proxy to its
    /// clients (`redis-cli --tls --cacert DIR/tls/ca.crt -p 7010`). A CA and certificates are
    /// made in DIR/tls (0700, files 0600), where later commands given --dir find them; a
    /// cluster made with --tls stays so.
    #[arg(long)]
    tls: bool,
    // --- The monitor: in this process, or with --detach a `redkeep monitor --dir` of its own
    // (pid and log in DIR/monitor). The proxy's stats page shows its alarms and events.
    /// Port of the monitor's API and /metrics (alarms: /api/v1/alarms).
    #[arg(long, default_value_t = 7030)]
    monitor_port: u16,
    /// Healing of the monitor: off, dry-run (print plans) or auto.
    #[arg(long, default_value = "dry-run", value_parser = super::monitor::parse_mode)]
    heal: monitor::heal::Mode,
    /// Do not run the monitor.
    #[arg(long)]
    no_monitor: bool,
}

pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let spec = LocalSpec {
        dir: args.dir.clone(),
        host: args.host.clone(),
        base_port: args.base_port,
        masters: args.masters.unwrap_or(3),
        replicas: args.replicas,
        node_timeout: args.node_timeout,
    };
    let (mut dir, origin) = local::prepare(&spec)?;
    // Held until this command ends: in the foreground, as long as the cluster is served.
    let _lock = dir.lock_up()?;
    if !args.detach {
        refuse_over_detached(&dir, "proxy", dir.proxy_pid().filter(|_| !args.no_proxy))?;
        refuse_over_detached(&dir, "monitor", dir.monitor_pid().filter(|_| !args.no_monitor))?;
    }
    if origin == Origin::Existing {
        println!("Bringing back the cluster in {} (its own settings apply)", dir.root.display());
    }
    let password = node_password(&dir, args.auth, origin)?;
    let tls = node_tls(&dir, args.tls, origin)?;
    let started = dir.start()?;
    let started_now: Vec<u16> = started.iter().filter(|n| n.started_now).map(|n| n.port).collect();
    println!("{} redis-server nodes running ({} started now)", started.len(), started_now.len());
    if let Err(err) = super::block_on(form_and_wait(&dir)) {
        stop_ports(&dir, &started_now);
        return Err(err);
    }
    if let Err(err) = scale_if_asked(&mut dir, origin, args.masters) {
        stop_ports(&dir, &started_now);
        return Err(err);
    }
    let hints = Hints { dir: &dir, auth: password.is_some(), tls: tls.as_ref() };
    print_endpoints(&dir, &hints);
    let proxy_listen: SocketAddr = format!("{}:{}", args.host, args.proxy_port)
        .parse()
        .with_context(|| format!("--host {} is not an IP address", args.host))?;
    let stats_listen = SocketAddr::new(proxy_listen.ip(), args.stats_port);
    let monitor_listen = SocketAddr::new(proxy_listen.ip(), args.monitor_port);
    let mut proxy_args =
        super::proxy::ProxyArgs::for_local(dir.manifest.addrs(), proxy_listen, Some(stats_listen));
    proxy_args.set_stats_token(args.stats_token.clone());
    if !args.no_monitor {
        proxy_args.set_monitor_url(Some(format!("http://{monitor_listen}")));
    }
    proxy_args.set_auth(password.clone());
    proxy_args.set_tls(tls.as_ref());
    let proxy_hint = format!(
        "Proxy: redis-cli{} -p {}{} (any client, no cluster support needed)",
        hints.proxy_tls(),
        args.proxy_port,
        hints.auth()
    );
    if args.detach {
        if !args.no_proxy {
            if let Err(err) = start_proxy_daemon(&dir, &proxy_args) {
                stop_ports(&dir, &started_now);
                return Err(err);
            }
            println!("{proxy_hint}");
            println!("Proxy stats: http://{stats_listen}/stats");
        }
        if !args.no_monitor {
            let proxy = (!args.no_proxy).then_some(proxy_listen);
            // The cluster serves without it: a failed start is a warning, not a failed `up`.
            match start_monitor_daemon(&dir, monitor_listen, proxy, args.heal) {
                Ok(()) => println!(
                    "Monitor: http://{monitor_listen}/api/v1/alarms (healing {}; log {})",
                    args.heal,
                    dir.monitor_dir().join("monitor.log").display()
                ),
                Err(e) => eprintln!(
                    "warning: the monitor did not start: {e:#} (--monitor-port, or --no-monitor)"
                ),
            }
        }
        println!("Detached. Stop it with: redkeep down --dir {}", dir.root.display());
        return Ok(ExitCode::SUCCESS);
    }
    let served = super::block_on(async {
        let proxy = if args.no_proxy {
            None
        } else {
            let handle = proxy_args.start().await?;
            println!("{proxy_hint}");
            Some(handle)
        };
        let watcher = if args.no_monitor {
            None
        } else {
            let proxies = if args.no_proxy { vec![] } else { vec![proxy_listen.to_string()] };
            // The cluster serves without it: a taken port is a warning, not a failed `up`.
            match start_monitor(&dir, proxies, monitor_listen, args.heal).await {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    eprintln!(
                        "warning: the monitor did not start: {e:#} (--monitor-port, or --no-monitor)"
                    );
                    None
                }
            }
        };
        println!("Running in the foreground; Ctrl-C stops the proxy and every node.");
        super::shutdown_signal().await;
        println!("Stopping...");
        // First, so that healing does not restart the nodes being stopped.
        if let Some(watcher) = watcher {
            watcher.stop().await;
        }
        if let Some(proxy) = proxy {
            proxy.shutdown().await;
        }
        anyhow::Ok(())
    });
    if let Err(err) = served {
        stop_ports(&dir, &started_now);
        return Err(err);
    }
    // As the manifest says now: the monitor's healing may have added a node.
    let dir = deploy::local::open(&dir.root).unwrap_or(dir);
    let stopped = dir.stop();
    println!("Stopped {} nodes; data kept in {}", stopped.len(), dir.root.display());
    Ok(ExitCode::SUCCESS)
}

/// The monitor of `redkeep monitor --dir`, in this process.
async fn start_monitor(
    dir: &LocalDir,
    proxies: Vec<String>,
    listen: SocketAddr,
    heal: monitor::heal::Mode,
) -> anyhow::Result<monitor::runner::Monitor> {
    let config = monitor::Config { proxies, ..monitor::Config::default() };
    let options =
        super::monitor::options(dir.manifest.addrs(), config, heal, Some(listen), &dir.root);
    let watcher = monitor::runner::start(options).await?;
    println!("Monitor: http://{listen}/api/v1/alarms (healing {heal}; /metrics for Prometheus)");
    Ok(watcher)
}

/// Forms the cluster when its nodes are blank (a new dir, or an earlier `up` that stopped
/// before forming it), then waits until it is healthy.
async fn form_and_wait(dir: &LocalDir) -> anyhow::Result<()> {
    let addrs = dir.manifest.addrs();
    let mut blank = true;
    for addr in &addrs {
        blank &= cluster::ops::node_state(addr).await?.is_blank();
    }
    if blank {
        // Forming waits for health itself.
        super::create::form(&addrs, dir.manifest.replicas, true).await?;
    } else {
        println!("Waiting for every node to agree and report cluster_state:ok...");
    }
    let timeout = Duration::from_millis(dir.manifest.node_timeout_ms) * 4 + Duration::from_secs(30);
    cluster::ops::wait_healthy(&addrs, timeout).await.context("the cluster is not healthy")?;
    Ok(())
}

/// `--masters N` on a dir holding a cluster of another size: scale it live
/// ([`super::scaling::scale_local`]).
fn scale_if_asked(
    dir: &mut LocalDir,
    origin: Origin,
    masters: Option<usize>,
) -> anyhow::Result<()> {
    match masters {
        Some(wanted) if origin == Origin::Existing && wanted != dir.manifest.masters => {
            super::block_on(super::scaling::scale_local(dir, wanted))
        }
        _ => Ok(()),
    }
}

/// A foreground `up` would serve the cluster a second time beside a detached `what`.
fn refuse_over_detached(dir: &LocalDir, what: &str, pid: Option<u32>) -> anyhow::Result<()> {
    let Some(pid) = pid else { return Ok(()) };
    anyhow::bail!(
        "the cluster in {} is already up, with a detached {what} (pid {pid}): use it as it \
         is, or `redkeep down --dir {}` first to run it in the foreground",
        dir.root.display(),
        dir.root.display()
    )
}

/// Starts `redkeep proxy` detached for this dir's cluster and waits until it serves. When it
/// fails, it is stopped, its pid file removed, and the error is the proxy's own (the end of its
/// log).
fn start_proxy_daemon(dir: &LocalDir, args: &super::proxy::ProxyArgs) -> anyhow::Result<()> {
    if let Some(pid) = dir.proxy_pid() {
        println!("Proxy already running (pid {pid})");
        return Ok(());
    }
    let settings = args.settings()?;
    let ports: Vec<u16> =
        [Some(settings.config.listen), settings.stats].iter().flatten().map(|a| a.port()).collect();
    let log_path = dir.proxy_dir().join("proxy.log");
    let start =
        |exe: &std::path::Path| dir.start_proxy(exe, &args.to_command_line(), &args.secret_env());
    start_daemon("proxy", &log_path, &ports, start, || {
        dir.stop_proxy();
    })
}

/// Starts `redkeep monitor --dir DIR` detached (healing may restart this dir's nodes) and
/// waits until its API listens.
fn start_monitor_daemon(
    dir: &LocalDir,
    listen: SocketAddr,
    proxy: Option<SocketAddr>,
    heal: monitor::heal::Mode,
) -> anyhow::Result<()> {
    if let Some(pid) = dir.monitor_pid() {
        println!("Monitor already running (pid {pid})");
        return Ok(());
    }
    // Absolute: the monitor runs in DIR/monitor.
    let root = std::path::absolute(&dir.root)
        .with_context(|| format!("cannot resolve {}", dir.root.display()))?;
    let mut line: Vec<String> = vec!["monitor".into(), "--dir".into()];
    line.push(root.display().to_string());
    line.extend(["--listen".into(), listen.to_string(), "--heal".into(), heal.to_string()]);
    if let Some(proxy) = proxy {
        line.extend(["--proxy".into(), proxy.to_string()]);
    }
    let log_path = dir.monitor_dir().join("monitor.log");
    let start = |exe: &std::path::Path| dir.start_monitor(exe, &line);
    start_daemon("monitor", &log_path, &[listen.port()], start, || {
        dir.stop_monitor();
    })
}

/// Runs `start` (which spawns the redkeep binary detached, logging to `log_path`) and waits
/// until the process listens on every one of `ports`; else `stop`s it and returns its own
/// error (the end of its log).
fn start_daemon(
    what: &str,
    log_path: &std::path::Path,
    ports: &[u16],
    start: impl FnOnce(&std::path::Path) -> Result<u32, deploy::DeployError>,
    stop: impl FnOnce(),
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .with_context(|| format!("cannot find the redkeep binary to run the {what}"))?;
    // The log is appended to: what this start writes begins here.
    let log_start = std::fs::metadata(log_path).map_or(0, |m| m.len());
    let pid = start(&exe)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline && deploy::process::is_alive(pid) {
        // Its own listening sockets, not a request on the port: another server there would
        // answer it for a process that failed to bind.
        if ports.iter().all(|&port| deploy::process::listens_on(pid, port)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = !deploy::process::is_alive(pid);
    stop();
    let log = log_since(log_path, log_start);
    let tail: Vec<&str> = log.lines().rev().take(5).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !exited {
        anyhow::bail!(
            "the {what} did not start within 15 s (stopped); its log {} ends with:\n{tail}",
            log_path.display()
        );
    }
    // Its own error line, as `redkeep` printed it.
    match log.lines().rev().find_map(|line| line.strip_prefix("error: ")) {
        Some(reason) => anyhow::bail!("{reason} (the {what}'s log: {})", log_path.display()),
        None => anyhow::bail!("the {what} exited at start; its log ends with:\n{tail}"),
    }
}

/// What a log holds after `from` (the lines of this start).
fn log_since(path: &std::path::Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default()).into_owned()
}

/// Stops only the given nodes of `dir` (those this attempt started).
fn stop_ports(dir: &LocalDir, ports: &[u16]) {
    let mut only_these = dir.clone();
    only_these.manifest.ports.retain(|p| ports.contains(p));
    only_these.stop();
}

fn print_endpoints(dir: &LocalDir, hints: &Hints) {
    println!("Cluster is up (cluster_state:ok). Nodes:");
    for addr in dir.manifest.addrs() {
        println!("  {addr}");
    }
    let first = dir.manifest.ports[0];
    println!("Try: redis-cli{} -c -p {first}{} ping", hints.node_tls(), hints.auth());
}

// --- Authentication (`up --auth`): which password the nodes and the proxy require.

/// The nodes' password of this `up`, made the one every admin connection of this process
/// sends: the dir's stored one (a cluster made with --auth stays so), else with `--auth` the
/// given --password or a generated one, stored now; `None` for a cluster without a password.
fn node_password(dir: &LocalDir, asked: bool, origin: Origin) -> anyhow::Result<Option<String>> {
    let given = cluster::admin::credentials().filter(|c| c.user.is_none()).map(|c| c.password);
    let file = dir.password_file();
    let password = match dir.password()? {
        Some(stored) => {
            if given.as_ref().is_some_and(|given| *given != stored) {
                anyhow::bail!(
                    "the cluster in {} has its password in {}, and --password (or \
                     REDKEEP_PASSWORD) gives another one: leave it out, or give that one",
                    dir.root.display(),
                    file.display()
                );
            }
            if asked {
                println!("Password: the one kept in {}", file.display());
            } else {
                println!(
                    "The cluster in {} was made with --auth: it still requires its password \
                     (kept in {})",
                    dir.root.display(),
                    file.display()
                );
            }
            stored
        }
        None if !asked => return Ok(None),
        None if origin == Origin::Existing => anyhow::bail!(
            "the cluster in {} was made without --auth, its nodes require no password: bring it \
             up without --auth, or make a cluster with a password in a new --dir",
            dir.root.display()
        ),
        None => {
            let password = match given {
                Some(given) => {
                    println!("Password: the one given, kept in {} (mode 0600)", file.display());
                    given
                }
                None => {
                    let password = deploy::local::generate_password()?;
                    // Printed this once; it is kept only in that file.
                    println!("Password (generated): {password}");
                    println!("  kept in {} (mode 0600)", file.display());
                    password
                }
            };
            dir.store_password(&password)?;
            password
        }
    };
    let credentials = cluster::admin::Credentials { user: None, password: password.clone() };
    cluster::admin::set_credentials(Some(credentials));
    Ok(Some(password))
}

/// The `redis-cli` options a cluster of this `up` needs (the password read from its file, so
/// that it is not printed again; the certificates of `--tls`).
struct Hints<'a> {
    dir: &'a LocalDir,
    auth: bool,
    tls: Option<&'a deploy::tls::TlsFiles>,
}

impl Hints<'_> {
    /// The TLS options for a node: it wants the client certificate too.
    fn node_tls(&self) -> String {
        let Some(tls) = self.tls else { return String::new() };
        use deploy::tls::{CLIENT_CERT, CLIENT_KEY};
        let (cert, key) = (tls.file(CLIENT_CERT), tls.file(CLIENT_KEY));
        format!("{} --cert {} --key {}", self.proxy_tls(), cert.display(), key.display())
    }

    /// The TLS options for the proxy: the CA that signed its certificate.
    fn proxy_tls(&self) -> String {
        let Some(tls) = self.tls else { return String::new() };
        format!(" --tls --cacert {}", tls.file(deploy::tls::CA_CERT).display())
    }

    /// The password option, read from its file.
    fn auth(&self) -> String {
        match self.auth {
            true => format!(" -a \"$(cat {})\"", self.dir.password_file().display()),
            false => String::new(),
        }
    }
}

// --- TLS (`up --tls`): the dir's certificates, made once.

/// The certificates of this `up`, made the ones every node connection of this process uses:
/// the dir's (a cluster made with --tls stays so), else with `--tls` new ones for a new dir;
/// `None` for a cluster without TLS.
fn node_tls(
    dir: &LocalDir,
    asked: bool,
    origin: Origin,
) -> anyhow::Result<Option<deploy::tls::TlsFiles>> {
    let files = match dir.tls() {
        Some(files) => {
            if !asked {
                println!(
                    "The cluster in {} was made with --tls: it still speaks TLS only \
                     (certificates in {})",
                    dir.root.display(),
                    files.dir.display()
                );
            }
            files
        }
        None if !asked => return Ok(None),
        None if origin == Origin::Existing => anyhow::bail!(
            "the cluster in {} was made without --tls, its nodes speak plain RESP: bring it up \
             without --tls, or make a cluster with TLS in a new --dir",
            dir.root.display()
        ),
        None => {
            let files = dir.create_tls()?;
            println!("TLS: a new CA and certificates in {} (mode 0700)", files.dir.display());
            files
        }
    };
    cluster::net::set_node_tls(Some(&files.node_tls()))
        .with_context(|| format!("the certificates in {} are not usable", files.dir.display()))?;
    Ok(Some(files))
}
