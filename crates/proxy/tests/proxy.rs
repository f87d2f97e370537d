//! The proxy in front of a real 3+1 cluster, spoken to by a plain (not cluster-aware) client.

mod common;

use common::*;
use resp::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_random_keys_set_and_get_with_no_redirect_reaching_the_client() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys: Vec<String> = (0..10_000).map(|_| format!("k:{}", rand::random::<u64>())).collect();
    // Pipelined in batches, so that every batch spreads over all three masters.
    for batch in keys.chunks(500) {
        for key in batch {
            conn.send(&[b"SET", key.as_bytes(), format!("v-{key}").as_bytes()]).await;
        }
        for key in batch {
            let reply = conn.reply().await;
            assert_eq!(reply, ok(), "SET {key}");
        }
    }
    for batch in keys.chunks(500) {
        for key in batch {
            conn.send(&[b"GET", key.as_bytes()]).await;
        }
        for key in batch {
            let reply = conn.reply().await;
            assert!(!is_redirect(&reply), "a redirect reached the client: {reply:?}");
            assert_eq!(reply, bulk(&format!("v-{key}")), "GET {key}");
        }
    }
    assert_eq!(proxy.shared.stats.moved.load(std::sync::atomic::Ordering::Relaxed), 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_over_all_three_shards_are_split_and_merged() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys = keys_on_every_master(3, 2);
    let mut mset = vec!["MSET"];
    let values: Vec<String> = keys.iter().map(|k| format!("value of {k}")).collect();
    for (k, v) in keys.iter().zip(&values) {
        mset.push(k);
        mset.push(v);
    }
    assert_eq!(conn.call(&mset).await, ok());

    let mut mget = vec!["MGET", "missing:1"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("missing:2");
    let mut expected = vec![Value::Null];
    expected.extend(values.iter().map(|v| bulk(v)));
    expected.push(Value::Null);
    assert_eq!(conn.call(&mget).await, Value::Array(expected), "values in key order");

    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(String::as_str));
    exists.push(&keys[0]); // counted twice, as Redis does
    exists.push("missing:3");
    assert_eq!(conn.call(&exists).await, Value::Integer(keys.len() as i64 + 1));
    let mut touch = vec!["TOUCH"];
    touch.extend(keys.iter().map(String::as_str));
    assert_eq!(conn.call(&touch).await, Value::Integer(keys.len() as i64));

    let mut del = vec!["DEL"];
    del.extend(keys[..3].iter().map(String::as_str));
    assert_eq!(conn.call(&del).await, Value::Integer(3));
    let mut unlink = vec!["UNLINK"];
    unlink.extend(keys.iter().map(String::as_str));
    assert_eq!(conn.call(&unlink).await, Value::Integer(keys.len() as i64 - 3));
    assert_eq!(conn.call(&["DBSIZE"]).await, Value::Integer(0));

    // Atomic multi-key commands across slots get Redis Cluster's own error.
    for command in [
        vec!["MSETNX", &keys[0], "1", &keys[5], "2"],
        vec!["RENAME", &keys[0], &keys[5]],
        vec!["SMOVE", &keys[0], &keys[5], "m"],
        vec!["LMOVE", &keys[0], &keys[5], "LEFT", "RIGHT"],
        vec!["SINTERSTORE", &keys[0], &keys[5]],
    ] {
        let reply = conn.call(&command).await;
        assert!(error_text(&reply).starts_with("CROSSSLOT"), "{command:?}: {reply:?}");
    }
    // With a hash tag they are one slot and work.
    assert_eq!(conn.call(&["MSETNX", "{t}a", "1", "{t}b", "2"]).await, Value::Integer(1));
    assert_eq!(conn.call(&["RENAME", "{t}a", "{t}c"]).await, ok());

    // A key without its value, over several slots, is Redis' arity error; the connection
    // goes on (it used to end the client's session on a read past the last argument).
    let reply = conn.call(&["MSET", &keys[0], "1", &keys[5]]).await;
    assert_eq!(error_text(&reply), "ERR wrong number of arguments for 'mset' command");
    assert_eq!(conn.call(&["GET", &keys[0]]).await, Value::Null, "nothing was written");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_a_thousand_mixed_commands_is_answered_in_order() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys = keys_on_every_master(3, 4);
    let mut pipeline = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000usize {
        let key = &keys[i % keys.len()];
        let mut push = |args: Vec<Vec<u8>>, reply: Value| {
            resp::write::command(&mut pipeline, &args);
            expected.push(reply);
        };
        match i % 5 {
            0 => push(vec![b"SET".to_vec(), key.clone().into(), format!("{i}").into()], ok()),
            1 => push(vec![b"GET".to_vec(), key.clone().into()], bulk(&format!("{}", i - 1))),
            2 => {
                push(vec![b"ECHO".to_vec(), format!("echo {i}").into()], bulk(&format!("echo {i}")))
            }
            3 => push(
                vec![
                    b"MGET".to_vec(),
                    key.clone().into(),
                    keys[(i + 1) % keys.len()].clone().into(),
                ],
                Value::Array(vec![bulk(&format!("{}", i - 3)), Value::Null]),
            ),
            _ => {
                push(vec![b"PING".to_vec(), format!("ping {i}").into()], bulk(&format!("ping {i}")))
            }
        }
    }
    // What GET and MGET return depends on the SETs before them: replay them in order.
    let mut store = std::collections::HashMap::new();
    for i in 0..1000usize {
        let key = &keys[i % keys.len()];
        match i % 5 {
            0 => {
                store.insert(key.clone(), format!("{i}"));
            }
            1 => expected[i] = store.get(key).map_or(Value::Null, |v| bulk(v)),
            3 => {
                let other = &keys[(i + 1) % keys.len()];
                let value = |k: &String| store.get(k).map_or(Value::Null, |v| bulk(v));
                expected[i] = Value::Array(vec![value(key), value(other)]);
            }
            _ => {}
        }
    }
    conn.send_raw(&pipeline).await;
    for (i, want) in expected.iter().enumerate() {
        let got = conn.reply().await;
        assert_eq!(&got, want, "reply {i} of 1000");
    }
    proxy.shutdown().await;
}

