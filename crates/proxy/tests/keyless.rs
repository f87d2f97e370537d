//! Keyless commands clients and tools use, served as a user of one Redis expects: ROLE,
//! LASTSAVE, SLOWLOG, LATENCY, MEMORY, CLIENT KILL / UNBLOCK / REPLY / NO-EVICT / PAUSE, and
//! DEBUG / MONITOR / MODULE refused with a reason. Against a real cluster.

mod common;

use std::time::Duration;

use common::{Conn, bulk, cluster_and_proxy, error_text, master_of, ok};
use resp::Value;

fn text_of(value: Value) -> String {
    match value {
        Value::Bulk(text) | Value::Verbatim(_, text) => String::from_utf8(text).unwrap(),
        other => panic!("a text reply: {other:?}"),
    }
}

fn list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("an array: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_lastsave_slowlog_latency_and_memory_cover_the_whole_cluster() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    assert_eq!(
        conn.call(&["ROLE"]).await,
        Value::Array(vec![bulk("master"), Value::Integer(0), Value::Array(vec![])])
    );

    let mut oldest = i64::MAX;
    for addr in &cluster.addrs()[..3] {
        let mut node = Conn::connect(addr.as_str()).await;
        if let Value::Integer(t) = node.call(&["LASTSAVE"]).await {
            oldest = oldest.min(t);
        }
    }
    assert_eq!(conn.call(&["LASTSAVE"]).await, Value::Integer(oldest), "the oldest master's");

    // Every command is slow: the SETs land in their masters' slow logs.
    assert_eq!(conn.call(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await, ok());
    assert!(matches!(conn.call(&["SLOWLOG", "RESET"]).await, Value::Simple(_)));
    let keys: Vec<String> = (0..30).map(|i| format!("slow:{i}")).collect();
    for key in &keys {
        assert_eq!(conn.call(&["SET", key, "v"]).await, ok());
    }
    let entries = list(conn.call(&["SLOWLOG", "GET", "-1"]).await);
    for key in &keys {
        let master = master_of(&cluster, key).await;
        let found = entries.iter().any(|e| {
            let fields = e.as_list().unwrap();
            fields[3] == Value::Array(vec![bulk("SET"), bulk(key), bulk("v")])
                && fields.last() == Some(&bulk(&master))
        });
        assert!(found, "SET {key} labelled with its master {master}");
    }
    let times: Vec<i64> = entries
        .iter()
        .map(|e| match e.as_list().unwrap()[1] {
            Value::Integer(t) => t,
            _ => panic!(),
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    assert_eq!(list(conn.call(&["SLOWLOG", "GET", "2"]).await).len(), 2);
    let Value::Integer(len) = conn.call(&["SLOWLOG", "LEN"]).await else { panic!() };
    assert!(len >= keys.len() as i64, "{len}");
    assert!(error_text(&conn.call(&["SLOWLOG", "GET", "x"]).await).contains("integer"));

    // A latency spike on one node, seen through the proxy with that node's address.
    assert_eq!(conn.call(&["CONFIG", "SET", "latency-monitor-threshold", "1"]).await, ok());
    let spiked = cluster.addrs()[1].clone();
    let mut node = Conn::connect(spiked.as_str()).await;
    // 50 ms of busy script (DEBUG is disabled on the test nodes).
    let busy = "local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] \
                repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - start > 50000";
    assert_eq!(node.call(&["EVAL", busy, "0"]).await, Value::Null);
    let latest = list(conn.call(&["LATENCY", "LATEST"]).await);
    let command = latest.iter().find(|e| e.as_list().unwrap()[0] == bulk("command"));
    assert_eq!(command.unwrap().as_list().unwrap()[4], bulk(&spiked), "{latest:?}");
    let history = list(conn.call(&["LATENCY", "HISTORY", "command"]).await);
    assert!(history.iter().any(|s| s.as_list().unwrap()[2] == bulk(&spiked)), "{history:?}");
    let Value::Integer(reset) = conn.call(&["LATENCY", "RESET"]).await else { panic!() };
    assert!(reset >= 1);
    let doctor = text_of(conn.call(&["LATENCY", "DOCTOR"]).await);
    for addr in cluster.addrs() {
        assert!(doctor.contains(&format!("=== {addr} ===")), "{doctor}");
    }

    // MEMORY STATS summed over the masters: every key is counted once.
    let stats = list(conn.call(&["MEMORY", "STATS"]).await);
    let at = stats.iter().position(|v| *v == bulk("keys.count")).unwrap();
    assert_eq!(stats[at + 1], Value::Integer(keys.len() as i64));
    let doctor = text_of(conn.call(&["MEMORY", "DOCTOR"]).await);
    assert!(doctor.contains(&format!("=== {} ===", cluster.addrs()[0])), "{doctor}");
    // RESP3: a map.
    assert!(matches!(conn.call(&["HELLO", "3"]).await, Value::Map(_)));
    assert!(matches!(conn.call(&["MEMORY", "STATS"]).await, Value::Map(_)));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_reply_and_unblock_act_on_the_proxys_own_clients() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut admin = Conn::connect(proxy.local_addr).await;
    // Connections spread over the proxy's two worker threads.
    let mut victims = Vec::new();
    for _ in 0..3 {
        let mut c = Conn::connect(proxy.local_addr).await;
        let Value::Integer(id) = c.call(&["CLIENT", "ID"]).await else { panic!() };
        victims.push((c, id));
    }
    let (mut by_id, id) = victims.remove(0);
    assert_eq!(admin.call(&["CLIENT", "KILL", "ID", &id.to_string()]).await, Value::Integer(1));
    assert_eq!(by_id.reply_or_eof().await, None, "killed by ID");
    let (mut by_addr, _) = victims.remove(0);
    let addr = by_addr.local_addr().to_string();
    assert_eq!(admin.call(&["CLIENT", "KILL", &addr]).await, ok(), "the old form");
    assert_eq!(by_addr.reply_or_eof().await, None, "killed by address");
    assert!(error_text(&admin.call(&["CLIENT", "KILL", "1.2.3.4:5"]).await).contains("No such"));
    let none = admin.call(&["CLIENT", "KILL", "ADDR", "1.2.3.4:5"]).await;
    assert_eq!(none, Value::Integer(0));
    let (mut survivor, _) = victims.remove(0);
    assert_eq!(survivor.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));

    // CLIENT PAUSE itself: tests/client_pause.rs.
    assert_eq!(admin.call(&["CLIENT", "UNPAUSE"]).await, ok(), "nothing to resume");
    assert_eq!(admin.call(&["CLIENT", "NO-EVICT", "on"]).await, ok());
    assert!(error_text(&admin.call(&["CLIENT", "NO-EVICT", "maybe"]).await).contains("syntax"));

    // CLIENT REPLY: OFF silences everything until ON; SKIP the next command only.
    let mut quiet = Conn::connect(proxy.local_addr).await;
    for command in [&["CLIENT", "REPLY", "OFF"][..], &["SET", "r", "1"], &["GET", "r"]] {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        quiet.send(&args).await;
    }
    assert_eq!(quiet.call(&["CLIENT", "REPLY", "ON"]).await, ok(), "the first reply is ON's");
    assert_eq!(quiet.call(&["GET", "r"]).await, bulk("1"));
    quiet.send(&[b"CLIENT", b"REPLY", b"SKIP"]).await;
    quiet.send(&[b"SET", b"r", b"2"]).await;
    assert_eq!(quiet.call(&["GET", "r"]).await, bulk("2"), "SKIP and the SET had no reply");

    // CLIENT UNBLOCK of a client blocked in BLPOP (on a connection of its own to the master).
    let mut blocked = Conn::connect(proxy.local_addr).await;
    let Value::Integer(blocked_id) = blocked.call(&["CLIENT", "ID"]).await else { panic!() };
    let blocked_id = blocked_id.to_string();
    assert_eq!(admin.call(&["CLIENT", "UNBLOCK", &blocked_id]).await, Value::Integer(0));
    for (mode, expect_error) in [("TIMEOUT", false), ("ERROR", true)] {
        blocked.send(&[b"BLPOP", b"nothing-here", b"0"]).await;
        let mut unblocked = false;
        for _ in 0..300 {
            let reply = admin.call(&["CLIENT", "UNBLOCK", &blocked_id, mode]).await;
            if reply == Value::Integer(1) {
                unblocked = true;
                break;
            }
            assert_eq!(reply, Value::Integer(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(unblocked, "CLIENT UNBLOCK {mode} found the blocked BLPOP");
        let reply = blocked.reply().await;
        match expect_error {
            false => assert_eq!(reply, Value::Null, "TIMEOUT: BLPOP answers nil"),
            true => assert!(error_text(&reply).starts_with("UNBLOCKED"), "{reply:?}"),
        }
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_monitor_and_module_are_refused_with_a_reason() {
    use proxy::acl::policy::{Allowed, Kind};
    let (cluster, proxy) = cluster_and_proxy().await;
    // By default the command policy refuses DEBUG and MODULE, naming the option that allows
    // them; allowed, the proxy still cannot serve them for a cluster and says why.
    let allowed = common::start_proxy(&cluster, |c| {
        c.security.allow = Allowed::none().with(Kind::Debug).with(Kind::Module)
    })
    .await;
    for (addr, debug, module) in [
        (proxy.local_addr, "--allow debug", "--allow module"),
        (allowed.local_addr, "run it on that node", "run MODULE on every node"),
    ] {
        let mut conn = Conn::connect(addr).await;
        for (command, reason) in [
            (&["DEBUG", "SLEEP", "0"][..], debug),
            (&["MONITOR"], "run MONITOR on a node"),
            (&["MODULE", "LIST"], module),
            (&["LATENCY", "HISTOGRAM"], "run it on a node"),
        ] {
            let error = error_text(&conn.call(command).await);
            assert!(error.contains(reason), "{command:?}: {error}");
        }
        assert_eq!(conn.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    }
    allowed.shutdown().await;
    proxy.shutdown().await;
}
