//! Live scaling: `add-node`, `del-node`, `reshard`, `rebalance`, `set-timeout`.
//!
//! `reshard` and `rebalance` plan with [`cluster::reshard`], print the plan, ask (unless
//! `--yes`), save it to a plan file before the first slot moves, and apply it with
//! [`cluster::mover`]. `--resume PLAN` applies a saved plan again, continuing from what the
//! cluster shows, so an interrupted run (Ctrl-C, a crash, a killed process) is finished rather
//! than planned anew.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use cluster::mover::{MoveOptions, MoveSummary, Progress};
use cluster::ops::NewRole;
use cluster::reshard::{MasterLoad, MovePlan, Rebalance, RebalanceOptions, Sources};
use serde::{Deserialize, Serialize};

/// Add a blank redis-server (cluster-enabled yes, no data, never in a cluster) to a running
/// cluster, as an empty master (the default) or as a replica of a given master.
///
/// An empty master serves no slots until you give it some: `redkeep rebalance HOST:PORT
/// --use-empty-masters`, or `redkeep reshard HOST:PORT --from all --to NEW_ID --slots N`.
#[derive(clap::Args)]
pub struct AddNodeArgs {
    /// The new node, HOST:PORT.
    new: String,
    /// Any node of the cluster.
    node: String,
    /// Make it a replica of the master with this id (or a unique prefix of it).
    #[arg(long, value_name = "ID", conflicts_with = "master")]
    replica_of: Option<String>,
    /// Add it as an empty master (the default).
    #[arg(long)]
    master: bool,
}

/// Remove a node from the cluster: every other node forgets it, and it is reset to a blank
/// node (its process keeps running; stop it yourself, or use `redkeep up --masters N` for a
/// local cluster).
///
/// A master that serves slots is refused: move them away first (`redkeep rebalance HOST:PORT
/// --weight ID=0`). The replicas of a removed master follow the master with fewest replicas.
#[derive(clap::Args)]
pub struct DelNodeArgs {
    /// Any node of the cluster other than the one removed.
    node: String,
    /// The id of the node to remove (or a unique prefix).
    id: String,
}

/// How keys move, shared by `reshard` and `rebalance`.
#[derive(clap::Args, Clone)]
pub struct MoveArgs {
    /// Most keys per MIGRATE command (redis-cli moves 10, waiting for each). Bigger batches
    /// move faster but block the source longer at a time (clients wait behind a MIGRATE).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Most bytes per MIGRATE: keys with big values get smaller batches, a key bigger than
    /// this one of its own.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    batch_bytes: u64,
    /// Slots opened at once per source and target (one round trip serves them all).
    #[arg(long, default_value_t = 64)]
    slots_at_once: usize,
    /// MIGRATE commands in flight per source (sent back to back: the source runs them one
    /// after the other without serving clients in between).
    #[arg(long, default_value_t = 2)]
    pipeline: usize,
    /// Throttle: at most this many keys per second in all.
    #[arg(long, value_name = "N")]
    max_keys_per_sec: Option<u64>,
    /// Throttle: at most this many bytes per second in all, e.g. `50MB`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_bytes_per_sec: Option<u64>,
    /// Refuse to move a key bigger than this (its slot is rolled back, nothing stays open):
    /// MIGRATE blocks both nodes while a key transfers.
    #[arg(long, default_value = "512MiB", value_parser = parse_size)]
    max_key_size: u64,
    /// MIGRATE's timeout for small batches, in ms; bigger batches get a second more per 8 MB.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Where to save the plan before the first move (default: redkeep-plan-<time>.json here).
    #[arg(long, value_name = "FILE")]
    plan_file: Option<PathBuf>,
    /// Apply a saved plan instead of making a new one, continuing from what the cluster shows
    /// (slots already moved are skipped, half-moved ones finished).
    #[arg(long, value_name = "PLAN")]
    resume: Option<PathBuf>,
    /// Apply the plan without asking.
    #[arg(long, short)]
    yes: bool,
}

