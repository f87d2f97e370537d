//! Transactions, shard channels, numkeys and settings through the proxy answer as a real
//! node does (each test compares with one where a node can answer the same).

mod common;

use std::time::Duration;

use common::*;
use deploy::testing::StandaloneServer;
use resp::Value;

/// One reply as a short comparable text.
fn norm(value: &Value) -> String {
    match value {
        Value::Simple(s) | Value::Bulk(s) => String::from_utf8_lossy(s).into_owned(),
        Value::Error(e) => format!("ERR({})", String::from_utf8_lossy(e)),
        Value::Integer(n) => n.to_string(),
        Value::Null => "nil".into(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(norm).collect::<Vec<_>>().join(","))
        }
        other => format!("{other:?}"),
    }
}

/// The replies to `commands` sent one by one on a fresh connection to `addr`; "<no reply>"
/// when none came within 30 s (a connection that stopped answering), and nothing after it.
async fn exchange(addr: &str, commands: &[&[&str]]) -> Vec<String> {
    let mut conn = Conn::connect(addr).await;
    let mut replies = Vec::new();
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        conn.send(&args).await;
        match conn.reply_within(Duration::from_secs(30)).await {
            Some(value) => replies.push(norm(&value)),
            None => {
                replies.push("<no reply>".into());
                break;
            }
        }
    }
    replies
}

