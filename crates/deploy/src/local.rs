//! Local `redis-server` nodes under one directory: `redkeep up` / `redkeep down`.
//!
//! Layout of a dir (default `.redkeep`):
//! ```text
//! redkeep.json          the manifest: host, ports, masters, replicas (what `up` made)
//! node-7001/redis.conf  written by redkeep on every start
//! node-7001/nodes.conf  the node's cluster state, owned by redis-server
//! node-7001/redis.log, redis.pid, appendonlydir/ ...
//! ```
//! A dir with a manifest is brought back as it was; it is never re-created over its data.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::tls::TlsFiles;
use crate::{ports, process};

/// The manifest's file name inside a dir.
pub const MANIFEST_FILE: &str = "redkeep.json";

/// What the user asked `up` for.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    pub dir: PathBuf,
    pub host: String,
    pub base_port: u16,
    pub masters: usize,
    pub replicas: usize,
    pub node_timeout: Duration,
}

impl LocalSpec {
    pub fn validate(&self) -> Result<(), DeployError> {
        if self.masters < 3 {
            return Err(DeployError::TooFewMasters(self.masters));
        }
        let nodes = self.masters * (1 + self.replicas);
        let last = u32::from(self.base_port) + nodes as u32 - 1 + u32::from(ports::BUS_PORT_OFFSET);
        if self.base_port == 0 || last > u32::from(u16::MAX) {
            return Err(DeployError::PortRange { base_port: self.base_port, nodes });
        }
        Ok(())
    }
}

/// What a dir holds, written when it is first created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub host: String,
    pub masters: usize,
    pub replicas: usize,
    pub node_timeout_ms: u64,
    pub ports: Vec<u16>,
}

impl Manifest {
    fn from_spec(spec: &LocalSpec) -> Self {
        let nodes = (spec.masters * (1 + spec.replicas)) as u16;
        Manifest {
            host: spec.host.clone(),
            masters: spec.masters,
            replicas: spec.replicas,
            node_timeout_ms: spec.node_timeout.as_millis() as u64,
            ports: (spec.base_port..spec.base_port + nodes).collect(),
        }
    }

    /// `host:port` of every node, in port order.
    pub fn addrs(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("{}:{p}", self.host)).collect()
    }
}

/// A dir and its manifest.
#[derive(Debug, Clone)]
pub struct LocalDir {
    pub root: PathBuf,
    pub manifest: Manifest,
}

