//! Failure drills on a [`Lab`]: a load runs from the client host through the VIP while a
//! fault is injected; the drill measures what clients saw and checks what must hold (no wrong
//! value read, the cluster back to `ok` with every slot served). Each drill first brings the
//! lab back to its planned layout, and leaves it so.

pub mod book;
pub mod heal;
pub mod load;
pub mod readdress;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::admin::{AdminConn, info_field, parse_info};
use serde::Serialize;

use crate::lab::{Lab, LabError, Role, Target};
use crate::netns;
use load::{Load, LoadSettings, Verification};

/// The drills, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drill {
    /// `kill -9` of a master.
    MasterKill,
    /// `kill -9` of the proxy on the LB holding the VIP.
    ProxyKill,
    /// A master's host cut off the network, then reconnected.
    Partition,
    /// A whole Redis host gone (every process killed, link down).
    HostLoss,
    /// Every Redis host back at a new address ([`readdress`]).
    Readdress,
    /// One Redis host back at a new address ([`readdress`]).
    ReaddressOne,
    /// A replica killed and its data dir wiped: the monitor brings it back ([`heal`]).
    HealNodeLoss,
    /// A replica's node gone for good (killed, its dir removed, not restartable): the monitor
    /// starts a new node as its master's replica ([`heal`]).
    HealReplicaLoss,
    /// A master killed, its replica promoted: the monitor restores the layout ([`heal`]).
    HealLayout,
    /// The acting monitor's LB cut off: it refuses to heal ([`heal`]).
    HealPartition,
}

impl Drill {
    pub const ALL: [Drill; 4] =
        [Drill::MasterKill, Drill::ProxyKill, Drill::Partition, Drill::HostLoss];
    /// The engines' drills, run by name (not part of `all`).
    pub const READDRESS: [Drill; 2] = [Drill::Readdress, Drill::ReaddressOne];
    /// The monitor's healing drills (`heal` runs them all; not part of `all`).
    pub const HEAL: [Drill; 4] =
        [Drill::HealNodeLoss, Drill::HealReplicaLoss, Drill::HealLayout, Drill::HealPartition];

    pub fn name(self) -> &'static str {
        match self {
            Drill::MasterKill => "master-kill",
            Drill::ProxyKill => "proxy-kill",
            Drill::Partition => "partition",
            Drill::HostLoss => "host-loss",
            Drill::Readdress => "readdress",
            Drill::ReaddressOne => "readdress-one",
            Drill::HealNodeLoss => "heal-node-loss",
            Drill::HealReplicaLoss => "heal-replica-loss",
            Drill::HealLayout => "heal-layout",
            Drill::HealPartition => "heal-partition",
        }
    }

    pub fn parse(text: &str) -> Option<Drill> {
        Drill::ALL.into_iter().chain(Drill::READDRESS).chain(Drill::HEAL).find(|d| d.name() == text)
    }
}

/// A drill's options.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Run the proxies with `--write-ack replica`.
    pub write_ack: bool,
    pub load: LoadSettings,
    /// Load before the fault.
    pub warmup: Duration,
    /// Load after the cluster recovered, before it stops.
    pub settle: Duration,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            write_ack: false,
            load: LoadSettings::default(),
            warmup: Duration::from_secs(2),
            settle: Duration::from_secs(3),
        }
    }
}

/// One thing a drill checks.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What a drill measured and checked.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub drill: &'static str,
    pub write_ack: bool,
    pub node_timeout_ms: u64,
    /// Times in seconds (`*_s`) and counts, by name.
    pub figures: BTreeMap<&'static str, f64>,
    pub checks: Vec<Check>,
    /// A few of the errors clients saw.
    pub error_samples: Vec<String>,
    pub passed: bool,
}

impl DrillReport {
    fn new(drill: Drill, lab: &Lab, options: &DrillOptions) -> DrillReport {
        DrillReport {
            drill: drill.name(),
            write_ack: options.write_ack,
            node_timeout_ms: lab.plan.node_timeout_ms,
            figures: BTreeMap::new(),
            checks: Vec::new(),
            error_samples: Vec::new(),
            passed: true,
        }
    }

    fn figure(&mut self, name: &'static str, value: f64) {
        self.figures.insert(name, value);
    }

