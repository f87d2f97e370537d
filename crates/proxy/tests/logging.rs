//! What the proxy logs. In a file of its own: the log is captured by a process-wide
//! subscriber, which other tests running at the same time would write to.

mod common;

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use resp::Value;

/// Every line the proxy logs, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Waits (up to 30 s) until a client in the node's CLIENT LIST has `field`, or none has.
async fn wait_for(node: &str, field: &str, listed: bool) {
    let mut conn = Conn::connect(node).await;
    for _ in 0..300 {
        let Value::Bulk(list) = conn.call(&["CLIENT", "LIST"]).await else { panic!("a list") };
        if String::from_utf8_lossy(&list).contains(field) == listed {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{node}: a client with {field} listed: {}", !listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_proxy_closes_on_purpose_log_no_warning() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "{t}k").await;

    // Clients that leave while the proxy holds a connection of theirs to the node: a
    // blocking command, a transaction, a WATCH, subscriptions.
    let mut blocked = Conn::connect(proxy.local_addr).await;
    blocked.send(&[b"BLPOP", b"{t}k", b"0"]).await;
    let mut in_multi = Conn::connect(proxy.local_addr).await;
    assert_eq!(in_multi.call(&["MULTI"]).await, ok());
    assert_eq!(in_multi.call(&["SET", "{t}k", "1"]).await, Value::Simple(b"QUEUED".to_vec()));
    let mut watching = Conn::connect(proxy.local_addr).await;
    assert_eq!(watching.call(&["WATCH", "{t}k"]).await, ok());
    let mut subscriber = Conn::connect(proxy.local_addr).await;
    subscriber.send(&[b"SSUBSCRIBE", b"{t}ch"]).await;
    let Value::Array(_) = subscriber.reply().await else { panic!("a confirmation") };
    let fields = ["cmd=blpop", "flags=x", "cmd=watch", "ssub=1"];
    for field in fields {
        wait_for(&node, field, true).await;
    }
    drop((blocked, in_multi, watching, subscriber));
    for field in fields {
        wait_for(&node, field, false).await;
    }

    let warnings: Vec<String> =
        log.text().lines().filter(|l| l.contains("WARN")).map(str::to_string).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(proxy.shared.stats.backend_failures.load(Relaxed), 0);
    proxy.shutdown().await;
}
