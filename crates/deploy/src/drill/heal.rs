//! Healing drills: the monitor on the LB holding the VIP runs with `--heal auto` and repairs
//! what a fault broke, while the load runs through the VIP. Each measures fault -> alarm (the
//! first alarm the acting monitor fires) and alarm -> healed (the lab shows the repair), and
//! reads the monitors' logs to check who acted: the VIP holder's monitor only, and no monitor
//! that cannot see a majority of masters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cluster::admin::{AdminConn, info_field, parse_info};

use super::load::Load;
use super::{DrillOptions, DrillReport, finish_load, start_load, victim, wait_follows, wait_role};
use crate::lab::{Lab, LabError, Role, Target};

/// How long a drill waits for the monitor to alarm and to heal.
const WAIT: Duration = Duration::from_secs(60);

/// The lines a monitor's log gets from now on.
struct LogWatch {
    path: PathBuf,
    from: usize,
}

impl LogWatch {
    fn start(path: &Path) -> LogWatch {
        let from = std::fs::read_to_string(path).map_or(0, |t| t.len());
        LogWatch { path: path.to_path_buf(), from }
    }

    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.get(self.from..).unwrap_or_default().lines().map(str::to_string).collect()
    }

    /// Waits for a new line that `wanted` accepts; the line and the time since `since`.
    fn wait(&self, since: Instant, wanted: impl Fn(&str) -> bool) -> Option<(Duration, String)> {
        while since.elapsed() < WAIT {
            if let Some(line) = self.lines().into_iter().find(|l| wanted(l)) {
                return Some((since.elapsed(), line));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Healing actions applied (not refused, not dry-run) since the watch started.
    fn applied(&self) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.starts_with("heal: ")).collect()
    }
}

fn is_firing(line: &str) -> bool {
    line.starts_with("alarm ") && line.contains("-> Firing")
}

/// The monitors' logs: the one on the LB holding the VIP (which acts), and the others.
fn watches(lab: &Lab) -> Result<(String, LogWatch, Vec<LogWatch>), LabError> {
    let holder = lab.vip_holder().ok_or_else(|| LabError::Failed("no LB holds the VIP".into()))?;
    let mut others = Vec::new();
    let mut acting = None;
    for host in lab.plan.hosts_with(Role::Lb) {
        let watch = LogWatch::start(&lab.monitor_log(host));
        if host.name == holder {
            acting = Some(watch);
        } else {
            others.push(watch);
        }
    }
    Ok((holder, acting.expect("the holder is an LB host"), others))
}

fn check_others_idle(report: &mut DrillReport, others: &[LogWatch]) {
    let acted: Vec<String> = others.iter().flat_map(LogWatch::applied).collect();
    report.check(
        "only the monitor on the LB holding the VIP acted",
        acted.is_empty(),
        if acted.is_empty() {
            "the other monitors applied nothing".into()
        } else {
            acted.join("; ")
        },
    );
}

/// One healing drill's run: the monitors' logs watched, the monitors healing (`auto`), the
/// load running through the VIP, the fault injected.
struct HealRun {
    holder: String,
    acting: LogWatch,
    others: Vec<LogWatch>,
    load: Load,
    fault: Instant,
}

impl HealRun {
    /// Switches the monitors to `--heal auto`, starts the load, and after the warm-up injects
    /// `fault`.
    fn start(
        lab: &mut Lab,
        options: &DrillOptions,
        fault: impl FnOnce(&Lab) -> Result<String, LabError>,
    ) -> Result<HealRun, LabError> {
        lab.set_monitor_heal("auto")?;
        let (holder, acting, others) = watches(lab)?;
        let load = start_load(lab, options)?;
        std::thread::sleep(options.warmup);
        let at = Instant::now();
        fault(lab)?;
        Ok(HealRun { holder, acting, others, load, fault: at })
    }

    /// The acting monitor's first firing alarm (the time from the fault, the line), and when
    /// it was seen.
    fn wait_alarm(&self) -> (Option<(Duration, String)>, Instant) {
        let alarm = self.acting.wait(self.fault, is_firing);
        (alarm, Instant::now())
    }

    /// Lets the load settle, stops it and checks what it read, and reports the alarm
    /// (`alarm_check` names that check), the time to heal, and who acted. Returns the acting
    /// monitor's applied actions.
    fn finish(
        self,
        lab: &Lab,
        options: &DrillOptions,
        report: &mut DrillReport,
        alarm: Option<(Duration, String)>,
        alarm_to_healed: Option<Duration>,
        alarm_check: &str,
    ) -> Result<Vec<String>, LabError> {
        std::thread::sleep(options.settle);
        finish_load(lab, self.load, report)?;
        report.seconds("fault_to_alarm_s", alarm.as_ref().map(|(d, _)| *d));
        report.seconds("alarm_to_healed_s", alarm_to_healed);
        report.check(
            alarm_check,
            alarm.is_some(),
            alarm.map_or("no alarm fired".into(), |(_, line)| line),
        );
        check_others_idle(report, &self.others);
        Ok(self.acting.applied())
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0)
}