/// Whether `prepare` made a new dir or found an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Fresh,
    Existing,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "redis-server is not on PATH: install it with `apt-get install redis-server redis-tools` \
         (Debian/Ubuntu), or run `make up`, which installs it"
    )]
    RedisServerMissing,
    #[error("Redis Cluster needs at least 3 masters, got --masters {0}")]
    TooFewMasters(usize),
    #[error(
        "--base-port {base_port} does not fit {nodes} nodes: each node needs its port and \
         port+10000 (cluster bus) below 65536"
    )]
    PortRange { base_port: u16, nodes: usize },
    #[error(
        "port {port} on {host} is already in use (a node needs its port and port+10000 for the \
         cluster bus): stop what listens there or choose another --base-port"
    )]
    PortTaken { host: String, port: u16 },
    #[error(
        "{0} exists and is not a redkeep dir (it has no {MANIFEST_FILE}); choose another --dir, \
         redkeep will not write into it"
    )]
    NotRedkeepDir(PathBuf),
    #[error("{}: no redkeep cluster here (no {MANIFEST_FILE})", .0.display())]
    NoCluster(PathBuf),
    #[error(
        "{} is damaged: {reason}. Nothing was deleted; inspect it, or remove it with \
         `redkeep down --dir {} --purge` to start over", dir.display(), dir.display()
    )]
    Damaged { dir: PathBuf, reason: String },
    #[error("node {port} did not start: {reason}\n--- last lines of {} ---\n{log_tail}", log.display())]
    NodeFailed { port: u16, reason: String, log: PathBuf, log_tail: String },
    #[error(
        "node {port} did not start: its cluster state file {} is corrupted (redis-server \
         refuses it; its data is still in {}). To bring the node back: restore that file from \
         your backup; or, when another node of its shard is alive (`redkeep status` shows a \
         master for its slots), start it afresh as a replica: move nodes.conf and appendonlydir \
         out of {}, start it with `redis-server {}/redis.conf --daemonize yes`, join it with \
         `redis-cli --cluster add-node {host}:{port} {host}:{other_port} --cluster-slave` (it \
         copies its data from its master), and remove its old id from the others with \
         `redkeep call {host}:{other_port} CLUSTER FORGET <old id>` (`redkeep check` names it)",
        nodes_conf.display(), node_dir.display(), node_dir.display(), node_dir.display()
    )]
    CorruptNodesConf {
        host: String,
        port: u16,
        other_port: u16,
        nodes_conf: PathBuf,
        node_dir: PathBuf,
    },
    #[error(
        "the cluster in {} is already run by another `redkeep up` (pid {pid}): use it as it is, \
         or stop it first (Ctrl-C where it runs, or `redkeep down --dir {}`, which stops it)",
        dir.display(), dir.display()
    )]
    AlreadyUp { dir: PathBuf, pid: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeployError {
    let what = what.into();
    move |source| DeployError::Io { what, source }
}

/// The `redis-server` binary on PATH.
pub fn redis_server_path() -> Result<PathBuf, DeployError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(DeployError::RedisServerMissing)
}

/// Opens `spec.dir`: loads its manifest when it has one (the flags that shaped it then win),
/// creates it when it does not exist or is empty, refuses anything else.
pub fn prepare(spec: &LocalSpec) -> Result<(LocalDir, Origin), DeployError> {
    spec.validate()?;
    if spec.dir.join(MANIFEST_FILE).exists() {
        return Ok((open(&spec.dir)?, Origin::Existing));
    }
    let is_empty_dir = |dir: &Path| dir.read_dir().map(|mut d| d.next().is_none()).unwrap_or(false);
    if spec.dir.exists() && !is_empty_dir(&spec.dir) {
        return Err(DeployError::NotRedkeepDir(spec.dir.clone()));
    }
    create_private_dir(&spec.dir)?;
    let local = LocalDir { root: spec.dir.clone(), manifest: Manifest::from_spec(spec) };
    local.write_manifest()?;
    Ok((local, Origin::Fresh))
}

/// Opens an existing dir, checking that it is whole.
pub fn open(dir: &Path) -> Result<LocalDir, DeployError> {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DeployError::NoCluster(dir.to_path_buf()));
        }
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    let damaged = |reason: String| DeployError::Damaged { dir: dir.to_path_buf(), reason };
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| damaged(format!("{MANIFEST_FILE}: {e}")))?;
    if manifest.ports.is_empty() {
        return Err(damaged(format!("{MANIFEST_FILE} lists no nodes")));
    }
    let local = LocalDir { root: dir.to_path_buf(), manifest };
    for &port in &local.manifest.ports {
        let nodes_conf = local.node_dir(port).join("nodes.conf");
        if local.node_dir(port).exists() && !nodes_conf.exists() {
            return Err(damaged(format!("{} is missing", nodes_conf.display())));
        }
    }
    Ok(local)
}

/// The file a running `redkeep up` locks (and writes its pid into) in the dir's root.
pub const UP_LOCK_FILE: &str = "up.lock";
/// Sub-dirs (and file stems) of a detached proxy and a detached monitor of a dir.
const PROXY: &str = "proxy";
const MONITOR: &str = "monitor";

/// Held while a `redkeep up` runs; dropping it (or the process ending) releases the lock.
#[derive(Debug)]
pub struct UpLock {
    _file: std::fs::File,
}

