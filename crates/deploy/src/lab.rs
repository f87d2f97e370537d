//! The multi-host lab: hosts made of network namespaces on one machine, wired to a bridge that
//! lives in a namespace of the lab's own (no lab packet reaches the machine's network, and no
//! lab namespace has a default route), addressed in 198.18.0.0/24 (a range set aside for
//! benchmark networks).
//!
//! ```text
//!   <name>-sw   bridge br0 198.18.0.1 (the lab's switch; redkeep's control runs here)
//!   <name>-r1   198.18.0.11   redis-server nodes (two per host with 3 hosts)
//!   <name>-r2   198.18.0.12   ...
//!   <name>-lb1  198.18.0.21   redkeep proxy :7010 + keepalived (VIP 198.18.0.100, priority 150)
//!   <name>-lb2  198.18.0.22   redkeep proxy :7010 + keepalived (priority 100)
//!   <name>-c1   198.18.0.31   the client host: drills send their load from here to the VIP
//! ```
//! Each host is joined to the bridge by a veth pair: `eth0` in the host, the host's name (`r1`)
//! on the bridge. Cutting that bridge port is a partition. The nodes are placed by the create
//! planner, so no master shares a host with its replica.
//!
//! Pure parts ([`plan`], [`Target::parse`]) are separate from the I/O ([`Lab`]). Everything the
//! lab starts runs inside its namespaces, and [`Lab::down`] removes them and every process in
//! them, also when an earlier run crashed and left only the namespaces behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::netns::{self, NetnsError};
use crate::{local, process};

/// The first three octets of the lab's /24.
const SUBNET: &str = "198.18.0";
const PREFIX_LEN: u8 = 24;
/// The port every proxy listens on (and the VIP serves).
pub const PROXY_PORT: u16 = 7010;
/// The stats page of every proxy.
pub const STATS_PORT: u16 = 7020;
const FIRST_PORT: u16 = 7001;
/// 3 masters with one replica each, as the system we replace.
const MASTERS: usize = 3;
const REPLICAS: usize = 1;
/// The name of the lab state file in the lab's dir.
const STATE_FILE: &str = "lab.json";
/// The HTTP API of the monitor on every LB host.
pub const MONITOR_PORT: u16 = 7030;
/// What the LB hosts' monitors heal with until a drill asks for more: the other drills
/// measure the cluster's own failover, which an auto-healing monitor would change.
pub const MONITOR_HEAL_DEFAULT: &str = "dry-run";

/// What `lab up` is asked for.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// Prefix of every namespace (`<name>-r1`, ...); letters, digits and `-`, at most 12.
    pub name: String,
    pub redis_hosts: usize,
    pub lbs: usize,
    pub node_timeout: Duration,
    /// Extra flags for every proxy (e.g. `--write-ack replica`).
    pub proxy_flags: Vec<String>,
    /// Nodes require a password (generated, kept in the lab's dir); the proxies give it to
    /// them and want it of their clients (keepalived's health script reads it from the file).
    pub auth: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Redis,
    Lb,
    Client,
}

/// One host of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// `r1`, `lb1`, `c1`: also the name of its port on the bridge.
    pub name: String,
    pub role: Role,
    pub ip: String,
    /// Its redis-server nodes' ports.
    pub ports: Vec<u16>,
    /// Its keepalived priority (LB hosts).
    pub priority: Option<u8>,
}

/// The whole lab, as data: written to `lab.json` before anything is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabPlan {
    pub name: String,
    pub switch_ip: String,
    pub vip: String,
    pub prefix_len: u8,
    pub hosts: Vec<Host>,
    pub node_timeout_ms: u64,
    /// The masters as planned, and each replica with its master (`ip:port`).
    pub masters: Vec<String>,
    pub replicas: Vec<(String, String)>,
    pub proxy_flags: Vec<String>,
    /// `--heal` of the LB hosts' monitors (`off`, `dry-run`, `auto`).
    #[serde(default = "monitor_heal_default")]
    pub monitor_heal: String,
}

