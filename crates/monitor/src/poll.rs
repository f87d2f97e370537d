//! The poller: asks every node, every proxy and every load balancer what it knows, then builds
//! one [`Model`] from the answers. Asking is I/O ([`Poller::poll`]); building is a pure
//! function of the raw answers ([`build_model`]), tested on recorded replies.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster::admin::{AdminConn, info_field, parse_info};
use cluster::topology::{Topology, parse_cluster_nodes};
use resp::Value;

use crate::config::{Config, LbCheck};
use crate::model::{
    ClusterHealth, LatencyEvent, Model, NodeHealth, OpenSlot, OwnReport, ProxyHealth, VipHealth,
};

/// What one node answered, as text, before any interpretation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawNode {
    /// `INFO all`.
    pub info: String,
    /// `CLUSTER INFO`.
    pub cluster_info: String,
    /// `CLUSTER NODES`.
    pub cluster_nodes: String,
    /// `LATENCY LATEST`, as `(event, unix seconds, latest ms, max ms)`.
    pub latency: Vec<(String, u64, u64, u64)>,
    pub slowlog_len: u64,
}

/// One node's answer, or why there was none.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    pub addr: String,
    pub answer: Result<RawNode, String>,
}

/// A node's answer, parsed.
struct Parsed<'a> {
    addr: &'a str,
    info: Vec<(String, String)>,
    cluster_info: Vec<(String, String)>,
    topology: Topology,
    raw: &'a RawNode,
}

/// Builds the model from every node's answer. `seeds` are preferred as the reference view when
/// they answer and agree with the cluster (state ok), so the model says what the operator's
/// chosen node says. `former` maps node ids to the address they had in earlier polls: when a
/// node comes back under a new id, the others mark the old id `noaddr` and drop its address,
/// and the model keeps it at that address so the node is seen as "came back empty".
pub fn build_model(
    at_ms: u64,
    seeds: &[String],
    samples: &[NodeSample],
    proxies: Vec<ProxyHealth>,
    vip: Option<VipHealth>,
    former: &BTreeMap<String, String>,
) -> Model {
    let parsed: Vec<Parsed> = samples.iter().filter_map(parse_sample).collect();
    let reference = choose_reference(&parsed, seeds);
    let cluster = reference
        .map(cluster_health)
        .unwrap_or_else(|| ClusterHealth { state: "unknown".into(), ..ClusterHealth::default() });
    // `fail` spreads to every node once agreed; any node saying so is enough.
    let failed: BTreeSet<&str> = parsed
        .iter()
        .flat_map(|p| p.topology.nodes.iter())
        .filter(|n| n.flags.fail)
        .map(|n| n.id.as_str())
        .collect();
    let mut nodes: BTreeMap<String, NodeHealth> = BTreeMap::new();
    if let Some(reference) = reference {
        let addressed = |n: &&cluster::topology::Node| !n.flags.noaddr && !n.ip.is_empty();
        // Nodes with an address first: an address a new node answers on is the new node's.
        let (with_addr, without): (Vec<_>, Vec<_>) =
            reference.topology.nodes.iter().filter(|n| !n.flags.handshake).partition(addressed);
        let placed = with_addr
            .into_iter()
            .map(|n| (n.addr(), n))
            .chain(without.into_iter().filter_map(|n| Some((former.get(&n.id)?.clone(), n))));
        for (addr, node) in placed {
            if nodes.contains_key(&addr) {
                continue;
            }
            nodes.insert(
                addr.clone(),
                NodeHealth {
                    addr,
                    id: node.id.clone(),
                    role: node.role.as_str().to_string(),
                    master_id: node.master_id.clone(),
                    slot_count: node.slot_count(),
                    slots: node.slots.clone(),
                    pfail: node.flags.pfail,
                    fail: failed.contains(node.id.as_str()),
                    ..NodeHealth::default()
                },
            );
        }
    }
    for sample in samples {
        let entry = nodes.entry(sample.addr.clone()).or_insert_with(|| NodeHealth {
            addr: sample.addr.clone(),
            role: "unknown".into(),
            ..NodeHealth::default()
        });
        match &sample.answer {
            Ok(_) => entry.reachable = true,
            Err(e) => entry.error = Some(e.clone()),
        }
    }
    for p in &parsed {
        if let Some(node) = nodes.get_mut(p.addr) {
            node.own = Some(own_report(p));
        }
    }
    Model { at_ms, cluster, nodes: nodes.into_values().collect(), proxies, vip }
}