/// True when a node's log says redis-server refused to load its `nodes.conf`.
pub fn refuses_its_nodes_conf(log_tail: &str) -> bool {
    log_tail.contains("corrupted cluster config file")
        || log_tail.contains("Unrecoverable error: corrupted cluster")
}

/// A node started by [`LocalDir::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartedNode {
    pub port: u16,
    pub pid: u32,
    /// False when the node was already running and was left alone.
    pub started_now: bool,
}

impl LocalDir {
    pub fn node_dir(&self, port: u16) -> PathBuf {
        self.root.join(format!("node-{port}"))
    }

    fn pid_file(&self, port: u16) -> PathBuf {
        self.node_dir(port).join("redis.pid")
    }

    fn log_file(&self, port: u16) -> PathBuf {
        self.node_dir(port).join("redis.log")
    }

    pub(crate) fn write_manifest(&self) -> Result<(), DeployError> {
        let path = self.root.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&self.manifest).expect("manifest serializes");
        write_private(&path, &(text + "\n"))
    }

    /// The pid of node `port` when it runs (verified to be ours: its cwd is the node dir).
    pub fn running_pid(&self, port: u16) -> Option<u32> {
        let pid = process::read_pid_file(&self.pid_file(port))?;
        process::runs_in(pid, &self.node_dir(port)).then_some(pid)
    }

    /// Starts every node that is not running, waits until each answers PING. Nothing started
    /// by this call is left running when it fails.
    pub fn start(&self) -> Result<Vec<StartedNode>, DeployError> {
        self.start_only(&self.manifest.ports)
    }

    /// Starts the node on `port` if it is not running (the monitor's healing restarts one
    /// node at a time), as [`LocalDir::start`] does for all.
    pub fn start_node(&self, port: u16) -> Result<(), DeployError> {
        self.start_only(&[port]).map(drop)
    }

    fn start_only(&self, ports: &[u16]) -> Result<Vec<StartedNode>, DeployError> {
        let redis_server = redis_server_path()?;
        let to_start: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|p| self.manifest.ports.contains(p))
            .filter(|&p| self.running_pid(p).is_none())
            .collect();
        if let Some(port) = ports::first_taken(&self.manifest.host, &to_start) {
            return Err(DeployError::PortTaken { host: self.manifest.host.clone(), port });
        }
        let mut children: Vec<(u16, Child)> = Vec::new();
        let result = self.spawn_and_wait(&redis_server, &to_start, &mut children);
        if result.is_err() {
            for (_, child) in &mut children {
                process::terminate(child.id(), Duration::from_secs(5));
                let _ = child.wait();
            }
        }
        result?;
        Ok(self
            .manifest
            .ports
            .iter()
            .map(|&port| match children.iter().find(|(p, _)| *p == port) {
                Some((_, child)) => StartedNode { port, pid: child.id(), started_now: true },
                None => StartedNode {
                    port,
                    pid: self.running_pid(port).unwrap_or(0),
                    started_now: false,
                },
            })
            .collect())
    }

    fn spawn_and_wait(
        &self,
        redis_server: &Path,
        ports: &[u16],
        children: &mut Vec<(u16, Child)>,
    ) -> Result<(), DeployError> {
        for &port in ports {
            children.push((port, self.spawn_node(redis_server, port)?));
        }
        for (port, child) in children.iter_mut() {
            self.wait_ready(*port, child)?;
        }
        Ok(())
    }

    fn spawn_node(&self, redis_server: &Path, port: u16) -> Result<Child, DeployError> {
        let dir = self.node_dir(port);
        create_private_dir(&dir)?;
        let dir = dir.canonicalize().map_err(io_err(format!("resolving {}", dir.display())))?;
        let conf = dir.join("redis.conf");
        let mut text = node_config(&self.manifest.host, port, &dir, self.manifest.node_timeout_ms);
        if let Some(password) = self.password()? {
            text.push_str(&auth_config(&password));
        }
        if let Some(tls) = self.tls() {
            // Later lines win in redis.conf: its `port 0` closes the plain port set above.
            text.push_str(&tls.node_config(port));
        }
        write_private(&conf, &text)?;
        let mut command = Command::new(redis_server);
        command.arg(&conf).current_dir(&dir).stdin(Stdio::null()).stdout(Stdio::null());
        command.stderr(Stdio::null());
        detach_from_terminal(&mut command);
        only_owner_reads_what_it_creates(&mut command);
        command.spawn().map_err(io_err(format!("starting {}", redis_server.display())))
    }

    /// Waits until the node answers `PING` with `PONG` (not `LOADING`), or fails with the
    /// tail of its log when it exits or takes longer than a minute.
    fn wait_ready(&self, port: u16, child: &mut Child) -> Result<(), DeployError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(self.node_failed(port, format!("redis-server exited ({status})")));
            }
            if self.ping_node(port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.node_failed(port, "no PONG within 60 s".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn node_failed(&self, port: u16, reason: String) -> DeployError {
        let log = self.log_file(port);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let log_tail = lines[lines.len().saturating_sub(10)..].join("\n");
        if refuses_its_nodes_conf(&log_tail) {
            let node_dir = self.node_dir(port);
            return DeployError::CorruptNodesConf {
                host: self.manifest.host.clone(),
                port,
                other_port: self
                    .manifest
                    .ports
                    .iter()
                    .copied()
                    .find(|&p| p != port)
                    .unwrap_or(port),
                nodes_conf: node_dir.join("nodes.conf"),
                node_dir,
            };
        }
        DeployError::NodeFailed { port, reason, log, log_tail }
    }

    /// The pid of the `redkeep up` that holds this dir's lock (see [`LocalDir::lock_up`]), if
    /// one runs now.
    pub fn up_holder(&self) -> Option<u32> {
        use std::os::fd::AsRawFd;
        let mut file = std::fs::File::open(self.root.join(UP_LOCK_FILE)).ok()?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
        if free {
            return None; // Released when `file` is dropped.
        }
        let mut pid = String::new();
        file.read_to_string(&mut pid).ok()?;
        pid.trim().parse().ok()
    }

    /// Takes the lock a running `redkeep up` holds on this dir (released when its process
    /// ends, however it ends), so that a second `up` says so instead of starting a second
    /// proxy for the same nodes. The returned guard holds it.
    pub fn lock_up(&self) -> Result<UpLock, DeployError> {
        use std::os::fd::AsRawFd;
        let path = self.root.join(UP_LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = if pid.trim().is_empty() { "unknown".into() } else { pid.trim().to_string() };
            return Err(DeployError::AlreadyUp { dir: self.root.clone(), pid });
        }
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(UpLock { _file: file })
    }

    /// Stops every running node of this dir: `SHUTDOWN` (which saves), then SIGTERM and
    /// SIGKILL by verified pid for a node that does not go. Returns the ports it stopped.
    pub fn stop(&self) -> Vec<u16> {
        let running: Vec<(u16, u32)> = self
            .manifest
            .ports
            .iter()
            .filter_map(|&port| self.running_pid(port).map(|pid| (port, pid)))
            .collect();
        let password = self.password().ok().flatten();
        let tls = self.tls_client();
        for &(port, _) in &running {
            send_shutdown(&self.manifest.host, port, password.as_deref(), tls.clone());
        }
        for &(_, pid) in &running {
            if !process::wait_gone(pid, Duration::from_secs(15)) {
                process::terminate(pid, Duration::from_secs(5));
            }
        }
        running.into_iter().map(|(port, _)| port).collect()
    }

    /// Where a detached proxy of this cluster runs (its cwd, pid file and log).
    pub fn proxy_dir(&self) -> PathBuf {
        self.root.join(PROXY)
    }

    /// The pid of this dir's detached proxy, verified to run in [`LocalDir::proxy_dir`].
    pub fn proxy_pid(&self) -> Option<u32> {
        self.daemon_pid(PROXY)
    }

    /// Starts `program args...` (the redkeep binary running `proxy`) detached, in
    /// [`LocalDir::proxy_dir`], logging to `proxy.log` there, and records its pid. Returns the
    /// pid; the caller waits until it serves. `env` is added to its environment (secrets go
    /// there: a command line is visible to every local user, an environment to its owner).
    pub fn start_proxy(
        &self,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<u32, DeployError> {
        self.start_daemon(PROXY, program, args, env)
    }

    /// Stops this dir's detached proxy (SIGTERM, which drains it, then SIGKILL); true when
    /// one was running.
    pub fn stop_proxy(&self) -> bool {
        self.stop_daemon(PROXY)
    }

    /// Where a detached monitor of this cluster runs (its cwd, `monitor.pid`, `monitor.log`).
    pub fn monitor_dir(&self) -> PathBuf {
        self.root.join(MONITOR)
    }

    /// The pid of this dir's detached monitor, verified to run in [`LocalDir::monitor_dir`].
    pub fn monitor_pid(&self) -> Option<u32> {
        self.daemon_pid(MONITOR)
    }

    /// Starts `program args...` (the redkeep binary running `monitor`) detached, as
    /// [`LocalDir::start_proxy`] does the proxy, in [`LocalDir::monitor_dir`].
    pub fn start_monitor(&self, program: &Path, args: &[String]) -> Result<u32, DeployError> {
        self.start_daemon(MONITOR, program, args, &[])
    }

    /// Stops this dir's detached monitor; true when one was running.
    pub fn stop_monitor(&self) -> bool {
        self.stop_daemon(MONITOR)
    }

    /// The pid in `NAME/NAME.pid`, when that process runs with `NAME/` as its cwd (a pid file
    /// left behind may name another process by now).
    fn daemon_pid(&self, name: &str) -> Option<u32> {
        let dir = self.root.join(name);
        let pid = process::read_pid_file(&dir.join(format!("{name}.pid")))?;
        process::runs_in(pid, &dir).then_some(pid)
    }

    /// Starts a detached process in `NAME/`, logging to `NAME/NAME.log`, its pid in
    /// `NAME/NAME.pid`.
    fn start_daemon(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<u32, DeployError> {
        let dir = self.root.join(name);
        create_private_dir(&dir)?;
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(PRIVATE_FILE_MODE)
            .open(&log_path)
            .map_err(io_err(format!("opening {}", log_path.display())))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(io_err("duplicating the log handle"))?)
            .stderr(log);
        detach_from_terminal(&mut command);
        let child = command.spawn().map_err(io_err(format!("starting {}", program.display())))?;
        let pid = child.id();
        let pid_path = dir.join(format!("{name}.pid"));
        write_private(&pid_path, &format!("{pid}\n"))?;
        Ok(pid)
    }

    /// SIGTERM (the proxy drains, the monitor stops its loop), then SIGKILL; true when one
    /// was running.
    fn stop_daemon(&self, name: &str) -> bool {
        let running = self.daemon_pid(name);
        if let Some(pid) = running {
            process::terminate(pid, Duration::from_secs(10));
        }
        // Also when it had already gone: a pid file left behind would name a process that
        // may one day be another one.
        let _ = std::fs::remove_file(self.root.join(name).join(format!("{name}.pid")));
        running.is_some()
    }

    /// Deletes what this dir holds (nodes must be stopped first): node dirs, the manifest, and
    /// the dir itself when nothing else is left in it.
    pub fn purge(&self) -> Result<(), DeployError> {
        for &port in &self.manifest.ports {
            let dir = self.node_dir(port);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(io_err(format!("removing {}", dir.display())))?;
            }
        }
        for daemon in [self.proxy_dir(), self.monitor_dir()] {
            if daemon.exists() {
                std::fs::remove_dir_all(&daemon)
                    .map_err(io_err(format!("removing {}", daemon.display())))?;
            }
        }
        let _ = std::fs::remove_file(self.root.join(UP_LOCK_FILE));
        let _ = std::fs::remove_file(self.password_file());
        if let Some(tls) = self.tls() {
            std::fs::remove_dir_all(&tls.dir)
                .map_err(io_err(format!("removing {}", tls.dir.display())))?;
        }
        let manifest = self.root.join(MANIFEST_FILE);
        std::fs::remove_file(&manifest)
            .map_err(io_err(format!("removing {}", manifest.display())))?;
        let _ = std::fs::remove_dir(&self.root); // only succeeds when empty
        Ok(())
    }
}

// Scaling a dir's cluster (`redkeep up --masters N` on an existing dir): the manifest grows
// by new ports, or loses the ports of retired nodes.
impl LocalDir {
    /// Adds `count` ports after the highest one to the manifest (saved) and returns them; the
    /// nodes start with the next [`LocalDir::start`].
    pub fn add_ports(&mut self, count: usize) -> Result<Vec<u16>, DeployError> {
        let last = self.manifest.ports.iter().copied().max().unwrap_or(0);
        let end = u32::from(last) + count as u32 + u32::from(ports::BUS_PORT_OFFSET);
        if end > u32::from(u16::MAX) {
            return Err(DeployError::PortRange { base_port: last + 1, nodes: count });
        }
        let new: Vec<u16> = (last + 1..=last + count as u16).collect();
        if let Some(port) = ports::first_taken(&self.manifest.host, &new) {
            return Err(DeployError::PortTaken { host: self.manifest.host.clone(), port });
        }
        self.manifest.ports.extend(&new);
        self.write_manifest()?;
        Ok(new)
    }

    /// Adds one node on the port after the highest (saved in the manifest) and starts it: a
    /// blank cluster node, which the monitor's healing makes a replica. Its port is taken out
    /// again when it does not start. Returns the port.
    pub fn add_node(&mut self) -> Result<u16, DeployError> {
        let port = self.add_ports(1)?[0];
        if let Err(e) = self.start_node(port) {
            let _ = self.retire_ports(&[port]);
            return Err(e);
        }
        Ok(port)
    }

    /// Stops the nodes on `retired` (they must have left the cluster), deletes their dirs,
    /// and drops them from the manifest (saved).
    pub fn retire_ports(&mut self, retired: &[u16]) -> Result<(), DeployError> {
        let mut only_these = self.clone();
        only_these.manifest.ports.retain(|p| retired.contains(p));
        only_these.stop();
        for &port in retired {
            let dir = self.node_dir(port);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(io_err(format!("removing {}", dir.display())))?;
            }
        }
        self.manifest.ports.retain(|p| !retired.contains(p));
        self.write_manifest()
    }

    /// Records the number of masters (saved).
    pub fn set_masters(&mut self, masters: usize) -> Result<(), DeployError> {
        self.manifest.masters = masters;
        self.write_manifest()
    }
}

