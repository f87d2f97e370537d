//! `redkeep controller`: forms a cluster from the nodes it finds and keeps it whole when they
//! come back with new addresses, as pods and Swarm tasks do after every restart.
//!
//! Each pass resolves the node names again (a headless Service's DNS name, or a list of
//! `host:port`), asks every address for its node ID, view and state, lets [`decide`] choose
//! the actions, and applies them. Decisions are pure ([`decide::decide`]); this module is the
//! I/O around them.

pub mod decide;

use std::time::Duration;

use cluster::admin::{AdminConn, AdminError, info_field, parse_info};
use cluster::ops::OpsError;

pub use decide::{Action, Decision, Observed, Want};

/// A short bound: a node that does not answer must not hold up the others.
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the nodes are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sources {
    /// One `name:port` that resolves to every node (a headless Service).
    SeedDns(String),
    /// `host:port` of each node; names are resolved again on every pass.
    Nodes(Vec<String>),
}

/// What one pass saw and did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Addresses the names resolved to.
    pub resolved: Vec<String>,
    pub observed: Vec<Observed>,
    pub decision: Decision,
    /// Each applied action, with its error when it failed.
    pub applied: Vec<(Action, Option<String>)>,
    /// Addresses that did not answer, with why.
    pub unreachable: Vec<(String, String)>,
}

/// Every `ip:port` the sources resolve to now, sorted, without duplicates. A name that does
/// not resolve is left out (a pod not scheduled yet has no DNS record).
pub async fn resolve(sources: &Sources) -> (Vec<String>, Vec<(String, String)>) {
    let names: Vec<&String> = match sources {
        Sources::SeedDns(name) => vec![name],
        Sources::Nodes(list) => list.iter().collect(),
    };
    let mut addrs = Vec::new();
    let mut failed = Vec::new();
    for name in names {
        match tokio::net::lookup_host(name.as_str()).await {
            Ok(found) => addrs.extend(found.map(|a| format!("{}:{}", a.ip(), a.port()))),
            Err(e) => failed.push((name.clone(), format!("does not resolve: {e}"))),
        }
    }
    addrs.sort();
    addrs.dedup();
    (addrs, failed)
}

/// A node's ID, view and state.
pub async fn observe(addr: &str) -> Result<Observed, OpsError> {
    let asking = async {
        let mut conn = AdminConn::connect(addr, NODE_TIMEOUT).await?;
        let id = conn.query_text(&["CLUSTER", "MYID"]).await?.trim().to_string();
        let text = conn.query_text(&["CLUSTER", "NODES"]).await?;
        let view = cluster::topology::parse_cluster_nodes(&text)
            .map_err(|source| OpsError::Topology { addr: addr.to_string(), source })?;
        let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?);
        let state = info_field(&info, "cluster_state").unwrap_or("?").to_string();
        Ok::<_, OpsError>(Observed { addr: addr.to_string(), id, view, state })
    };
    match tokio::time::timeout(NODE_TIMEOUT * 3, asking).await {
        Ok(result) => result,
        Err(_) => {
            Err(AdminError::Timeout { addr: addr.to_string(), timeout: NODE_TIMEOUT * 3 }.into())
        }
    }
}

/// One pass: find, observe, decide, apply (unless `dry_run`).
pub async fn pass(sources: &Sources, want: Want, dry_run: bool) -> PassReport {
    let (resolved, mut unreachable) = resolve(sources).await;
    let mut observed = Vec::new();
    for addr in &resolved {
        match observe(addr).await {
            Ok(node) => observed.push(node),
            Err(e) => unreachable.push((addr.clone(), e.to_string())),
        }
    }
    let decision = decide::decide(&observed, want);
    let mut applied = Vec::new();
    if !dry_run {
        for action in &decision.actions {
            let outcome = apply(action).await.err().map(|e| e.to_string());
            applied.push((action.clone(), outcome));
        }
    }
    PassReport { resolved, observed, decision, applied, unreachable }
}

/// Applies one action.
pub async fn apply(action: &Action) -> Result<(), OpsError> {
    match action {
        Action::Form(formation) => {
            cluster::ops::create(formation, &mut |_| {}, Duration::from_secs(60)).await
        }
        Action::Meet { on, peer_addr, .. } => {
            let (ip, port) = split(peer_addr)?;
            let mut conn = AdminConn::connect(on, NODE_TIMEOUT).await?;
            Ok(conn.query_ok(&["CLUSTER", "MEET", ip, port]).await?)
        }
        Action::Join { node, via, master_id, .. } => join(node, via, master_id).await,
    }
}

fn split(addr: &str) -> Result<(&str, &str), OpsError> {
    addr.rsplit_once(':').ok_or_else(|| OpsError::Plan(format!("{addr} is not HOST:PORT")))
}

/// MEET through `via`, then `CLUSTER REPLICATE` ([`cluster::ops::attach_replica`] retries it
/// while the node has not yet heard of its master through gossip).
async fn join(node: &str, via: &str, master_id: &str) -> Result<(), OpsError> {
    let (ip, port) = split(via)?;
    let mut conn = AdminConn::connect(node, NODE_TIMEOUT).await?;
    conn.query_ok(&["CLUSTER", "MEET", ip, port]).await?;
    cluster::ops::attach_replica(node, master_id, Duration::from_secs(30)).await
}

/// Runs passes every `interval` until `stop` resolves, reporting each pass that did or
/// waited for something (a quiet, healthy pass says nothing).
pub async fn run(
    sources: &Sources,
    want: Want,
    interval: Duration,
    report: &mut dyn FnMut(&PassReport),
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let done = pass(sources, want, false).await;
        report(&done);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests;