    fn seconds(&mut self, name: &'static str, value: Option<Duration>) {
        if let Some(d) = value {
            self.figure(name, (d.as_secs_f64() * 1000.0).round() / 1000.0);
        }
    }

    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.passed &= passed;
        self.checks.push(Check { name: name.to_string(), passed, detail: detail.into() });
    }

    /// The load's figures and the checks every drill makes of them.
    fn load_figures(&mut self, books: &[book::Book], verified: &Verification) {
        let sum = |f: fn(&book::Book) -> u64| books.iter().map(f).sum::<u64>() as f64;
        self.figure("requests_ok", sum(|b| b.ok));
        self.figure("client_errors", sum(|b| b.errors));
        self.figure("acked_writes", sum(|b| b.acked_writes));
        self.figure("stale_reads", sum(|b| b.stale));
        self.figure("acked_writes_lost", verified.lost as f64);
        let longest = books.iter().map(|b| b.longest_gap).max();
        self.seconds("longest_client_wait_s", longest);
        for book in books {
            for sample in &book.error_samples {
                if self.error_samples.len() < 8 && !self.error_samples.contains(sample) {
                    self.error_samples.push(sample.clone());
                }
            }
        }
        let wrong = sum(|b| b.wrong) as u64 + verified.wrong;
        self.check("no wrong value read", wrong == 0, format!("{wrong} wrong values"));
        self.check(
            "every acknowledged key reads back",
            verified.unreadable == 0,
            format!("{} of {} keys unreadable", verified.unreadable, verified.checked),
        );
    }
}

/// Runs `drill` on `lab`.
pub fn run(lab: &mut Lab, drill: Drill, options: &DrillOptions) -> Result<DrillReport, LabError> {
    lab.set_proxy_flags(with_write_ack(&lab.plan.proxy_flags, options.write_ack))?;
    // Only the healing drills run with a healing monitor: the others measure the cluster's
    // own failover.
    if !Drill::HEAL.contains(&drill) {
        lab.set_monitor_heal(crate::lab::MONITOR_HEAL_DEFAULT)?;
    }
    restore(lab)?;
    let mut report = DrillReport::new(drill, lab, options);
    match drill {
        Drill::MasterKill => master_kill(lab, options, &mut report)?,
        Drill::ProxyKill => proxy_kill(lab, options, &mut report)?,
        Drill::Partition => partition(lab, options, &mut report)?,
        Drill::HostLoss => host_loss(lab, options, &mut report)?,
        Drill::Readdress => readdress::readdress(lab, options, &mut report, true)?,
        Drill::ReaddressOne => readdress::readdress(lab, options, &mut report, false)?,
        Drill::HealNodeLoss => heal::node_loss(lab, options, &mut report)?,
        Drill::HealReplicaLoss => heal::replica_loss(lab, options, &mut report)?,
        Drill::HealLayout => heal::layout(lab, options, &mut report)?,
        Drill::HealPartition => heal::partition(lab, options, &mut report)?,
    }
    let restored = restore(lab);
    report.check(
        "cluster back to ok, every slot served, VIP answering",
        restored.is_ok(),
        restored.err().map_or_else(|| "yes".to_string(), |e| e.to_string()),
    );
    if options.write_ack {
        let lost = report.figures.get("acked_writes_lost").copied().unwrap_or(0.0);
        report.check(
            "no acknowledged write lost (--write-ack replica)",
            lost == 0.0,
            format!("{lost} lost"),
        );
    }
    Ok(report)
}

/// The proxies' flags with `--write-ack replica` added or taken out, the others kept.
fn with_write_ack(flags: &[String], write_ack: bool) -> Vec<String> {
    let mut kept = Vec::new();
    let mut rest = flags.iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--write-ack" => {
                rest.next();
            }
            f if f.starts_with("--write-ack=") => {}
            _ => kept.push(flag.clone()),
        }
    }
    if write_ack {
        kept.extend(["--write-ack".to_string(), "replica".to_string()]);
    }
    kept
}

/// The master the drills aim at (lowest port), with its replica and a key it serves.
struct Victim {
    addr: String,
    port: u16,
    host: String,
    replica: String,
    key: String,
}

