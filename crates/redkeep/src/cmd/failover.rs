//! `redkeep failover`: promote a replica, as an operator does before maintenance.

use std::process::ExitCode;
use std::time::Duration;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT, info_field};
use cluster::topology::Topology;
use tokio::time::Instant;

/// Promote REPLICA to master with `CLUSTER FAILOVER` (coordinated with its master, so no
/// acknowledged write is lost), wait until it is master, then until every node agrees (the
/// old master follows it and has synced), so that the next failover can start at once.
///
/// Redis gives up a manual failover 5 s after it was asked; redkeep then says so at once, with
/// what it found (does the master answer, is the replica's link to it up), rather than waiting
/// for --timeout.
#[derive(clap::Args)]
pub struct FailoverArgs {
    /// The replica to promote, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    replica: String,
    /// `force` (master unreachable) or `takeover` (no agreement at all; last resort).
    #[arg(long, value_parser = ["force", "takeover"])]
    mode: Option<String>,
    /// How long to wait for the promotion and for every node to agree on it.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Redis abandons a manual failover this long after `CLUSTER FAILOVER` (CLUSTER_MF_TIMEOUT in
/// its source), whatever the mode but takeover.
const REDIS_FAILOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A promotion whose votes arrived just before Redis' deadline still lands within this.
const PROMOTION_GRACE: Duration = Duration::from_secs(1);

pub fn run(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    super::block_on(failover(args))
}

async fn failover(args: FailoverArgs) -> anyhow::Result<ExitCode> {
    super::refuse_proxy(&args.replica, "failover").await?;
    let started = Instant::now();
    let mut conn = AdminConn::connect(&args.replica, DEFAULT_TIMEOUT).await?;
    let role = conn.info("replication").await?;
    if info_field(&role, "role") != Some("slave") {
        anyhow::bail!(
            "{} is not a replica (role:{}); name a replica to promote",
            args.replica,
            info_field(&role, "role").unwrap_or("?")
        );
    }
    let master = format!(
        "{}:{}",
        info_field(&role, "master_host").unwrap_or("?"),
        info_field(&role, "master_port").unwrap_or("?")
    );
    let mut command = vec!["CLUSTER".to_string(), "FAILOVER".to_string()];
    command.extend(args.mode.as_deref().map(str::to_uppercase));
    conn.query_ok(&command).await?;
    println!("CLUSTER FAILOVER sent to {}; waiting for it to become master...", args.replica);
    let give_up = started + args.timeout.min(REDIS_FAILOVER_TIMEOUT + PROMOTION_GRACE);
    loop {
        let role = conn.info("replication").await?;
        if info_field(&role, "role") == Some("master") {
            break;
        }
        if Instant::now() > give_up {
            let facts = NotPromoted {
                replica: args.replica.clone(),
                master: master.clone(),
                master_answers: answers_ping(&master).await,
                link_status: info_field(&role, "master_link_status").unwrap_or("?").to_string(),
                waited: args.timeout.min(REDIS_FAILOVER_TIMEOUT + PROMOTION_GRACE),
                redis_gave_up: args.timeout >= REDIS_FAILOVER_TIMEOUT,
            };
            anyhow::bail!(facts.explain());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("{} is now a master; waiting for every node to agree...", args.replica);
    wait_agreed(&args.replica, &master, started + args.timeout).await?;
    println!("{} is now a master, and every node agrees", args.replica);
    Ok(ExitCode::SUCCESS)
}

async fn answers_ping(addr: &str) -> Result<(), String> {
    let mut conn =
        AdminConn::connect(addr, Duration::from_secs(1)).await.map_err(|e| e.to_string())?;
    conn.raw(&["PING"]).await.map(|_| ()).map_err(|e| e.to_string())
}

/// What was found when a replica was not promoted in time.
#[derive(Debug, Clone, PartialEq)]
struct NotPromoted {
    replica: String,
    master: String,
    /// `Err(why)` when the master does not answer.
    master_answers: Result<(), String>,
    /// The replica's `master_link_status`.
    link_status: String,
    waited: Duration,
    /// Whether the wait lasted past Redis' own limit (else --timeout was shorter).
    redis_gave_up: bool,
}

impl NotPromoted {
    /// The error, with the hint that fits what was found.
    fn explain(&self) -> String {
        let NotPromoted { replica, master, .. } = self;
        let what = match self.redis_gave_up {
            true => format!(
                "{replica} was not promoted: Redis gives up a manual failover after {}s",
                REDIS_FAILOVER_TIMEOUT.as_secs()
            ),
            false => format!("{replica} is still a replica after {:?} (--timeout)", self.waited),
        };
        let hint = match (&self.master_answers, self.link_status.as_str()) {
            (Err(why), _) => format!(
                "its master {master} does not answer ({why}): promote it without the master's \
                 agreement with --mode force (the other masters vote), or wait for the \
                 cluster's own failover"
            ),
            (Ok(()), "up") => format!(
                "its master {master} answers and the replica's link to it is up, so the replica \
                 did not catch up with the master's offset in time or the masters did not vote \
                 (see both nodes' logs); try again, or --mode force"
            ),
            (Ok(()), status) => format!(
                "its master {master} answers, but the replica's replication link to it is \
                 {status} (master_link_status), so it cannot catch up with the master; the \
                 replica's log says why (authentication, a sync in progress); once the link is \
                 up try again, or --mode force to promote it without catching up (writes it has \
                 not received are lost)"
            ),
        };
        format!("{what}; {hint}")
    }
}

/// Waits until every reachable node sees `replica` as the master of its slots and the old
/// master (when it is alive) as its replica, and the old master's link to it is up: then the
/// cluster agrees, and a failover back can start at once.
async fn wait_agreed(replica: &str, old_master: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let problem = match disagreement(replica, old_master).await {
            Ok(None) => return Ok(()),
            Ok(Some(problem)) => problem,
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            anyhow::bail!(
                "{replica} is a master, but the cluster does not agree yet (--timeout): {problem}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn disagreement(replica: &str, old_master: &str) -> anyhow::Result<Option<String>> {
    let topology = cluster::ops::topology_of(replica).await?;
    let Some(new) = topology.by_addr(replica) else {
        return Ok(Some(format!("{replica} does not list itself")));
    };
    let new_id = new.id.clone();
    let old_id = topology.by_addr(old_master).filter(|n| !n.is_failing()).map(|n| n.id.clone());
    let alive: Vec<String> =
        topology.nodes.iter().filter(|n| !n.is_failing()).map(|n| n.addr()).collect();
    for addr in &alive {
        let view = cluster::ops::topology_of(addr).await?;
        if let Some(problem) = view_disagrees(addr, &view, &new_id, old_id.as_deref()) {
            return Ok(Some(problem));
        }
    }
    if old_id.is_some() {
        let mut conn = AdminConn::connect(old_master, DEFAULT_TIMEOUT).await?;
        let replication = conn.info("replication").await?;
        if info_field(&replication, "master_link_status") != Some("up") {
            return Ok(Some(format!("{old_master} has not synced with {replica} yet")));
        }
    }
    Ok(None)
}

/// Why `addr`'s view of the cluster does not show `new_id` as a master with slots and
/// `old_id` (when given) as its replica.
fn view_disagrees(
    addr: &str,
    view: &Topology,
    new_id: &str,
    old_id: Option<&str>,
) -> Option<String> {
    let new = view.by_id(new_id);
    if !new.is_some_and(|n| n.is_master() && n.slot_count() > 0) {
        return Some(format!("{addr} does not see {new_id:.8} as a master of slots yet"));
    }
    let follows = |id: &str| view.by_id(id).is_some_and(|n| n.master_id.as_deref() == Some(new_id));
    match old_id {
        Some(old) if !follows(old) => {
            Some(format!("{addr} does not see the old master {old:.8} as its replica yet"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(master_answers: Result<(), String>, link: &str) -> NotPromoted {
        NotPromoted {
            replica: "h:2".into(),
            master: "h:1".into(),
            master_answers,
            link_status: link.into(),
            waited: Duration::from_secs(6),
            redis_gave_up: true,
        }
    }

    #[test]
    fn the_hint_fits_what_was_found() {
        let dead = facts(Err("connection refused".into()), "down").explain();
        assert!(dead.contains("gives up a manual failover after 5s"), "{dead}");
        assert!(dead.contains("does not answer") && dead.contains("--mode force"), "{dead}");

        let link_down = facts(Ok(()), "down").explain();
        assert!(link_down.contains("h:1 answers") && link_down.contains("link"), "{link_down}");
        assert!(!link_down.contains("does not answer"), "{link_down}");

        let link_up = facts(Ok(()), "up").explain();
        assert!(link_up.contains("answers and the replica's link to it is up"), "{link_up}");

        let short = NotPromoted { redis_gave_up: false, ..facts(Ok(()), "up") }.explain();
        assert!(short.contains("--timeout") && !short.contains("gives up"), "{short}");
    }

    #[test]
    fn agreement_needs_the_new_master_with_slots_and_the_old_one_following_it() {
        let nodes = |old_follows: bool| {
            let old_line = if old_follows {
                "aaaa 127.0.0.1:1@11 slave bbbb 0 0 2 connected"
            } else {
                "aaaa 127.0.0.1:1@11 master - 0 0 1 connected"
            };
            let text = format!(
                "{old_line}\nbbbb 127.0.0.1:2@12 myself,master - 0 0 2 connected 0-16383\n"
            );
            cluster::topology::parse_cluster_nodes(&text).unwrap()
        };
        assert_eq!(view_disagrees("h", &nodes(true), "bbbb", Some("aaaa")), None);
        assert!(view_disagrees("h", &nodes(false), "bbbb", Some("aaaa")).is_some());
        assert_eq!(view_disagrees("h", &nodes(false), "bbbb", None), None);
        assert!(view_disagrees("h", &nodes(true), "aaaa", None).is_some());
    }
}
