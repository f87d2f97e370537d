//! `redkeep controller`: forms the cluster from the nodes it finds and keeps it whole when
//! they come back with new addresses (pods, Swarm tasks, lab hosts).

mod alerts;

use std::process::ExitCode;
use std::time::Duration;

use deploy::controller::{self, PassReport, Sources, Want};
use monitor::alarms::Alarm;

/// Keep a Redis Cluster whole on an engine where nodes change address: every --interval, find
/// the nodes (a DNS name or a list, resolved again each time), ask each for its node ID and its
/// view, then: form a cluster from empty nodes once the expected number answer (shard by
/// shard for StatefulSet pods); tell every node that knows a peer at an old address to
/// CLUSTER MEET it where it answers now, so a restart that changed every IP keeps the same
/// node IDs, slots and data; and join an empty node as a replica of a master that lacks
/// one. Each action is printed as it is applied. With --monitor, each action applied is also
/// sent to `redkeep monitor` as an alert (RedkeepControllerAction, resolved right after), and
/// a node it cannot reach or match for --stuck-after passes as RedkeepControllerStuck (firing
/// until it clears); the monitor records them and lists firing ones, and heals none of them.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("sources").required(true).args(["seed_dns", "nodes"])))]
pub struct ControllerArgs {
    /// A DNS name and port resolving to every node, e.g. the headless Service
    /// `redkeep-nodes.redkeep.svc.cluster.local:6379`.
    #[arg(long, value_name = "NAME:PORT")]
    seed_dns: Option<String>,
    /// The nodes, HOST:PORT,... (names are resolved again on every pass).
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    nodes: Vec<String>,
    /// Masters of the cluster to form.
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Replicas per master: the cluster is formed from masters x (1 + replicas) nodes, and an
    /// empty node joins a master with fewer.
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Time between passes.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
    /// Print what would be done, apply nothing (implies --once).
    #[arg(long)]
    dry_run: bool,
    /// `redkeep monitor`'s API, e.g. http://127.0.0.1:7030: report what was done and what is
    /// stuck there as alerts (POST /api/v1/alerts, Alertmanager's format). A monitor that does
    /// not answer is warned about, and the controller goes on.
    #[arg(long, value_name = "URL")]
    monitor: Option<String>,
    /// Passes in a row a node must be unreachable or unmatched before RedkeepControllerStuck
    /// fires (with --monitor).
    #[arg(long, default_value_t = 3, value_name = "N")]
    stuck_after: u32,
}

pub fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    if args.masters < 3 {
        anyhow::bail!("Redis Cluster needs at least 3 masters, got --masters {}", args.masters);
    }
    let sources = match args.seed_dns {
        Some(name) => Sources::SeedDns(name),
        None => Sources::Nodes(args.nodes),
    };
    let names = match &sources {
        Sources::SeedDns(name) => vec![name.clone()],
        Sources::Nodes(list) => list.clone(),
    };
    if let Some(bad) = names.iter().find(|n| {
        !n.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
    }) {
        anyhow::bail!("`{bad}` is not HOST:PORT (e.g. redkeep-nodes:6379 or 10.0.0.5:6379)");
    }
    if let Some(url) = &args.monitor
        && !url.starts_with("http://")
    {
        anyhow::bail!(
            "--monitor {url}: give redkeep monitor's API as http://HOST:PORT \
             (e.g. http://127.0.0.1:7030; https is not supported)"
        );
    }
    if args.stuck_after == 0 {
        anyhow::bail!("--stuck-after must be at least 1 pass");
    }
    let mut reporter =
        args.monitor.clone().map(|url| (url, alerts::Reporter::new(args.stuck_after)));
    let want = Want { masters: args.masters, replicas: args.replicas };
    if args.once || args.dry_run {
        let report = super::block_on(async {
            let report = controller::pass(&sources, want, args.dry_run).await;
            if let Some((url, reporter)) = &mut reporter {
                send(url, reporter.step(&report, monitor::poll::now_ms())).await;
            }
            report
        });
        print_pass(&report, &mut None, true);
        let failed = report.applied.iter().any(|(_, error)| error.is_some());
        return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
    }
    println!(
        "redkeep controller: keeping {} masters x {} replica(s) whole, every {}",
        want.masters,
        want.replicas,
        humantime::format_duration(args.interval)
    );
    let mut last_waiting = None;
    super::block_on(async {
        // Passes report synchronously; one task posts their alerts in order.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Vec<Alarm>>>();
        let url = args.monitor.clone();
        let sender = tokio::spawn(async move {
            while let Some(batches) = rx.recv().await {
                if let Some(url) = &url {
                    send(url, batches).await;
                }
            }
        });
        controller::run(
            &sources,
            want,
            args.interval,
            &mut |report| {
                print_pass(report, &mut last_waiting, false);
                if let Some((_, reporter)) = &mut reporter {
                    let _ = tx.send(reporter.step(report, monitor::poll::now_ms()));
                }
            },
            super::shutdown_signal(),
        )
        .await;
        drop(tx);
        let _ = sender.await;
    });
    Ok(ExitCode::SUCCESS)
}

/// Posts each batch of alarms to the monitor at `base` (one payload per alert name), one
/// after the other so that an action's resolution follows its firing.
async fn send(base: &str, batches: Vec<Vec<Alarm>>) {
    let endpoint = format!("{}/api/v1/alerts", base.trim_end_matches('/'));
    for batch in batches {
        let alarms: Vec<&Alarm> = batch.iter().collect();
        for payload in monitor::notify::payload("redkeep-controller", base, &alarms) {
            if let Err(e) = monitor::notify::send(&endpoint, &payload, Duration::from_secs(5)).await
            {
                eprintln!("warning: cannot report to the monitor: {e}");
            }
        }
    }
}

/// Prints a pass's actions, and what it waits for when that changed since the last pass.
fn print_pass(report: &PassReport, last_waiting: &mut Option<Vec<String>>, always: bool) {
    let planned = report.applied.is_empty();
    for action in &report.decision.actions {
        if planned {
            println!("would: {action}");
        }
    }
    for (action, error) in &report.applied {
        match error {
            None => println!("done: {action}"),
            Some(e) => println!("failed: {action}: {e}"),
        }
    }
    let waiting = &report.decision.waiting;
    if always || last_waiting.as_ref() != Some(waiting) {
        if always {
            println!(
                "{} address(es) found, {} answered",
                report.resolved.len(),
                report.observed.len()
            );
            for (addr, why) in &report.unreachable {
                println!("  {addr}: {why}");
            }
        }
        for line in waiting {
            println!("waiting: {line}");
        }
        if waiting.is_empty() && report.decision.actions.is_empty() {
            println!("the cluster is whole: nothing to do");
        }
        *last_waiting = Some(waiting.clone());
    }
}
