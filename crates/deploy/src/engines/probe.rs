//! Health checks of a Redis node run by an engine (`redkeep deploy probe`): ready when it
//! serves a cluster that is `ok`, alive when it answers at all.

use std::time::Duration;

use cluster::admin::{AdminConn, AdminError, info_field, parse_info};

/// `Ok(summary)` when the node at `addr` answers and reports `cluster_state:ok`.
pub async fn ready(addr: &str, timeout: Duration) -> Result<String, String> {
    let asking = async {
        let mut conn = AdminConn::connect(addr, timeout).await?;
        let info = parse_info(&conn.query_text(&["CLUSTER", "INFO"]).await?);
        Ok::<_, AdminError>(info_field(&info, "cluster_state").unwrap_or("?").to_string())
    };
    match within(timeout, addr, asking).await? {
        state if state == "ok" => Ok(format!("ready: {addr} is in a cluster that is ok")),
        state => Err(format!("{addr} reports cluster_state:{state}")),
    }
}

/// `Ok(summary)` when something at `addr` answers PING (`LOADING` counts: it is alive).
pub async fn alive(addr: &str, timeout: Duration) -> Result<String, String> {
    let asking = async {
        let mut conn = AdminConn::connect(addr, timeout).await?;
        conn.raw(&["PING"]).await
    };
    match within(timeout, addr, asking).await? {
        resp::Value::Error(e) if !e.starts_with(b"LOADING") => {
            Err(format!("{addr} answered PING with {}", String::from_utf8_lossy(&e)))
        }
        _ => Ok(format!("alive: {addr} answers")),
    }
}

async fn within<T>(
    timeout: Duration,
    addr: &str,
    asking: impl Future<Output = Result<T, AdminError>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, asking).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("{addr} did not answer within {timeout:?}")),
    }
}
