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
pub mod monitor;
pub mod proxy;
pub mod status;
pub mod up;
// Live scaling.
pub mod backup;
pub mod scaling;

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

/// Where to find a node when the user named none: the nodes of the local cluster in `dir`
/// (with its stored password and certificates, see [`use_dir_secrets`]), else the default
/// first port.
pub fn seed_candidates(explicit: Option<&str>, dir: &std::path::Path) -> Vec<String> {
    if let Some(node) = explicit {
        return vec![node.to_string()];
    }
    match deploy::local::open(dir) {
        Ok(local) => {
            use_dir_secrets(&local);
            local.manifest.addrs()
        }
        Err(_) => vec!["127.0.0.1:7001".to_string()],
    }
}

/// Makes what a cluster of `redkeep up --auth` / `--tls` needs the way this process's admin
/// connections reach its nodes: the stored password, unless one was given (--password /
/// REDKEEP_PASSWORD wins), and TLS with the dir's certificates, unless --node-tls-ca was given.
pub fn use_dir_secrets(local: &deploy::local::LocalDir) {
    use_stored_password(local);
    if let Some(tls) = local.tls()
        && !cluster::net::node_tls_enabled()
        && let Err(e) = cluster::net::set_node_tls(Some(&tls.node_tls()))
    {
        eprintln!("warning: {e}: the nodes are asked without TLS");
    }
}

fn use_stored_password(local: &deploy::local::LocalDir) {
    if cluster::admin::credentials().is_some() {
        return;
    }
    match local.password() {
        Ok(Some(password)) => cluster::admin::set_credentials(Some(cluster::admin::Credentials {
            user: None,
            password,
        })),
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}: the nodes are asked without a password"),
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

/// Refuses a redkeep proxy's address where a Redis node's is needed, saying what to pass. A
/// proxy is known by the `# Proxy` section of its INFO (it may answer CLUSTER commands as one
/// virtual node, so their failing proves nothing). Anything else, also an address where
/// nothing answers, passes: the command then reports on it as on any node.
pub async fn refuse_proxy(addr: &str, command: &str) -> anyhow::Result<()> {
    let timeout = std::time::Duration::from_secs(2);
    if deploy::health::proxy_info(addr, timeout).await.is_ok() {
        anyhow::bail!(
            "{addr} is a redkeep proxy, not a Redis node: `redkeep {command}` needs one of the \
             cluster's nodes (one of the proxy's --seed addresses; 127.0.0.1:7001 for a cluster \
             of `redkeep up`). To check the proxy itself: `redkeep health --proxy {addr}`"
        );
    }
    Ok(())
}

/// A clap value parser for a node's or a proxy's address: `HOST:PORT`, with a hint when the
/// host or the port was left out (`7001`, `127.0.0.1`).
pub fn host_port(text: &str) -> Result<String, String> {
    let hint = match text.rsplit_once(':') {
        _ if text.parse::<u16>().is_ok() => format!("did you mean 127.0.0.1:{text}?"),
        None => format!("add the port, e.g. {text}:7001"),
        Some(("", _)) => format!("add the host, e.g. 127.0.0.1{text}"),
        Some((_, port)) => match port.parse::<u16>() {
            Ok(0) | Err(_) => format!("the port `{port}` must be a number from 1 to 65535"),
            Ok(_) => return Ok(text.to_string()),
        },
    };
    Err(format!("expected HOST:PORT; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_names_what_is_missing() {
        assert_eq!(host_port("127.0.0.1:7001"), Ok("127.0.0.1:7001".to_string()));
        assert_eq!(host_port("redis-a:6379"), Ok("redis-a:6379".to_string()));
        assert!(host_port("7001").unwrap_err().contains("127.0.0.1:7001"));
        assert!(host_port("127.0.0.1").unwrap_err().contains("127.0.0.1:7001"));
        assert!(host_port(":7001").unwrap_err().contains("add the host"));
        assert!(host_port("h:0").unwrap_err().contains("1 to 65535"));
        assert!(host_port("h:x").unwrap_err().contains("1 to 65535"));
    }
}