// Node authentication (`redkeep up --auth`): the password lives in one 0600 file in the
// dir's root; every node's config gets it as `requirepass` and `masterauth`, and whatever
// redkeep opens to a node of the dir sends it.

/// The file holding the nodes' password of an `up --auth` cluster, in the dir's root.
pub const PASSWORD_FILE: &str = "password";

impl LocalDir {
    /// Where the nodes' password is kept.
    pub fn password_file(&self) -> PathBuf {
        self.root.join(PASSWORD_FILE)
    }

    /// The nodes' password, `None` when the cluster has none (it was made without `--auth`).
    pub fn password(&self) -> Result<Option<String>, DeployError> {
        let path = self.password_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim_end_matches('\n').to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
        }
    }

    /// Keeps `password` as the nodes' password (0600): the next start of each node requires it.
    pub fn store_password(&self, password: &str) -> Result<(), DeployError> {
        write_private(&self.password_file(), &format!("{password}\n"))
    }

    /// One `PING` to node `port`, after `AUTH` when the dir has a password, over TLS when it
    /// has certificates; true on `+PONG`.
    pub fn ping_node(&self, port: u16) -> bool {
        let password = self.password().ok().flatten();
        let reply = simple_command(
            &self.manifest.host,
            port,
            password.as_deref(),
            self.tls_client(),
            &command(&["PING"]),
        );
        matches!(reply, Some(reply) if reply.starts_with(b"+PONG"))
    }
}