fn parse_sample(sample: &NodeSample) -> Option<Parsed<'_>> {
    let raw = sample.answer.as_ref().ok()?;
    Some(Parsed {
        addr: &sample.addr,
        info: parse_info(&raw.info),
        cluster_info: parse_info(&raw.cluster_info),
        topology: parse_cluster_nodes(&raw.cluster_nodes).unwrap_or_default(),
        raw,
    })
}

/// The view to describe the cluster by: a node that knows others, preferring one whose state
/// is ok (a node cut off from the majority reports `fail` and a stale view), then a seed, then
/// the one that knows the most nodes.
fn choose_reference<'a>(parsed: &'a [Parsed<'a>], seeds: &[String]) -> Option<&'a Parsed<'a>> {
    parsed.iter().filter(|p| p.topology.nodes.len() > 1).max_by_key(|p| {
        let ok = info_field(&p.cluster_info, "cluster_state") == Some("ok");
        let seed_rank = seeds.iter().position(|s| s == p.addr).map_or(0, |i| usize::MAX - i);
        (ok, seed_rank, p.topology.nodes.len())
    })
}

fn number(info: &[(String, String)], field: &str) -> u64 {
    info_field(info, field).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn cluster_health(p: &Parsed) -> ClusterHealth {
    let summary = cluster::status::Summary::from_cluster_info(p.addr, &p.cluster_info);
    ClusterHealth {
        reporter: summary.reporter,
        state: summary.state,
        slots_assigned: summary.slots_assigned,
        slots_ok: summary.slots_ok,
        slots_pfail: summary.slots_pfail,
        slots_fail: summary.slots_fail,
        known_nodes: summary.known_nodes,
        size: summary.size,
        current_epoch: summary.current_epoch,
    }
}

fn own_report(p: &Parsed) -> OwnReport {
    let info = &p.info;
    let myself = p.topology.myself();
    let is_replica = info_field(info, "role") == Some("slave");
    let open_slots = myself
        .map(|me| {
            let migrating = me.migrating.iter().map(|o| (o, "migrating"));
            let importing = me.importing.iter().map(|o| (o, "importing"));
            migrating
                .chain(importing)
                .map(|(o, state)| OpenSlot {
                    slot: o.slot,
                    state: state.into(),
                    peer: o.node_id.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    OwnReport {
        id: myself.map(|m| m.id.clone()).unwrap_or_default(),
        run_id: info_field(info, "run_id").unwrap_or_default().to_string(),
        uptime_s: number(info, "uptime_in_seconds"),
        role: info_field(info, "role").unwrap_or("unknown").to_string(),
        cluster_state: info_field(&p.cluster_info, "cluster_state").unwrap_or("unknown").into(),
        known_nodes: number(&p.cluster_info, "cluster_known_nodes"),
        keys: keyspace_keys(info),
        used_memory: number(info, "used_memory"),
        maxmemory: number(info, "maxmemory"),
        evicted_keys: number(info, "evicted_keys"),
        rejected_connections: number(info, "rejected_connections"),
        connected_clients: number(info, "connected_clients"),
        connected_replicas: number(info, "connected_slaves"),
        ops_per_sec: number(info, "instantaneous_ops_per_sec"),
        repl_offset: number(
            info,
            if is_replica { "slave_repl_offset" } else { "master_repl_offset" },
        ),
        master_link_up: is_replica.then(|| info_field(info, "master_link_status") == Some("up")),
        master_last_io_s: if is_replica {
            info_field(info, "master_last_io_seconds_ago").and_then(|v| v.parse().ok())
        } else {
            None
        },
        open_slots,
        latency: p
            .raw
            .latency
            .iter()
            .map(|(event, at_s, latest_ms, max_ms)| LatencyEvent {
                event: event.clone(),
                at_s: *at_s,
                latest_ms: *latest_ms,
                max_ms: *max_ms,
            })
            .collect(),
        slowlog_len: p.raw.slowlog_len,
    }
}

/// Keys over every database, from `db0:keys=3,expires=0,avg_ttl=0` lines.
fn keyspace_keys(info: &[(String, String)]) -> u64 {
    info.iter()
        .filter(|(k, _)| k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()))
        .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// `LATENCY LATEST`: an array of `[event, timestamp, latest, max]`.
pub fn parse_latency(reply: &Value) -> Vec<(String, u64, u64, u64)> {
    let int = |v: &Value| match v {
        Value::Integer(n) => (*n).max(0) as u64,
        other => {
            other.as_bytes().and_then(|b| std::str::from_utf8(b).ok()?.parse().ok()).unwrap_or(0)
        }
    };
    reply
        .as_list()
        .unwrap_or(&[])
        .iter()
        .filter_map(|entry| match entry.as_list()? {
            [event, at, latest, max, ..] => Some((
                String::from_utf8_lossy(event.as_bytes()?).into_owned(),
                int(at),
                int(latest),
                int(max),
            )),
            _ => None,
        })
        .collect()
}

/// Asks the cluster, the proxies and the LBs; remembers which nodes it has seen, so that a node
/// that stops answering stays in the model (as unreachable) until the cluster forgets it.
pub struct Poller {
    seeds: Vec<String>,
    known: BTreeSet<String>,
    /// Node id -> the address it was last seen at.
    former: BTreeMap<String, String>,
    /// One connection per node, kept between polls.
    conns: BTreeMap<String, AdminConn>,
    proxies: Vec<String>,
    vip: Option<(String, Vec<LbCheck>)>,
    timeout: Duration,
}

impl Poller {
    pub fn new(seeds: Vec<String>, config: &Config) -> Poller {
        Poller {
            known: seeds.iter().cloned().collect(),
            former: BTreeMap::new(),
            conns: BTreeMap::new(),
            seeds,
            proxies: config.proxies.clone(),
            vip: config.vip.as_ref().map(|v| (v.address.clone(), v.lbs.clone())),
            timeout: config.timeout,
        }
    }

    /// One round: every known node in parallel, then the proxies and the VIP.
    pub async fn poll(&mut self) -> Model {
        let at_ms = now_ms();
        let mut tasks = tokio::task::JoinSet::new();
        for addr in self.known.iter().cloned() {
            let (timeout, kept) = (self.timeout, self.conns.remove(&addr));
            tasks.spawn(async move {
                let (answer, conn) = ask_node(&addr, kept, timeout).await;
                (NodeSample { addr, answer }, conn)
            });
        }
        let mut samples = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let Ok((sample, conn)) = done else { continue };
            if let Some(conn) = conn {
                self.conns.insert(sample.addr.clone(), conn);
            }
            samples.push(sample);
        }
        // Connections of nodes no longer asked are closed.
        self.conns.retain(|addr, _| self.known.contains(addr));
        samples.sort_by(|a, b| a.addr.cmp(&b.addr));
        let mut proxies = Vec::new();
        for addr in &self.proxies {
            proxies.push(ask_proxy(addr, self.timeout).await);
        }
        let vip = match &self.vip {
            Some((address, lbs)) => Some(ask_vip(address, lbs, self.timeout).await),
            None => None,
        };
        let model = build_model(at_ms, &self.seeds, &samples, proxies, vip, &self.former);
        self.remember(&model);
        model
    }

    /// Next round asks every node the cluster lists, the seeds, and whatever answered.
    fn remember(&mut self, model: &Model) {
        self.known = self.seeds.iter().cloned().collect();
        self.known.extend(
            model.nodes.iter().filter(|n| n.reachable || !n.id.is_empty()).map(|n| n.addr.clone()),
        );
        self.former = model
            .nodes
            .iter()
            .filter(|n| !n.id.is_empty())
            .map(|n| (n.id.clone(), n.addr.clone()))
            .collect();
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One node's answers over `kept` (the connection of the last poll) when it still works, else
/// over a new one: a connection per node for the monitor's life, not one per second (which
/// would leave thousands of sockets in TIME_WAIT). Any error drops the connection, so a reply
/// left half-read is never taken for the next command's.
async fn ask_node(
    addr: &str,
    kept: Option<AdminConn>,
    timeout: Duration,
) -> (Result<RawNode, String>, Option<AdminConn>) {
    if let Some(conn) = kept
        && let Ok((raw, conn)) = ask_over(addr, conn, timeout).await
    {
        return (Ok(raw), Some(conn));
    }
    // The kept connection broke (the node restarted, or a timeout left a reply pending).
    let fresh = match tokio::time::timeout(timeout, AdminConn::connect(addr, timeout)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return (Err(e.to_string()), None),
        Err(_) => {
            return (Err(format!("{addr} did not accept a connection within {timeout:?}")), None);
        }
    };
    match ask_over(addr, fresh, timeout).await {
        Ok((raw, conn)) => (Ok(raw), Some(conn)),
        Err(e) => (Err(e), None),
    }
}

async fn ask_over(
    addr: &str,
    mut conn: AdminConn,
    timeout: Duration,
) -> Result<(RawNode, AdminConn), String> {
    let asking = async {
        let info = conn.query_text(&["INFO", "all"]).await?;
        let cluster_info = conn.query_text(&["CLUSTER", "INFO"]).await?;
        let cluster_nodes = conn.query_text(&["CLUSTER", "NODES"]).await?;
        let latency = parse_latency(&conn.query(&["LATENCY", "LATEST"]).await?);
        let slowlog_len = conn.query_int(&["SLOWLOG", "LEN"]).await?.max(0) as u64;
        Ok::<_, cluster::admin::AdminError>(RawNode {
            info,
            cluster_info,
            cluster_nodes,
            latency,
            slowlog_len,
        })
    };
    // Each step has its own timeout; the whole round is bounded too, so one slow node cannot
    // hold the poll for five round trips.
    let raw = match tokio::time::timeout(timeout * 2, asking).await {
        Ok(result) => result.map_err(|e| e.to_string())?,
        Err(_) => return Err(format!("{addr} did not answer the poll within {:?}", timeout * 2)),
    };
    Ok((raw, conn))
}

async fn ask_proxy(addr: &str, timeout: Duration) -> ProxyHealth {
    let asking = async {
        let mut conn = AdminConn::connect(addr, timeout).await?;
        conn.info("proxy").await
    };
    let down =
        |error: String| ProxyHealth { addr: addr.into(), error: Some(error), ..Default::default() };
    match tokio::time::timeout(timeout, asking).await {
        Ok(Ok(info)) if info_field(&info, "redkeep_version").is_some() => ProxyHealth {
            addr: addr.into(),
            up: true,
            error: None,
            masters: number(&info, "cluster_masters"),
            slots_uncovered: number(&info, "cluster_slots_uncovered"),
            connected_clients: number(&info, "connected_clients"),
        },
        Ok(Ok(_)) => down(format!("{addr} is not a redkeep proxy")),
        Ok(Err(e)) => down(e.to_string()),
        Err(_) => down(format!("{addr} did not answer within {timeout:?}")),
    }
}

/// Runs each LB's check command; the LB holds the VIP when the address is a word of its output
/// (as in `ip -o addr show`, `198.18.0.100/24`).
async fn ask_vip(address: &str, lbs: &[LbCheck], timeout: Duration) -> VipHealth {
    let mut vip = VipHealth { address: address.into(), ..Default::default() };
    for lb in lbs {
        match run_check(&lb.check, timeout).await {
            Ok(output) if holds_address(&output, address) => vip.holders.push(lb.name.clone()),
            Ok(_) => {}
            Err(_) => vip.unknown.push(lb.name.clone()),
        }
    }
    vip
}

/// Is `address` one of the words of `output`, with or without a `/prefix`?
pub fn holds_address(output: &str, address: &str) -> bool {
    output.split_whitespace().any(|w| w.split('/').next() == Some(address))
}

pub async fn run_check(argv: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = argv.split_first().ok_or("empty check command")?;
    let running = tokio::process::Command::new(program).args(args).kill_on_drop(true).output();
    match tokio::time::timeout(timeout.max(Duration::from_secs(1)), running).await {
        Ok(Ok(out)) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into()),
        Ok(Ok(out)) => Err(format!("{program} exited with {}", out.status)),
        Ok(Err(e)) => Err(format!("cannot run {program}: {e}")),
        Err(_) => Err(format!("{program} did not finish within {timeout:?}")),
    }
}
