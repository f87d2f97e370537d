//! Alarm-driven healing. [`plan`] maps a firing alarm and the model to one action (pure);
//! [`Guard::decide`] applies the guardrails (mode, majority, VIP, one action per shard, rate
//! limit; pure); [`apply`] runs the action; [`verified`] says from a later model whether it
//! had its effect (pure). The runner prints and logs a plan before applying it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::Serialize;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use cluster::reshard::{MasterLoad, MovePlan, Rebalance, RebalanceOptions};

use crate::model::{Model, NodeHealth};

/// `--heal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Off,
    DryRun,
    Auto,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Off => "off",
            Mode::DryRun => "dry-run",
            Mode::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "off" => Ok(Mode::Off),
            "dry-run" => Ok(Mode::DryRun),
            "auto" => Ok(Mode::Auto),
            other => Err(format!("--heal takes off, dry-run or auto, not `{other}`")),
        }
    }
}

/// What can be done about an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Start again a node the local supervisor owns (it comes back from its nodes.conf).
    RestartNode { addr: String },
    /// A node that came back empty: every node forgets its old id, it meets the cluster and
    /// replicates `master_id`.
    Reattach { addr: String, old_id: String, master_id: String, master_addr: String },
    /// Make `replica` (a spare, or a replica of a master that has two) replicate `master_id`.
    AttachReplica { replica: String, master_id: String, master_addr: String, donor: Option<String> },
    /// `CLUSTER FAILOVER` on `replica`, which takes over from `master` (layout restored).
    FailoverBack { replica: String, master: String },
    /// `redkeep fix`: close open slots.
    FixSlots { seed: String },
    /// The supervisor starts a new, empty node on `host` (none of the shard's nodes is there
    /// when the supervisor can help it), which then replicates `master_id`: a master left
    /// with no replica and no spare or replica to take.
    NewReplica { host: String, master_id: String, master_addr: String },
    /// Moves slots so that every master has its share (the scaling planner's rebalance, as
    /// `redkeep rebalance`), applied by the slot mover.
    Rebalance { seed: String, plan: MovePlan },
    /// Nothing the healer may do: said once, so a human knows why nothing happens.
    CannotHeal { why: String },
}

/// The `shard` of a plan that touches every shard (a rebalance): it runs alone.
pub const EVERY_SHARD: &str = "*";

/// An action, why, and the shard it touches (one action at a time per shard).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The alarm's fingerprint.
    pub alarm: String,
    pub alertname: String,
    /// The master id (or address) of the shard acted on.
    pub shard: String,
    pub action: Action,
    pub why: String,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::RestartNode { addr } => write!(f, "restart node {addr} (local supervisor)"),
            Action::Reattach { addr, old_id, master_addr, .. } => write!(
                f,
                "forget old id {old_id} on every node, meet {addr}, make it a replica of {master_addr}"
            ),
            Action::AttachReplica { replica, master_addr, donor, .. } => match donor {
                Some(donor) => write!(f, "move replica {replica} from {donor} to {master_addr}"),
                None => write!(f, "make spare {replica} a replica of {master_addr}"),
            },
            Action::FailoverBack { replica, master } => {
                write!(f, "fail over {master} to its replica {replica} (restore the layout)")
            }
            Action::FixSlots { seed } => write!(f, "fix open slots (as `redkeep fix {seed}`)"),
            Action::NewReplica { host, master_addr, .. } => {
                write!(f, "start a new node on {host} and make it a replica of {master_addr}")
            }
            Action::Rebalance { seed, plan } => {
                write!(
                    f,
                    "rebalance (as `redkeep rebalance {seed}`): move {} slots:",
                    plan.slot_count()
                )?;
                for m in &plan.moves {
                    write!(
                        f,
                        " {} from {} to {} ({});",
                        m.slot_count(),
                        m.from_addr,
                        m.to_addr,
                        cluster::topology::format_ranges(&m.slots)
                    )?;
                }
                Ok(())
            }
            Action::CannotHeal { why } => write!(f, "no action possible: {why}"),
        }
    }
}