fn monitor_heal_default() -> String {
    MONITOR_HEAL_DEFAULT.to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab name `{0}` must be 1-12 letters, digits or `-`, starting with a letter")]
    BadName(String),
    #[error("the lab needs at least {min} {what} hosts (got {got}) and at most 9")]
    HostCount { what: &'static str, min: usize, got: usize },
    #[error(
        "a lab named `{0}` exists (its namespaces or dir are there); use it, or remove it with \
         `redkeep lab down --name {0}`"
    )]
    Exists(String),
    #[error("no lab named `{0}` here (no {STATE_FILE} in {1}); start one with `redkeep lab up`")]
    Missing(String, PathBuf),
    #[error("no host, node or proxy `{0}` in this lab (hosts: {1})")]
    UnknownTarget(String, String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Plan(#[from] cluster::plan::PlanError),
    #[error(transparent)]
    Cluster(#[from] cluster::ops::OpsError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Failed(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |e| LabError::Io(what, e)
}

/// Lays the lab out: hosts, addresses, node placement.
pub fn plan(spec: &LabSpec) -> Result<LabPlan, LabError> {
    let name_ok = spec.name.len() <= 12
        && spec.name.starts_with(|c: char| c.is_ascii_lowercase())
        && spec.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(LabError::BadName(spec.name.clone()));
    }
    if !(3..=9).contains(&spec.redis_hosts) {
        return Err(LabError::HostCount { what: "Redis", min: 3, got: spec.redis_hosts });
    }
    if !(1..=9).contains(&spec.lbs) {
        return Err(LabError::HostCount { what: "load-balancer", min: 1, got: spec.lbs });
    }
    let node_count = MASTERS * (1 + REPLICAS);
    let mut hosts: Vec<Host> = (0..spec.redis_hosts)
        .map(|i| Host {
            name: format!("r{}", i + 1),
            role: Role::Redis,
            ip: format!("{SUBNET}.{}", 11 + i),
            ports: (0..node_count)
                .filter(|n| n % spec.redis_hosts == i)
                .map(|n| FIRST_PORT + n as u16)
                .collect(),
            priority: None,
        })
        .collect();
    hosts.extend((0..spec.lbs).map(|i| Host {
        name: format!("lb{}", i + 1),
        role: Role::Lb,
        ip: format!("{SUBNET}.{}", 21 + i),
        ports: Vec::new(),
        priority: Some(150u8.saturating_sub(50 * i as u8).max(10)),
    }));
    hosts.push(Host {
        name: "c1".into(),
        role: Role::Client,
        ip: format!("{SUBNET}.31"),
        ports: Vec::new(),
        priority: None,
    });
    let addrs: Vec<String> =
        hosts.iter().flat_map(|h| h.ports.iter().map(move |p| format!("{}:{p}", h.ip))).collect();
    let formation = cluster::ops::Formation::plan(&addrs, REPLICAS)?;
    Ok(LabPlan {
        name: spec.name.clone(),
        switch_ip: format!("{SUBNET}.1"),
        vip: format!("{SUBNET}.100"),
        prefix_len: PREFIX_LEN,
        hosts,
        node_timeout_ms: spec.node_timeout.as_millis() as u64,
        masters: formation.masters.iter().map(|(addr, _)| addr.clone()).collect(),
        replicas: formation.replicas,
        proxy_flags: spec.proxy_flags.clone(),
        monitor_heal: monitor_heal_default(),
    })
}

impl LabPlan {
    /// The namespace of host `host` (`<name>-<host>`).
    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.name)
    }

    /// The namespace with the bridge, where redkeep's own control traffic comes from.
    pub fn switch_ns(&self) -> String {
        self.ns("sw")
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn hosts_with(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.role == role)
    }

    pub fn client(&self) -> &Host {
        self.hosts_with(Role::Client).next().expect("a lab has a client host")
    }

    /// Every redis node, `ip:port`, in port order.
    pub fn node_addrs(&self) -> Vec<String> {
        let mut nodes: Vec<(u16, String)> = self
            .hosts
            .iter()
            .flat_map(|h| h.ports.iter().map(move |&p| (p, format!("{}:{p}", h.ip))))
            .collect();
        nodes.sort();
        nodes.into_iter().map(|(_, addr)| addr).collect()
    }

    /// The host of node `addr` (`ip:port`).
    pub fn host_of(&self, addr: &str) -> Option<&Host> {
        let (ip, port) = addr.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        self.hosts.iter().find(|h| h.ip == ip && h.ports.contains(&port))
    }

    /// Where clients connect: the VIP and the proxy port.
    pub fn vip_addr(&self) -> String {
        format!("{}:{PROXY_PORT}", self.vip)
    }

    /// Is `name` one of this lab's namespaces (also for a lab whose state file is lost)?
    fn owns_namespace(name: &str, lab: &str) -> bool {
        let Some(rest) = name.strip_prefix(lab).and_then(|r| r.strip_prefix('-')) else {
            return false;
        };
        let numbered = |prefix: &str| {
            rest.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        };
        rest == "sw" || numbered("r") || numbered("lb") || numbered("c")
    }
}

/// What `lab kill` aims at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A redis-server node, by port.
    Node(u16),
    /// The proxy of an LB host (keepalived leaves with it).
    Proxy(String),
    /// Every process of a host, and its link: the machine is gone.
    Host(String),
}

impl Target {
    /// `7001` (a node), `lb1` or `proxy:lb1` (a proxy), `r1` or `host:r1` / `host:lb1` (a host).
    pub fn parse(text: &str, plan: &LabPlan) -> Result<Target, LabError> {
        let unknown = || {
            let hosts: Vec<&str> = plan.hosts.iter().map(|h| h.name.as_str()).collect();
            LabError::UnknownTarget(text.to_string(), hosts.join(", "))
        };
        let node = text.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        if let Some(port) = node {
            return match plan.hosts.iter().any(|h| h.ports.contains(&port)) {
                true => Ok(Target::Node(port)),
                false => Err(unknown()),
            };
        }
        let (kind, name) = match text.split_once(':') {
            Some((kind, name)) => (Some(kind), name),
            None => (None, text),
        };
        let host = plan.host(name).ok_or_else(unknown)?;
        match (kind, host.role) {
            (Some("host"), _) | (None, Role::Redis | Role::Client) => {
                Ok(Target::Host(host.name.clone()))
            }
            (Some("proxy") | None, Role::Lb) => Ok(Target::Proxy(host.name.clone())),
            _ => Err(unknown()),
        }
    }
}

/// A lab that exists: its plan and its dir.
pub struct Lab {
    pub plan: LabPlan,
    pub dir: PathBuf,
    /// The redkeep binary the proxies run.
    pub redkeep: PathBuf,
}

/// The dir of lab `name` under `root`.
pub fn lab_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

impl Lab {
    /// Builds the lab: namespaces, bridge, links, nodes, the cluster, proxies with keepalived.
    /// When a step fails, everything made so far is removed before the error is returned.
    pub fn up(
        spec: &LabSpec,
        root: &Path,
        redkeep: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Lab, LabError> {
        let plan = plan(spec)?;
        let dir = lab_dir(root, &plan.name);
        let leftovers = netns::list().iter().any(|ns| LabPlan::owns_namespace(ns, &plan.name));
        if leftovers || dir.join(STATE_FILE).exists() {
            return Err(LabError::Exists(plan.name));
        }
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = dir.canonicalize().map_err(io_err(format!("resolving {}", dir.display())))?;
        let lab = Lab { plan, dir, redkeep: redkeep.to_path_buf() };
        lab.save()?;
        if spec.auth {
            let password =
                local::generate_password().map_err(|e| LabError::Failed(e.to_string()))?;
            local::write_private(&lab.password_file(), &format!("{password}\n"))
                .map_err(|e| LabError::Failed(e.to_string()))?;
        }
        lab.use_password();
        match lab.build(progress) {
            Ok(()) => Ok(lab),
            Err(e) => {
                progress("Removing what was made");
                let _ = down(root, &lab.plan.name);
                Err(e)
            }
        }
    }

    fn build(&self, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
        progress("Creating the hosts (network namespaces) and the switch");
        self.make_network()?;
        progress("Starting the redis-server nodes");
        for host in self.plan.hosts_with(Role::Redis) {
            for &port in &host.ports {
                self.start_node(host, port)?;
            }
        }
        self.wait_nodes_answer()?;
        progress("Forming the cluster (3 masters, 3 replicas, no master beside its replica)");
        let formation = cluster::ops::Formation::plan(&self.plan.node_addrs(), REPLICAS)?;
        self.control(|| async {
            cluster::ops::create(&formation, &mut |_| {}, Duration::from_secs(60)).await
        })??;
        progress("Starting a proxy with keepalived on each load-balancer host");
        for host in self.plan.hosts_with(Role::Lb) {
            self.start_proxy(host)?;
        }
        progress("Waiting until the VIP answers from the client host");
        self.wait_vip(Duration::from_secs(60))?;
        progress("Starting a monitor on each load-balancer host");
        for host in self.plan.hosts_with(Role::Lb) {
            self.start_monitor(host)?;
        }
        Ok(())
    }

    /// Opens the lab whose dir (with its state file) is `dir`.
    pub fn open_dir(dir: &Path) -> Result<Lab, LabError> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let root = dir.parent().unwrap_or(Path::new("/"));
        Lab::open(root, &name)
    }

