//! The slot mover: applies a [`MovePlan`] to a live cluster without losing a key or failing a
//! client, and so that an interrupted run can be resumed from what the cluster shows.
//!
//! Per group of slots (from one source to one target), the order the cluster specification
//! gives, which never leaves a key where no node would look for it:
//!
//! 1. `SETSLOT s IMPORTING src` on the target, then `SETSLOT s MIGRATING dst` on the source:
//!    from then on the source answers for keys it still has and sends clients to the target
//!    (`ASK`) for the others, and new keys are made on the target;
//! 2. the keys move with `MIGRATE host port "" 0 timeout KEYS k1 k2 ...`, many keys of one
//!    slot per command (up to `batch` keys and `batch_bytes` bytes, so big values get batches
//!    of their own), several commands pipelined, throttled to the rates asked for;
//! 3. `SETSLOT s NODE dst` on the target first (it then serves the slot), then on the source,
//!    then on every other master.
//!
//! On an error while keys move (`BUSYKEY`: the target already has one of the keys; a key
//! above the size limit; a node that stops answering) the group is rolled back: keys that are
//! on the target only go back to the source, and both close the slot (`STABLE`), source first,
//! so nothing stays open for `fix` to repair. Several slots are opened at once so that one
//! round trip serves many of them; pairs of source and target run concurrently.
//!
//! Resuming: every slot of the plan is classified from what its source and target say
//! ([`classify`]): done, handed over but not yet everywhere (only step 3 runs), still on its
//! source (the whole move runs: steps 1-2 are idempotent), or now served by some other node
//! (skipped, and reported).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use resp::Value;
use serde::Serialize;

use crate::admin::{AdminConn, AdminError, DEFAULT_TIMEOUT};
use crate::ops::{OpsError, topology_of};
use crate::reshard::{MovePlan, RangeMove};
use crate::topology::{Topology, ranges_of};

/// How keys move.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveOptions {
    /// Most keys in one MIGRATE.
    pub batch: usize,
    /// Most bytes (as `MEMORY USAGE` counts them) in one MIGRATE; a bigger key goes alone.
    pub batch_bytes: u64,
    /// Slots opened at once per source and target.
    pub slots_at_once: usize,
    /// MIGRATE commands sent before waiting for their replies.
    pub pipeline: usize,
    pub max_keys_per_sec: Option<u64>,
    pub max_bytes_per_sec: Option<u64>,
    /// A key above this is refused (and its slot rolled back) rather than moved.
    pub max_key_bytes: u64,
    /// MIGRATE's timeout for a small batch; bigger ones get more (see [`migrate_timeout`]).
    pub base_timeout: Duration,
}

impl Default for MoveOptions {
    fn default() -> Self {
        MoveOptions {
            batch: 100,
            batch_bytes: 8 * 1024 * 1024,
            slots_at_once: 64,
            pipeline: 2,
            max_keys_per_sec: None,
            max_bytes_per_sec: None,
            max_key_bytes: 512 * 1024 * 1024,
            base_timeout: Duration::from_secs(10),
        }
    }
}

/// MIGRATE's timeout (the longest the source waits on the target at any moment) for a batch
/// of `bytes`: the base, plus a second per 8 MB, since the target must read and restore them.
pub fn migrate_timeout(base: Duration, bytes: u64) -> Duration {
    base + Duration::from_millis(bytes / (8 * 1024 * 1024) * 1000)
}

/// What happens to one slot of a plan, from what its source and target say now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotState {
    /// The target serves it and neither side has it open.
    Done,
    /// The target serves it but the source (or its open state) has not caught up.
    Finish,
    /// Still served by the source (maybe open, keys partly moved): move it.
    Move,
    /// Served by another node than source and target: left alone.
    Foreign { owner: String },
}