/// The replies to `commands` sent in one write, up to the reply `end` (each sequence ends
/// with `ECHO end`); "<no reply>" when the replies stopped before it.
async fn pipelined(addr: &str, commands: &[&[&str]]) -> Vec<String> {
    let mut conn = Conn::connect(addr).await;
    let mut bytes = Vec::new();
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        resp::write::command(&mut bytes, &args);
    }
    conn.send_raw(&bytes).await;
    let mut replies = Vec::new();
    loop {
        let Some(reply) = conn.reply_within(Duration::from_secs(30)).await else {
            replies.push("<no reply>".into());
            return replies;
        };
        let end = reply == bulk("end");
        replies.push(norm(&reply));
        if end {
            return replies;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_commands_inside_multi_are_queued_and_the_connection_never_stops_answering() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "{t}k").await;
    let proxy_addr = proxy.local_addr.to_string();
    let sequences: Vec<Vec<&[&str]>> = vec![
        // The reported hang: OK, then nothing (a node answers OK QUEUED OK PONG).
        vec![&["MULTI"], &["PING"], &["DISCARD"], &["PING"]],
        vec![&["MULTI"], &["PING"], &["SET", "{t}k", "1"], &["EXEC"], &["DEL", "{t}k"]],
        vec![&["MULTI"], &["PING"], &["ECHO", "x"], &["EXEC"], &["PING"]],
        vec![&["MULTI"], &["PING"], &["GET"], &["EXEC"], &["PING"]],
        vec![&["MULTI"], &["ECHO", "a"], &["NOSUCHCOMMAND"], &["EXEC"], &["PING"]],
        vec![&["MULTI"], &["PING"], &["QUIT"]],
        vec![&["MULTI"], &["PING"], &["RESET"], &["PING"]],
        vec![&["MULTI"], &["PING"], &["MULTI"], &["GET", "{t}k"], &["EXEC"], &["DEL", "{t}k"]],
    ];
    for sequence in &sequences {
        let direct = exchange(&node, sequence).await;
        let through_proxy = exchange(&proxy_addr, sequence).await;
        assert_eq!(through_proxy, direct, "{sequence:?}");
    }
    // The same as one pipeline, as a client library's pipeline sends it.
    let pipeline: Vec<&[&str]> =
        vec![&["MULTI"], &["PING"], &["ECHO", "x"], &["EXEC"], &["ECHO", "end"]];
    assert_eq!(pipelined(&proxy_addr, &pipeline).await, pipelined(&node, &pipeline).await);

    // What the proxy answers itself (a node would queue it) is refused inside MULTI and
    // aborts it; every command still gets its reply, in order.
    for refused in [
        &["CONFIG", "GET", "maxmemory"][..],
        &["SCAN", "0"],
        &["CLIENT", "ID"],
        &["CLUSTER", "INFO"],
        &["SUBSCRIBE", "c"],
    ] {
        let sequence: Vec<&[&str]> =
            vec![&["MULTI"], &["PING"], refused, &["SET", "{t}k", "1"], &["EXEC"], &["PING"]];
        let replies = exchange(&proxy_addr, &sequence).await;
        assert_eq!(replies.len(), sequence.len(), "{refused:?}: {replies:?}");
        assert_eq!(replies[..2], ["OK", "QUEUED"], "{refused:?}");
        assert!(replies[2].starts_with("ERR("), "{refused:?}: {replies:?}");
        assert!(replies[4].starts_with("ERR(EXECABORT"), "{refused:?}: {replies:?}");
        assert_eq!(replies[5], "PONG", "{refused:?}");
        let pipeline: Vec<&[&str]> =
            vec![&["MULTI"], &["PING"], refused, &["EXEC"], &["ECHO", "end"]];
        let replies = pipelined(&proxy_addr, &pipeline).await;
        assert_eq!(replies.len(), pipeline.len(), "{refused:?}: {replies:?}");
    }
    let mut checker = Conn::connect(&proxy_addr).await;
    assert_eq!(checker.call(&["GET", "{t}k"]).await, Value::Null, "no refused transaction ran");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_whole_cluster_commands_inside_multi_are_refused_not_one_nodes_answer() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    for refused in
        [&["INFO"][..], &["INFO", "keyspace"], &["DBSIZE"], &["KEYS", "*"], &["FLUSHALL"]]
    {
        assert_eq!(conn.call(&["MULTI"]).await, ok());
        assert_eq!(conn.call(&["SET", "{t}k", "1"]).await, Value::Simple(b"QUEUED".to_vec()));
        let reply = conn.call(refused).await;
        assert!(error_text(&reply).contains("outside MULTI"), "{refused:?}: {reply:?}");
        assert!(error_text(&conn.call(&["EXEC"]).await).starts_with("EXECABORT"), "{refused:?}");
        assert_eq!(conn.call(&["GET", "{t}k"]).await, Value::Null, "{refused:?}");
    }
    // Outside MULTI, INFO is the proxy's and the cluster's.
    let Value::Bulk(info) = conn.call(&["INFO"]).await else { panic!("INFO") };
    assert!(String::from_utf8_lossy(&info).contains("# Proxy"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_channel_counts_are_the_clients_total_as_on_one_node() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    // One plain node counts every shard channel of a client together.
    let node = StandaloneServer::start();
    // foo and bar hash to slots of different masters of the test cluster.
    assert_ne!(cluster::key_slot(b"foo") / 5462, cluster::key_slot(b"bar") / 5462);
    let sequences: Vec<Vec<&[&str]>> = vec![
        vec![
            &["SSUBSCRIBE", "foo"],
            &["SSUBSCRIBE", "bar"],
            &["SUNSUBSCRIBE", "foo"],
            &["SUNSUBSCRIBE"],
            &["ECHO", "end"],
        ],
        vec![
            &["SSUBSCRIBE", "foo"],
            &["SUNSUBSCRIBE", "bar"],
            &["SUNSUBSCRIBE", "foo"],
            &["ECHO", "end"],
        ],
        vec![
            &["SUBSCRIBE", "c"],
            &["SSUBSCRIBE", "foo"],
            &["SSUBSCRIBE", "bar"],
            &["SSUBSCRIBE", "foo"],
            &["UNSUBSCRIBE"],
            &["SUNSUBSCRIBE", "bar"],
            &["SUNSUBSCRIBE", "foo"],
            &["ECHO", "end"],
        ],
    ];
    let proxy_addr = proxy.local_addr.to_string();
    for sequence in &sequences {
        let direct = pipelined(&node.addr(), sequence).await;
        let through_proxy = pipelined(&proxy_addr, sequence).await;
        assert_eq!(through_proxy, direct, "{sequence:?}");
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numkeys_errors_are_redis_own_and_client_setinfo_checks_its_option() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "a").await;
    let commands: Vec<&[&str]> = vec![
        &["EVAL", "return 1", "k1"],
        &["EVAL", "return 1", "-1"],
        &["EVAL", "return 1", "3", "a"],
        &["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "x"],
        &["FCALL", "f", "k1"],
        &["FCALL_RO", "f", "-2"],
        &["ZUNION", "x", "a"],
        &["ZINTER", "0", "a"],
        &["ZUNIONSTORE", "a", "x", "a"],
        &["ZDIFFSTORE", "a", "0", "a"],
        &["LMPOP", "x", "a", "LEFT"],
    ];
    for command in &commands {
        let direct = exchange(&node, &[command]).await;
        let through_proxy = exchange(&proxy.local_addr.to_string(), &[command]).await;
        assert_eq!(through_proxy, direct, "{command:?}");
    }
    // Redis 7.2's answers (7.0 does not know CLIENT SETINFO; clients send it at connect).
    let mut conn = Conn::connect(proxy.local_addr).await;
    let reply = conn.call(&["CLIENT", "SETINFO", "BAD", "x"]).await;
    assert_eq!(error_text(&reply), "ERR Unrecognized option 'BAD'");
    assert_eq!(conn.call(&["CLIENT", "SETINFO", "lib-name", "redis-py"]).await, ok());
    assert_eq!(conn.call(&["CLIENT", "SETINFO", "LIB-VER", "5.0.1"]).await, ok());
    let reply = conn.call(&["CLIENT", "SETINFO", "lib-name", "a b"]).await;
    assert!(error_text(&reply).contains("cannot contain spaces"), "{reply:?}");
    let reply = conn.call(&["CLIENT", "SETINFO", "lib-name"]).await;
    assert!(error_text(&reply).contains("wrong number of arguments"), "{reply:?}");
    proxy.shutdown().await;
}

/// A field of an INFO text.
fn info_field(info: &Value, name: &str) -> u64 {
    let Value::Bulk(text) = info else { panic!("INFO: {info:?}") };
    let text = String::from_utf8_lossy(text);
    let line = text.lines().find(|l| l.starts_with(&format!("{name}:"))).expect(name);
    line[name.len() + 1..].trim().parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_resetstat_resets_the_proxys_counters_and_the_nodes() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    for _ in 0..5 {
        assert_eq!(conn.call(&["SET", "a", "1"]).await, ok());
        let Value::Error(_) = conn.call(&["NOSUCHCOMMAND"]).await else { panic!("an error") };
    }
    let mut node = Conn::connect(cluster.addrs()[0].as_str()).await;
    let Value::Error(_) = node.call(&["NOSUCHCOMMAND"]).await else { panic!("an error") };
    let before = conn.call(&["INFO", "proxy"]).await;
    assert!(info_field(&before, "error_replies") >= 5);
    assert!(info_field(&before, "total_commands_processed") >= 10);
    let rows = |proxy: &proxy::ProxyHandle| {
        let snapshot = proxy.shared.snapshot("");
        snapshot.commands.iter().map(|c| (c.name.clone(), c.calls, c.errors)).collect::<Vec<_>>()
    };
    let row = |rows: &[(String, u64, u64)], name: &str| rows.iter().find(|r| r.0 == name).cloned();
    assert_eq!(row(&rows(&proxy), "set").map(|r| r.1), Some(5), "{:?}", rows(&proxy));
    assert!(row(&rows(&proxy), "(unknown)").is_some(), "{:?}", rows(&proxy));

    assert_eq!(conn.call(&["CONFIG", "RESETSTAT"]).await, ok());
    // The per-command rows of the stats page and /metrics count from zero too.
    let after_rows = rows(&proxy);
    assert_eq!(row(&after_rows, "set"), None, "{after_rows:?}");
    assert_eq!(row(&after_rows, "(unknown)"), None, "{after_rows:?}");
    let after = conn.call(&["INFO", "proxy"]).await;
    assert_eq!(info_field(&after, "error_replies"), 0);
    // The RESETSTAT itself is counted after its reset.
    assert!(info_field(&after, "total_commands_processed") <= 1, "{after:?}");
    assert_eq!(info_field(&node.call(&["INFO", "stats"]).await, "total_error_replies"), 0);
    assert_eq!(conn.call(&["SET", "a", "2"]).await, ok());
    assert_eq!(row(&rows(&proxy), "set").map(|r| r.1), Some(1), "{:?}", rows(&proxy));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_of_a_password_is_refused_so_the_proxy_keeps_its_cluster() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    for setting in ["requirepass", "masterauth", "masteruser", "aclfile", "REQUIREPASS"] {
        let reply = conn.call(&["CONFIG", "SET", setting, "secret"]).await;
        // Refused by the command policy (issue 13); with `--allow config-auth/paths` the proxy
        // still refuses it, as plan.rs' tests show, since it would lock the proxy out.
        assert!(error_text(&reply).contains("--allow config-"), "{setting}: {reply:?}");
    }
    let reply = conn.call(&["CONFIG", "SET", "maxmemory-samples", "5", "requirepass", "x"]).await;
    assert!(error_text(&reply).contains("requirepass"), "{reply:?}");
    // Nothing reached the nodes, and the proxy goes on.
    for addr in cluster.addrs() {
        let mut node = Conn::connect(addr.as_str()).await;
        let reply = node.call(&["CONFIG", "GET", "requirepass"]).await;
        assert_eq!(reply, Value::Array(vec![bulk("requirepass"), bulk("")]), "{addr}");
    }
    assert_eq!(conn.call(&["CONFIG", "SET", "acllog-max-len", "128"]).await, ok());
    assert_eq!(conn.call(&["SET", "after", "1"]).await, ok());
    assert_eq!(conn.call(&["GET", "after"]).await, bulk("1"));
    proxy.shutdown().await;
}
