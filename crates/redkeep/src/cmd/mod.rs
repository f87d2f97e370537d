//! One module per subcommand.

pub mod bench;
pub mod call;
pub mod check;
pub mod controller; // engines
pub mod create;
pub mod down;
pub mod engines; // `redkeep deploy`
pub mod failover;
pub mod fix;
pub mod health;
pub mod keepalived;
pub mod lab;
pub mod proxy;
pub mod status;
pub mod up;

/// Runs a future on a fresh multi-threaded tokio runtime: most commands are short-lived
/// clients, the proxy builds its own runtimes.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts")
        .block_on(future)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Where to find a node when the user named none: the nodes of the local cluster in `dir`,
/// else the default first port.
pub fn seed_candidates(explicit: Option<&str>, dir: &std::path::Path) -> Vec<String> {
    if let Some(node) = explicit {
        return vec![node.to_string()];
    }
    match deploy::local::open(dir) {
        Ok(local) => local.manifest.addrs(),
        Err(_) => vec!["127.0.0.1:7001".to_string()],
    }
}

/// Runs `query` against each candidate until one answers; the last error otherwise.
pub async fn first_answer<T>(
    candidates: &[String],
    query: impl AsyncFn(&str) -> Result<T, cluster::ops::OpsError>,
) -> anyhow::Result<T> {
    let mut last_error = None;
    for candidate in candidates {
        match query(candidate).await {
            Ok(answer) => return Ok(answer),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.map_or_else(|| anyhow::anyhow!("no node to ask"), Into::into))
}
