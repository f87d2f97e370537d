//! Operations over the network: they gather state from nodes with [`AdminConn`] and apply
//! what the pure planners decided. Progress is reported through a callback so that the CLI
//! can print it and tests can stay quiet.

use std::time::{Duration, Instant};

use crate::admin::{AdminConn, AdminError, DEFAULT_TIMEOUT, info_field, parse_info};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error(
        "{addr} is not in cluster mode (cluster-enabled is no): start it with cluster-enabled yes"
    )]
    NotClusterMode { addr: String },
    #[error(
        "{addr} is not empty ({why}): redkeep only forms a cluster from empty nodes; \
         use `redkeep check` or `redkeep fix` on an existing cluster"
    )]
    NotEmpty { addr: String, why: String },
    #[error("the cluster did not become healthy within {timeout:?}: {last_problem}")]
    NotHealthy { timeout: Duration, last_problem: String },
    #[error("{0}")]
    Plan(String),
    #[error("{addr}: {source}")]
    Topology { addr: String, source: crate::topology::ParseError },
}

/// Where a node stands before a cluster is formed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub addr: String,
    pub cluster_enabled: bool,
    pub known_nodes: u64,
    pub slots_assigned: u64,
    pub keys: u64,
}

impl NodeState {
    /// Why the node cannot join a new cluster, if it cannot.
    pub fn unusable_for_create(&self) -> Option<OpsError> {
        let addr = self.addr.clone();
        if !self.cluster_enabled {
            return Some(OpsError::NotClusterMode { addr });
        }
        let why = if self.known_nodes > 1 {
            format!("it already knows {} nodes", self.known_nodes)
        } else if self.slots_assigned > 0 {
            format!("it already serves {} slots", self.slots_assigned)
        } else if self.keys > 0 {
            format!("it holds {} keys", self.keys)
        } else {
            return None;
        };
        Some(OpsError::NotEmpty { addr, why })
    }

    /// A node that was started as a cluster node but never joined one.
    pub fn is_blank(&self) -> bool {
        self.unusable_for_create().is_none()
    }
}

/// Reads a node's [`NodeState`].
pub async fn node_state(addr: &str) -> Result<NodeState, OpsError> {
    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
    let cluster = conn.info("cluster").await?;
    let cluster_enabled = info_field(&cluster, "cluster_enabled") == Some("1");
    if !cluster_enabled {
        let addr = addr.to_string();
        return Ok(NodeState { addr, cluster_enabled, known_nodes: 0, slots_assigned: 0, keys: 0 });
    }
    let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?);
    let number = |field: &str| info_field(&info, field).and_then(|v| v.parse().ok()).unwrap_or(0);
    let keys = conn.query_int(&["DBSIZE"]).await?.max(0) as u64;
    Ok(NodeState {
        addr: addr.to_string(),
        cluster_enabled,
        known_nodes: number("cluster_known_nodes"),
        slots_assigned: number("cluster_slots_assigned"),
        keys,
    })
}

/// What one node says about the cluster's health; `None` when it is healthy.
async fn health_problem(addr: &str, expected_nodes: u64) -> Option<String> {
    let mut conn = match AdminConn::connect(addr, DEFAULT_TIMEOUT).await {
        Ok(conn) => conn,
        Err(e) => return Some(e.to_string()),
    };
    let info = match conn.query_text(&["CLUSTER", "INFO"]).await {
        Ok(text) => parse_info(&text),
        Err(e) => return Some(e.to_string()),
    };
    let state = info_field(&info, "cluster_state").unwrap_or("?");
    let known: u64 =
        info_field(&info, "cluster_known_nodes").and_then(|v| v.parse().ok()).unwrap_or(0);
    if state != "ok" {
        return Some(format!("{addr} reports cluster_state:{state}"));
    }
    if known != expected_nodes {
        return Some(format!("{addr} knows {known} of {expected_nodes} nodes"));
    }
    let replication = match conn.info("replication").await {
        Ok(info) => info,
        Err(e) => return Some(e.to_string()),
    };
    let is_replica = info_field(&replication, "role") == Some("slave");
    if is_replica && info_field(&replication, "master_link_status") != Some("up") {
        return Some(format!("{addr} is a replica whose link to its master is not up yet"));
    }
    None
}

