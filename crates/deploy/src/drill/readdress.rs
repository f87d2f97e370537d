//! The readdress drills: Redis hosts stop, come back at new addresses with their data and a
//! nodes.conf that still names the old ones, as pods and Swarm tasks do, and `redkeep
//! controller` (running in the lab's switch namespace) brings the cluster back to `ok` with
//! the same node IDs. The controller and the proxies find the nodes by name, as on Kubernetes
//! and Swarm: a hosts file per namespace (`/etc/netns/NS/hosts`, which `ip netns exec` mounts
//! over `/etc/hosts`) stands in for DNS and is rewritten when a host moves. A load writes
//! through the VIP before, during and after; every acknowledged key must read back.
//!
//! `readdress` moves every Redis host at once: no node can reach another until the controller
//! re-MEETs them. `readdress-one` moves one host (the first master's): its nodes reach the
//! others, whose addresses did not change, and the controller fixes what is left.
//!
//! The lab's proxies are seeded with IP addresses: the drill restarts them seeded with the
//! names before the fault, and with the addresses again after.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};

use super::{DrillOptions, DrillReport, finish_load, start_load, victim};
use crate::lab::{Lab, LabError, Role};
use crate::{netns, process};

/// Hosts, by name, in the lab's "DNS": `r1.lab`.
fn dns_name(host: &str) -> String {
    format!("{host}.lab")
}

/// The next address of a Redis host: `198.18.0.4N` from `.1N`, and back.
pub fn next_ip(current: &str) -> Option<String> {
    let (net, last) = current.rsplit_once('.')?;
    let last: u8 = last.parse().ok()?;
    let next = match last {
        11..=19 => last + 30,
        41..=49 => last - 30,
        _ => return None,
    };
    Some(format!("{net}.{next}"))
}

/// The lab's hosts file for the controller: every Redis host's name and current address.
fn hosts_file(lab: &Lab) -> String {
    let mut text = String::from("127.0.0.1 localhost\n");
    for host in lab.plan.hosts_with(Role::Redis) {
        text.push_str(&format!("{} {}\n", host.ip, dns_name(&host.name)));
    }
    text
}

/// The names of every node, `r1.lab:7001`, ...
fn node_names(lab: &Lab) -> Vec<String> {
    lab.plan
        .hosts_with(Role::Redis)
        .flat_map(|h| h.ports.iter().map(move |p| format!("{}:{p}", dns_name(&h.name))))
        .collect()
}

/// The lab's DNS: a hosts file in the switch's and each LB's namespace, removed on drop.
struct Dns {
    dirs: Vec<PathBuf>,
}

impl Dns {
    fn start(lab: &Lab) -> Result<Dns, LabError> {
        let hosts = std::iter::once("sw".to_string())
            .chain(lab.plan.hosts_with(Role::Lb).map(|h| h.name.clone()));
        let dns = Dns { dirs: hosts.map(|h| lab.netns_etc(&h)).collect() };
        for dir in &dns.dirs {
            std::fs::create_dir_all(dir)
                .map_err(|e| LabError::Io(format!("creating {}", dir.display()), e))?;
        }
        dns.update(lab)?;
        Ok(dns)
    }

    /// Rewrites each hosts file in place: `ip netns exec` bind-mounted these very files over
    /// /etc/hosts of the programs it started, so a new file (a new inode) would not be seen.
    fn update(&self, lab: &Lab) -> Result<(), LabError> {
        for dir in &self.dirs {
            let path = dir.join("hosts");
            std::fs::write(&path, hosts_file(lab))
                .map_err(|e| LabError::Io(format!("writing {}", path.display()), e))?;
        }
        Ok(())
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `redkeep controller` in the switch namespace, stopped (by pid) on drop, also when the
/// drill fails.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    fn start(lab: &Lab) -> Result<Controller, LabError> {
        Ok(Controller { child: spawn_controller(lab)?, log: lab.dir.join("controller.log") })
    }

    /// The actions the controller printed as applied (`done: ...`).
    fn actions(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.starts_with("done: ")).map(str::to_string).collect()
    }
}