/// Move N slots (and their keys) to one master, taken from the given masters, or from all
/// others in proportion to their slots, as `redis-cli --cluster reshard` does.
///
/// Clients keep working during the move: the proxy (and any cluster client) follows the
/// ASK and MOVED redirects. See `redkeep rebalance --help` for how keys move and how an
/// interrupted run is resumed.
#[derive(clap::Args)]
pub struct ReshardArgs {
    /// Any node of the cluster.
    node: String,
    /// Source masters: `all`, or ids (or unique prefixes) separated by commas.
    #[arg(long, value_name = "IDS|all", required_unless_present = "resume")]
    from: Option<String>,
    /// The master that receives the slots (id or unique prefix).
    #[arg(long, value_name = "ID", required_unless_present = "resume")]
    to: Option<String>,
    /// How many slots to move.
    #[arg(long, value_name = "N", required_unless_present = "resume")]
    slots: Option<u64>,
    #[command(flatten)]
    moving: MoveArgs,
}

/// Even out the slots over the masters, by weight, as `redis-cli --cluster rebalance` does:
/// each master's share is 16384 * weight / total weight; nothing moves while every master is
/// within --threshold percent of its share; exactly the surplus moves, from the masters that
/// have most to those that lack most.
///
/// The plan is printed, confirmed (or --yes), and saved to a plan file before the first slot
/// moves. Per slot, the target is set importing, then the source migrating; keys move with
/// MIGRATE ... KEYS, many per command and pipelined (--batch, --batch-bytes), throttled
/// (--max-keys-per-sec, --max-bytes-per-sec); then the target, the source and the other
/// masters learn the new owner, in that order. An error (a key on both sides, a key above
/// --max-key-size, a node that stops answering) rolls the open slots back, so nothing is left
/// for `fix`. Ctrl-C stops after the slots being moved; `--resume PLAN` finishes a stopped,
/// failed or killed run.
#[derive(clap::Args)]
pub struct RebalanceArgs {
    /// Any node of the cluster.
    node: String,
    /// A master's weight, ID=W (id or unique prefix); 0 empties it. Repeatable. Default 1.
    #[arg(long, value_name = "ID=W")]
    weight: Vec<String>,
    /// Percent a master may be off its share before slots move.
    #[arg(long, default_value_t = 2.0)]
    threshold: f64,
    /// Give slots to masters that have none (a newly added master).
    #[arg(long)]
    use_empty_masters: bool,
    #[command(flatten)]
    moving: MoveArgs,
}

/// Set cluster-node-timeout (how long a node may be unreachable before it is failed over) on
/// every node, and save it in each node's config file.
#[derive(clap::Args)]
pub struct SetTimeoutArgs {
    /// Any node of the cluster.
    node: String,
    /// The timeout in milliseconds.
    millis: u64,
}

fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| e.to_string())
}

/// A plan as saved on disk: enough to apply it again later.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// `rebalance` or `reshard`.
    pub command: String,
    /// The node the plan was made from.
    pub seed: String,
    pub created_unix: u64,
    pub plan: MovePlan,
}