/// Why the nodes do not agree on which master serves which slots yet (gossip still spreading
/// a change), if they do not.
async fn disagreement_problem(addrs: &[String]) -> Option<String> {
    let mut first: Option<(String, &str)> = None;
    for addr in addrs {
        let topology = match topology_of(addr).await {
            Ok(topology) => topology,
            Err(e) => return Some(e.to_string()),
        };
        let signature = crate::check::signature(&topology);
        match &first {
            None => first = Some((signature, addr)),
            Some((reference, reference_addr)) if *reference != signature => {
                return Some(format!(
                    "{addr} does not agree with {reference_addr} on the slot configuration yet"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

/// Waits until every node reports `cluster_state:ok`, knows all `addrs.len()` nodes, every
/// replica's link to its master is up, and all nodes agree on the slot configuration.
pub async fn wait_healthy(addrs: &[String], timeout: Duration) -> Result<(), OpsError> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut last_problem = None;
        for addr in addrs {
            if let Some(problem) = health_problem(addr, addrs.len() as u64).await {
                last_problem = Some(problem);
                break;
            }
        }
        if last_problem.is_none() {
            last_problem = disagreement_problem(addrs).await;
        }
        let Some(last_problem) = last_problem else { return Ok(()) };
        if Instant::now() > deadline {
            return Err(OpsError::NotHealthy { timeout, last_problem });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node of `addrs` reports `cluster_state:ok`.
pub(crate) async fn wait_cluster_ok(addrs: &[String], timeout: Duration) -> Result<(), OpsError> {
    let deadline = Instant::now() + timeout;
    for addr in addrs {
        let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
        loop {
            let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?);
            let state = info_field(&info, "cluster_state").unwrap_or("?").to_string();
            if state == "ok" {
                break;
            }
            if Instant::now() > deadline {
                let last_problem = format!(
                    "{addr} reports cluster_state:{state}, so keys cannot be moved; \
                     fix the uncovered slots first"
                );
                return Err(OpsError::NotHealthy { timeout, last_problem });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// What [`create`] applies: every master with its slot ranges (inclusive), and every replica
/// with the master it follows. Built from a [`crate::plan::CreatePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Formation {
    pub masters: Vec<(String, Vec<(u16, u16)>)>,
    pub replicas: Vec<(String, String)>,
}

impl Formation {
    fn all_addrs(&self) -> Vec<String> {
        let masters = self.masters.iter().map(|(addr, _)| addr.clone());
        masters.chain(self.replicas.iter().map(|(addr, _)| addr.clone())).collect()
    }
}

/// Forms a new cluster from empty nodes, as `redis-cli --cluster create` does: assign slots,
/// give each node its own config epoch, introduce every node to the first one, wait until
/// they all know each other, attach the replicas, and wait until the cluster is healthy.
/// Refuses (before changing anything) when a node is not in cluster mode or not empty.
pub async fn create(
    formation: &Formation,
    progress: &mut dyn FnMut(&str),
    timeout: Duration,
) -> Result<(), OpsError> {
    let addrs = formation.all_addrs();
    for addr in &addrs {
        if let Some(problem) = node_state(addr).await?.unusable_for_create() {
            return Err(problem);
        }
    }
    let mut conns = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        conns.push(AdminConn::connect(addr, DEFAULT_TIMEOUT).await?);
    }
    progress("Assigning slots to the masters");
    for ((_, ranges), conn) in formation.masters.iter().zip(&mut conns) {
        let mut args = vec!["CLUSTER".to_string(), "ADDSLOTSRANGE".to_string()];
        args.extend(ranges.iter().flat_map(|(start, end)| [start.to_string(), end.to_string()]));
        conn.query_ok(&args).await?;
    }
    progress("Giving every node its own config epoch");
    for (epoch, conn) in conns.iter_mut().enumerate() {
        conn.query_ok(&["CLUSTER", "SET-CONFIG-EPOCH", &(epoch + 1).to_string()]).await?;
    }
    progress("Introducing the nodes to each other (CLUSTER MEET)");
    let (first_host, first_port) = split_addr(&addrs[0])?;
    for conn in conns.iter_mut().skip(1) {
        conn.query_ok(&["CLUSTER", "MEET", first_host, first_port]).await?;
    }
    wait_all_known(&mut conns, timeout).await?;
    progress("Attaching the replicas to their masters");
    for (replica, master) in &formation.replicas {
        attach_planned_replica(&mut conns, &addrs, replica, master, timeout).await?;
    }
    progress("Waiting for every node to agree and report cluster_state:ok");
    wait_healthy(&addrs, timeout).await
}

fn split_addr(addr: &str) -> Result<(&str, &str), OpsError> {
    addr.rsplit_once(':').ok_or_else(|| OpsError::Plan(format!("{addr} is not HOST:PORT")))
}

/// Waits until every node lists every other node, none of them still in handshake.
async fn wait_all_known(conns: &mut [AdminConn], timeout: Duration) -> Result<(), OpsError> {
    let deadline = Instant::now() + timeout;
    let expected = conns.len();
    loop {
        let mut last_problem = None;
        for conn in conns.iter_mut() {
            let nodes = conn.query_text(&["CLUSTER", "NODES"]).await?;
            let known = nodes.lines().filter(|l| !l.trim().is_empty()).count();
            if known != expected || nodes.contains("handshake") {
                last_problem = Some(format!("{} knows {known} of {expected} nodes", conn.addr()));
                break;
            }
        }
        let Some(last_problem) = last_problem else { return Ok(()) };
        if Instant::now() > deadline {
            return Err(OpsError::NotHealthy { timeout, last_problem });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `CLUSTER REPLICATE`, retried while the replica has not yet learnt its master's id.
async fn attach_planned_replica(
    conns: &mut [AdminConn],
    addrs: &[String],
    replica: &str,
    master: &str,
    timeout: Duration,
) -> Result<(), OpsError> {
    let index = |addr: &str| {
        addrs
            .iter()
            .position(|a| a == addr)
            .ok_or_else(|| OpsError::Plan(format!("{addr} is not in the plan")))
    };
    let master_id = conns[index(master)?].query_text(&["CLUSTER", "MYID"]).await?;
    replicate_with_retry(&mut conns[index(replica)?], master_id.trim(), timeout).await
}

impl From<&crate::plan::CreatePlan> for Formation {
    fn from(plan: &crate::plan::CreatePlan) -> Formation {
        Formation {
            masters: plan
                .masters
                .iter()
                .map(|m| (m.addr.to_string(), vec![(m.slots.start, m.slots.end)]))
                .collect(),
            replicas: plan
                .masters
                .iter()
                .flat_map(|m| m.replicas.iter().map(|r| (r.to_string(), m.addr.to_string())))
                .collect(),
        }
    }
}

impl Formation {
    /// Plans `addrs` (`host:port`) with `replicas` per master, as `redis-cli --cluster create`.
    pub fn plan(addrs: &[String], replicas: usize) -> Result<Formation, crate::plan::PlanError> {
        let nodes: Vec<crate::plan::NodeAddr> =
            addrs.iter().map(|a| crate::plan::NodeAddr::parse(a)).collect::<Result<_, _>>()?;
        Ok(Formation::from(&crate::plan::plan_create(&nodes, replicas)?))
    }
}

/// The topology as `addr` sees it (`CLUSTER NODES`).
pub async fn topology_of(addr: &str) -> Result<crate::topology::Topology, OpsError> {
    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
    let text = conn.query_text(&["CLUSTER", "NODES"]).await?;
    crate::topology::parse_cluster_nodes(&text)
        .map_err(|source| OpsError::Topology { addr: addr.to_string(), source })
}

/// The addresses of the nodes `seed` knows of (itself included), skipping nodes without an
/// address or still in handshake.
async fn known_addrs(seed: &str) -> Result<(crate::topology::Topology, Vec<String>), OpsError> {
    let topology = topology_of(seed).await?;
    let addrs = topology
        .nodes
        .iter()
        .filter(|n| !n.flags.noaddr && !n.flags.handshake)
        .map(|n| n.addr())
        .collect();
    Ok((topology, addrs))
}

/// Every node's own view, for [`crate::check::check`].
pub async fn gather_views(seed: &str) -> Result<Vec<crate::check::NodeView>, OpsError> {
    let (_, mut addrs) = known_addrs(seed).await?;
    // The seed first: its view is the reference the report describes.
    addrs.sort_by_key(|a| a != seed);
    let mut views = Vec::with_capacity(addrs.len());
    for addr in addrs {
        views.push(view_of(&addr).await);
    }
    Ok(views)
}

async fn view_of(addr: &str) -> crate::check::NodeView {
    let read = async {
        let mut conn = AdminConn::connect(addr, QUICK_TIMEOUT).await?;
        let text = conn.query_text(&["CLUSTER", "NODES"]).await?;
        let topology = crate::topology::parse_cluster_nodes(&text)
            .map_err(|source| OpsError::Topology { addr: addr.to_string(), source })?;
        let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?);
        let state = info_field(&info, "cluster_state").map(String::from);
        let keys = conn.query_int(&["DBSIZE"]).await?.max(0) as u64;
        Ok::<_, OpsError>((topology, state, keys))
    };
    match read.await {
        Ok((topology, state, keys)) => crate::check::NodeView {
            addr: addr.to_string(),
            topology: Ok(topology),
            state,
            keys: Some(keys),
        },
        Err(e) => crate::check::NodeView {
            addr: addr.to_string(),
            topology: Err(e.to_string()),
            state: None,
            keys: None,
        },
    }
}

/// A short bound for nodes that may be down: a status or check should not hang on them.
const QUICK_TIMEOUT: Duration = Duration::from_secs(2);

/// The status report: the seed's view of the cluster, and what every node says of itself.
pub async fn gather_status(seed: &str) -> Result<crate::status::StatusReport, OpsError> {
    use crate::status::{NodeStatus, SelfReport, StatusReport, Summary};
    let (topology, _) = known_addrs(seed).await?;
    let mut conn = AdminConn::connect(seed, DEFAULT_TIMEOUT).await?;
    let summary = Summary::from_cluster_info(
        seed,
        &parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?),
    );
    let mut nodes = Vec::with_capacity(topology.nodes.len());
    for node in &topology.nodes {
        let addr = node.addr();
        let own = match AdminConn::connect(&addr, QUICK_TIMEOUT).await {
            Ok(mut conn) => conn
                .query_text(&["INFO"])
                .await
                .ok()
                .map(|text| SelfReport::from_info(&parse_info(&text))),
            Err(_) => None,
        };
        let master_addr =
            node.master_id.as_deref().and_then(|id| topology.by_id(id)).map(|m| m.addr());
        nodes.push(NodeStatus {
            id: node.id.clone(),
            addr,
            role: node.role.as_str().to_string(),
            master_addr,
            slots: crate::topology::format_ranges(&node.slots),
            slot_count: node.slot_count(),
            flags: node.flags.names().into_iter().map(String::from).collect(),
            link: node.link.as_str().to_string(),
            reachable: own.is_some(),
            used_memory: own.as_ref().and_then(|o| o.used_memory),
            ops_per_sec: own.as_ref().and_then(|o| o.ops_per_sec),
            repl_offset: own.as_ref().and_then(|o| o.repl_offset),
            repl_lag: None,
        });
    }
    nodes.sort_by(|a, b| a.addr.cmp(&b.addr));
    crate::status::fill_lag(&mut nodes);
    Ok(StatusReport { summary, nodes })
}

/// Everything [`crate::fix::plan_fix`] needs: every node's view, and for each slot to inspect,
/// how many keys each reachable master holds in it.
pub async fn gather_fix_input(
    seed: &str,
) -> Result<(Vec<crate::check::NodeView>, crate::fix::KeyCounts), OpsError> {
    let views = gather_views(seed).await?;
    let slots = crate::fix::slots_to_inspect(&views);
    let mut keys = crate::fix::KeyCounts::new();
    let Some(reference) = views.iter().find_map(|v| v.topology.as_ref().ok()) else {
        return Ok((views, keys));
    };
    for master in reference.masters().filter(|m| !m.is_failing()) {
        let addr = master.addr();
        let mut conn = AdminConn::connect(&addr, DEFAULT_TIMEOUT).await?;
        for &slot in &slots {
            let count = conn.query_int(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]).await?;
            keys.insert((slot, addr.clone()), count.max(0) as u64);
        }
    }
    Ok((views, keys))
}

/// Applies a fix plan, action by action, reporting each; returns how many actions could not
/// be applied (the `Unfixable` ones).
pub async fn apply_fix(
    plan: &crate::fix::FixPlan,
    views: &[crate::check::NodeView],
    progress: &mut dyn FnMut(&str),
) -> Result<usize, OpsError> {
    use crate::fix::FixAction;
    let reference = views
        .iter()
        .find_map(|v| v.topology.as_ref().ok())
        .ok_or_else(|| OpsError::Plan("no node could be read".into()))?;
    let id_of = |addr: &str| {
        reference
            .by_addr(addr)
            .map(|n| n.id.clone())
            .ok_or_else(|| OpsError::Plan(format!("{addr} is not in the cluster")))
    };
    let masters: Vec<String> =
        reference.masters().filter(|m| !m.is_failing()).map(|m| m.addr()).collect();
    let mut unfixable = 0;
    for action in &plan.actions {
        progress(&action.to_string());
        match action {
            FixAction::AddSlots { addr, ranges } => {
                let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
                let mut args = vec!["CLUSTER".to_string(), "ADDSLOTSRANGE".to_string()];
                args.extend(ranges.iter().flat_map(|r| [r.start.to_string(), r.end.to_string()]));
                conn.query_ok(&args).await?;
                // A fresh epoch makes this node's claim win when the others hear of it.
                conn.query(&["CLUSTER", "BUMPEPOCH"]).await?;
            }
            FixAction::MoveSlot { slot, from, to } => {
                // MIGRATE is refused with CLUSTERDOWN until both sides see every slot served,
                // which takes a gossip round after slots were just assigned.
                let sides: Vec<String> = from.iter().chain([to]).cloned().collect();
                wait_cluster_ok(&sides, Duration::from_secs(10)).await?;
                for source in from {
                    migrate_keys(source, to, *slot).await?;
                }
                let owner_id = id_of(to)?;
                let order = std::iter::once(to).chain(masters.iter().filter(|m| *m != to));
                for addr in order {
                    let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
                    conn.query_ok(&["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &owner_id])
                        .await?;
                }
            }
            FixAction::SetStable { addr, slot } => {
                let mut conn = AdminConn::connect(addr, DEFAULT_TIMEOUT).await?;
                conn.query_ok(&["CLUSTER", "SETSLOT", &slot.to_string(), "STABLE"]).await?;
            }
            FixAction::Unfixable { .. } => unfixable += 1,
        }
    }
    Ok(unfixable)
}

/// Moves every key of `slot` from `source` to `target` with MIGRATE, 100 at a time. Never
/// REPLACE: a key present on both sides is an error for a human to decide.
async fn migrate_keys(source: &str, target: &str, slot: u16) -> Result<(), OpsError> {
    let (host, port) = split_addr(target)?;
    let mut conn = AdminConn::connect(source, DEFAULT_TIMEOUT).await?;
    loop {
        let keys = conn.query(&["CLUSTER", "GETKEYSINSLOT", &slot.to_string(), "100"]).await?;
        let keys: Vec<Vec<u8>> = keys
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter_map(|k| k.as_bytes().map(<[u8]>::to_vec))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let mut args: Vec<Vec<u8>> = ["MIGRATE", host, port, "", "0", "10000", "KEYS"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        args.extend(keys);
        conn.query(&args).await?;
    }
}

// ---------------------------------------------------------------------------------------------
// Membership: add a node, attach a replica, remove a node, change the node timeout.

/// What a node added with [`add_node`] becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewRole {
    /// An empty master: it gets slots from a rebalance (`--use-empty-masters`) or a reshard.
    Master,
    /// A replica of the master with this id (or unique id prefix).
    ReplicaOf(String),
}

/// Adds the blank node `new` to the cluster `seed` belongs to, as `redis-cli --cluster
/// add-node` does: it must be an empty cluster-mode node; it meets the seed, and once every
/// node it learns of knows it (no handshake left), it becomes a replica when asked. Returns
/// the new node's id.
pub async fn add_node(
    new: &str,
    seed: &str,
    role: &NewRole,
    timeout: Duration,
) -> Result<String, OpsError> {
    if let Some(problem) = node_state(new).await?.unusable_for_create() {
        return Err(problem);
    }
    let topology = topology_of(seed).await?;
    let master_id = match role {
        NewRole::Master => None,
        NewRole::ReplicaOf(prefix) => Some(master_by_prefix(&topology, prefix)?),
    };
    let mut conn = AdminConn::connect(new, DEFAULT_TIMEOUT).await?;
    let new_id = conn.query_text(&["CLUSTER", "MYID"]).await?.trim().to_string();
    let (host, port) = split_addr(seed)?;
    conn.query_ok(&["CLUSTER", "MEET", host, port]).await?;
    let mut addrs: Vec<String> = topology.nodes.iter().map(|n| n.addr()).collect();
    addrs.push(new.to_string());
    wait_knows_everyone(&addrs, timeout).await?;
    if let Some(master_id) = master_id {
        attach_replica(new, &master_id, timeout).await?;
    }
    // Until the new node knows every slot's owner it answers CLUSTERDOWN (a MIGRATE to it
    // would fail), and until the others see a new replica as one, a rebalance would count it
    // as an empty master.
    wait_healthy(&addrs, timeout).await?;
    Ok(new_id)
}

/// The full id of the master whose id starts with `prefix`.
fn master_by_prefix(
    topology: &crate::topology::Topology,
    prefix: &str,
) -> Result<String, OpsError> {
    let matching: Vec<&crate::topology::Node> =
        topology.masters().filter(|m| !prefix.is_empty() && m.id.starts_with(prefix)).collect();
    match matching.as_slice() {
        [master] => Ok(master.id.clone()),
        [] => Err(OpsError::Plan(format!(
            "no master's id starts with `{prefix}` (see `redkeep status` for the ids)"
        ))),
        _ => {
            Err(OpsError::Plan(format!("`{prefix}` matches several masters: give more of the id")))
        }
    }
}

/// Waits until each of `addrs` lists all of them, none in handshake.
async fn wait_knows_everyone(addrs: &[String], timeout: Duration) -> Result<(), OpsError> {
    let mut conns = Vec::with_capacity(addrs.len());
    for addr in addrs {
        conns.push(AdminConn::connect(addr, DEFAULT_TIMEOUT).await?);
    }
    wait_all_known(&mut conns, timeout).await
}

/// Makes the node at `replica` a replica of `master_id` (`CLUSTER REPLICATE`), retrying while
/// it has not yet heard of that master through gossip. Reusable: `add-node --replica-of`,
/// moving the replicas of a node being removed, a monitor re-attaching a replica.
pub async fn attach_replica(
    replica: &str,
    master_id: &str,
    timeout: Duration,
) -> Result<(), OpsError> {
    let mut conn = AdminConn::connect(replica, DEFAULT_TIMEOUT).await?;
    replicate_with_retry(&mut conn, master_id, timeout).await
}

async fn replicate_with_retry(
    conn: &mut AdminConn,
    master_id: &str,
    timeout: Duration,
) -> Result<(), OpsError> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn.query_ok(&["CLUSTER", "REPLICATE", master_id]).await {
            Ok(()) => return Ok(()),
            Err(AdminError::Redis { message, .. })
                if message.contains("Unknown node") && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`del_node`] did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    pub addr: String,
    /// Replicas moved to another master: (replica address, new master address).
    pub moved_replicas: Vec<(String, String)>,
    /// Nodes that forgot it.
    pub forgotten_by: Vec<String>,
}

/// Removes node `id` (or unique prefix) from the cluster `seed` belongs to: refused while it
/// serves slots; its replicas first follow the master with fewest replicas; then every other
/// node forgets it (`CLUSTER FORGET`, which also keeps gossip from bringing it back for a
/// minute) and it is reset (`CLUSTER RESET SOFT`), so it forgets the cluster too and is a
/// blank node again.
pub async fn del_node(seed: &str, id: &str, timeout: Duration) -> Result<Removal, OpsError> {
    let topology = topology_of(seed).await?;
    let node = node_by_prefix(&topology, id)?;
    if node.slot_count() > 0 {
        return Err(OpsError::Plan(format!(
            "{} ({}) serves {} slots: move them away first, e.g. `redkeep rebalance {seed} \
             --weight {}=0` or `redkeep reshard {seed} --from {} --to ID --slots {}`",
            node.addr(),
            node.id,
            node.slot_count(),
            node.id,
            node.id,
            node.slot_count()
        )));
    }
    let mut removal = Removal { addr: node.addr(), ..Removal::default() };
    for replica in topology.replicas_of(&node.id) {
        let target = least_replicated_master(&topology, &node.id)?;
        attach_replica(&replica.addr(), &target.id, timeout).await?;
        removal.moved_replicas.push((replica.addr(), target.addr()));
    }
    for other in topology.nodes.iter().filter(|n| n.id != node.id && !n.flags.noaddr) {
        let mut conn = AdminConn::connect(&other.addr(), DEFAULT_TIMEOUT).await?;
        conn.query_ok(&["CLUSTER", "FORGET", &node.id]).await?;
        removal.forgotten_by.push(other.addr());
    }
    if let Ok(mut conn) = AdminConn::connect(&node.addr(), DEFAULT_TIMEOUT).await {
        // A replica (and an emptied master, which Redis turns into a replica of the node that
        // took its last slot) drops its copy of the data as it resets.
        conn.query_ok(&["CLUSTER", "RESET", "SOFT"]).await?;
    }
    // Done when the others know one node less, agree, and the moved replicas' links are up.
    wait_healthy(&removal.forgotten_by, timeout).await?;
    Ok(removal)
}

fn node_by_prefix<'a>(
    topology: &'a crate::topology::Topology,
    prefix: &str,
) -> Result<&'a crate::topology::Node, OpsError> {
    let matching: Vec<&crate::topology::Node> =
        topology.nodes.iter().filter(|n| !prefix.is_empty() && n.id.starts_with(prefix)).collect();
    match matching.as_slice() {
        [node] => Ok(node),
        [] => Err(OpsError::Plan(format!(
            "no node's id starts with `{prefix}` (see `redkeep status` for the ids)"
        ))),
        _ => Err(OpsError::Plan(format!("`{prefix}` matches several nodes: give more of the id"))),
    }
}

/// The healthy master with slots and the fewest replicas, other than `except`.
fn least_replicated_master<'a>(
    topology: &'a crate::topology::Topology,
    except: &str,
) -> Result<&'a crate::topology::Node, OpsError> {
    topology
        .masters()
        .filter(|m| m.id != except && !m.is_failing() && m.slot_count() > 0)
        .min_by_key(|m| (topology.replicas_of(&m.id).count(), m.addr()))
        .ok_or_else(|| OpsError::Plan("no other master to move the replicas to".into()))
}

/// Sets `cluster-node-timeout` on every node `seed` knows, and saves it into each node's
/// config file (`CONFIG REWRITE`). Returns the nodes where the rewrite failed (the setting
/// then lasts until that node restarts), with the reason.
pub async fn set_node_timeout(seed: &str, millis: u64) -> Result<Vec<(String, String)>, OpsError> {
    let (_, addrs) = known_addrs(seed).await?;
    let mut not_saved = Vec::new();
    for addr in addrs {
        let mut conn = AdminConn::connect(&addr, DEFAULT_TIMEOUT).await?;
        conn.query_ok(&["CONFIG", "SET", "cluster-node-timeout", &millis.to_string()]).await?;
        if let Err(e) = conn.query_ok(&["CONFIG", "REWRITE"]).await {
            not_saved.push((addr, e.to_string()));
        }
    }
    Ok(not_saved)
}