/// Classifies `slot` of `mv` from the source's and the target's own `CLUSTER NODES`.
pub fn classify(slot: u16, mv: &RangeMove, source: &Topology, target: &Topology) -> SlotState {
    let owner = |view: &Topology| {
        view.nodes.iter().find(|n| n.slots.iter().any(|r| r.contains(slot))).map(|n| n.id.clone())
    };
    let open = |view: &Topology| {
        view.myself()
            .is_some_and(|me| me.migrating.iter().chain(&me.importing).any(|o| o.slot == slot))
    };
    let target_owner = owner(target);
    if target_owner.as_deref() == Some(mv.to_id.as_str()) {
        let settled = owner(source).as_deref() == Some(mv.to_id.as_str());
        return if settled && !open(source) && !open(target) {
            SlotState::Done
        } else {
            SlotState::Finish
        };
    }
    match owner(source) {
        Some(id) if id == mv.from_id => SlotState::Move,
        Some(id) => SlotState::Foreign { owner: id },
        None => SlotState::Foreign { owner: "nobody".into() },
    }
}

/// Splits keys (their slots and sizes, keys of a slot next to each other) into MIGRATE
/// batches: one slot each (a cluster node refuses keys of several slots in one command, with
/// CROSSSLOT), at most `max_keys` keys and, unless a single key is bigger, at most `max_bytes`
/// bytes. Returns index ranges into `sizes`.
pub fn split_batches(
    slots: &[u16],
    sizes: &[u64],
    max_keys: usize,
    max_bytes: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start >= max_keys.max(1)
            || (i > start && bytes + size > max_bytes)
            || slots[i] != slots[start];
        if full {
            batches.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

/// How long to wait before sending `next_keys`/`next_bytes` so that the totals since `elapsed`
/// started stay within the rates.
pub fn throttle_wait(
    elapsed: Duration,
    done: (u64, u64),
    next: (u64, u64),
    max_keys_per_sec: Option<u64>,
    max_bytes_per_sec: Option<u64>,
) -> Duration {
    let due = |amount: u64, rate: Option<u64>| match rate {
        Some(rate) if rate > 0 => Duration::from_secs_f64(amount as f64 / rate as f64),
        _ => Duration::ZERO,
    };
    let keys_due = due(done.0 + next.0, max_keys_per_sec);
    let bytes_due = due(done.1 + next.1, max_bytes_per_sec);
    keys_due.max(bytes_due).saturating_sub(elapsed)
}

/// Progress, as it happens; the CLI draws a bar from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Keys { keys: u64, bytes: u64 },
    SlotsDone { count: u64 },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MoveSummary {
    pub slots_moved: u64,
    /// Already done when the run started (a resumed plan).
    pub slots_already_done: u64,
    pub keys: u64,
    pub bytes: u64,
    /// Slots now served by a node the plan did not expect: (slot, owner id).
    pub skipped: Vec<(u16, String)>,
    /// The run was asked to stop and did, between groups.
    pub stopped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(
        "{addr} is now node {actual}, not {expected} as planned: the plan is stale, make a new one"
    )]
    WrongNode { addr: String, expected: String, actual: String },
    #[error(
        "key `{key}` (slot {slot}) exists on both {source_addr} and {target}, so MIGRATE refused it \
         (BUSYKEY); the slot was rolled back. Decide which copy is right, delete the other, \
         then run again"
    )]
    BusyKey { key: String, slot: u16, source_addr: String, target: String },
    #[error(
        "key `{key}` (slot {slot}) is {bytes} bytes, above --max-key-size {limit}: moving it \
         blocks both nodes for its whole transfer. The slot was rolled back; raise \
         --max-key-size to move it anyway"
    )]
    BigKey { key: String, slot: u16, bytes: u64, limit: u64 },
    #[error("MIGRATE from {source_addr} to {target} failed: {message}; the slots were rolled back")]
    Migrate { source_addr: String, target: String, message: String },
    #[error(
        "{first} while moving slots {slots}, and rolling them back failed too ({second}): \
         they are still open; run the same command with --resume PLAN (or `redkeep fix`)"
    )]
    LeftOpen { first: String, second: String, slots: String },
}

/// Counts the keys the plan will move (for the progress bar): `COUNTKEYSINSLOT` on each
/// source, pipelined.
pub async fn count_keys(plan: &MovePlan) -> Result<u64, MoveError> {
    let mut total = 0;
    for mv in &plan.moves {
        let mut conn = AdminConn::connect(&mv.from_addr, DEFAULT_TIMEOUT).await?;
        let slots: Vec<u16> = mv.slot_list().collect();
        for chunk in slots.chunks(1024) {
            let commands: Vec<Vec<String>> = chunk
                .iter()
                .map(|s| vec!["CLUSTER".into(), "COUNTKEYSINSLOT".into(), s.to_string()])
                .collect();
            for reply in conn.pipeline(&commands).await? {
                if let Value::Integer(n) = reply {
                    total += n.max(0) as u64;
                }
            }
        }
    }
    Ok(total)
}