const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run_add_node(args: AddNodeArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let role = match &args.replica_of {
            Some(id) => NewRole::ReplicaOf(id.clone()),
            None => NewRole::Master,
        };
        println!(">>> Adding node {} to the cluster of {}", args.new, args.node);
        let id = cluster::ops::add_node(&args.new, &args.node, &role, JOIN_TIMEOUT).await?;
        match role {
            NewRole::Master => {
                println!("[OK] {} joined as an empty master, id {id}.", args.new);
                println!("Give it slots: redkeep rebalance {} --use-empty-masters", args.node);
            }
            NewRole::ReplicaOf(master) => {
                println!("[OK] {} joined as a replica of {master}, id {id}.", args.new);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_del_node(args: DelNodeArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        println!(">>> Removing node {} from the cluster", args.id);
        let removal = cluster::ops::del_node(&args.node, &args.id, JOIN_TIMEOUT).await?;
        for (replica, master) in &removal.moved_replicas {
            println!(">>> {replica} now replicates {master}");
        }
        println!(">>> Forgotten by {} nodes", removal.forgotten_by.len());
        println!("[OK] {} left the cluster and was reset to a blank node.", removal.addr);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_set_timeout(args: SetTimeoutArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        let not_saved = cluster::ops::set_node_timeout(&args.node, args.millis).await?;
        for (addr, why) in &not_saved {
            println!("[WARN] {addr}: set, but not saved to its config file: {why}");
        }
        println!("[OK] cluster-node-timeout is {} ms on every node.", args.millis);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_reshard(args: ReshardArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        if let Some(resume) = &args.moving.resume {
            return resume_plan(&args.node, resume, &args.moving).await;
        }
        let (topology, masters) = masters_of(&args.node).await?;
        refuse_open_slots(&args.node).await?;
        let (from, to, slots) = (
            args.from.as_deref().unwrap_or("all"),
            args.to.as_deref().unwrap_or_default(),
            args.slots.unwrap_or_default(),
        );
        let sources = if from == "all" {
            Sources::All
        } else {
            Sources::Ids(from.split(',').map(|s| s.trim().to_string()).collect())
        };
        let plan = cluster::reshard::plan_reshard(&masters, &sources, to, slots)?;
        apply_new_plan("reshard", &args.node, &topology, plan, &args.moving).await
    })
}

pub fn run_rebalance(args: RebalanceArgs) -> anyhow::Result<ExitCode> {
    super::block_on(async {
        if let Some(resume) = &args.moving.resume {
            return resume_plan(&args.node, resume, &args.moving).await;
        }
        let options = RebalanceOptions {
            threshold: args.threshold,
            use_empty_masters: args.use_empty_masters,
        };
        match plan_rebalance(&args.node, &args.weight, options).await? {
            None => {
                println!(
                    "*** No rebalancing needed! All nodes are within the {:.2}% threshold.",
                    args.threshold
                );
                Ok(ExitCode::SUCCESS)
            }
            Some((topology, plan)) => {
                apply_new_plan("rebalance", &args.node, &topology, plan, &args.moving).await
            }
        }
    })
}

/// Plans a rebalance of the cluster `seed` is in; `None` when it is balanced already.
pub async fn plan_rebalance(
    seed: &str,
    weights: &[String],
    options: RebalanceOptions,
) -> anyhow::Result<Option<(cluster::topology::Topology, MovePlan)>> {
    let (topology, mut masters) = masters_of(seed).await?;
    refuse_open_slots(seed).await?;
    cluster::reshard::apply_weights(&mut masters, weights)?;
    Ok(match cluster::reshard::plan_rebalance(&masters, options)? {
        Rebalance::Balanced { .. } => None,
        Rebalance::Moves(plan) if plan.is_empty() => None,
        Rebalance::Moves(plan) => Some((topology, plan)),
    })
}

async fn masters_of(seed: &str) -> anyhow::Result<(cluster::topology::Topology, Vec<MasterLoad>)> {
    let topology = cluster::ops::topology_of(seed).await?;
    let masters = MasterLoad::from_topology(&topology);
    Ok((topology, masters))
}

/// A new plan must start from a cluster with no slot open: an open one is an earlier run
/// that did not finish.
async fn refuse_open_slots(seed: &str) -> anyhow::Result<()> {
    let views = cluster::ops::gather_views(seed).await?;
    let report = cluster::check::check(&views, 0);
    let open: Vec<String> = report
        .problems
        .iter()
        .filter(|p| matches!(p, cluster::check::Problem::OpenSlot { .. }))
        .map(ToString::to_string)
        .collect();
    if !open.is_empty() {
        anyhow::bail!(
            "{}; an earlier run did not finish: finish it with `--resume PLAN`, or run \
             `redkeep fix {seed}`",
            open.join("; ")
        );
    }
    Ok(())
}

async fn apply_new_plan(
    command: &str,
    seed: &str,
    topology: &cluster::topology::Topology,
    plan: MovePlan,
    moving: &MoveArgs,
) -> anyhow::Result<ExitCode> {
    print!("{plan}");
    if !moving.yes
        && !super::create::confirm("Do you want to proceed with the proposed plan? (type 'yes'): ")?
    {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    let file = PlanFile {
        command: command.to_string(),
        seed: seed.to_string(),
        created_unix: unix_now(),
        plan,
    };
    let path = moving
        .plan_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("redkeep-plan-{}.json", file.created_unix)));
    save_plan(&path, &file)?;
    println!(
        "Plan saved to {} (if interrupted: redkeep {command} {seed} --resume {})",
        path.display(),
        path.display()
    );
    let masters: Vec<String> = topology.masters().map(|m| m.addr()).collect();
    let addrs: Vec<String> = topology.nodes.iter().map(|n| n.addr()).collect();
    apply(&file, &masters, &addrs, moving, &path).await
}

async fn resume_plan(seed: &str, path: &Path, moving: &MoveArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan file {}", path.display()))?;
    let file: PlanFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a redkeep plan file", path.display()))?;
    let topology = cluster::ops::topology_of(seed).await?;
    println!(
        ">>> Resuming the {} plan of {} ({} slots); slots already moved are skipped",
        file.command,
        path.display(),
        file.plan.slot_count()
    );
    let masters: Vec<String> = topology.masters().map(|m| m.addr()).collect();
    let addrs: Vec<String> = topology.nodes.iter().map(|n| n.addr()).collect();
    apply(&file, &masters, &addrs, moving, path).await
}

fn save_plan(path: &Path, file: &PlanFile) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(file)? + "\n";
    // Something that is not a regular file (`/dev/null`, a pipe, a symlink) is written in
    // place: renaming over it would replace it. Run as root with `--plan-file /dev/null`,
    // the rename once turned the machine's /dev/null into a plan file, and every later
    // reader of /dev/null (rustc's probes among them) read the plan.
    let existing = std::fs::symlink_metadata(path).ok();
    if existing.is_some_and(|meta| !meta.file_type().is_file()) {
        return std::fs::write(path, text)
            .with_context(|| format!("cannot write the plan file {}", path.display()));
    }
    // Written whole, then renamed, so a crash never leaves half a plan.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)
        .with_context(|| format!("cannot write the plan file {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot write the plan file {}", path.display()))?;
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl MoveArgs {
    fn options(&self) -> MoveOptions {
        MoveOptions {
            batch: self.batch,
            batch_bytes: self.batch_bytes,
            slots_at_once: self.slots_at_once,
            pipeline: self.pipeline,
            max_keys_per_sec: self.max_keys_per_sec,
            max_bytes_per_sec: self.max_bytes_per_sec,
            max_key_bytes: self.max_key_size,
            base_timeout: Duration::from_millis(self.timeout),
        }
    }
}

/// Moves the plan's slots with a progress bar, stops cleanly on Ctrl-C, and waits until
/// every node agrees on the result.
async fn apply(
    file: &PlanFile,
    masters: &[String],
    addrs: &[String],
    moving: &MoveArgs,
    path: &Path,
) -> anyhow::Result<ExitCode> {
    let total_keys = cluster::mover::count_keys(&file.plan).await?;
    let bar = progress_bar(total_keys, file.plan.slot_count());
    let progress: cluster::mover::ProgressFn = {
        let bar = bar.clone();
        Arc::new(move |event| match event {
            Progress::Keys { keys, .. } => bar.inc(keys),
            Progress::SlotsDone { count } => {
                let done = bar.message().parse::<u64>().unwrap_or(0) + count;
                bar.set_message(done.to_string());
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = {
        let stop = stop.clone();
        tokio::spawn(async move {
            super::shutdown_signal().await;
            eprintln!("\nStopping after the slots being moved (press again to force)...");
            stop.store(true, Ordering::SeqCst);
            super::shutdown_signal().await;
            // Forced: the slots being moved stay open; --resume finishes them.
            std::process::exit(130);
        })
    };
    let started = Instant::now();
    let result =
        cluster::mover::execute(&file.plan, masters, &moving.options(), progress, stop).await;
    on_signal.abort();
    bar.finish_and_clear();
    let resume_hint = format!("redkeep {} {} --resume {}", file.command, file.seed, path.display());
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            return Err(anyhow::Error::from(e).context(format!(
                "the {} stopped; once the cause is dealt with, finish it with: {resume_hint}",
                file.command
            )));
        }
    };
    report(&summary, started.elapsed());
    if summary.stopped {
        println!("[WARN] Stopped before the end; finish with: {resume_hint}");
        return Ok(ExitCode::FAILURE);
    }
    cluster::ops::wait_healthy(addrs, Duration::from_secs(60))
        .await
        .context("the slots moved, but the cluster did not settle")?;
    println!("[OK] Every node agrees on the new slot configuration.");
    Ok(ExitCode::SUCCESS)
}

fn progress_bar(keys: u64, slots: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(keys.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "[{{elapsed_precise}}] {{bar:30}} {{human_pos}}/{{human_len}} keys, \
             {{per_sec}}, ETA {{eta}}, slots {{msg}}/{slots}"
        ))
        .expect("a valid template"),
    );
    bar.set_message("0");
    bar
}

fn report(summary: &MoveSummary, took: Duration) {
    let rate = summary.keys as f64 / took.as_secs_f64().max(0.001);
    println!(
        ">>> Moved {} slots, {} keys ({}) in {:.1} s ({:.0} keys/s){}",
        summary.slots_moved,
        summary.keys,
        bytesize::ByteSize::b(summary.bytes),
        took.as_secs_f64(),
        rate,
        if summary.slots_already_done > 0 {
            format!("; {} slots were already moved", summary.slots_already_done)
        } else {
            String::new()
        }
    );
    for (slot, owner) in &summary.skipped {
        println!(
            "[WARN] slot {slot} is served by {owner} now, not by the plan's source: left alone"
        );
    }
}

/// Rebalances without asking, for `redkeep up --masters N`: weights as given (0 empties a
/// master), empty masters included.
pub async fn rebalance_unattended(
    seed: &str,
    weights: &[String],
    plan_file: PathBuf,
) -> anyhow::Result<()> {
    // Any imbalance counts (a threshold of 0 would mean "never", as in redis-cli).
    let options = RebalanceOptions { threshold: 0.01, use_empty_masters: true };
    let Some((topology, plan)) = plan_rebalance(seed, weights, options).await? else {
        return Ok(());
    };
    let defaults = MoveOptions::default();
    let moving = MoveArgs {
        batch: defaults.batch,
        batch_bytes: defaults.batch_bytes,
        slots_at_once: defaults.slots_at_once,
        pipeline: defaults.pipeline,
        max_keys_per_sec: None,
        max_bytes_per_sec: None,
        max_key_size: defaults.max_key_bytes,
        timeout: defaults.base_timeout.as_millis() as u64,
        plan_file: Some(plan_file),
        resume: None,
        yes: true,
    };
    let code = apply_new_plan("rebalance", seed, &topology, plan, &moving).await?;
    if code != ExitCode::SUCCESS {
        anyhow::bail!("the rebalance did not finish");
    }
    Ok(())
}

/// Scales the local cluster of `dir` to `wanted` masters, live. Out: new nodes (with the
/// dir's replicas per master) are started, added, and given their share of slots. In: the
/// masters on the highest ports are emptied (weight 0), then they and their replicas leave
/// the cluster and are stopped, their dirs deleted.
pub async fn scale_local(dir: &mut deploy::local::LocalDir, wanted: usize) -> anyhow::Result<()> {
    if wanted < 3 {
        anyhow::bail!("Redis Cluster needs at least 3 masters, got --masters {wanted}");
    }
    let current = dir.manifest.masters;
    let plan_file = dir.root.join("rebalance-plan.json");
    if wanted > current {
        println!(">>> Scaling out from {current} to {wanted} masters");
        grow(dir, wanted - current).await?;
        rebalance_unattended(&dir.manifest.addrs()[0], &[], plan_file).await?;
    } else {
        println!(">>> Scaling in from {current} to {wanted} masters");
        shrink(dir, current - wanted, plan_file).await?;
    }
    dir.set_masters(wanted)?;
    // Only an interrupted run needs its plan (to --resume); a finished one would keep
    // `down --purge` from emptying the dir.
    let _ = std::fs::remove_file(dir.root.join("rebalance-plan.json"));
    cluster::ops::wait_healthy(&dir.manifest.addrs(), Duration::from_secs(60)).await?;
    println!("[OK] {wanted} masters serve the {} slots.", cluster::SLOT_COUNT);
    Ok(())
}

async fn grow(dir: &mut deploy::local::LocalDir, masters: usize) -> anyhow::Result<()> {
    let seed = dir.manifest.addrs()[0].clone();
    let replicas = dir.manifest.replicas;
    let ports = dir.add_ports(masters * (1 + replicas))?;
    let starting = dir.clone();
    tokio::task::spawn_blocking(move || starting.start()).await??;
    let host = dir.manifest.host.clone();
    let (master_ports, replica_ports) = ports.split_at(masters);
    for (i, port) in master_ports.iter().enumerate() {
        let addr = format!("{host}:{port}");
        let id = cluster::ops::add_node(&addr, &seed, &NewRole::Master, JOIN_TIMEOUT).await?;
        println!(">>> Added {addr} as a master ({id})");
        for port in &replica_ports[i * replicas..(i + 1) * replicas] {
            let replica = format!("{host}:{port}");
            let role = NewRole::ReplicaOf(id.clone());
            cluster::ops::add_node(&replica, &seed, &role, JOIN_TIMEOUT).await?;
            println!(">>> Added {replica} as a replica of {addr}");
        }
    }
    Ok(())
}

async fn shrink(
    dir: &mut deploy::local::LocalDir,
    masters: usize,
    plan_file: PathBuf,
) -> anyhow::Result<()> {
    let addrs = dir.manifest.addrs();
    let topology = cluster::ops::topology_of(&addrs[0]).await?;
    let mut local_masters: Vec<&cluster::topology::Node> =
        topology.masters().filter(|m| addrs.contains(&m.addr())).collect();
    local_masters.sort_by_key(|m| std::cmp::Reverse(m.port));
    let retired: Vec<&cluster::topology::Node> = local_masters.into_iter().take(masters).collect();
    let mut leaving: Vec<(String, u16)> = Vec::new();
    for master in &retired {
        leaving.extend(topology.replicas_of(&master.id).map(|r| (r.id.clone(), r.port)));
        leaving.push((master.id.clone(), master.port));
    }
    let seed = addrs
        .iter()
        .find(|a| !leaving.iter().any(|(_, port)| a.ends_with(&format!(":{port}"))))
        .context("no node would be left")?
        .clone();
    let weights: Vec<String> = retired.iter().map(|m| format!("{}=0", m.id)).collect();
    rebalance_unattended(&seed, &weights, plan_file).await?;
    for (id, port) in &leaving {
        cluster::ops::del_node(&seed, id, JOIN_TIMEOUT).await?;
        println!(">>> Removed the node on port {port} ({id})");
    }
    let ports: Vec<u16> = leaving.iter().map(|(_, port)| *port).collect();
    let retiring = dir.clone();
    let mut retired_dir = tokio::task::spawn_blocking(move || {
        let mut dir = retiring;
        dir.retire_ports(&ports).map(|()| dir)
    })
    .await??;
    std::mem::swap(dir, &mut retired_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    fn plan_file() -> PlanFile {
        PlanFile {
            command: "rebalance".into(),
            seed: "127.0.0.1:7001".into(),
            created_unix: 1,
            plan: MovePlan::default(),
        }
    }

    fn read_plan(path: &Path) -> PlanFile {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn a_plan_saved_to_a_regular_path_can_be_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, "an older plan").unwrap();
        save_plan(&path, &plan_file()).unwrap();
        assert_eq!(read_plan(&path).command, "rebalance");
        assert!(!path.with_extension("json.tmp").exists());
    }

    /// A pipe stands in for `/dev/null`: the plan goes through it, and it stays a pipe.
    #[test]
    fn a_plan_saved_to_a_pipe_leaves_the_pipe_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&pipe).status().unwrap();
        assert!(made.success());
        let reader = {
            let pipe = pipe.clone();
            std::thread::spawn(move || std::fs::read_to_string(pipe).unwrap())
        };
        save_plan(&pipe, &plan_file()).unwrap();
        // Checked first: had the pipe been replaced, the reader would wait for ever.
        assert!(std::fs::symlink_metadata(&pipe).unwrap().file_type().is_fifo());
        assert!(reader.join().unwrap().contains("\"rebalance\""));
    }

    #[test]
    fn a_plan_saved_through_a_symlink_writes_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target.json"), dir.path().join("link.json"));
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        save_plan(&link, &plan_file()).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(read_plan(&target).seed, "127.0.0.1:7001");
    }
}