/// What the healer knows beside the model.
pub struct Context<'a> {
    /// Can the local supervisor restart the node at this address?
    pub owns: &'a dyn Fn(&str) -> bool,
    /// Spare nodes the config lists.
    pub spares: &'a [String],
    /// Where the supervisor would start a new node, on none of these hosts if it can
    /// ([`Supervisor::place_new_node`]), or why it cannot start one.
    pub place_new_node: &'a dyn Fn(&[String]) -> Result<String, String>,
}

/// The plan for a firing alarm (`rule` and its labels), if there is one.
pub fn plan(
    rule: &str,
    fingerprint: &str,
    labels: &BTreeMap<String, String>,
    model: &Model,
    ctx: &Context,
) -> Option<Plan> {
    let addr = labels.get("addr").map(String::as_str).unwrap_or_default();
    let make = |shard: String, action: Action, why: String| Plan {
        alarm: fingerprint.into(),
        alertname: labels.get("alertname").cloned().unwrap_or_else(|| rule.into()),
        shard,
        action,
        why,
    };
    match rule {
        "node_down" => {
            let node = model.node(addr)?;
            (!node.reachable && (ctx.owns)(addr)).then(|| {
                let why = format!("{addr} does not answer and the local supervisor owns it");
                make(shard_of(node), Action::RestartNode { addr: addr.into() }, why)
            })
        }
        "node_came_back_empty" => {
            let node = model.node(addr)?;
            let master = neediest_master(model, node.host())?;
            let why =
                format!("{addr} lost its cluster state; {} needs a replica most", master.addr);
            let action = Action::Reattach {
                addr: addr.into(),
                old_id: node.id.clone(),
                master_id: master.id.clone(),
                master_addr: master.addr.clone(),
            };
            Some(make(master.id.clone(), action, why))
        }
        "master_without_replica" => {
            let master = model.node(addr)?;
            // A node of this shard that came back empty is re-attached by its own alarm.
            if model.nodes.iter().any(|n| n.came_back_empty()) {
                return None;
            }
            let Some((replica, donor)) = replica_source(model, master, ctx.spares) else {
                // A replica that answers (still syncing) or that the supervisor restarts is
                // coming back: a new node is for replicas lost for good.
                let coming = model
                    .nodes
                    .iter()
                    .filter(|n| n.master_id.as_deref() == Some(master.id.as_str()))
                    .any(|r| r.reachable || (ctx.owns)(&r.addr));
                return (!coming).then(|| new_replica_plan(model, master, ctx, make));
            };
            let why = match &donor {
                Some(d) => format!("{} has no healthy replica; {d} has two or more", master.addr),
                None => format!("{} has no healthy replica; {replica} is a spare", master.addr),
            };
            let action = Action::AttachReplica {
                replica,
                master_id: master.id.clone(),
                master_addr: master.addr.clone(),
                donor,
            };
            Some(make(master.id.clone(), action, why))
        }
        "master_replica_same_host" | "masters_same_host" => {
            let (master, replica) = failover_back_candidate(model)?;
            let why = format!(
                "{} shares a host; its replica {} is on a host without a master",
                master.addr, replica.addr
            );
            let action =
                Action::FailoverBack { replica: replica.addr.clone(), master: master.addr.clone() };
            Some(make(master.id.clone(), action, why))
        }
        "shard_imbalance_keys" | "shard_imbalance_memory" => rebalance_plan(model).map(|action| {
            let why = format!("{rule} fires and the slots per master are uneven");
            make(EVERY_SHARD.into(), action, why)
        }),
        "slot_open" => {
            let seed = model.cluster.reporter.clone();
            let why =
                format!("slot {} stays open on {addr}", labels.get("slot").map_or("?", |s| s));
            Some(make("slots".into(), Action::FixSlots { seed }, why))
        }
        _ => None,
    }
}