// TLS (`redkeep up --tls`): the certificates live in DIR/tls (see [`crate::tls`]); every
// node's config gets its TLS lines, and whatever redkeep opens to a node of the dir speaks TLS.
impl LocalDir {
    /// The dir's certificates, `None` when it was made without `--tls`.
    pub fn tls(&self) -> Option<TlsFiles> {
        crate::tls::tls_files(&self.root)
    }

    /// Makes the certificates of a new `--tls` dir, for the nodes' host and loopback.
    pub fn create_tls(&self) -> Result<TlsFiles, DeployError> {
        let host: std::net::IpAddr = self.manifest.host.parse().map_err(|_| DeployError::Io {
            what: format!("making TLS certificates for --host {}", self.manifest.host),
            source: std::io::Error::other("--tls needs --host to be an IP address"),
        })?;
        let mut ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        if !ips.contains(&host) {
            ips.push(host);
        }
        // Absolute: the nodes and a detached proxy run in dirs of their own.
        let dir = std::path::absolute(self.root.join(crate::tls::TLS_DIR))
            .map_err(io_err(format!("resolving {}", self.root.display())))?;
        let files = TlsFiles { dir };
        files.create(&ips)?;
        Ok(files)
    }

    /// The client side of the supervisor's blocking connections, when the dir has TLS. A dir
    /// whose files cannot be read gets none: its nodes then do not answer, which says so.
    fn tls_client(&self) -> Option<std::sync::Arc<rustls::ClientConfig>> {
        self.tls()?.client_config().ok()
    }
}