    /// Opens lab `name` under `root`.
    pub fn open(root: &Path, name: &str) -> Result<Lab, LabError> {
        let dir = lab_dir(root, name);
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|_| LabError::Missing(name.to_string(), dir.clone()))?;
        let state: State = serde_json::from_str(&text)
            .map_err(|e| LabError::Failed(format!("{} is damaged: {e}", path.display())))?;
        let lab = Lab { plan: state.plan, dir, redkeep: state.redkeep };
        lab.use_password();
        Ok(lab)
    }

    fn save(&self) -> Result<(), LabError> {
        let state = State { plan: self.plan.clone(), redkeep: self.redkeep.clone() };
        let path = self.dir.join(STATE_FILE);
        let text = serde_json::to_string_pretty(&state).expect("the lab state serializes");
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))
    }

    fn make_network(&self) -> Result<(), LabError> {
        let sw = self.plan.switch_ns();
        netns::add(&sw)?;
        let bridge_ip = format!("{}/{}", self.plan.switch_ip, self.plan.prefix_len);
        netns::ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        netns::ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        netns::ip(&["-n", &sw, "addr", "add", &bridge_ip, "dev", "br0"])?;
        netns::ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for host in &self.plan.hosts {
            let ns = self.plan.ns(&host.name);
            netns::add(&ns)?;
            let host_ip = format!("{}/{}", host.ip, self.plan.prefix_len);
            let port = host.name.as_str();
            netns::ip(&[
                "-n", &sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ])?;
            netns::ip(&["-n", &sw, "link", "set", port, "master", "br0", "up"])?;
            netns::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            netns::ip(&["-n", &ns, "addr", "add", &host_ip, "dev", "eth0"])?;
            netns::ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// Runs a future in the switch namespace (the lab's control point).
    pub fn control<T: Send, F: Future<Output = T>>(
        &self,
        make: impl FnOnce() -> F + Send,
    ) -> Result<T, LabError> {
        Ok(netns::block_on_in(&self.plan.switch_ns(), make)?)
    }

    /// The cluster as the first lab node that answers sees it (`CLUSTER NODES`).
    pub fn topology(&self) -> Result<cluster::topology::Topology, LabError> {
        let addrs = self.plan.node_addrs();
        self.control(|| async {
            for addr in &addrs {
                let asking = cluster::ops::topology_of(addr);
                if let Ok(Ok(topology)) = tokio::time::timeout(Duration::from_secs(2), asking).await
                {
                    return Ok(topology);
                }
            }
            Err(LabError::Failed("no node of the lab answers CLUSTER NODES".into()))
        })?
    }

    /// Runs a future in the client host's namespace.
    pub fn on_client<T: Send, F: Future<Output = T>>(
        &self,
        make: impl FnOnce() -> F + Send,
    ) -> Result<T, LabError> {
        Ok(netns::block_on_in(&self.plan.ns(&self.plan.client().name), make)?)
    }

    /// Where the nodes' password of a lab made with `--auth` is kept (0600).
    pub fn password_file(&self) -> PathBuf {
        self.dir.join(local::PASSWORD_FILE)
    }

    /// The nodes' password, `None` for a lab made without `--auth`.
    pub fn password(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.password_file()).ok()?;
        Some(text.trim_end_matches('\n').to_string())
    }

    /// Makes the lab's password the one this process's admin connections send (they form
    /// the cluster, read its topology and run the drills' checks).
    fn use_password(&self) {
        if let Some(password) = self.password() {
            let credentials = cluster::admin::Credentials { user: None, password };
            cluster::admin::set_credentials(Some(credentials));
        }
    }

    fn node_dir(&self, host: &Host, port: u16) -> PathBuf {
        self.dir.join(&host.name).join(format!("node-{port}"))
    }

    fn proxy_dir(&self, host: &Host) -> PathBuf {
        self.dir.join(&host.name)
    }

    /// The pid of node `port`, verified to run in its node dir.
    pub fn node_pid(&self, port: u16) -> Option<u32> {
        let host = self.plan.hosts.iter().find(|h| h.ports.contains(&port))?;
        let dir = self.node_dir(host, port);
        let pid = process::read_pid_file(&dir.join("redis.pid"))?;
        process::runs_in(pid, &dir).then_some(pid)
    }

    /// The pid of an LB host's proxy, verified to run in its dir.
    pub fn proxy_pid(&self, host: &Host) -> Option<u32> {
        let dir = self.proxy_dir(host);
        let pid = process::read_pid_file(&dir.join("proxy.pid"))?;
        process::runs_in(pid, &dir).then_some(pid)
    }

    /// Starts node `addr` again (a monitor's healing does this), unless it runs.
    pub fn restart_node(&self, addr: &str) -> Result<(), LabError> {
        let host = self.plan.host_of(addr).ok_or_else(|| {
            LabError::Failed(format!("{addr} is not a node of lab {}", self.plan.name))
        })?;
        let port: u16 = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
        if !host.ports.contains(&port) {
            return Err(LabError::Failed(format!(
                "{addr} is not a node of lab {}",
                self.plan.name
            )));
        }
        if let Some(pid) = self.node_pid(port) {
            return Err(LabError::Failed(format!(
                "node {addr} runs (pid {pid}): not started twice"
            )));
        }
        if !self.can_restart(addr) {
            return Err(LabError::Failed(format!(
                "node {addr} is gone for good (its host and disk are lost): it cannot be started"
            )));
        }
        self.start_node(host, port)
    }

    /// Kills node `port` (SIGKILL) and removes its dir: it comes back empty, as a lost disk.
    pub fn wipe_node(&self, port: u16) -> Result<String, LabError> {
        let said = self.kill(&Target::Node(port))?;
        let host = self.plan.hosts.iter().find(|h| h.ports.contains(&port)).expect("killed node");
        let dir = self.node_dir(host, port);
        std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
        Ok(format!("{said}, its dir wiped"))
    }

    /// The marker that says node `port`'s host and disk are gone for good: it is not started
    /// again (not by healing, not by [`Lab::heal`]) until [`Lab::unretire_node`].
    fn retired_marker(&self, host: &Host, port: u16) -> PathBuf {
        self.dir.join(&host.name).join(format!("node-{port}.gone"))
    }

    /// Is `addr` a planned node that may be started again (not retired)?
    pub fn can_restart(&self, addr: &str) -> bool {
        let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok());
        match (self.plan.host_of(addr), port) {
            (Some(host), Some(port)) => !self.retired_marker(host, port).exists(),
            _ => false,
        }
    }

    /// Kills node `port`, removes its dir and marks it gone for good: a machine and its disk
    /// lost, which no restart brings back (a drill's fault).
    pub fn retire_node(&self, port: u16) -> Result<String, LabError> {
        let said = self.wipe_node(port)?;
        let host = self.plan.hosts.iter().find(|h| h.ports.contains(&port)).expect("wiped node");
        let marker = self.retired_marker(host, port);
        std::fs::write(
            &marker,
            "gone for good (a drill's fault); remove this file to let the node start again\n",
        )
        .map_err(io_err(format!("writing {}", marker.display())))?;
        Ok(format!("{said}, gone for good"))
    }

    /// Lets a retired node be started again (it starts empty: its dir was removed).
    pub fn unretire_node(&self, port: u16) -> Result<(), LabError> {
        let host = self.plan.hosts.iter().find(|h| h.ports.contains(&port));
        match host.map(|h| self.retired_marker(h, port)) {
            Some(marker) if marker.exists() => std::fs::remove_file(&marker)
                .map_err(io_err(format!("removing {}", marker.display()))),
            _ => Ok(()),
        }
    }

    /// Nodes started beside the plan (by a monitor's healing): (host, port), from the node
    /// dirs on each Redis host whose port the plan does not list.
    pub fn extra_nodes(&self) -> Vec<(Host, u16)> {
        let mut extra = Vec::new();
        for host in self.plan.hosts_with(Role::Redis) {
            let Ok(entries) = std::fs::read_dir(self.dir.join(&host.name)) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let port = name.to_str().and_then(|n| n.strip_prefix("node-")?.parse::<u16>().ok());
                if let Some(port) = port.filter(|p| !host.ports.contains(p)) {
                    extra.push((host.clone(), port));
                }
            }
        }
        extra.sort_by_key(|(_, port)| *port);
        extra
    }

    /// The Redis host a new node goes on: the first (in plan order, fewest nodes first) whose
    /// address is none of `avoid` (the hosts of the shard the node is for); or why there is
    /// none.
    pub fn place_new_node(&self, avoid: &[String]) -> Result<String, LabError> {
        let extra = self.extra_nodes();
        let load = |h: &Host| {
            let retired = h.ports.iter().filter(|&&p| self.retired_marker(h, p).exists()).count();
            h.ports.len() - retired + extra.iter().filter(|(e, _)| e.name == h.name).count()
        };
        let mut free: Vec<&Host> =
            self.plan.hosts_with(Role::Redis).filter(|h| !avoid.contains(&h.ip)).collect();
        free.sort_by_key(|h| load(h));
        match free.first() {
            Some(host) => Ok(host.ip.clone()),
            None => Err(LabError::Failed(format!(
                "every Redis host of lab {} ({}) has a node of this shard, and a replica beside \
                 its master or another copy would not survive that host: make a lab with more \
                 hosts (`redkeep lab up --redis-hosts N`)",
                self.plan.name,
                self.plan
                    .hosts_with(Role::Redis)
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Starts a new, empty node on the Redis host with address `ip`, on the port after every
    /// node's (planned and extra) so that ports stay unique in the lab; waits until it answers.
    /// Returns its `ip:port`.
    pub fn start_new_node(&self, ip: &str) -> Result<String, LabError> {
        let host = self.plan.hosts_with(Role::Redis).find(|h| h.ip == ip).ok_or_else(|| {
            LabError::Failed(format!("{ip} is not a Redis host of lab {}", self.plan.name))
        })?;
        let planned = self.plan.hosts.iter().flat_map(|h| h.ports.iter().copied());
        let last = planned.chain(self.extra_nodes().into_iter().map(|(_, p)| p)).max();
        let port = last.unwrap_or(FIRST_PORT - 1) + 1;
        self.start_node(host, port)?;
        let password = self.password();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !local::ping_with(ip, port, password.as_deref()) {
            if Instant::now() > deadline {
                return Err(LabError::Failed(format!(
                    "the new node {ip}:{port} did not answer PING"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(format!("{ip}:{port}"))
    }

    /// Stops an extra node (SIGTERM, by the pid its dir holds and verified to run there) and
    /// removes its dir. It must have left the cluster first.
    pub fn remove_extra_node(&self, host: &Host, port: u16) -> Result<(), LabError> {
        let dir = self.node_dir(host, port);
        if let Some(pid) = process::read_pid_file(&dir.join("redis.pid"))
            && process::runs_in(pid, &dir)
        {
            process::terminate(pid, Duration::from_secs(10));
        }
        std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))
    }

    fn start_node(&self, host: &Host, port: u16) -> Result<(), LabError> {
        let dir = self.node_dir(host, port);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let conf = dir.join("redis.conf");
        let mut text = local::node_config(&host.ip, port, &dir, self.plan.node_timeout_ms);
        match self.password() {
            // With a password protected mode lets the lab's hosts in (it refuses only
            // non-loopback clients of a node that has none).
            Some(password) => text.push_str(&local::auth_config(&password)),
            // The lab's hosts reach the node over its lab address, which protected mode (no
            // password, not loopback) would refuse; the lab's network reaches nothing outside.
            None => text.push_str("protected-mode no\n"),
        }
        local::write_private(&conf, &text).map_err(|e| LabError::Failed(e.to_string()))?;
        let mut command = netns::command(
            &self.plan.ns(&host.name),
            local::redis_server_path().map_err(|e| LabError::Failed(e.to_string()))?,
        );
        command.arg(&conf).current_dir(&dir);
        spawn_detached(command, None).map(drop)
    }

    fn start_proxy(&self, host: &Host) -> Result<(), LabError> {
        self.start_proxy_seeded(host, None)
    }

    /// Starts the proxy of `host`, seeded with `seeds` instead of the nodes' addresses when
    /// given.
    fn start_proxy_seeded(&self, host: &Host, seeds: Option<&[String]>) -> Result<(), LabError> {
        let dir = self.proxy_dir(host);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let mut command = netns::command(&self.plan.ns(&host.name), &self.redkeep);
        let args = match seeds {
            Some(seeds) => with_seeds(&self.proxy_args(host), seeds),
            None => self.proxy_args(host),
        };
        command.args(args).current_dir(&dir);
        // The proxy gives the password to the nodes and wants it of its clients (user
        // `default`, as the nodes do; keepalived's health script reads it from the lab's
        // password file, see `proxy_args`). In its environment: a command line is visible to
        // every local user.
        if let Some(password) = self.password() {
            command.env("REDKEEP_NODE_PASSWORD", &password);
            command.env("REDKEEP_CLIENT_PASSWORD", password);
        }
        let child = spawn_detached(command, Some(&dir.join("proxy.log")))?;
        let pid_path = dir.join("proxy.pid");
        std::fs::write(&pid_path, format!("{}\n", child.id()))
            .map_err(io_err(format!("writing {}", pid_path.display())))
    }

    /// `redkeep proxy ...` of an LB host: every node as a seed, listening on all its addresses,
    /// keepalived for the VIP (announced to cluster-aware clients), a retry budget that outlasts
    /// a failover.
    pub fn proxy_args(&self, host: &Host) -> Vec<String> {
        let mut args: Vec<String> = vec!["proxy".into()];
        for addr in self.plan.node_addrs() {
            args.extend(["--seed".into(), addr]);
        }
        let budget = Duration::from_millis(self.plan.node_timeout_ms * 2 + 4000);
        args.extend([
            "--listen".into(),
            format!("0.0.0.0:{PROXY_PORT}"),
            "--stats".into(),
            format!("0.0.0.0:{STATS_PORT}"),
            "--threads".into(),
            "1".into(),
            "--retry-budget".into(),
            humantime::format_duration(budget).to_string(),
            "--vip".into(),
            format!("{}/{}", self.plan.vip, self.plan.prefix_len),
            "--interface".into(),
            "eth0".into(),
            "--priority".into(),
            host.priority.unwrap_or(100).to_string(),
            "--auth-pass".into(),
            "redkeep".into(),
            "--vrrp-dir".into(),
            self.proxy_dir(host).join("vrrp").display().to_string(),
            // A killed master is replaced at once; a cut-off one is left to the cluster.
            "--fast-failover".into(),
            // Cluster-aware clients are told the VIP, whichever LB holds it.
            "--announce".into(),
            self.plan.vip_addr(),
        ]);
        if self.password().is_some() {
            // The proxy wants the password of its clients, keepalived's health check too.
            let file = self.password_file().display().to_string();
            args.extend(["--health-password-file".into(), file]);
        }
        args.extend(self.plan.proxy_flags.iter().cloned());
        args
    }

    /// The log of an LB host's monitor (every alarm transition and healing line).
    pub fn monitor_log(&self, host: &Host) -> PathBuf {
        self.proxy_dir(host).join("monitor.log")
    }

    /// The pid of an LB host's monitor, verified to run in its dir.
    pub fn monitor_pid(&self, host: &Host) -> Option<u32> {
        let dir = self.proxy_dir(host);
        let pid = process::read_pid_file(&dir.join("monitor.pid"))?;
        process::runs_in(pid, &dir).then_some(pid)
    }

    /// The monitor's config on an LB host: the proxies, and the VIP as each LB's `eth0` shows
    /// it (`ip -n NS`, which works from any namespace), this host being `local_lb` so that
    /// only the monitor whose LB holds the VIP heals.
    pub fn monitor_config(&self, host: &Host) -> String {
        let proxies: Vec<String> =
            self.plan.hosts_with(Role::Lb).map(|h| format!("\"{}:{PROXY_PORT}\"", h.ip)).collect();
        let mut text = format!(
            "proxies = [{}]\n\n[vip]\naddress = \"{}\"\nlocal_lb = \"{}\"\n",
            proxies.join(", "),
            self.plan.vip,
            host.name
        );
        // The drills run back to back, a few actions each: the default rate limit (a real
        // cluster's) would refuse the second drill's repairs.
        text += "\n[heal]\nmax_actions = 10\nwindow = \"1m\"\n";
        for lb in self.plan.hosts_with(Role::Lb) {
            text += &format!(
                "\n[[vip.lbs]]\nname = \"{}\"\ncheck = [\"ip\", \"-n\", \"{}\", \"-4\", \"-o\", \"addr\", \"show\", \"dev\", \"eth0\"]\n",
                lb.name,
                self.plan.ns(&lb.name)
            );
        }
        text
    }

    /// `redkeep monitor ...` of an LB host.
    pub fn monitor_args(&self, host: &Host) -> Vec<String> {
        let mut args: Vec<String> = vec!["monitor".into()];
        for addr in self.plan.node_addrs() {
            args.extend(["--seed".into(), addr]);
        }
        args.extend([
            "--heal".into(),
            self.plan.monitor_heal.clone(),
            "--config".into(),
            self.proxy_dir(host).join("monitor.toml").display().to_string(),
            "--listen".into(),
            format!("0.0.0.0:{MONITOR_PORT}"),
            // Healing restarts the lab's nodes in their hosts' namespaces.
            "--lab".into(),
            self.dir.display().to_string(),
        ]);
        args
    }

    fn start_monitor(&self, host: &Host) -> Result<(), LabError> {
        let dir = self.proxy_dir(host);
        let conf = dir.join("monitor.toml");
        std::fs::write(&conf, self.monitor_config(host))
            .map_err(io_err(format!("writing {}", conf.display())))?;
        let mut command = netns::command(&self.plan.ns(&host.name), &self.redkeep);
        command.args(self.monitor_args(host)).current_dir(&dir);
        let child = spawn_detached(command, Some(&self.monitor_log(host)))?;
        let pid_path = dir.join("monitor.pid");
        std::fs::write(&pid_path, format!("{}\n", child.id()))
            .map_err(io_err(format!("writing {}", pid_path.display())))
    }

    /// Restarts every monitor with `--heal mode` when they run with another.
    pub fn set_monitor_heal(&mut self, mode: &str) -> Result<bool, LabError> {
        let running = self.plan.hosts_with(Role::Lb).all(|h| self.monitor_pid(h).is_some());
        if self.plan.monitor_heal == mode && running {
            return Ok(false);
        }
        self.plan.monitor_heal = mode.to_string();
        self.save()?;
        for host in self.plan.hosts_with(Role::Lb) {
            if let Some(pid) = self.monitor_pid(host) {
                process::terminate(pid, Duration::from_secs(10));
            }
            self.start_monitor(host)?;
        }
        Ok(true)
    }

    fn wait_nodes_answer(&self) -> Result<(), LabError> {
        let mut addrs = self.plan.node_addrs();
        addrs.retain(|a| self.can_restart(a));
        let password = self.password();
        self.control(|| async {
            let deadline = Instant::now() + Duration::from_secs(30);
            for addr in &addrs {
                let (ip, port) = addr.rsplit_once(':').expect("ip:port");
                let port: u16 = port.parse().expect("a port");
                while !local::ping_with(ip, port, password.as_deref()) {
                    if Instant::now() > deadline {
                        return Err(LabError::Failed(format!("node {addr} did not answer PING")));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Ok(())
        })?
    }

    /// Waits until a proxy answers PING on the VIP from the client host (after AUTH with
    /// the lab's password: the proxies want it of their clients).
    pub fn wait_vip(&self, timeout: Duration) -> Result<(), LabError> {
        let vip = self.plan.vip.clone();
        let password = self.password();
        self.on_client(|| async move {
            let deadline = Instant::now() + timeout;
            while !local::ping_with(&vip, PROXY_PORT, password.as_deref()) {
                if Instant::now() > deadline {
                    return Err(LabError::Failed(format!(
                        "the VIP {vip}:{PROXY_PORT} did not answer within {timeout:?}"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        })?
    }

    /// The LB host whose eth0 holds the VIP now, if any.
    pub fn vip_holder(&self) -> Option<String> {
        self.plan.hosts_with(Role::Lb).find(|h| self.holds_vip(h)).map(|h| h.name.clone())
    }

    fn holds_vip(&self, host: &Host) -> bool {
        let ns = self.plan.ns(&host.name);
        let text = netns::ip_output(&["-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0"])
            .unwrap_or_default();
        text.split_whitespace().any(|w| w.split('/').next() == Some(self.plan.vip.as_str()))
    }

    /// Is the host's bridge port up (not partitioned)?
    pub fn link_up(&self, host: &Host) -> bool {
        let text =
            netns::ip_output(&["-n", &self.plan.switch_ns(), "-o", "link", "show", &host.name])
                .unwrap_or_default();
        // The administrative state is the `UP` flag in `<BROADCAST,MULTICAST,UP,LOWER_UP>`.
        let flags = text.split_once('<').and_then(|(_, rest)| rest.split_once('>'));
        flags.is_some_and(|(flags, _)| flags.split(',').any(|f| f == "UP"))
    }

    /// Kills `target` with SIGKILL (a host: every process in it, and its link goes down).
    pub fn kill(&self, target: &Target) -> Result<String, LabError> {
        match target {
            Target::Node(port) => {
                let pid = self
                    .node_pid(*port)
                    .ok_or_else(|| LabError::Failed(format!("node {port} is not running")))?;
                process::signal(pid, libc::SIGKILL);
                process::wait_gone(pid, Duration::from_secs(5));
                Ok(format!("killed node {port} (pid {pid})"))
            }
            Target::Proxy(name) => {
                let host = self.plan.host(name).expect("a parsed target's host exists");
                let pid = self.proxy_pid(host).ok_or_else(|| {
                    LabError::Failed(format!("the proxy on {name} is not running"))
                })?;
                process::signal(pid, libc::SIGKILL);
                process::wait_gone(pid, Duration::from_secs(5));
                Ok(format!("killed the proxy on {name} (pid {pid}; its keepalived stops with it)"))
            }
            Target::Host(name) => {
                let host = self.plan.host(name).expect("a parsed target's host exists");
                self.set_link(host, false)?;
                let pids = kill_namespace(&self.plan.ns(name), Duration::ZERO);
                Ok(format!("host {name} is gone: link down, {pids} process(es) killed"))
            }
        }
    }

    /// Cuts `host` off the switch.
    pub fn partition(&self, host: &str) -> Result<String, LabError> {
        let host = self.host_or_err(host)?;
        self.set_link(host, false)?;
        Ok(format!("{} is cut off", host.name))
    }

    fn host_or_err(&self, name: &str) -> Result<&Host, LabError> {
        self.plan.host(name).ok_or_else(|| {
            let hosts: Vec<&str> = self.plan.hosts.iter().map(|h| h.name.as_str()).collect();
            LabError::UnknownTarget(name.to_string(), hosts.join(", "))
        })
    }

    fn set_link(&self, host: &Host, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        Ok(netns::ip(&["-n", &self.plan.switch_ns(), "link", "set", &host.name, state])?)
    }

    /// Reconnects every host and starts every node and proxy that is not running (a node
    /// that comes back rejoins the cluster, as a replica if its slots moved meanwhile).
    pub fn heal(&self) -> Result<Vec<String>, LabError> {
        let mut done = Vec::new();
        for host in &self.plan.hosts {
            if !self.link_up(host) {
                self.set_link(host, true)?;
                done.push(format!("{} reconnected", host.name));
            }
        }
        for host in self.plan.hosts_with(Role::Redis) {
            for &port in &host.ports {
                if self.node_pid(port).is_none() && !self.retired_marker(host, port).exists() {
                    self.start_node(host, port)?;
                    done.push(format!("node {port} started on {}", host.name));
                }
            }
        }
        self.wait_nodes_answer()?;
        for host in self.plan.hosts_with(Role::Lb) {
            if self.proxy_pid(host).is_none() {
                self.start_proxy(host)?;
                done.push(format!("proxy started on {}", host.name));
            }
            if self.monitor_pid(host).is_none() {
                self.start_monitor(host)?;
                done.push(format!("monitor started on {}", host.name));
            }
        }
        Ok(done)
    }

    /// Restarts every proxy with `flags` added to its command line (e.g. `--write-ack
    /// replica`), when they differ from the flags it runs with.
    pub fn set_proxy_flags(&mut self, flags: Vec<String>) -> Result<bool, LabError> {
        if self.plan.proxy_flags == flags {
            return Ok(false);
        }
        self.plan.proxy_flags = flags;
        self.save()?;
        for host in self.plan.hosts_with(Role::Lb) {
            if let Some(pid) = self.proxy_pid(host) {
                process::terminate(pid, Duration::from_secs(10));
            }
            self.start_proxy(host)?;
        }
        Ok(true)
    }
}

impl Lab {
    /// Gives Redis host `name` a new address (its nodes must be stopped): the host's eth0
    /// drops the old one and takes `ip`, and the plan (where nodes bind, the proxies' seeds,
    /// the planned masters and replicas) follows. A host coming back elsewhere, as a pod does.
    pub fn readdress(&mut self, name: &str, ip: &str) -> Result<String, LabError> {
        let host = self.host_or_err(name)?.clone();
        let ns = self.plan.ns(&host.name);
        let prefix = self.plan.prefix_len;
        netns::ip(&["-n", &ns, "addr", "del", &format!("{}/{prefix}", host.ip), "dev", "eth0"])?;
        netns::ip(&["-n", &ns, "addr", "add", &format!("{ip}/{prefix}"), "dev", "eth0"])?;
        let moved = |addr: &mut String| {
            if let Some(port) = addr.strip_prefix(&format!("{}:", host.ip)) {
                *addr = format!("{ip}:{port}");
            }
        };
        self.plan.masters.iter_mut().for_each(moved);
        for (replica, master) in &mut self.plan.replicas {
            moved(replica);
            moved(master);
        }
        if let Some(h) = self.plan.hosts.iter_mut().find(|h| h.name == host.name) {
            h.ip = ip.to_string();
        }
        self.save()?;
        Ok(format!("{} moved from {} to {ip}", host.name, host.ip))
    }

    /// Restarts every proxy (SIGTERM, which drains it), seeded with `seeds` (e.g. names the
    /// LB hosts resolve), or with the nodes' addresses in the plan.
    pub fn restart_proxies(&self, seeds: Option<&[String]>) -> Result<(), LabError> {
        for host in self.plan.hosts_with(Role::Lb) {
            if let Some(pid) = self.proxy_pid(host) {
                process::terminate(pid, Duration::from_secs(10));
            }
            self.start_proxy_seeded(host, seeds)?;
        }
        Ok(())
    }

    /// The namespace's own files under `/etc/netns/NS/`, which `ip netns exec` mounts over
    /// `/etc` for the programs it runs there (a `hosts` file is the lab's DNS).
    pub fn netns_etc(&self, host: &str) -> PathBuf {
        netns_etc(&self.plan.ns(host))
    }
}

/// `redkeep proxy` arguments with their `--seed`s replaced by `seeds`.
fn with_seeds(args: &[String], seeds: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seed" => {
                rest.next();
            }
            _ => kept.push(arg.clone()),
        }
    }
    let at = kept.iter().position(|a| a == "proxy").map_or(0, |i| i + 1);
    let seeds = seeds.iter().flat_map(|s| ["--seed".to_string(), s.clone()]);
    kept.splice(at..at, seeds);
    kept
}

fn netns_etc(ns: &str) -> PathBuf {
    Path::new("/etc/netns").join(ns)
}

/// What `lab.json` holds.
#[derive(Serialize, Deserialize)]
struct State {
    plan: LabPlan,
    redkeep: PathBuf,
}

/// Starts `command` in a session of its own with its output to `log` (or nowhere).
fn spawn_detached(mut command: Command, log: Option<&Path>) -> Result<Child, LabError> {
    command.stdin(Stdio::null());
    match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            let copy = file.try_clone().map_err(io_err("duplicating a log handle"))?;
            command.stdout(file).stderr(copy);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    local::detach_from_terminal(&mut command);
    command.spawn().map_err(io_err("starting a lab process (is iproute2 installed?)"))
}

/// Stops every process in namespace `ns` (SIGTERM, SIGKILL after `grace`); returns how many
/// there were. They are ours: nothing else runs in a lab's namespace.
fn kill_namespace(ns: &str, grace: Duration) -> usize {
    let pids = netns::pids(ns);
    let first_signal = if grace.is_zero() { libc::SIGKILL } else { libc::SIGTERM };
    for &pid in &pids {
        process::signal(pid, first_signal);
    }
    for &pid in &pids {
        if !process::wait_gone(pid, grace) {
            process::signal(pid, libc::SIGKILL);
            process::wait_gone(pid, Duration::from_secs(5));
        }
    }
    pids.len()
}

/// Removes lab `name`: every process in its namespaces, the namespaces (and with them every
/// link), and its dir. Works from the namespaces alone when the dir is gone. Returns what it
/// removed.
pub fn down(root: &Path, name: &str) -> Result<Vec<String>, LabError> {
    let mut removed = Vec::new();
    let mut namespaces: Vec<String> =
        netns::list().into_iter().filter(|ns| LabPlan::owns_namespace(ns, name)).collect();
    // Proxies first (their keepalived hands the VIP over), then everything else.
    namespaces.sort_by_key(|ns| !ns.contains("-lb"));
    for ns in &namespaces {
        let count = kill_namespace(ns, Duration::from_secs(5));
        if count > 0 {
            removed.push(format!("{count} process(es) in {ns}"));
        }
    }
    for ns in &namespaces {
        netns::delete(ns)?;
        removed.push(format!("namespace {ns}"));
        if std::fs::remove_dir_all(netns_etc(ns)).is_ok() {
            removed.push(format!("{}", netns_etc(ns).display()));
        }
    }
    let dir = lab_dir(root, name);
    if dir.join(STATE_FILE).exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
        removed.push(format!("{}", dir.display()));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LabSpec {
        LabSpec {
            name: "rklab".into(),
            redis_hosts: 3,
            lbs: 2,
            node_timeout: Duration::from_secs(2),
            proxy_flags: Vec::new(),
            auth: false,
        }
    }

    #[test]
    fn a_new_node_goes_on_a_host_without_the_shard_s_nodes_or_it_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab {
            plan: plan(&spec()).unwrap(),
            dir: dir.path().to_path_buf(),
            redkeep: PathBuf::from("redkeep"),
        };
        let ip = |name: &str| lab.plan.host(name).unwrap().ip.clone();
        assert_eq!(lab.place_new_node(&[ip("r1"), ip("r3")]).unwrap(), ip("r2"));
        // A node healing started on r2 (its dir there) makes r2 the fuller host.
        std::fs::create_dir_all(dir.path().join("r2").join("node-7007")).unwrap();
        assert_eq!(
            lab.extra_nodes().iter().map(|(h, p)| (h.name.as_str(), *p)).collect::<Vec<_>>(),
            [("r2", 7007)]
        );
        assert_eq!(lab.place_new_node(&[ip("r1")]).unwrap(), ip("r3"));
        let why = lab.place_new_node(&[ip("r1"), ip("r2"), ip("r3")]).unwrap_err().to_string();
        assert!(why.contains("every Redis host") && why.contains("--redis-hosts"), "{why}");

        // A retired node is not restartable until unretired.
        let addr = format!("{}:7001", ip("r1"));
        assert!(lab.can_restart(&addr));
        let host = lab.plan.host("r1").unwrap().clone();
        std::fs::create_dir_all(dir.path().join("r1")).unwrap();
        std::fs::write(lab.retired_marker(&host, 7001), "gone").unwrap();
        assert!(!lab.can_restart(&addr));
        assert!(lab.restart_node(&addr).unwrap_err().to_string().contains("gone for good"));
        lab.unretire_node(7001).unwrap();
        assert!(lab.can_restart(&addr));
        assert!(!lab.can_restart("198.18.0.99:7001"), "not a lab node");
    }

    #[test]
    fn the_plan_puts_no_master_beside_its_replica() {
        let plan = plan(&spec()).unwrap();
        assert_eq!(plan.node_addrs().len(), 6);
        assert_eq!(plan.masters.len(), 3);
        let master_hosts: std::collections::BTreeSet<&str> =
            plan.masters.iter().map(|m| plan.host_of(m).unwrap().name.as_str()).collect();
        assert_eq!(master_hosts.len(), 3, "one master per host: {master_hosts:?}");
        for (replica, master) in &plan.replicas {
            assert_ne!(plan.host_of(replica).unwrap().name, plan.host_of(master).unwrap().name);
        }
        for host in &plan.hosts {
            assert!(host.ip.starts_with("198.18."), "{}", host.ip);
        }
        assert_eq!(plan.vip_addr(), "198.18.0.100:7010");
        let lbs: Vec<Option<u8>> = plan.hosts_with(Role::Lb).map(|h| h.priority).collect();
        assert_eq!(lbs, vec![Some(150), Some(100)]);
    }

    #[test]
    fn the_proxies_announce_the_vip_to_cluster_aware_clients() {
        let plan = plan(&spec()).unwrap();
        let lb = plan.hosts_with(Role::Lb).next().unwrap().clone();
        let lab =
            Lab { plan, dir: PathBuf::from("/nonexistent"), redkeep: PathBuf::from("redkeep") };
        let args = lab.proxy_args(&lb);
        let at = args.iter().position(|a| a == "--announce").expect("--announce");
        assert_eq!(args[at + 1], "198.18.0.100:7010");
    }

    #[test]
    fn bad_specs_are_refused() {
        let with = |f: fn(&mut LabSpec)| {
            let mut s = spec();
            f(&mut s);
            plan(&s)
        };
        assert!(matches!(with(|s| s.name = "Bad Name".into()), Err(LabError::BadName(_))));
        assert!(matches!(with(|s| s.name = "a-very-long-name".into()), Err(LabError::BadName(_))));
        assert!(matches!(with(|s| s.redis_hosts = 2), Err(LabError::HostCount { .. })));
        assert!(matches!(with(|s| s.lbs = 0), Err(LabError::HostCount { .. })));
    }

    #[test]
    fn only_the_lab_s_own_namespaces_are_claimed() {
        assert!(LabPlan::owns_namespace("rklab-sw", "rklab"));
        assert!(LabPlan::owns_namespace("rklab-r12", "rklab"));
        assert!(LabPlan::owns_namespace("rklab-lb1", "rklab"));
        assert!(LabPlan::owns_namespace("rklab-c1", "rklab"));
        assert!(!LabPlan::owns_namespace("rklab-other", "rklab"));
        assert!(!LabPlan::owns_namespace("rklab2-r1", "rklab"));
        assert!(!LabPlan::owns_namespace("rk-ha-12", "rk"));
        assert!(!LabPlan::owns_namespace("rklab-r", "rklab"));
    }

    #[test]
    fn proxies_can_be_seeded_with_names_instead_of_addresses() {
        let plan = plan(&spec()).unwrap();
        let lab = Lab { plan, dir: PathBuf::from("/nowhere"), redkeep: PathBuf::from("redkeep") };
        let lb1 = lab.plan.host("lb1").unwrap();
        let args = with_seeds(&lab.proxy_args(lb1), &["r1.lab:7001".into(), "r2.lab:7002".into()]);
        assert_eq!(args[..5], ["proxy", "--seed", "r1.lab:7001", "--seed", "r2.lab:7002"]);
        assert_eq!(args.iter().filter(|a| *a == "--seed").count(), 2);
        assert!(args.windows(2).any(|w| w == ["--priority", "150"]), "{args:?}");
    }

    #[test]
    fn targets_name_nodes_proxies_and_hosts() {
        let plan = plan(&spec()).unwrap();
        assert_eq!(Target::parse("7001", &plan).unwrap(), Target::Node(7001));
        assert_eq!(Target::parse("198.18.0.12:7002", &plan).unwrap(), Target::Node(7002));
        assert_eq!(Target::parse("lb1", &plan).unwrap(), Target::Proxy("lb1".into()));
        assert_eq!(Target::parse("proxy:lb2", &plan).unwrap(), Target::Proxy("lb2".into()));
        assert_eq!(Target::parse("r2", &plan).unwrap(), Target::Host("r2".into()));
        assert_eq!(Target::parse("host:lb1", &plan).unwrap(), Target::Host("lb1".into()));
        assert!(Target::parse("7999", &plan).is_err());
        assert!(Target::parse("proxy:r1", &plan).is_err());
        assert!(Target::parse("db9", &plan).is_err());
    }
}