/// No spare and no replica to take: a new node from the supervisor, on a host that has none of
/// the shard's nodes (the master's, and its replicas', lost ones included), or why not.
fn new_replica_plan(
    model: &Model,
    master: &NodeHealth,
    ctx: &Context,
    make: impl Fn(String, Action, String) -> Plan,
) -> Plan {
    let mut avoid: Vec<String> = std::iter::once(master)
        .chain(model.nodes.iter().filter(|n| n.master_id.as_deref() == Some(master.id.as_str())))
        .map(|n| n.host().to_string())
        .collect();
    avoid.sort();
    avoid.dedup();
    match (ctx.place_new_node)(&avoid) {
        Ok(host) => {
            let why = format!(
                "{} has no healthy replica, and no spare or master with two replicas",
                master.addr
            );
            let action = Action::NewReplica {
                host,
                master_id: master.id.clone(),
                master_addr: master.addr.clone(),
            };
            make(master.id.clone(), action, why)
        }
        Err(why_not) => {
            let why = format!(
                "{} has no healthy replica, no spare or master with two replicas, and no new \
                 node can be started: {why_not}",
                master.addr
            );
            make(master.id.clone(), Action::CannotHeal { why: why.clone() }, why)
        }
    }
}

/// The masters as the rebalance planner takes them.
fn master_loads(model: &Model) -> Vec<MasterLoad> {
    model
        .shards()
        .iter()
        .map(|s| MasterLoad {
            id: s.master.id.clone(),
            addr: s.master.addr.clone(),
            slots: s.master.slots.iter().flat_map(|r| r.start..=r.end).collect(),
            weight: 1.0,
        })
        .collect()
}

/// A rebalance of the slots when they are unevenly spread (beyond the planner's default
/// threshold, as `redkeep rebalance`), every master answering and no slot open; or why not
/// when keys or memory are uneven although the slots are even.
fn rebalance_plan(model: &Model) -> Option<Action> {
    let shards = model.shards();
    let open = model.nodes.iter().any(|n| n.own.as_ref().is_some_and(|o| !o.open_slots.is_empty()));
    if shards.len() < 2 || open || shards.iter().any(|s| !s.master.reachable || s.master.fail) {
        // Not now: a fix, a restart or a failover comes first, and the alarm still fires after.
        return None;
    }
    match cluster::reshard::plan_rebalance(&master_loads(model), RebalanceOptions::default()) {
        Ok(Rebalance::Moves(plan)) if !plan.is_empty() => {
            Some(Action::Rebalance { seed: model.cluster.reporter.clone(), plan })
        }
        Ok(_) => Some(Action::CannotHeal {
            why: "the slots are evenly spread already: the keys or memory are uneven within \
                  them (big or hot keys), which moving slots by count does not fix"
                .into(),
        }),
        Err(e) => Some(Action::CannotHeal { why: format!("no rebalance plan: {e}") }),
    }
}

/// The shard a node belongs to: its master's id, or its own.
fn shard_of(node: &NodeHealth) -> String {
    node.master_id
        .clone()
        .unwrap_or_else(|| if node.id.is_empty() { node.addr.clone() } else { node.id.clone() })
}

/// The reachable master with the fewest healthy replicas, preferring one on another host than
/// `host` (a replica beside its master does not survive the host).
fn neediest_master<'a>(model: &'a Model, host: &str) -> Option<&'a NodeHealth> {
    model
        .shards()
        .into_iter()
        .filter(|s| s.master.reachable && !s.master.fail)
        .min_by_key(|s| {
            let healthy = s.replicas.iter().filter(|r| r.is_healthy_replica()).count();
            (healthy, s.master.host() == host, s.master.addr.clone())
        })
        .map(|s| s.master)
}

