//! CLIENT PAUSE / UNPAUSE of the proxy's own clients, side by side with a real standalone
//! redis-server: what a paused client sees, what WRITE holds, that UNPAUSE ends a pause early,
//! and that held requests are neither reordered nor lost.

mod common;

use std::time::Duration;

use common::{Conn, bulk, cluster_and_proxy, ok};
use deploy::testing::StandaloneServer;
use resp::Value;

/// How long the test waits to see that no reply comes while a pause holds a request. Not a
/// speed threshold: a held request has no reply at all before the pause ends.
const NO_REPLY_YET: Duration = Duration::from_millis(300);

/// What one client pipelines while paused: writes and reads mixed, each answered in order.
fn pipeline() -> Vec<Vec<&'static str>> {
    let mut requests = vec![vec!["SET", "pause:a", "v"], vec!["GET", "pause:a"]];
    for _ in 0..20 {
        requests.push(vec!["INCR", "pause:n"]);
    }
    requests.push(vec!["GET", "pause:n"]);
    requests
}

/// Runs the same scenario against `addr` (the proxy or the node) and returns what each
/// client saw, in order.
async fn scenario(addr: &str) -> Vec<(&'static str, Option<Value>)> {
    let mut seen = Vec::new();
    let mut admin = Conn::connect(addr).await;
    let mut paused = Conn::connect(addr).await;
    let mut other = Conn::connect(addr).await;

    // WRITE: reads go on, writes (and all after them on that connection) wait.
    seen.push(("pause write", Some(admin.call(&["CLIENT", "PAUSE", "100000", "WRITE"]).await)));
    seen.push(("read while paused", Some(paused.call(&["GET", "pause:a"]).await)));
    // A read-only transaction runs; one with a write waits at the write.
    for request in [&["MULTI"][..], &["GET", "pause:a"], &["EXEC"]] {
        seen.push(("read-only transaction", Some(paused.call(request).await)));
    }
    for request in pipeline() {
        let args: Vec<&[u8]> = request.iter().map(|a| a.as_bytes()).collect();
        paused.send(&args).await;
    }
    seen.push(("write held", paused.reply_within(NO_REPLY_YET).await));
    seen.push(("the write did not run", Some(other.call(&["GET", "pause:a"]).await)));
    seen.push(("unpause", Some(admin.call(&["CLIENT", "UNPAUSE"]).await)));
    for _ in pipeline() {
        seen.push(("held reply", Some(paused.reply().await)));
    }

    // ALL: everything waits, CLIENT UNPAUSE too, until the timeout.
    seen.push(("pause all", Some(admin.call(&["CLIENT", "PAUSE", "1500", "ALL"]).await)));
    paused.send(&[b"GET", b"pause:a"]).await;
    other.send(&[b"CLIENT", b"UNPAUSE"]).await;
    seen.push(("read held", paused.reply_within(NO_REPLY_YET).await));
    seen.push(("after the timeout", Some(paused.reply().await)));
    seen.push(("unpause after the timeout", Some(other.reply().await)));
    seen.push(("bad mode", Some(admin.call(&["CLIENT", "PAUSE", "10", "SOME"]).await)));
    seen.push(("bad timeout", Some(admin.call(&["CLIENT", "PAUSE", "-1"]).await)));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_holds_and_releases_as_redis_does() {
    let node = StandaloneServer::start();
    let (_cluster, proxy) = cluster_and_proxy().await;
    let expected = scenario(&node.addr()).await;
    let through_proxy = scenario(&proxy.local_addr.to_string()).await;
    assert_eq!(through_proxy, expected);

    // What Redis answers, spelled out (so the comparison cannot pass on two wrong answers).
    let at = |name: &str| expected.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(at("pause write"), Some(ok()));
    assert_eq!(at("read while paused"), Some(Value::Null));
    let exec = expected.iter().rfind(|(n, _)| *n == "read-only transaction");
    assert_eq!(exec.unwrap().1, Some(Value::Array(vec![Value::Null])));
    assert_eq!(at("write held"), None);
    assert_eq!(at("the write did not run"), Some(Value::Null));
    let held: Vec<Value> = expected
        .iter()
        .filter(|(n, _)| *n == "held reply")
        .map(|(_, v)| v.clone().unwrap())
        .collect();
    assert_eq!(held[0], ok());
    assert_eq!(held[1], bulk("v"));
    let counts: Vec<Value> = (1..=20).map(Value::Integer).collect();
    assert_eq!(held[2..22], counts[..], "in order, none lost");
    assert_eq!(held[22], bulk("20"));
    assert_eq!(at("read held"), None);
    assert_eq!(at("after the timeout"), Some(bulk("v")));
    proxy.shutdown().await;
}