/// A new random password for the nodes: 32 hex digits (128 bits) from the kernel's random
/// source (the one `getrandom` reads; no crate needed for it).
pub fn generate_password() -> Result<String, DeployError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("reading /dev/urandom for a new password"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The config lines that make a node require `password` of every client (the `default`
/// user's password) and give it to its master when it replicates.
pub fn auth_config(password: &str) -> String {
    let quoted = conf_quote(password);
    format!(
        "# Authentication (redkeep up --auth): clients AUTH, replicas too (masterauth).\n\
         requirepass {quoted}\nmasterauth {quoted}\n"
    )
}

/// `text` as one quoted redis.conf argument (escapes as redis-server's parser reads them), so
/// that a password with spaces, quotes or `#` stays one value.
fn conf_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `redis.conf` of one cluster node living in `dir` (absolute), rewritten at every start.
pub fn node_config(host: &str, port: u16, dir: &Path, node_timeout_ms: u64) -> String {
    let dir = dir.display();
    format!(
        "# Written by redkeep on every start of this node; edits here are overwritten.\n\
         bind {host}\nport {port}\ndaemonize no\n\
         dir {dir}\npidfile {dir}/redis.pid\nlogfile {dir}/redis.log\n\
         cluster-enabled yes\ncluster-config-file nodes.conf\n\
         cluster-node-timeout {node_timeout_ms}\nappendonly yes\n\
         # Hardening (Redis 7 defaults, written so that an edited default cannot loosen them):\n\
         # no DEBUG, no MODULE LOAD, no CONFIG SET of dir/dbfilename and other protected\n\
         # configs; protected-mode refuses non-loopback clients should the bind be dropped.\n\
         enable-debug-command no\nenable-module-command no\nenable-protected-configs no\n\
         protected-mode yes\n"
    )
}

/// Mode of what redkeep writes in a dir: node configs (later with passwords), pid files,
/// logs, the manifest. Only the owner reads them.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of a redkeep dir and of each node's and the proxy's dir.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` (missing parents too, 0700) and sets `dir` itself to 0700, also when it
/// existed already (a dir made by an older redkeep is tightened on its next start).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), DeployError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
        .map_err(io_err(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
        .map_err(io_err(format!("setting the mode of {}", dir.display())))
}

/// Writes `contents` to `path` (replacing it), 0600 also when the file existed with a wider
/// mode: the mode is set before anything is written.
pub fn write_private(path: &Path, contents: &str) -> Result<(), DeployError> {
    use std::os::unix::fs::PermissionsExt;
    let what = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
        .map_err(io_err(what()))?;
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        .map_err(io_err(what()))?;
    file.write_all(contents.as_bytes()).map_err(io_err(what()))
}

/// Gives the child a umask of 077, so what redis-server creates itself (its pid file, log,
/// nodes.conf, RDB and AOF files) is readable by its owner only.
fn only_owner_reads_what_it_creates(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
}

/// Puts the child in its own session so that Ctrl-C in the user's terminal reaches redkeep
/// (which stops the nodes in order) and not every redis-server at once, and so that a
/// `--detach`ed cluster outlives the terminal.
pub fn detach_from_terminal(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// One `PING` over a fresh connection; true on `+PONG`.
pub fn ping(host: &str, port: u16) -> bool {
    ping_with(host, port, None)
}

/// [`ping`] after `AUTH password`, when given.
pub fn ping_with(host: &str, port: u16, password: Option<&str>) -> bool {
    let reply = simple_command(host, port, password, None, &command(&["PING"]));
    matches!(reply, Some(reply) if reply.starts_with(b"+PONG"))
}

fn send_shutdown(
    host: &str,
    port: u16,
    password: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) {
    let _ = simple_command(host, port, password, tls, &command(&["SHUTDOWN"]));
}

/// `args` as one RESP request.
fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend(format!("${}\r\n", arg.len()).into_bytes());
        out.extend(arg.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

/// Sends `request` (after `AUTH password`, when given; over TLS with `tls`) and returns what
/// came back in the first read (enough for PING/SHUTDOWN); `None` when AUTH is refused.
fn simple_command(
    host: &str,
    port: u16,
    password: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    request: &[u8],
) -> Option<Vec<u8>> {
    let addr = (host, port);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr).ok()?.next()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut stream = crate::tls::connect(stream, addr.ip(), tls)?;
    let mut buf = [0u8; 64];
    if let Some(password) = password {
        stream.write_all(&command(&["AUTH", password])).ok()?;
        let n = stream.read(&mut buf).ok()?;
        if !buf[..n].starts_with(b"+OK") {
            return None;
        }
    }
    stream.write_all(request).ok()?;
    let n = stream.read(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_config_binds_the_host_only_and_spells_out_the_hardening() {
        let text = node_config("198.18.0.2", 7001, Path::new("/srv/node-7001"), 2000);
        let lines: Vec<&str> = text.lines().collect();
        for wanted in [
            "bind 198.18.0.2",
            "enable-debug-command no",
            "enable-module-command no",
            "enable-protected-configs no",
            "protected-mode yes",
        ] {
            assert!(lines.contains(&wanted), "missing {wanted:?} in\n{text}");
        }
        assert_eq!(lines.iter().filter(|l| l.starts_with("bind ")).count(), 1, "{text}");
    }

    #[test]
    fn a_password_stays_one_quoted_config_value() {
        let text = auth_config(r#"a b"c\d#e"#);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&r#"requirepass "a b\"c\\d#e""#), "{text}");
        assert!(lines.contains(&r#"masterauth "a b\"c\\d#e""#), "{text}");
        assert_eq!(conf_quote("x\ny"), r#""x\x0ay""#);
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let (a, b) = (generate_password().unwrap(), generate_password().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