/// A node to become `master`'s replica: a spare that answers and is an empty master, else a
/// healthy replica of a master that has at least two; on another host than the master when
/// one is.
fn replica_source(
    model: &Model,
    master: &NodeHealth,
    spares: &[String],
) -> Option<(String, Option<String>)> {
    let other_host_first =
        |addr: &str| addr.rsplit_once(':').map(|(h, _)| h) == Some(master.host());
    let mut spare: Vec<&NodeHealth> = model
        .nodes
        .iter()
        .filter(|n| n.reachable && n.is_master() && n.slot_count == 0 && !n.id.is_empty())
        .chain(
            spares
                .iter()
                .filter_map(|s| model.node(s))
                .filter(|n| n.reachable && n.own.as_ref().is_some_and(|o| o.known_nodes <= 1)),
        )
        .collect();
    spare.sort_by_key(|n| other_host_first(&n.addr));
    if let Some(n) = spare.first() {
        return Some((n.addr.clone(), None));
    }
    let mut donors: Vec<(String, String)> = model
        .shards()
        .into_iter()
        .filter(|s| s.master.id != master.id)
        .filter_map(|s| {
            let healthy: Vec<_> = s.replicas.iter().filter(|r| r.is_healthy_replica()).collect();
            (healthy.len() >= 2).then(|| (healthy[0].addr.clone(), s.master.addr.clone()))
        })
        .collect();
    donors.sort_by_key(|(r, _)| other_host_first(r));
    donors.into_iter().next().map(|(replica, donor)| (replica, Some(donor)))
}

/// A master on a host with two masters (or with its own replica) whose healthy replica sits on
/// a host with no master: failing over to it puts one master per host again.
fn failover_back_candidate(model: &Model) -> Option<(&NodeHealth, &NodeHealth)> {
    let per_host = crate::rules::masters_per_host(model);
    model.shards().into_iter().find_map(|s| {
        let crowded = per_host.get(s.master.host()).copied().unwrap_or(0) > 1
            || s.replicas.iter().any(|r| r.host() == s.master.host());
        if !crowded {
            return None;
        }
        let replica = s.replicas.iter().find(|r| {
            r.is_healthy_replica() && per_host.get(r.host()).copied().unwrap_or(0) == 0
        })?;
        Some((s.master, *replica))
    })
}

/// Does `model` show that `action` worked?
pub fn verified(action: &Action, model: &Model) -> bool {
    match action {
        Action::RestartNode { addr } => model.node(addr).is_some_and(|n| n.reachable),
        Action::Reattach { addr, master_id, .. }
        | Action::AttachReplica { replica: addr, master_id, .. } => {
            model.node(addr).is_some_and(|n| {
                n.master_id.as_deref() == Some(master_id.as_str())
                    && n.is_healthy_replica()
                    && !n.came_back_empty()
            })
        }
        Action::FailoverBack { replica, .. } => {
            model.node(replica).is_some_and(|n| n.is_master() && n.slot_count > 0 && n.reachable)
        }
        Action::FixSlots { .. } => no_open_slots(model),
        Action::NewReplica { master_id, .. } => model.shards().iter().any(|s| {
            s.master.id == *master_id && s.replicas.iter().any(|r| r.is_healthy_replica())
        }),
        Action::Rebalance { .. } => {
            no_open_slots(model)
                && matches!(
                    cluster::reshard::plan_rebalance(
                        &master_loads(model),
                        RebalanceOptions::default()
                    ),
                    Ok(Rebalance::Balanced { .. })
                )
        }
        Action::CannotHeal { .. } => false,
    }
}

fn no_open_slots(model: &Model) -> bool {
    model.nodes.iter().all(|n| n.own.as_ref().is_none_or(|o| o.open_slots.is_empty()))
}

/// Why a plan is not applied now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    Apply,
    /// `--heal dry-run`: printed, not applied.
    DryRun,
    Refuse(String),
}

/// The guardrails' memory: shards with an action in flight, recent action times.
#[derive(Debug, Clone)]
pub struct Guard {
    pub mode: Mode,
    pub max_actions: usize,
    pub window: Duration,
    busy: BTreeSet<String>,
    recent: VecDeque<u64>,
}

impl Guard {
    pub fn new(mode: Mode, max_actions: usize, window: Duration) -> Guard {
        Guard { mode, max_actions, window, busy: BTreeSet::new(), recent: VecDeque::new() }
    }