/// `heal-node-loss`: a replica killed and its data dir wiped; it comes back empty with a new
/// id, and the monitor restarts it and re-attaches it to the master that lost it.
pub fn node_loss(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let port = port_of(&victim.replica);
    let run = HealRun::start(lab, options, |lab| lab.wipe_node(port))?;
    let (alarm, alarmed) = run.wait_alarm();
    let (replica, master) = (victim.replica.clone(), victim.addr.clone());
    let healed = lab.control(|| async move { wait_follows(&replica, &master).await })?;
    let healed_at = healed.then(|| alarmed.elapsed());
    let holder = run.holder.clone();
    let applied =
        run.finish(lab, options, report, alarm, healed_at, "the monitor raised an alarm")?;
    report.check(
        "the monitor brought the node back as a replica of the master that lost it",
        healed && !applied.is_empty(),
        format!(
            "{} follows {} again; {holder}'s monitor: {}",
            victim.replica,
            victim.addr,
            applied.join("; ")
        ),
    );
    Ok(())
}

/// `heal-replica-loss`: a replica's node is gone for good (killed, its dir removed, and it
/// may not be started again), so its master is left with no replica, and there is no spare.
/// The monitor starts a new node on a host with none of that shard's nodes and makes it the
/// master's replica. Afterwards the lab is put back: the lost node returns (empty) as the
/// master's replica and the new one leaves.
pub fn replica_loss(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let port = port_of(&victim.replica);
    let run = HealRun::start(lab, options, |lab| lab.retire_node(port))?;
    let (alarm, alarmed) = run.wait_alarm();
    let (master, lost) = (victim.addr.clone(), victim.replica.clone());
    let new = lab.control(|| async move { wait_new_replica(&master, &lost).await })?;
    let healed_at = new.as_ref().map(|_| alarmed.elapsed());
    let holder = run.holder.clone();
    let applied =
        run.finish(lab, options, report, alarm, healed_at, "the monitor raised an alarm")?;
    // The load has stopped: the new replica has everything once its offset is the master's.
    let in_sync = match new.clone() {
        Some(replica) => {
            let master = victim.addr.clone();
            lab.control(|| async move { wait_in_sync(&master, &replica).await })?
        }
        None => false,
    };
    let started = applied.iter().any(|l| l.contains("start a new node"));
    report.check(
        "the monitor gave the master a new replica, in sync",
        new.is_some() && in_sync && started,
        format!(
            "{} lost for good; new replica of {}: {} (in sync: {in_sync}); {holder}'s monitor: {}",
            victim.replica,
            victim.addr,
            new.as_deref().unwrap_or("none"),
            applied.join("; ")
        ),
    );
    let lost = report.figures.get("acked_writes_lost").copied().unwrap_or(-1.0);
    report.check("no acknowledged write lost", lost == 0.0, format!("{lost} lost"));
    put_back_lost_replica(lab, &victim.addr, &victim.replica)
}

/// After `heal-replica-loss`: the monitors stop healing (they would re-attach the returning
/// node on their own, racing this), the lost node starts again empty, its old id is
/// forgotten, it rejoins as `master`'s replica, and the nodes healing started leave the
/// cluster and are removed.
fn put_back_lost_replica(lab: &mut Lab, master: &str, lost: &str) -> Result<(), LabError> {
    lab.set_monitor_heal(crate::lab::MONITOR_HEAL_DEFAULT)?;
    let (master_addr, lost_addr) = (master.to_string(), lost.to_string());
    // The old id goes before the node starts again: the others would meet the new empty node
    // at the old id's address, and mark that id `noaddr`, which nothing can reach to remove.
    let master_id = lab.control(|| async {
        let topology = cluster::ops::topology_of(&master_addr).await?;
        if let Some(old) = topology.nodes.iter().find(|n| n.addr() == lost_addr) {
            cluster::ops::del_node(&master_addr, &old.id, Duration::from_secs(60)).await?;
        }
        Ok::<_, cluster::ops::OpsError>(topology.myself().map(|m| m.id.clone()).unwrap_or_default())
    })??;
    lab.unretire_node(port_of(lost))?;
    lab.heal()?;
    lab.control(|| async move {
        let role = cluster::ops::NewRole::ReplicaOf(master_id);
        cluster::ops::add_node(&lost_addr, &master_addr, &role, Duration::from_secs(60)).await
    })??;
    remove_extra_nodes(lab)
}

/// Every node started beside the plan (by healing) leaves the cluster, whether healing
/// finished with it or not, is stopped and its dir removed.
pub(super) fn remove_extra_nodes(lab: &Lab) -> Result<(), LabError> {
    let extra = lab.extra_nodes();
    if extra.is_empty() {
        return Ok(());
    }
    let extra_addrs: Vec<String> = extra.iter().map(|(h, p)| format!("{}:{p}", h.ip)).collect();
    let planned = lab.plan.node_addrs();
    lab.control(|| async move {
        for seed in &planned {
            let Ok(topology) = cluster::ops::topology_of(seed).await else { continue };
            for node in topology.nodes.iter().filter(|n| extra_addrs.contains(&n.addr())) {
                cluster::ops::del_node(seed, &node.id, Duration::from_secs(60)).await?;
            }
            return Ok(());
        }
        Ok::<(), cluster::ops::OpsError>(())
    })??;
    for (host, port) in extra {
        lab.remove_extra_node(&host, port)?;
    }
    Ok(())
}