fn victim(lab: &Lab) -> Result<Victim, LabError> {
    // Right after a failover back, a node's view of its new replica can lag for a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match victim_once(lab) {
            Err(e) if Instant::now() < deadline => {
                tracing::debug!("choosing the drill's master: {e}; asking again");
                std::thread::sleep(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

fn victim_once(lab: &Lab) -> Result<Victim, LabError> {
    let topology = lab.topology()?;
    let mut masters: Vec<_> = topology.masters().filter(|m| m.slot_count() > 0).collect();
    masters.sort_by_key(|m| m.port);
    let master =
        masters.first().ok_or_else(|| LabError::Failed("no master serves slots".into()))?;
    let replica = topology
        .replicas_of(&master.id)
        .next()
        .ok_or_else(|| LabError::Failed(format!("master {} has no replica", master.addr())))?;
    let host = lab
        .plan
        .host_of(&master.addr())
        .ok_or_else(|| LabError::Failed(format!("{} is not a lab node", master.addr())))?;
    let key = (0..)
        .map(|n| format!("probe:{n}"))
        .find(|k| {
            let slot = cluster::key_slot(k.as_bytes());
            master.slots.iter().any(|r| r.contains(slot))
        })
        .expect("a master with slots has keys");
    Ok(Victim {
        addr: master.addr(),
        port: master.port,
        host: host.name.clone(),
        replica: replica.addr(),
        key,
    })
}

/// The load, started on the client host against the VIP.
fn start_load(lab: &Lab, options: &DrillOptions) -> Result<Load, LabError> {
    let client = lab.plan.ns(&lab.plan.client().name);
    Ok(Load::start(&client, lab.plan.vip_addr(), options.load.clone())?)
}

/// Stops the load, reads every acknowledged key back, and adds the figures to the report.
fn finish_load(lab: &Lab, load: Load, report: &mut DrillReport) -> Result<(), LabError> {
    let books = load.stop()?;
    let vip = lab.plan.vip_addr();
    let verified = lab.on_client(|| load::verify(&vip, &books, Duration::from_secs(30)))?;
    report.load_figures(&books, &verified);
    Ok(())
}

/// From now: how long until a write to `key` through the VIP is acknowledged (in the
/// background, on the client host).
fn probe_served(
    lab: &Lab,
    key: String,
) -> Result<std::thread::JoinHandle<Result<Option<Duration>, netns::NetnsError>>, LabError> {
    let client = lab.plan.ns(&lab.plan.client().name);
    let vip = lab.plan.vip_addr();
    Ok(netns::spawn_block_on_in(&client, move || async move {
        load::time_until_served(&vip, &key, Duration::from_secs(60)).await
    })?)
}

fn joined(
    handle: std::thread::JoinHandle<Result<Option<Duration>, netns::NetnsError>>,
) -> Result<Option<Duration>, LabError> {
    Ok(handle.join().expect("a probe thread does not panic")?)
}

fn master_kill(
    lab: &Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.kill(&Target::Node(victim.port))?;
    let served = probe_served(lab, victim.key.clone())?;
    let promoted = lab.control(|| wait_role(&victim.replica, true, fault))?;
    let served = joined(served)?;
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("replica_promoted_s", promoted);
    report.seconds("slots_served_again_s", served);
    report.check(
        "the replica was promoted",
        promoted.is_some(),
        format!("{} took over from {}", victim.replica, victim.addr),
    );
    Ok(())
}

fn proxy_kill(lab: &Lab, options: &DrillOptions, report: &mut DrillReport) -> Result<(), LabError> {
    let holder = lab.vip_holder().ok_or_else(|| LabError::Failed("no LB holds the VIP".into()))?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.kill(&Target::Proxy(holder.clone()))?;
    let served = probe_served(lab, "probe:vip".to_string())?;
    let mut moved = None;
    while fault.elapsed() < Duration::from_secs(30) {
        if let Some(now) = lab.vip_holder().filter(|h| *h != holder) {
            moved = Some((now, fault.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let served = joined(served)?;
    // keepalived is the proxy's child and must not outlive it (it would keep a VIP whose
    // proxy is gone until its health script noticed). The LB's monitor stays: it is not the
    // proxy's.
    let holder_ns = lab.plan.ns(&holder);
    let keepalived_left = || {
        let named = |pid: &u32| std::fs::read_to_string(format!("/proc/{pid}/comm"));
        netns::pids(&holder_ns)
            .iter()
            .filter(|pid| named(pid).is_ok_and(|c| c.trim() == "keepalived"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while keepalived_left() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = keepalived_left();
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.check(
        "keepalived left with the killed proxy",
        left == 0,
        format!("{left} keepalived process(es) left on {holder}"),
    );
    report.seconds("vip_moved_s", moved.as_ref().map(|(_, d)| *d));
    report.seconds("vip_answers_again_s", served);
    report.check(
        "the VIP moved to another LB",
        moved.is_some(),
        match &moved {
            Some((to, _)) => format!("from {holder} to {to}"),
            None => format!("still not on another LB than {holder} after 30 s"),
        },
    );
    Ok(())
}

fn partition(lab: &Lab, options: &DrillOptions, report: &mut DrillReport) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.partition(&victim.host)?;
    // Inside the cut-off host: how long the isolated master keeps taking writes.
    let isolated = {
        let (addr, key) = (victim.addr.clone(), victim.key.clone());
        netns::spawn_block_on_in(&lab.plan.ns(&victim.host), move || async move {
            refuses_writes_after(&addr, &key, fault).await
        })?
    };
    let served = probe_served(lab, victim.key.clone())?;
    let promoted = lab.control(|| wait_role(&victim.replica, true, fault))?;
    let served = joined(served)?;
    let isolated = joined(isolated)?;
    std::thread::sleep(options.settle);
    let healed = Instant::now();
    lab.heal()?;
    let rejoined = lab.control(|| wait_role(&victim.addr, false, healed))?;
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("isolated_master_refuses_writes_s", isolated);
    report.seconds("replica_promoted_s", promoted);
    report.seconds("slots_served_again_s", served);
    report.seconds("rejoined_as_replica_after_heal_s", rejoined);
    report.check(
        "the isolated master stopped accepting writes",
        isolated.is_some(),
        format!("{} answered CLUSTERDOWN on its side of the cut", victim.addr),
    );
    report.check(
        "the majority promoted the replica",
        promoted.is_some(),
        format!("{} took over", victim.replica),
    );
    report.check(
        "after heal the old master rejoined as a replica",
        rejoined.is_some(),
        format!("{} follows {}", victim.addr, victim.replica),
    );
    Ok(())
}

fn host_loss(lab: &Lab, options: &DrillOptions, report: &mut DrillReport) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let survivors: Vec<String> = lab
        .plan
        .node_addrs()
        .into_iter()
        .filter(|a| lab.plan.host_of(a).is_some_and(|h| h.name != victim.host))
        .collect();
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.kill(&Target::Host(victim.host.clone()))?;
    let served = probe_served(lab, victim.key.clone())?;
    let whole = lab.control(|| wait_all_slots_served(&survivors, fault))?;
    let served = joined(served)?;
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("cluster_ok_again_s", whole);
    report.seconds("slots_served_again_s", served);
    report.check(
        "without the host the cluster is ok and serves every slot",
        whole.is_some(),
        format!("{} lost, {} nodes left", victim.host, survivors.len()),
    );
    Ok(())
}

/// Polls `node` until it reports itself master (`master`) or a replica with a master, up to a
/// minute; the time since `since`.
async fn wait_role(node: &str, master: bool, since: Instant) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(60) {
        if let Ok(Ok(topology)) =
            tokio::time::timeout(Duration::from_secs(1), cluster::ops::topology_of(node)).await
            && let Some(me) = topology.myself()
            && me.is_master() == master
            && (master || me.master_id.is_some())
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Polls `replica` until it reports `master` as its master, up to a minute.
async fn wait_follows(replica: &str, master: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let (Ok(mine), Ok(theirs)) =
            (cluster::ops::topology_of(replica).await, cluster::ops::topology_of(master).await)
            && let (Some(me), Some(it)) = (mine.myself(), theirs.myself())
            && !me.is_master()
            && me.master_id.as_deref() == Some(it.id.as_str())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Polls the `survivors` until each says `cluster_state:ok` and every slot is served by a
/// master among them.
async fn wait_all_slots_served(survivors: &[String], since: Instant) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(60) {
        let mut all = true;
        for node in survivors {
            all &= served_by(node, survivors).await.unwrap_or(false);
        }
        if all {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Does `node` see `cluster_state:ok` with every slot on a live master among `nodes`?
async fn served_by(node: &str, nodes: &[String]) -> Option<bool> {
    let mut conn = AdminConn::connect(node, Duration::from_secs(1)).await.ok()?;
    let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await.ok()?);
    let topology =
        cluster::topology::parse_cluster_nodes(&conn.query_text(&["CLUSTER", "NODES"]).await.ok()?)
            .ok()?;
    let live_coverage: u64 = topology
        .masters()
        .filter(|m| !m.is_failing() && nodes.contains(&m.addr()))
        .map(|m| m.slot_count())
        .sum();
    Some(info_field(&info, "cluster_state") == Some("ok") && live_coverage == 16384)
}

/// Writes `key` to the master at `addr` directly until it answers CLUSTERDOWN; the time since
/// `since`.
async fn refuses_writes_after(addr: &str, key: &str, since: Instant) -> Option<Duration> {
    let mut conn = AdminConn::connect(addr, Duration::from_secs(2)).await.ok()?;
    while since.elapsed() < Duration::from_secs(60) {
        match conn.raw(&["SET", key, "isolated"]).await {
            Ok(resp::Value::Error(text)) if text.starts_with(b"CLUSTERDOWN") => {
                return Some(since.elapsed());
            }
            Ok(_) => {}
            Err(_) => conn = AdminConn::connect(addr, Duration::from_secs(2)).await.ok()?,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Brings the lab back to its plan: every host connected, every process running, the
/// planned masters masters again, the cluster healthy, every proxy serving every slot, and
/// the VIP on the LB with the highest priority, answering.
pub fn restore(lab: &Lab) -> Result<(), LabError> {
    lab.heal()?;
    // Nodes a healing started beside the plan (a drill that did not finish) leave.
    heal::remove_extra_nodes(lab)?;
    let addrs = lab.plan.node_addrs();
    let masters = lab.plan.masters.clone();
    let pairs = lab.plan.replicas.clone();
    lab.control(|| async {
        cluster::ops::wait_healthy(&addrs, Duration::from_secs(90)).await?;
        let mut promoted_any = false;
        for master in &masters {
            let topology = cluster::ops::topology_of(master).await?;
            if topology.myself().is_some_and(|me| !me.is_master()) {
                let mut conn = AdminConn::connect(master, Duration::from_secs(5))
                    .await
                    .map_err(cluster::ops::OpsError::from)?;
                conn.query_ok(&["CLUSTER", "FAILOVER"])
                    .await
                    .map_err(cluster::ops::OpsError::from)?;
                if wait_role(master, true, Instant::now()).await.is_none() {
                    return Err(LabError::Failed(format!("{master} did not become master again")));
                }
                promoted_any = true;
            }
        }
        if promoted_any {
            cluster::ops::wait_healthy(&addrs, Duration::from_secs(90)).await?;
        }
        for (replica, master) in &pairs {
            if !wait_follows(replica, master).await {
                return Err(LabError::Failed(format!("{replica} does not follow {master} again")));
            }
        }
        Ok(())
    })??;
    let proxies: Vec<String> = lab
        .plan
        .hosts_with(Role::Lb)
        .map(|h| format!("{}:{}", h.ip, crate::lab::PROXY_PORT))
        .collect();
    lab.control(|| async {
        let deadline = Instant::now() + Duration::from_secs(60);
        for proxy in &proxies {
            while let Err(reason) =
                crate::health::proxy_verdict(proxy, Duration::from_secs(1)).await
            {
                if Instant::now() > deadline {
                    return Err(LabError::Failed(format!("proxy not healthy: {reason}")));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    })??;
    let top = lab.plan.hosts_with(Role::Lb).max_by_key(|h| h.priority).map(|h| h.name.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while lab.vip_holder() != top {
        if Instant::now() > deadline {
            return Err(LabError::Failed(format!(
                "the VIP is on {:?}, not on {top:?} (the highest priority)",
                lab.vip_holder()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    lab.wait_vip(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_ack_is_added_or_taken_out_and_other_flags_kept() {
        let flags = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let given = flags(&["--read-from", "replica", "--write-ack", "master"]);
        assert_eq!(
            with_write_ack(&given, true),
            flags(&["--read-from", "replica", "--write-ack", "replica"])
        );
        assert_eq!(with_write_ack(&given, false), flags(&["--read-from", "replica"]));
        assert_eq!(with_write_ack(&flags(&["--write-ack=replica"]), false), flags(&[]));
        assert_eq!(Drill::parse("host-loss"), Some(Drill::HostLoss));
        assert_eq!(Drill::parse("meteor"), None);
    }
}