/// Every command the cluster knows (and each of its subcommands), with too few, odd and
/// mixed arguments: each gets a reply and the connection goes on. Commands that end the
/// connection, block, subscribe, open a transaction, or act on the whole cluster are left out,
/// and the unsubscribes (one reply frame per channel named).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_with_bad_arguments_gets_a_reply_and_the_client_goes_on() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut node = Conn::connect(&cluster.addrs()[0]).await;
    let Value::Array(listed) = node.call(&["COMMAND", "LIST"]).await else { panic!("a list") };
    let left_out = [
        "shutdown",
        "debug",
        "monitor",
        "sync",
        "psync",
        "failover",
        "replicaof",
        "slaveof",
        "quit",
        "reset",
        "subscribe",
        "psubscribe",
        "ssubscribe",
        "multi",
        "watch",
        "hello",
        "flushall",
        "flushdb",
        "save",
        "bgsave",
        "bgrewriteaof",
        "blpop",
        "brpop",
        "blmove",
        "brpoplpush",
        "bzpopmin",
        "bzpopmax",
        "blmpop",
        "bzmpop",
        "wait",
        "client",
        "config",
        "unsubscribe",
        "punsubscribe",
        "sunsubscribe",
    ];
    let fillers = ["x", "1", "0", "-1", "{t}k", "STREAMS", "BLOCK", "COUNT", "STORE"];
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut tried = 0;
    for name in listed.iter().map(|v| match v {
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("a command name, got {other:?}"),
    }) {
        if left_out.contains(&name.as_str()) {
            continue;
        }
        let mut variants: Vec<Vec<&str>> = Vec::new();
        for k in 0..4 {
            for filler in &fillers[..5] {
                variants.push(
                    std::iter::once(name.as_str())
                        .chain([*filler; 3][..k].iter().copied())
                        .collect(),
                );
            }
        }
        for k in 4..=fillers.len() {
            variants
                .push(std::iter::once(name.as_str()).chain(fillers[..k].iter().copied()).collect());
        }
        for args in variants {
            // A reply (of any kind), then the connection still answers.
            conn.call(&args).await;
            assert_eq!(conn.call(&["PING", "alive"]).await, bulk("alive"), "after {args:?}");
            tried += 1;
        }
    }
    assert!(tried > 2000, "the cluster listed its commands ({tried} tried)");
    let Value::Bulk(info) = conn.call(&["INFO", "proxy"]).await else { panic!("INFO text") };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("connected_clients:1\r\n"), "one client, still counted: {info}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_input_gets_an_error_and_other_clients_keep_being_served() {
    let (_cluster, proxy) = start_with(|c| c.limits.max_bulk_len = 1024 * 1024).await;
    let mut bystander = Conn::connect(proxy.local_addr).await;
    assert_eq!(bystander.call(&["SET", "bystander", "1"]).await, ok());

    let cases: [(&[u8], &str); 5] = [
        (b"*x\r\n", "Protocol error: invalid multibulk length"),
        (b"*2\r\n$3\r\nGET\r\n+k\r\n", "Protocol error: expected '$', got '+'"),
        (b"*2\r\n$3\r\nSET\r\n$99999999999\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$2000000\r\n", "Protocol error: invalid bulk length"),
        (b"\"unbalanced\r\n", "Protocol error: unbalanced quotes in request"),
    ];
    for (input, error) in cases {
        let mut bad = Conn::connect(proxy.local_addr).await;
        bad.send_raw(b"PING\r\n").await;
        assert_eq!(bad.reply().await, Value::Simple(b"PONG".to_vec()));
        bad.send_raw(input).await;
        let reply = bad.reply().await;
        assert!(error_text(&reply).contains(error), "{input:?}: {reply:?}");
        assert_eq!(bad.reply_or_eof().await, None, "the proxy closes a client that broke RESP");
        assert_eq!(bystander.call(&["GET", "bystander"]).await, bulk("1"));
    }

    // Unknown and unsupported commands are errors that name the command; the client stays.
    let reply = bystander.call(&["NOSUCHCOMMAND", "x"]).await;
    assert!(error_text(&reply).starts_with("ERR unknown command 'NOSUCHCOMMAND'"), "{reply:?}");
    let reply = bystander.call(&["MONITOR"]).await;
    assert!(error_text(&reply).contains("'MONITOR'"), "{reply:?}");
    let reply = bystander.call(&["GET"]).await;
    assert_eq!(error_text(&reply), "ERR wrong number of arguments for 'get' command");
    assert_eq!(bystander.call(&["GET", "bystander"]).await, bulk("1"));
    proxy.shutdown().await;
}

