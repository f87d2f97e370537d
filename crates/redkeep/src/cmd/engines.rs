//! `redkeep deploy`: run the cluster on another engine. `render` writes Kubernetes manifests
//! or a Docker Swarm stack; `probe` is the health check those run inside a node's container.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use deploy::engines::{EngineSpec, kubernetes, swarm};

/// Deploy on Kubernetes or Docker Swarm: render the manifests (StatefulSets per shard with
/// volumes, anti-affinity, disruption budgets, the proxies behind a Service, and `redkeep
/// controller`, which forms the cluster and keeps it whole when pods come back with new
/// addresses), and the probes their containers run. Build the image from deploy/Containerfile.
#[derive(clap::Args)]
pub struct DeployArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Write the manifests of an engine.
    Render {
        #[command(subcommand)]
        engine: Engine,
    },
    /// Check a node (or, with --live, anything that speaks RESP) from inside its container:
    /// exit 0 when it is ready (it answers and its cluster_state is ok), 1 otherwise, saying
    /// why. Kubernetes runs it as the nodes' readiness probe; Swarm as `--live` health check.
    Probe {
        /// The node, HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:6379")]
        node: String,
        /// Only ask whether it answers PING (a node still loading its data counts).
        #[arg(long)]
        live: bool,
        /// How long to wait for its answer.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

#[derive(clap::Subcommand)]
enum Engine {
    /// Kubernetes manifests, one file per part, into --out DIR; then
    /// `kubectl apply -f DIR`. The cluster needs as many schedulable nodes as a shard has
    /// pods (1 + --replicas): no two pods of a shard may share one.
    Kubernetes {
        #[command(flatten)]
        common: Common,
        /// Namespace of every object (the manifests create it).
        #[arg(long, default_value = "redkeep")]
        namespace: String,
        /// Size of each node's PersistentVolumeClaim.
        #[arg(long, default_value = "1Gi")]
        storage: String,
        /// The directory to write into (created when missing; files of the same names are
        /// replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// A Docker Swarm stack file; then label the hosts (`docker node update --label-add
    /// redkeep.host=h1 NODE`, h1..hN) and `docker stack deploy -c FILE redkeep`.
    Swarm {
        #[command(flatten)]
        common: Common,
        /// Swarm hosts labelled redkeep.host=h1..hN; a shard's nodes are pinned to different
        /// ones, so at least 1 + --replicas.
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// The stack file to write (`-` for standard output).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct Common {
    /// Masters (shards); each gets --replicas replicas.
    #[arg(long, default_value_t = 3)]
    masters: usize,
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Proxies (at least 2).
    #[arg(long, default_value_t = 2)]
    proxies: usize,
    /// The redkeep image (built from deploy/Containerfile).
    #[arg(long, default_value = concat!("redkeep:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Prefix of every object's name.
    #[arg(long, default_value = "redkeep")]
    name: String,
    /// cluster-node-timeout of the nodes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    node_timeout: Duration,
}

impl Common {
    fn spec(self) -> EngineSpec {
        EngineSpec {
            name: self.name,
            image: self.image,
            masters: self.masters,
            replicas: self.replicas,
            proxies: self.proxies,
            node_timeout_ms: self.node_timeout.as_millis() as u64,
            ..EngineSpec::default()
        }
    }
}

pub fn run(args: DeployArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Render { engine: Engine::Kubernetes { common, namespace, storage, out } } => {
            let spec = EngineSpec { namespace, storage, ..common.spec() };
            let files = kubernetes::render(&spec)?;
            let paths = kubernetes::write_dir(&files, &out)
                .with_context(|| format!("cannot write the manifests into {}", out.display()))?;
            for path in paths {
                println!("wrote {}", path.display());
            }
            println!("Apply with: kubectl apply -f {}", out.display());
        }
        Action::Render { engine: Engine::Swarm { common, hosts, out } } => {
            let spec = EngineSpec { hosts, ..common.spec() };
            let text = swarm::render(&spec)?;
            if out.as_os_str() == "-" {
                print!("{text}");
            } else {
                std::fs::write(&out, text)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!("wrote {}", out.display());
                println!(
                    "Label {hosts} hosts (docker node update --label-add redkeep.host=h1 NODE, \
                     ... h{hosts}), then: docker stack deploy -c {} {}",
                    out.display(),
                    spec.name
                );
            }
        }
        Action::Probe { node, live, timeout } => {
            let probe = async {
                match live {
                    true => deploy::engines::probe::alive(&node, timeout).await,
                    false => deploy::engines::probe::ready(&node, timeout).await,
                }
            };
            return Ok(match super::block_on(probe) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    eprintln!("not ready: {reason}");
                    ExitCode::FAILURE
                }
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
