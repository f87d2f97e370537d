//! `redkeep lab`: several hosts on one machine (network namespaces, as root), a real cluster,
//! two proxies sharing a VIP through keepalived, faults, and drills that measure them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use deploy::drill::{Drill, DrillOptions, DrillReport};
use deploy::lab::{Lab, LabSpec, Role, Target};

/// A multi-host lab on this machine (root): Redis hosts, load-balancer hosts running a redkeep
/// proxy with keepalived, and a client host, each a network namespace on a bridge of the
/// lab's own (198.18.0.0/24, no route out). Faults and drills show what clients see when a
/// node, a proxy, a link or a whole host fails.
#[derive(clap::Args)]
pub struct LabArgs {
    /// The lab's name: the prefix of its namespaces (`NAME-r1`, `NAME-lb1`, ...).
    #[arg(long, global = true, env = "REDKEEP_LAB", default_value = "rklab")]
    name: String,
    /// Where labs keep their state, nodes' files and logs.
    #[arg(long, global = true, default_value = "/run/redkeep-lab")]
    root: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Build the lab: hosts, switch, six nodes placed with no master beside its replica, the
    /// cluster, a proxy and keepalived on each LB host; returns once the VIP answers.
    Up {
        /// Redis hosts (the six nodes are spread over them).
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Load-balancer hosts.
        #[arg(long, default_value_t = 2)]
        lbs: usize,
        /// cluster-node-timeout of the nodes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        node_timeout: Duration,
        /// More flags for every proxy, e.g. `--proxy-flag=--write-ack --proxy-flag=replica`.
        #[arg(long = "proxy-flag", allow_hyphen_values = true)]
        proxy_flags: Vec<String>,
        /// Nodes require a password (requirepass/masterauth, protected-mode yes), generated
        /// and kept in the lab's dir (`password`, 0600); the proxies authenticate to the
        /// nodes with it (in their environment) and want it of their clients (user
        /// `default`; keepalived's health script reads it from the file).
        #[arg(long)]
        auth: bool,
    },
    /// Hosts, addresses, links, processes, roles, and which LB holds the VIP.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run a command on a lab host: `redkeep lab exec c1 -- redis-cli -h 198.18.0.100 -p 7010`.
    Exec {
        host: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Remove the lab: every process in its namespaces, the namespaces and links, its files.
    /// Also cleans up after a crashed run.
    Down,
    /// Kill (SIGKILL) a node (`7001`), a proxy (`lb1`, its keepalived leaves with it) or a
    /// whole host (`r1`, `host:lb1`: every process, and its link goes down).
    Kill { target: String },
    /// Cut a host off the lab's switch.
    Partition { host: String },
    /// Reconnect every host and start every node and proxy that is not running.
    Heal,
    /// Run a failure drill with a load through the VIP from c1, then put the lab back as
    /// planned: `master-kill` (kill -9 a master), `proxy-kill` (the proxy holding the VIP),
    /// `partition` (cut a master's host off, then heal), `host-loss` (a whole Redis host), or
    /// `all` of these; `readdress` (every Redis host back at a new address, `redkeep
    /// controller` re-MEETs them) and `readdress-one` (one host). Healing drills (the LB
    /// holding the VIP runs its monitor with `--heal auto`): `heal-node-loss` (a replica
    /// killed, its dir wiped), `heal-replica-loss` (a replica killed), `heal-layout` (a master
    /// killed: the monitor fails over back), `heal-partition` (the acting monitor's LB cut off:
    /// it refuses to act), or `heal` for the four. Exit 1 when a check fails.
    Drill {
        /// master-kill, proxy-kill, partition, host-loss, all, readdress, readdress-one,
        /// heal-node-loss, heal-replica-loss, heal-layout, heal-partition or heal.
        drill: String,
        /// Run the proxies with `--write-ack replica` (restarted when needed).
        #[arg(long)]
        write_ack: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Client tasks (one connection each) of the load.
        #[arg(long, default_value_t = 8)]
        tasks: usize,
    },
}

pub fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let root = &args.root;
    match args.action {
        Action::Up { hosts, lbs, node_timeout, proxy_flags, auth } => {
            let spec = LabSpec {
                name: args.name,
                redis_hosts: hosts,
                lbs,
                node_timeout,
                proxy_flags,
                auth,
            };
            let redkeep = std::env::current_exe().context("cannot find the redkeep binary")?;
            let lab = Lab::up(&spec, root, &redkeep, &mut |step| println!("{step}..."))?;
            println!(
                "Lab `{}` is up: clients use {} from host c1",
                lab.plan.name,
                lab.plan.vip_addr()
            );
            if lab.password().is_some() {
                println!("The nodes require a password, kept in {}", lab.password_file().display());
            }
            print_status(&lab);
        }
        Action::Status { json } => {
            let lab = Lab::open(root, &args.name)?;
            match json {
                true => println!("{}", serde_json::to_string_pretty(&status_json(&lab))?),
                false => print_status(&lab),
            }
        }
        Action::Exec { host, command } => {
            let lab = Lab::open(root, &args.name)?;
            if lab.plan.host(&host).is_none() {
                anyhow::bail!("no host `{host}` in lab `{}`", args.name);
            }
            let status = deploy::netns::command(&lab.plan.ns(&host), &command[0])
                .args(&command[1..])
                .status()
                .context("cannot run `ip netns exec`")?;
            return Ok(ExitCode::from(status.code().unwrap_or(1) as u8));
        }
        Action::Down => {
            let removed = deploy::lab::down(root, &args.name)?;
            if removed.is_empty() {
                println!("Nothing of lab `{}` was left", args.name);
            }
            for item in removed {
                println!("removed {item}");
            }
        }
        Action::Kill { target } => {
            let lab = Lab::open(root, &args.name)?;
            println!("{}", lab.kill(&Target::parse(&target, &lab.plan)?)?);
        }
        Action::Partition { host } => {
            println!("{}", Lab::open(root, &args.name)?.partition(&host)?)
        }
        Action::Heal => {
            let done = Lab::open(root, &args.name)?.heal()?;
            if done.is_empty() {
                println!("Nothing to heal");
            }
            for item in done {
                println!("{item}");
            }
        }
        Action::Drill { drill: wanted, write_ack, json, tasks } => {
            let mut lab = Lab::open(root, &args.name)?;
            let drills = match wanted.as_str() {
                "all" => Drill::ALL.to_vec(),
                "heal" => Drill::HEAL.to_vec(),
                _ => vec![Drill::parse(&wanted).with_context(|| {
                    format!(
                        "no drill `{wanted}`: master-kill, proxy-kill, partition, host-loss, \
                         all, readdress, readdress-one, heal-node-loss, heal-replica-loss, heal-layout, \
                         heal-partition or heal (the four heal drills)"
                    )
                })?],
            };
            let mut options = DrillOptions { write_ack, ..DrillOptions::default() };
            options.load.tasks = tasks.max(1);
            let mut passed = true;
            let mut reports = Vec::new();
            for drill in drills {
                if !json {
                    println!("Drill {} ({})...", drill.name(), ack_mode(write_ack));
                }
                let report = deploy::drill::run(&mut lab, drill, &options)?;
                passed &= report.passed;
                if !json {
                    print_report(&report);
                }
                reports.push(report);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            }
            if !passed {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ack_mode(write_ack: bool) -> &'static str {
    if write_ack { "--write-ack replica" } else { "asynchronous replication" }
}

fn print_report(report: &DrillReport) {
    for (name, value) in &report.figures {
        println!("  {name:<36} {value}");
    }
    for check in &report.checks {
        let mark = if check.passed { "ok  " } else { "FAIL" };
        println!("  [{mark}] {} ({})", check.name, check.detail);
    }
    for sample in &report.error_samples {
        println!("  client error seen: {sample}");
    }
}

/// What a host runs and how it is, for `status`.
fn host_rows(lab: &Lab) -> Vec<serde_json::Value> {
    let roles = cluster_roles(lab);
    let vip_holder = lab.vip_holder();
    lab.plan
        .hosts
        .iter()
        .map(|host| {
            let nodes: Vec<serde_json::Value> = host
                .ports
                .iter()
                .map(|&port| {
                    let addr = format!("{}:{port}", host.ip);
                    serde_json::json!({
                        "port": port,
                        "pid": lab.node_pid(port),
                        "role": roles.iter().find(|(a, _)| *a == addr).map(|(_, r)| r.clone()),
                    })
                })
                .collect();
            let proxy_pid = (host.role == Role::Lb).then(|| lab.proxy_pid(host)).flatten();
            serde_json::json!({
                "host": host.name,
                "namespace": lab.plan.ns(&host.name),
                "ip": host.ip,
                "role": host.role,
                "link_up": lab.link_up(host),
                "nodes": nodes,
                "proxy_pid": proxy_pid,
                "holds_vip": vip_holder.as_deref() == Some(host.name.as_str()),
            })
        })
        .collect()
}

fn status_json(lab: &Lab) -> serde_json::Value {
    serde_json::json!({
        "name": lab.plan.name,
        "vip": lab.plan.vip_addr(),
        "vip_holder": lab.vip_holder(),
        "hosts": host_rows(lab),
    })
}

fn print_status(lab: &Lab) {
    println!("{:<5} {:<14} {:<7} {:<5} what runs there", "HOST", "ADDRESS", "ROLE", "LINK");
    for row in host_rows(lab) {
        let mut parts = Vec::new();
        for node in row["nodes"].as_array().into_iter().flatten() {
            let state = match (&node["pid"], node["role"].as_str()) {
                (serde_json::Value::Null, _) => "down".to_string(),
                (_, Some(role)) => role.to_string(),
                (_, None) => "running".to_string(),
            };
            parts.push(format!("node {} {state}", node["port"]));
        }
        if row["role"] == "lb" {
            let proxy = if row["proxy_pid"].is_null() { "down" } else { "running" };
            parts.push(format!("proxy {proxy}"));
        }
        if row["holds_vip"] == true {
            parts.push(format!("holds VIP {}", lab.plan.vip));
        }
        println!(
            "{:<5} {:<14} {:<7} {:<5} {}",
            row["host"].as_str().unwrap_or("?"),
            row["ip"].as_str().unwrap_or("?"),
            row["role"].as_str().unwrap_or("?"),
            if row["link_up"] == true { "up" } else { "CUT" },
            parts.join(", ")
        );
    }
}

/// Each node's role as the first node that answers sees it (`master`, `replica`, `fail`).
fn cluster_roles(lab: &Lab) -> Vec<(String, String)> {
    let Ok(topology) = lab.topology() else { return Vec::new() };
    topology
        .nodes
        .iter()
        .map(|n| {
            let role = match (n.is_failing(), n.is_master()) {
                (true, _) => "fail",
                (false, true) => "master",
                (false, false) => "replica",
            };
            (n.addr(), role.to_string())
        })
        .collect()
}