async fn start_with(
    tune: impl FnOnce(&mut proxy::ProxyConfig),
) -> (deploy::testing::TestCluster, proxy::ProxyHandle) {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, tune).await;
    (cluster, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_and_redis_benchmark_work_through_the_proxy_without_cluster_mode() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let port = proxy.local_addr.port().to_string();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("redis-cli runs (apt-get install redis-tools)");
        assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    // Keys of all three masters through a client that knows nothing of the cluster.
    for key in keys_on_every_master(3, 2) {
        assert_eq!(cli(&["SET", &key, "from-cli"]).trim(), "OK");
        assert_eq!(cli(&["GET", &key]).trim(), "from-cli");
    }
    assert_eq!(cli(&["DBSIZE"]).trim(), "6");

    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-benchmark")
            .args([
                "-p", &port, "-c", "20", "-n", "20000", "-r", "10000", "-P", "4", "-t", "set,get",
                "--csv",
            ])
            .output()
            .expect("redis-benchmark runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "redis-benchmark failed: {output:?}");
    for test in ["\"SET\"", "\"GET\""] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(test))
            .unwrap_or_else(|| panic!("{test} in {stdout}"));
        let rps: f64 = line.split(',').nth(1).unwrap().trim_matches('"').parse().unwrap();
        assert!(rps > 0.0, "{line}");
    }
    // No request of the benchmark got an error: the proxy counted none.
    assert_eq!(proxy.shared.stats.errors.load(std::sync::atomic::Ordering::Relaxed), 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_limits_refuse_extra_clients_and_close_idle_ones() {
    let (_cluster, proxy) = start_with(|c| {
        c.max_clients = 2;
        c.client_idle_timeout = Some(std::time::Duration::from_millis(300));
    })
    .await;
    let mut first = Conn::connect(proxy.local_addr).await;
    let mut second = Conn::connect(proxy.local_addr).await;
    assert_eq!(first.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    assert_eq!(second.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    let mut third = Conn::connect(proxy.local_addr).await;
    let reply = third.reply().await;
    assert_eq!(error_text(&reply), "ERR max number of clients reached");
    assert_eq!(third.reply_or_eof().await, None);
    // Left idle past the timeout, a client is closed; its slot frees for a new one.
    assert_eq!(first.reply_or_eof().await, None, "idle client closed");
    let mut fourth = Conn::connect(proxy.local_addr).await;
    assert_eq!(fourth.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_when_asked_and_writes_to_masters() {
    let (_cluster, proxy) = start_with(|c| c.read_from = proxy::ReadFrom::Replica).await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys = keys_on_every_master(3, 5);
    for key in &keys {
        assert_eq!(conn.call(&["SET", key, "v"]).await, ok());
    }
    // Replication is asynchronous: wait until each key is readable, then read again.
    for key in &keys {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while conn.call(&["GET", key]).await != bulk("v") {
            assert!(std::time::Instant::now() < deadline, "{key} never reached its replica");
        }
    }
    let snapshot = proxy.shared.snapshot("test");
    let replica_replies: u64 =
        snapshot.nodes.iter().filter(|n| n.role == "replica").map(|n| n.replies).sum();
    let master_replies: u64 =
        snapshot.nodes.iter().filter(|n| n.role == "master").map(|n| n.replies).sum();
    assert!(replica_replies >= keys.len() as u64, "GETs answered by replicas: {replica_replies}");
    assert!(master_replies >= keys.len() as u64, "SETs answered by masters: {master_replies}");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_clients_sent_and_refuses_new_connections() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    // A drain longer than the test: the BLPOP's reply must come because it is waited for.
    let proxy =
        start_proxy(&cluster, |c| c.drain_timeout = std::time::Duration::from_secs(600)).await;
    let addr = proxy.local_addr;
    let master_addr = master_of(&cluster, "drain:list").await;
    let mut master = Conn::connect(master_addr.as_str()).await;
    let mut idle = Conn::connect(addr).await;
    assert_eq!(idle.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    let mut busy = Conn::connect(addr).await;
    // A pipeline whose last command stays in flight until the list gets an element.
    let mut pipeline = Vec::new();
    for command in
        [&["SET", "drain:key", "1"][..], &["GET", "drain:key"], &["BLPOP", "drain:list", "0"]]
    {
        resp::write::command(&mut pipeline, command);
    }
    busy.send_raw(&pipeline).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let Value::Bulk(info) = master.call(&["INFO", "clients"]).await else { panic!() };
        if String::from_utf8_lossy(&info).contains("blocked_clients:1\r\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "BLPOP never reached {master_addr}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let draining = tokio::spawn(proxy.shutdown());
    // New connections are not served once shutdown started: refused, or closed unanswered
    // when one got in while the listener was closing.
    loop {
        let served = match tokio::net::TcpStream::connect(addr).await {
            Err(e) => {
                eprintln!("a new connection after shutdown: {e}");
                false
            }
            Ok(mut stream) => {
                use tokio::io::AsyncWriteExt;
                stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_ok()
                    && Conn::from_stream(stream).reply_or_eof().await.is_some()
            }
        };
        if !served {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still serving new clients after shutdown");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // ... a client with nothing in flight is closed...
    assert_eq!(idle.reply_or_eof().await, None);
    assert!(!draining.is_finished(), "the shutdown waits for the BLPOP");
    // ... and one with a request in flight gets every reply, in order, then is closed.
    assert_eq!(master.call(&["RPUSH", "drain:list", "late"]).await, Value::Integer(1));
    assert_eq!(busy.reply().await, ok());
    assert_eq!(busy.reply().await, bulk("1"));
    assert_eq!(busy.reply().await, Value::Array(vec![bulk("drain:list"), bulk("late")]));
    assert_eq!(busy.reply_or_eof().await, None, "closed after its last reply");
    draining.await.expect("the shutdown finishes");
}