/// Polls `master`'s `INFO replication` until a replica other than `lost` is online, up to a
/// minute; its address.
async fn wait_new_replica(master: &str, lost: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some((_, replicas)) = replication(master).await
            && let Some((addr, _)) = replicas.into_iter().find(|(addr, _)| addr != lost)
        {
            return Some(addr);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Polls until `replica` is online at `master` with the master's replication offset (no
/// write is in flight: the load has stopped), up to 30 s.
async fn wait_in_sync(master: &str, replica: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((offset, replicas)) = replication(master).await
            && replicas.iter().any(|(addr, at)| addr == replica && *at == offset)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A master's `master_repl_offset` and its online replicas (`ip:port`, offset).
async fn replication(master: &str) -> Option<(u64, Vec<(String, u64)>)> {
    let mut conn = AdminConn::connect(master, Duration::from_secs(1)).await.ok()?;
    let info = parse_info(&conn.query_text(&["INFO", "replication"]).await.ok()?);
    let offset = info_field(&info, "master_repl_offset")?.parse().ok()?;
    let replicas = (0..)
        .map_while(|i| info_field(&info, &format!("slave{i}")).map(str::to_string))
        .filter_map(|line| parse_replica_line(&line))
        .collect();
    Some((offset, replicas))
}

/// `ip=198.18.0.12,port=7007,state=online,offset=123,lag=0`: the address and offset of an
/// online replica.
fn parse_replica_line(line: &str) -> Option<(String, u64)> {
    let field =
        |name: &str| line.split(',').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
    (field("state")? == "online")
        .then(|| {
            Some((format!("{}:{}", field("ip")?, field("port")?), field("offset")?.parse().ok()?))
        })
        .flatten()
}

/// `heal-layout`: a master is killed, its replica takes over (two masters on one host); the
/// monitor starts the killed node again (it rejoins as a replica) and fails over back.
pub fn layout(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    let victim = victim(lab)?;
    let run = HealRun::start(lab, options, |lab| lab.kill(&Target::Node(victim.port)))?;
    let (alarm, alarmed) = run.wait_alarm();
    let (replica, fault) = (victim.replica.clone(), run.fault);
    let promoted = lab.control(|| async move { wait_role(&replica, true, fault).await })?;
    // The layout is back when the planned master is master again and its replica follows it.
    let (master, replica) = (victim.addr.clone(), victim.replica.clone());
    let restored = lab.control(|| async move {
        wait_role(&master, true, Instant::now()).await.is_some()
            && wait_follows(&replica, &master).await
    })?;
    let healed_at = restored.then(|| alarmed.elapsed());
    let holder = run.holder.clone();
    report.seconds("replica_promoted_s", promoted);
    let applied =
        run.finish(lab, options, report, alarm, healed_at, "the monitor raised an alarm")?;
    let failed_back = applied.iter().any(|l| l.contains("fail over"));
    report.check(
        "the monitor failed over back: the planned layout is restored",
        restored && failed_back,
        format!("{} is master again; {holder}'s monitor: {}", victim.addr, applied.join("; ")),
    );
    Ok(())
}

/// `heal-partition`: the LB host holding the VIP (its monitor the acting one) is cut off the
/// switch. That monitor sees no master, so no majority: it must refuse every plan (here:
/// restarting nodes it cannot reach) and apply none. The other LB takes the VIP.
pub fn partition(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    let mut holder = String::new();
    let run = HealRun::start(lab, options, |lab| {
        holder = lab.vip_holder().unwrap_or_default();
        lab.partition(&holder)
    })?;
    let (alarm, _) = run.wait_alarm();
    let refusal =
        run.acting.wait(run.fault, |l| l.starts_with("heal refused") && l.contains("majority"));
    // Long enough for any action the cut-off monitor would wrongly take to show.
    std::thread::sleep(options.settle);
    // What it applied while cut off (once reconnected it may act again, rightly).
    let applied = run.acting.applied();
    let reconnected = Instant::now();
    lab.heal()?;
    lab.wait_vip(Duration::from_secs(30))?;
    report.seconds("vip_answers_after_reconnect_s", Some(reconnected.elapsed()));
    report.seconds("fault_to_refusal_s", refusal.as_ref().map(|(d, _)| *d));
    run.finish(lab, options, report, alarm, None, "the cut-off monitor raised alarms")?;
    report.check(
        "the cut-off monitor refused to heal: no majority of masters",
        refusal.is_some(),
        refusal.map_or("no refusal logged".into(), |(_, line)| line),
    );
    report.check(
        "the cut-off monitor took no action",
        applied.is_empty(),
        if applied.is_empty() {
            format!("{holder}'s monitor applied nothing")
        } else {
            applied.join("; ")
        },
    );
    Ok(())
}
