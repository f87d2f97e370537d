//! Healing drills: the monitor on the LB holding the VIP runs with `--heal auto` and repairs
//! what a fault broke, while the load runs through the VIP. Each measures fault -> alarm (the
//! first alarm the acting monitor fires) and alarm -> healed (the lab shows the repair), and
//! reads the monitors' logs to check who acted: the VIP holder's monitor only, and no monitor
//! that cannot see a majority of masters.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// `heal-node-loss` (`wipe`: the node's data dir is gone too, it comes back empty with a new
/// id) and `heal-replica-loss` (the replica is killed: its master is left without one).
pub fn node_loss(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
    wipe: bool,
) -> Result<(), LabError> {
    lab.set_monitor_heal("auto")?;
    let victim = victim(lab)?;
    let port: u16 = victim.replica.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
    let (holder, acting, others) = watches(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    if wipe {
        lab.wipe_node(port)?;
    } else {
        lab.kill(&Target::Node(port))?;
    }
    let alarm = acting.wait(fault, is_firing);
    let alarmed = Instant::now();
    let (replica, master) = (victim.replica.clone(), victim.addr.clone());
    let healed = lab.control(|| async move { wait_follows(&replica, &master).await })?;
    let healed_at = healed.then(|| alarmed.elapsed());
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("fault_to_alarm_s", alarm.as_ref().map(|(d, _)| *d));
    report.seconds("alarm_to_healed_s", healed_at);
    report.check(
        "the monitor raised an alarm",
        alarm.is_some(),
        alarm.map_or("no alarm fired".into(), |(_, line)| line),
    );
    let applied = acting.applied();
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
    check_others_idle(report, &others);
    Ok(())
}

/// `heal-layout`: a master is killed, its replica takes over (two masters on one host); the
/// monitor starts the killed node again (it rejoins as a replica) and fails over back.
pub fn layout(
    lab: &mut Lab,
    options: &DrillOptions,
    report: &mut DrillReport,
) -> Result<(), LabError> {
    lab.set_monitor_heal("auto")?;
    let victim = victim(lab)?;
    let (holder, acting, others) = watches(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.kill(&Target::Node(victim.port))?;
    let alarm = acting.wait(fault, is_firing);
    let alarmed = Instant::now();
    let replica = victim.replica.clone();
    let promoted = lab.control(|| async move { wait_role(&replica, true, fault).await })?;
    // The layout is back when the planned master is master again and its replica follows it.
    let (master, replica) = (victim.addr.clone(), victim.replica.clone());
    let restored = lab.control(|| async move {
        wait_role(&master, true, Instant::now()).await.is_some()
            && wait_follows(&replica, &master).await
    })?;
    let healed_at = restored.then(|| alarmed.elapsed());
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("fault_to_alarm_s", alarm.as_ref().map(|(d, _)| *d));
    report.seconds("replica_promoted_s", promoted);
    report.seconds("alarm_to_healed_s", healed_at);
    report.check(
        "the monitor raised an alarm",
        alarm.is_some(),
        alarm.map_or("no alarm fired".into(), |(_, line)| line),
    );
    let applied = acting.applied();
    let failed_back = applied.iter().any(|l| l.contains("fail over"));
    report.check(
        "the monitor failed over back: the planned layout is restored",
        restored && failed_back,
        format!("{} is master again; {holder}'s monitor: {}", victim.addr, applied.join("; ")),
    );
    check_others_idle(report, &others);
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
    lab.set_monitor_heal("auto")?;
    let (holder, acting, others) = watches(lab)?;
    let load = start_load(lab, options)?;
    std::thread::sleep(options.warmup);
    let fault = Instant::now();
    lab.partition(&holder)?;
    let alarm = acting.wait(fault, is_firing);
    let refusal = acting.wait(fault, |l| l.starts_with("heal refused") && l.contains("majority"));
    // Long enough for any action the cut-off monitor would wrongly take to show.
    std::thread::sleep(options.settle);
    let applied = acting.applied();
    let healed = Instant::now();
    lab.heal()?;
    lab.wait_vip(Duration::from_secs(30))?;
    let back = healed.elapsed();
    std::thread::sleep(options.settle);
    finish_load(lab, load, report)?;
    report.seconds("fault_to_alarm_s", alarm.as_ref().map(|(d, _)| *d));
    report.seconds("fault_to_refusal_s", refusal.as_ref().map(|(d, _)| *d));
    report.seconds("vip_answers_after_reconnect_s", Some(back));
    report.check(
        "the cut-off monitor raised alarms",
        alarm.is_some(),
        alarm.map_or("no alarm fired".into(), |(_, line)| line),
    );
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
    check_others_idle(report, &others);
    Ok(())
}
