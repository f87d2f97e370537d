//! `redkeep status`: every node and the cluster summary.

use std::path::PathBuf;
use std::process::ExitCode;

/// Show every node (id, address, role, master, slots, flags, link, memory, ops/s, replication
/// offset and lag) and the cluster summary (state, slots ok/pfail/fail, known nodes, epoch).
///
/// Without HOST:PORT it asks the nodes of the local cluster in `--dir` (the first that
/// answers), or 127.0.0.1:7001.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// Any node of the cluster, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    node: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Local cluster dir to find a node in when HOST:PORT is not given.
    #[arg(long, default_value = ".redkeep")]
    dir: PathBuf,
    /// The redkeep proxy to report on too.
    #[arg(long, default_value = "127.0.0.1:7010", value_parser = super::host_port)]
    proxy: String,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let candidates = super::seed_candidates(args.node.as_deref(), &args.dir);
    let (report, proxy) = super::block_on(async {
        if let Some(node) = &args.node {
            super::refuse_proxy(node, "status").await?;
        }
        let report = super::first_answer(&candidates, cluster::ops::gather_status).await?;
        let proxy =
            deploy::health::proxy_info(&args.proxy, std::time::Duration::from_millis(500)).await;
        anyhow::Ok((report, proxy.ok()))
    })?;
    if args.json {
        let proxy = proxy
            .as_ref()
            .map(|fields| fields.iter().cloned().collect::<std::collections::BTreeMap<_, _>>());
        // The cluster report's fields at the top, the proxy's INFO beside them.
        let mut json = serde_json::to_value(&report)?;
        json["proxy"] = serde_json::json!({ "addr": args.proxy, "info": proxy });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report.render());
        println!("{}", render_proxy(&args.proxy, proxy.as_deref()));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_proxy(addr: &str, info: Option<&[(String, String)]>) -> String {
    let Some(info) = info else { return format!("proxy {addr}: not reachable") };
    let field = |name: &str| cluster::admin::info_field(info, name).unwrap_or("?").to_string();
    format!(
        "proxy {addr}: up {}s, {} clients, {} commands, {} errors, {} MOVED / {} ASK followed, {} retries, {} masters, {} slots uncovered",
        field("uptime_in_seconds"),
        field("connected_clients"),
        field("total_commands_processed"),
        field("error_replies"),
        field("moved_followed"),
        field("ask_followed"),
        field("retries"),
        field("cluster_masters"),
        field("cluster_slots_uncovered"),
    )
}