/// Applies `plan`. `masters` are the addresses of every master (told the new owners);
/// `stop` ends the run between groups (Ctrl-C), leaving nothing open.
pub async fn execute(
    plan: &MovePlan,
    masters: &[String],
    options: &MoveOptions,
    progress: ProgressFn,
    stop: Arc<AtomicBool>,
) -> Result<MoveSummary, MoveError> {
    let shared = Arc::new(Shared {
        options: options.clone(),
        progress,
        stop,
        throttle: Mutex::new(Throttle { started: Instant::now(), keys: 0, bytes: 0 }),
        masters: masters.to_vec(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for mv in plan.moves.clone() {
        let shared = shared.clone();
        tasks.spawn(async move {
            let result = run_move(&mv, &shared).await;
            if result.is_err() {
                // The others finish their group and stop, so the error is seen soon.
                shared.stop.store(true, Ordering::SeqCst);
            }
            result
        });
    }
    let mut summary = MoveSummary::default();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("a move task does not panic") {
            Ok(part) => {
                summary.slots_moved += part.slots_moved;
                summary.slots_already_done += part.slots_already_done;
                summary.keys += part.keys;
                summary.bytes += part.bytes;
                summary.skipped.extend(part.skipped);
                summary.stopped |= part.stopped;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

struct Shared {
    options: MoveOptions,
    progress: ProgressFn,
    stop: Arc<AtomicBool>,
    throttle: Mutex<Throttle>,
    masters: Vec<String>,
}

struct Throttle {
    started: Instant,
    keys: u64,
    bytes: u64,
}

impl Shared {
    /// Reserves `keys`/`bytes` against the rates and returns how long to wait first.
    fn reserve(&self, keys: u64, bytes: u64) -> Duration {
        let mut t = self.throttle.lock().expect("throttle lock");
        let wait = throttle_wait(
            t.started.elapsed(),
            (t.keys, t.bytes),
            (keys, bytes),
            self.options.max_keys_per_sec,
            self.options.max_bytes_per_sec,
        );
        t.keys += keys;
        t.bytes += bytes;
        wait
    }
}

/// One source and one target, with a connection to each and to the other masters.
struct Pair<'a> {
    mv: &'a RangeMove,
    source: AdminConn,
    target: AdminConn,
    others: Vec<AdminConn>,
    shared: &'a Shared,
    summary: MoveSummary,
}

async fn run_move(mv: &RangeMove, shared: &Shared) -> Result<MoveSummary, MoveError> {
    let source = connect_checked(&mv.from_addr, &mv.from_id).await?;
    let target = connect_checked(&mv.to_addr, &mv.to_id).await?;
    let mut others = Vec::new();
    for addr in shared.masters.iter().filter(|a| **a != mv.from_addr && **a != mv.to_addr) {
        others.push(AdminConn::connect(addr, DEFAULT_TIMEOUT).await?);
    }
    // A node that does not see every slot served refuses MIGRATE with CLUSTERDOWN.
    let sides = [mv.from_addr.clone(), mv.to_addr.clone()];
    crate::ops::wait_cluster_ok(&sides, Duration::from_secs(30)).await?;
    let mut pair = Pair { mv, source, target, others, shared, summary: MoveSummary::default() };
    let source_view = topology_of(&mv.from_addr).await?;
    let target_view = topology_of(&mv.to_addr).await?;
    let mut to_move = Vec::new();
    let mut to_finish = Vec::new();
    for slot in mv.slot_list() {
        match classify(slot, mv, &source_view, &target_view) {
            SlotState::Done => pair.summary.slots_already_done += 1,
            SlotState::Finish => to_finish.push(slot),
            SlotState::Move => to_move.push(slot),
            SlotState::Foreign { owner } => pair.summary.skipped.push((slot, owner)),
        }
    }
    if !to_finish.is_empty() {
        pair.assign(&to_finish).await?;
        pair.summary.slots_moved += to_finish.len() as u64;
    }
    for group in to_move.chunks(shared.options.slots_at_once.max(1)) {
        if shared.stop.load(Ordering::SeqCst) {
            pair.summary.stopped = true;
            break;
        }
        pair.move_group(group).await?;
        pair.summary.slots_moved += group.len() as u64;
        (shared.progress)(Progress::SlotsDone { count: group.len() as u64 });
    }
    Ok(pair.summary)
}

/// Connects to `addr` and checks it is still node `id`.
async fn connect_checked(addr: &str, id: &str) -> Result<AdminConn, MoveError> {
    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
    let actual = conn.query_text(&["CLUSTER", "MYID"]).await?.trim().to_string();
    if actual != id {
        return Err(MoveError::WrongNode {
            addr: addr.to_string(),
            expected: id.to_string(),
            actual,
        });
    }
    Ok(conn)
}

fn setslot(slots: &[u16], state: &str, id: Option<&str>) -> Vec<Vec<String>> {
    slots
        .iter()
        .map(|s| {
            let mut args = vec!["CLUSTER".into(), "SETSLOT".into(), s.to_string(), state.into()];
            args.extend(id.map(String::from));
            args
        })
        .collect()
}

/// The first error reply of a pipeline, as an error naming the node.
fn first_error(conn: &AdminConn, command: &str, replies: &[Value]) -> Result<(), AdminError> {
    match replies.iter().find_map(|r| match r {
        Value::Error(message) => Some(String::from_utf8_lossy(message).into_owned()),
        _ => None,
    }) {
        Some(message) => Err(AdminError::Redis {
            addr: conn.addr().to_string(),
            command: command.to_string(),
            message,
        }),
        None => Ok(()),
    }
}

fn key_list(reply: &Value) -> Vec<Vec<u8>> {
    reply.as_list().unwrap_or(&[]).iter().filter_map(|k| k.as_bytes().map(<[u8]>::to_vec)).collect()
}

impl Pair<'_> {
    async fn move_group(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        let moved = async {
            self.open(slots).await?;
            self.move_keys(slots).await
        };
        if let Err(first) = moved.await {
            return match self.roll_back(slots).await {
                Ok(()) => Err(first),
                Err(second) => Err(MoveError::LeftOpen {
                    first: first.to_string(),
                    second: second.to_string(),
                    slots: crate::topology::format_ranges(&ranges_of(slots.iter().copied())),
                }),
            };
        }
        self.assign(slots).await
    }

    /// Step 1: importing on the target first, so that a client the source sends there (`ASK`)
    /// is always accepted.
    async fn open(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        let replies =
            self.target.pipeline(&setslot(slots, "IMPORTING", Some(&self.mv.from_id))).await?;
        first_error(&self.target, "CLUSTER SETSLOT IMPORTING", &replies)?;
        let replies =
            self.source.pipeline(&setslot(slots, "MIGRATING", Some(&self.mv.to_id))).await?;
        first_error(&self.source, "CLUSTER SETSLOT MIGRATING", &replies)?;
        Ok(())
    }

    /// Step 2. A slot whose listing came back shorter than asked is empty afterwards: while
    /// it is migrating, the source makes no new keys in it.
    async fn move_keys(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        let batch = self.shared.options.batch.max(1);
        let mut pending: Vec<u16> = slots.to_vec();
        while !pending.is_empty() {
            let listing: Vec<Vec<String>> = pending
                .iter()
                .map(|s| {
                    vec!["CLUSTER".into(), "GETKEYSINSLOT".into(), s.to_string(), batch.to_string()]
                })
                .collect();
            let replies = self.source.pipeline(&listing).await?;
            first_error(&self.source, "CLUSTER GETKEYSINSLOT", &replies)?;
            let mut keys: Vec<(u16, Vec<u8>)> = Vec::new();
            let mut again = Vec::new();
            for (&slot, reply) in pending.iter().zip(&replies) {
                let listed = key_list(reply);
                if listed.len() >= batch {
                    again.push(slot);
                }
                keys.extend(listed.into_iter().map(|k| (slot, k)));
            }
            if !keys.is_empty() {
                self.migrate(&keys).await?;
            }
            pending = again;
        }
        Ok(())
    }

    async fn migrate(&mut self, keys: &[(u16, Vec<u8>)]) -> Result<(), MoveError> {
        let sizes = self.sizes(keys).await?;
        let limit = self.shared.options.max_key_bytes;
        if let Some(i) = sizes.iter().position(|&s| s > limit) {
            return Err(MoveError::BigKey {
                key: String::from_utf8_lossy(&keys[i].1).into_owned(),
                slot: keys[i].0,
                bytes: sizes[i],
                limit,
            });
        }
        let options = &self.shared.options;
        let slots: Vec<u16> = keys.iter().map(|(slot, _)| *slot).collect();
        let batches = split_batches(&slots, &sizes, options.batch, options.batch_bytes);
        for round in batches.chunks(options.pipeline.max(1)) {
            let round_keys: u64 = round.iter().map(|b| b.len() as u64).sum();
            let round_bytes: u64 = round.iter().map(|b| sizes[b.clone()].iter().sum::<u64>()).sum();
            let wait = self.shared.reserve(round_keys, round_bytes);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let mut total_timeout = DEFAULT_TIMEOUT;
            let commands: Vec<Vec<Vec<u8>>> = round
                .iter()
                .map(|b| {
                    let timeout =
                        migrate_timeout(options.base_timeout, sizes[b.clone()].iter().sum());
                    total_timeout += timeout * 2;
                    self.migrate_command(&keys[b.clone()], timeout)
                })
                .collect();
            self.source.set_timeout(total_timeout);
            let replies = self.source.pipeline(&commands).await;
            self.source.set_timeout(DEFAULT_TIMEOUT);
            self.check_migrated(&replies?, round, keys).await?;
            (self.shared.progress)(Progress::Keys { keys: round_keys, bytes: round_bytes });
            self.summary.keys += round_keys;
            self.summary.bytes += round_bytes;
        }
        Ok(())
    }

    /// `MEMORY USAGE` of each key, pipelined; a key gone meanwhile counts 0.
    async fn sizes(&mut self, keys: &[(u16, Vec<u8>)]) -> Result<Vec<u64>, MoveError> {
        let commands: Vec<Vec<&[u8]>> =
            keys.iter().map(|(_, k)| vec![&b"MEMORY"[..], b"USAGE", k]).collect();
        let replies = self.source.pipeline(&commands).await?;
        Ok(replies
            .iter()
            .map(|r| match r {
                Value::Integer(n) => (*n).max(0) as u64,
                _ => 0,
            })
            .collect())
    }

    fn migrate_command(&self, keys: &[(u16, Vec<u8>)], timeout: Duration) -> Vec<Vec<u8>> {
        let (host, port) =
            self.mv.to_addr.rsplit_once(':').unwrap_or((self.mv.to_addr.as_str(), ""));
        let mut args: Vec<Vec<u8>> = vec![
            b"MIGRATE".to_vec(),
            host.as_bytes().to_vec(),
            port.as_bytes().to_vec(),
            Vec::new(),
            b"0".to_vec(),
            timeout.as_millis().to_string().into_bytes(),
            b"KEYS".to_vec(),
        ];
        args.extend(keys.iter().map(|(_, k)| k.clone()));
        args
    }

    /// `OK`, or `NOKEY` (every key of the batch gone meanwhile) are fine; `BUSYKEY` names the
    /// key both sides have; anything else fails the group.
    async fn check_migrated(
        &mut self,
        replies: &[Value],
        round: &[std::ops::Range<usize>],
        keys: &[(u16, Vec<u8>)],
    ) -> Result<(), MoveError> {
        for (reply, batch) in replies.iter().zip(round) {
            let Value::Error(message) = reply else { continue };
            let message = String::from_utf8_lossy(message).into_owned();
            if message.starts_with("NOKEY") {
                continue;
            }
            // The source passes the target's error on: "ERR Target instance replied with
            // error: BUSYKEY ...".
            if message.contains("BUSYKEY") {
                let (slot, key) = self.busy_key(&keys[batch.clone()]).await?;
                return Err(MoveError::BusyKey {
                    key,
                    slot,
                    source_addr: self.mv.from_addr.clone(),
                    target: self.mv.to_addr.clone(),
                });
            }
            return Err(MoveError::Migrate {
                source_addr: self.mv.from_addr.clone(),
                target: self.mv.to_addr.clone(),
                message,
            });
        }
        Ok(())
    }

    /// The first key of `keys` that both the source and the target still have.
    async fn busy_key(&mut self, keys: &[(u16, Vec<u8>)]) -> Result<(u16, String), MoveError> {
        let exists: Vec<Vec<&[u8]>> = keys.iter().map(|(_, k)| vec![&b"EXISTS"[..], k]).collect();
        let on_source = self.source.pipeline(&exists).await?;
        let on_target = self.target.pipeline(&exists).await?;
        let both = keys
            .iter()
            .zip(on_source.iter().zip(&on_target))
            .find(|(_, (s, t))| matches!((s, t), (Value::Integer(1), Value::Integer(1))));
        Ok(both
            .or(keys.first().map(|k| (k, (&Value::Null, &Value::Null))))
            .map(|((slot, key), _)| (*slot, String::from_utf8_lossy(key).into_owned()))
            .unwrap_or_default())
    }

    /// Step 3: the target first (it serves the slot from then on, and bumps its epoch so its
    /// claim wins in gossip), then the source, then the other masters.
    async fn assign(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        let commands = setslot(slots, "NODE", Some(&self.mv.to_id));
        let replies = self.target.pipeline(&commands).await?;
        first_error(&self.target, "CLUSTER SETSLOT NODE", &replies)?;
        let replies = self.source.pipeline(&commands).await?;
        // A source that has just lost its last slot (here or in a concurrent group) has been
        // turned into a replica of the node that took it, and refuses SETSLOT: it knows.
        let became_replica = |r: &Value| matches!(r, Value::Error(m) if m.starts_with(b"ERR Please use SETSLOT only with masters"));
        let replies: Vec<Value> = replies.into_iter().filter(|r| !became_replica(r)).collect();
        first_error(&self.source, "CLUSTER SETSLOT NODE", &replies)?;
        for other in &mut self.others {
            // Gossip tells a master that misses this; an error here leaves nothing open.
            if let Err(e) = other.pipeline(&commands).await {
                tracing::warn!("telling {} the new owner of slots failed: {e}", other.addr());
            }
        }
        Ok(())
    }

    /// Undoes an unfinished group: keys only the target has go back to the source, then the
    /// source closes the slots (no more `ASK` to the target), keys made on the target in the
    /// meantime go back too, and the target closes them.
    async fn roll_back(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        self.move_back(slots).await?;
        let replies = self.source.pipeline(&setslot(slots, "STABLE", None)).await?;
        first_error(&self.source, "CLUSTER SETSLOT STABLE", &replies)?;
        self.move_back(slots).await?;
        let replies = self.target.pipeline(&setslot(slots, "STABLE", None)).await?;
        first_error(&self.target, "CLUSTER SETSLOT STABLE", &replies)?;
        Ok(())
    }

    async fn move_back(&mut self, slots: &[u16]) -> Result<(), MoveError> {
        let (host, port) =
            self.mv.from_addr.rsplit_once(':').unwrap_or((self.mv.from_addr.as_str(), ""));
        for &slot in slots {
            let count =
                self.target.query_int(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]).await?;
            if count <= 0 {
                continue;
            }
            let listed = self
                .target
                .query(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), &count.to_string()])
                .await?;
            let keys = key_list(&listed);
            let exists: Vec<Vec<&[u8]>> = keys.iter().map(|k| vec![&b"EXISTS"[..], k]).collect();
            let on_source = self.source.pipeline(&exists).await?;
            // A key both have was on the target before the move (the BUSYKEY one): it stays.
            let only_target: Vec<Vec<u8>> = keys
                .into_iter()
                .zip(&on_source)
                .filter(|(_, e)| matches!(e, Value::Integer(0)))
                .map(|(k, _)| k)
                .collect();
            for chunk in only_target.chunks(self.shared.options.batch.max(1)) {
                let mut args: Vec<Vec<u8>> = ["MIGRATE", host, port, "", "0", "60000", "KEYS"]
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect();
                args.extend(chunk.iter().cloned());
                self.target.set_timeout(Duration::from_secs(120));
                let reply = self.target.query(&args).await;
                self.target.set_timeout(DEFAULT_TIMEOUT);
                match reply {
                    Ok(_) => {}
                    Err(AdminError::Redis { message, .. }) if message.starts_with("NOKEY") => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::parse_cluster_nodes;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn view(me: &str, a_slots: &str, b_slots: &str, c_slots: &str) -> Topology {
        let flag = |id: &str| if id == me { "myself,master" } else { "master" };
        let text = format!(
            "{A} 127.0.0.1:7001@17001 {} - 0 0 1 connected {a_slots}\n\
             {B} 127.0.0.1:7002@17002 {} - 0 0 2 connected {b_slots}\n\
             {C} 127.0.0.1:7003@17003 {} - 0 0 3 connected {c_slots}\n",
            flag(A),
            flag(B),
            flag(C)
        );
        parse_cluster_nodes(&text).unwrap()
    }

    fn a_to_b() -> RangeMove {
        RangeMove {
            from_id: A.into(),
            from_addr: "127.0.0.1:7001".into(),
            to_id: B.into(),
            to_addr: "127.0.0.1:7002".into(),
            slots: vec![crate::topology::SlotRange { start: 5, end: 5 }],
        }
    }

    #[test]
    fn slot_states_from_both_sides() {
        let mv = a_to_b();
        let before = (view(A, "0-10", "11-20", "21-30"), view(B, "0-10", "11-20", "21-30"));
        assert_eq!(classify(5, &mv, &before.0, &before.1), SlotState::Move);
        let open = (
            view(A, &format!("0-10 [5->-{B}]"), "11-20", "21-30"),
            view(B, "0-10", &format!("11-20 [5-<-{A}]"), "21-30"),
        );
        assert_eq!(classify(5, &mv, &open.0, &open.1), SlotState::Move);
        // The target took it; the source still has it migrating.
        let half = (
            view(A, &format!("0-10 [5->-{B}]"), "11-20", "21-30"),
            view(B, "0-4 6-10", "5 11-20", "21-30"),
        );
        assert_eq!(classify(5, &mv, &half.0, &half.1), SlotState::Finish);
        let done =
            (view(A, "0-4 6-10", "5 11-20", "21-30"), view(B, "0-4 6-10", "5 11-20", "21-30"));
        assert_eq!(classify(5, &mv, &done.0, &done.1), SlotState::Done);
        let elsewhere =
            (view(A, "0-4 6-10", "11-20", "5 21-30"), view(B, "0-4 6-10", "11-20", "5 21-30"));
        assert_eq!(
            classify(5, &mv, &elsewhere.0, &elsewhere.1),
            SlotState::Foreign { owner: C.into() }
        );
    }

    #[test]
    fn batches_bound_keys_and_bytes_and_a_big_key_goes_alone() {
        assert_eq!(split_batches(&[0; 5], &[1; 5], 2, 100), vec![0..2, 2..4, 4..5]);
        let sizes = [40, 40, 40, 500, 10];
        assert_eq!(split_batches(&[0; 5], &sizes, 10, 100), vec![0..2, 2..3, 3..4, 4..5]);
        assert!(split_batches(&[], &[], 10, 100).is_empty());
        // Never two slots in one MIGRATE.
        assert_eq!(split_batches(&[1, 1, 2, 2, 2], &[1; 5], 10, 100), vec![0..2, 2..5]);
    }

    #[test]
    fn throttle_waits_for_the_slower_rate() {
        let s = Duration::from_secs;
        assert_eq!(throttle_wait(s(0), (0, 0), (100, 0), None, None), Duration::ZERO);
        assert_eq!(throttle_wait(s(1), (100, 0), (100, 0), Some(100), None), s(1));
        assert_eq!(throttle_wait(s(1), (100, 1000), (0, 3000), Some(100), Some(1000)), s(3));
        assert_eq!(throttle_wait(s(5), (100, 0), (100, 0), Some(100), None), Duration::ZERO);
    }

    #[test]
    fn big_batches_get_longer_timeouts() {
        let base = Duration::from_secs(10);
        assert_eq!(migrate_timeout(base, 1000), base);
        assert_eq!(migrate_timeout(base, 50 * 1024 * 1024), Duration::from_secs(16));
    }
}