fn spawn_controller(lab: &Lab) -> Result<Child, LabError> {
    let nodes = node_names(lab);
    let log_path = lab.dir.join("controller.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| LabError::Io(format!("creating {}", log_path.display()), e))?;
    let copy = log.try_clone().map_err(|e| LabError::Io("duplicating a log handle".into(), e))?;
    let mut command: Command = netns::command(&lab.plan.switch_ns(), &lab.redkeep);
    command
        .args(["controller", "--nodes", &nodes.join(","), "--interval", "500ms"])
        .current_dir(&lab.dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(copy);
    command.spawn().map_err(|e| LabError::Io("starting redkeep controller".into(), e))
}

impl Drop for Controller {
    fn drop(&mut self) {
        process::terminate(self.child.id(), Duration::from_secs(5));
        let _ = self.child.wait();
    }
}

/// Every node's ID, by port (ports stay, addresses change).
fn node_ids(lab: &Lab) -> Result<BTreeMap<u16, String>, LabError> {
    let addrs = lab.plan.node_addrs();
    lab.control(|| async {
        let mut ids = BTreeMap::new();
        for addr in &addrs {
            let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
            let id = conn.query_text(&["CLUSTER", "MYID"]).await?;
            let port = addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
            ids.insert(port, id.trim().to_string());
        }
        Ok::<_, cluster::admin::AdminError>(ids)
    })?
    .map_err(|e| LabError::Failed(e.to_string()))
}

/// Stops the nodes of `hosts` (SIGTERM: each writes its append-only file out and exits), gives
/// each host its next address, and starts the nodes again there.
fn move_hosts(lab: &mut Lab, hosts: &[String]) -> Result<Vec<String>, LabError> {
    let mut done = Vec::new();
    for name in hosts {
        let ports = lab.plan.host(name).map(|h| h.ports.clone()).unwrap_or_default();
        for port in ports {
            if let Some(pid) = lab.node_pid(port) {
                process::terminate(pid, Duration::from_secs(15));
            }
        }
    }
    for name in hosts {
        let current = lab.plan.host(name).map(|h| h.ip.clone()).unwrap_or_default();
        let ip = next_ip(&current).ok_or_else(|| {
            LabError::Failed(format!("{name} has no next address after {current}"))
        })?;
        done.push(lab.readdress(name, &ip)?);
    }
    Ok(done)
}

/// Runs `readdress` (every Redis host) or `readdress-one` (the first master's host).
pub fn readdress(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
    every_host: bool,
) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let hosts: Vec<String> = match every_host {
        true => lab.plan.hosts_with(Role::Redis).map(|h| h.name.clone()).collect(),
        false => vec![victim.host.clone()],
    };
    let before = node_ids(lab)?;
    // The hosts files must exist before `ip netns exec` starts what reads them.
    let dns = Dns::start(lab)?;
    let controller = Controller::start(lab)?;
    lab.restart_proxies(Some(&node_names(lab)))?;
    super::restore(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    let moved = move_hosts(lab, &hosts)?;
    // From here the nodes are down: a write is acknowledged again once they serve anew.
    let stopped = fault.elapsed();
    let served = super::probe_served(lab, victim.key.clone())?;
    dns.update(lab)?;
    let restarted = Instant::now();
    lab.heal()?;
    let addrs = lab.plan.node_addrs();
    let healthy = lab.control(|| cluster::ops::wait_healthy(&addrs, Duration::from_secs(120)))?;
    let ok_at = healthy.is_ok().then(|| restarted.elapsed());
    let down_for = healthy.is_ok().then(|| fault.elapsed());
    let served = super::joined(served)?.map(|d| d + stopped);
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    let after = node_ids(lab)?;
    let actions = controller.actions();
    drop(controller);
    lab.restart_proxies(None)?;
    drop(dns);

    report.figure("hosts_moved", hosts.len() as f64);
    report.seconds("cluster_ok_after_restart_s", ok_at);
    report.seconds("cluster_ok_after_stop_s", down_for);
    report.seconds("slots_served_again_s", served);
    report.figure("controller_actions", actions.len() as f64);
    report.check(
        "the cluster is ok again at the new addresses",
        healthy.is_ok(),
        match &healthy {
            Ok(()) => moved.join("; "),
            Err(e) => format!("{}: {e}", moved.join("; ")),
        },
    );
    let changed: Vec<String> = before
        .iter()
        .filter(|(port, id)| after.get(port) != Some(id))
        .map(|(port, id)| format!("{port}: {id} became {:?}", after.get(port)))
        .collect();
    report.check(
        "every node kept its node ID (no new cluster)",
        changed.is_empty() && before.len() == after.len(),
        match changed.is_empty() {
            true => format!("{} nodes, same IDs", before.len()),
            false => changed.join("; "),
        },
    );
    report.check(
        "the proxies found the nodes again by name, without a restart",
        served.is_some(),
        match served {
            Some(_) => format!("a write of {} through the VIP was acknowledged again", victim.key),
            None => format!("no write of {} through the VIP was acknowledged", victim.key),
        },
    );
    if every_host {
        report.check(
            "the controller re-met the nodes",
            actions.iter().any(|a| a.contains("CLUSTER MEET")),
            format!(
                "{} action(s): {}",
                actions.len(),
                actions.first().cloned().unwrap_or_default()
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_move_between_two_ranges_clear_of_the_lab_s_other_addresses() {
        assert_eq!(next_ip("198.18.0.11").as_deref(), Some("198.18.0.41"));
        assert_eq!(next_ip("198.18.0.43").as_deref(), Some("198.18.0.13"));
        assert_eq!(next_ip("198.18.0.21"), None, "LB hosts keep their address");
        assert_eq!(next_ip("198.18.0.100"), None);
    }
}