    /// Whether to apply `plan` at `at_ms`. `holds_vip`: `Some(false)` when several monitors
    /// run and this one's LB does not hold the VIP.
    pub fn decide(
        &mut self,
        plan: &Plan,
        model: &Model,
        at_ms: u64,
        holds_vip: Option<bool>,
    ) -> Decision {
        if self.mode == Mode::Off {
            return Decision::Refuse("healing is off (--heal off)".into());
        }
        if !model.sees_majority() {
            return Decision::Refuse(model.no_majority_reason());
        }
        if holds_vip == Some(false) {
            return Decision::Refuse(
                "this monitor's LB does not hold the VIP: the one that does heals".into(),
            );
        }
        if self.busy.contains(&plan.shard) {
            return Decision::Refuse(format!("shard {} has an action in flight", plan.shard));
        }
        // Said after "in flight": while a new node is being added, its shard has no room left.
        if let Action::CannotHeal { .. } = &plan.action {
            return Decision::Refuse("a human must act (the alarm stays firing)".into());
        }
        // A rebalance touches every shard: it waits for the others, and they for it.
        if self.busy.contains(EVERY_SHARD) {
            return Decision::Refuse("a rebalance is in flight".into());
        }
        if plan.shard == EVERY_SHARD && !self.busy.is_empty() {
            return Decision::Refuse(format!(
                "actions are in flight on shards {}: a rebalance waits for them",
                self.busy.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| at_ms.saturating_sub(t) > self.window.as_millis() as u64)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_actions {
            return Decision::Refuse(format!(
                "rate limit: {} actions in the last {}",
                self.recent.len(),
                humantime::format_duration(self.window)
            ));
        }
        if self.mode == Mode::DryRun {
            return Decision::DryRun;
        }
        self.busy.insert(plan.shard.clone());
        self.recent.push_back(at_ms);
        Decision::Apply
    }

    /// The shard's action finished (verified or given up).
    pub fn done(&mut self, shard: &str) {
        self.busy.remove(shard);
    }
}

/// The local node supervisor, as far as healing needs it (implemented over `deploy::local` by
/// `redkeep monitor --dir`).
pub trait Supervisor: Send + Sync {
    /// Does it own (can it start) the node at `addr`?
    fn owns(&self, addr: &str) -> bool;
    /// Starts the node at `addr` if it is not running. Blocking.
    fn restart(&self, addr: &str) -> Result<(), String>;
    /// Where a new node would start, on none of `avoid_hosts` if the supervisor has such a
    /// host (its answer is printed in the plan), or why no node can be started.
    fn place_new_node(&self, avoid_hosts: &[String]) -> Result<String, String> {
        let _ = avoid_hosts;
        Err("this monitor starts no nodes (run it with --dir of a `redkeep up` cluster, or \
             --lab)"
            .into())
    }
    /// Starts a new, empty cluster node on `host` (as [`Supervisor::place_new_node`] said) and
    /// returns its `host:port`. Blocking.
    fn start_new_node(&self, host: &str) -> Result<String, String> {
        Err(format!("this monitor starts no nodes, none on {host}"))
    }
}

/// A supervisor that owns nothing (a monitor of a remote cluster).
pub struct NoSupervisor;

impl Supervisor for NoSupervisor {
    fn owns(&self, _: &str) -> bool {
        false
    }
    fn restart(&self, addr: &str) -> Result<(), String> {
        Err(format!("no local supervisor owns {addr}"))
    }
}

/// Runs `action` against the cluster; `model` is the one it was planned on.
pub async fn apply(
    action: &Action,
    model: &Model,
    supervisor: &std::sync::Arc<dyn Supervisor>,
) -> Result<(), String> {
    match action {
        Action::RestartNode { addr } => {
            let (supervisor, addr) = (supervisor.clone(), addr.clone());
            tokio::task::spawn_blocking(move || supervisor.restart(&addr))
                .await
                .map_err(|e| e.to_string())?
        }
        Action::Reattach { addr, old_id, master_id, master_addr } => {
            forget_everywhere(model, old_id, addr).await;
            meet(addr, master_addr).await?;
            replicate(addr, master_id).await
        }
        Action::AttachReplica { replica, master_id, master_addr, donor: _ } => {
            if model.node(replica).is_none_or(|n| n.id.is_empty()) {
                meet(replica, master_addr).await?;
            }
            replicate(replica, master_id).await
        }
        Action::FailoverBack { replica, .. } => {
            let mut conn =
                AdminConn::connect(replica, DEFAULT_TIMEOUT).await.map_err(|e| e.to_string())?;
            conn.query_ok(&["CLUSTER", "FAILOVER"]).await.map_err(|e| e.to_string())
        }
        Action::NewReplica { host, master_id, master_addr } => {
            let (supervisor, host) = (supervisor.clone(), host.clone());
            let addr = tokio::task::spawn_blocking(move || supervisor.start_new_node(&host))
                .await
                .map_err(|e| e.to_string())??;
            tracing::info!("heal: started new node {addr}");
            meet(&addr, master_addr).await?;
            replicate(&addr, master_id).await
        }
        Action::Rebalance { plan, .. } => rebalance(plan, model).await,
        Action::CannotHeal { why } => Err(why.clone()),
        Action::FixSlots { seed } => {
            // apply_fix reports through a `&mut dyn FnMut`, which is not Send: it runs on a
            // runtime of its own on a blocking thread.
            let seed = seed.clone();
            tokio::task::spawn_blocking(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(fix_slots(&seed))
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

/// Applies a rebalance plan with the slot mover, every master told the new owners.
async fn rebalance(plan: &MovePlan, model: &Model) -> Result<(), String> {
    let masters: Vec<String> = model.shards().iter().map(|s| s.master.addr.clone()).collect();
    let progress: cluster::mover::ProgressFn = std::sync::Arc::new(|_| {});
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = cluster::mover::MoveOptions::default();
    let summary = cluster::mover::execute(plan, &masters, &options, progress, stop)
        .await
        .map_err(|e| format!("the rebalance stopped: {e} (`redkeep check` shows what is left)"))?;
    tracing::info!(
        "heal: rebalance moved {} slots, {} keys; {} skipped",
        summary.slots_moved,
        summary.keys,
        summary.skipped.len()
    );
    Ok(())
}

async fn fix_slots(seed: &str) -> Result<(), String> {
    let (views, keys) = cluster::ops::gather_fix_input(seed).await.map_err(|e| e.to_string())?;
    let plan = cluster::fix::plan_fix(&views, &keys);
    let unfixable =
        cluster::ops::apply_fix(&plan, &views, &mut |step| tracing::info!("fix: {step}"))
            .await
            .map_err(|e| e.to_string())?;
    if unfixable > 0 {
        return Err(format!("{unfixable} problems need a human (see `redkeep fix`)"));
    }
    Ok(())
}

/// Every reachable node but `except` forgets `id`. A node that does not know it says so; that is
/// fine. Gossip would bring the id back from a node that still knows it, so all are asked.
async fn forget_everywhere(model: &Model, id: &str, except: &str) {
    for node in model.nodes.iter().filter(|n| n.reachable && n.addr != except) {
        if let Ok(mut conn) = AdminConn::connect(&node.addr, DEFAULT_TIMEOUT).await {
            let _ = conn.query(&["CLUSTER", "FORGET", id]).await;
        }
    }
}

async fn meet(addr: &str, member: &str) -> Result<(), String> {
    let (host, port) =
        member.rsplit_once(':').ok_or_else(|| format!("{member} is not host:port"))?;
    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await.map_err(|e| e.to_string())?;
    conn.query_ok(&["CLUSTER", "MEET", host, port]).await.map_err(|e| e.to_string())
}

/// `CLUSTER REPLICATE`, retried while the node has not heard of the master yet (gossip after
/// MEET takes a moment): the scaling operations' own.
async fn replicate(addr: &str, master_id: &str) -> Result<(), String> {
    cluster::ops::attach_replica(addr, master_id, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())
}
