//! Command groups through the proxy, compared with the same commands sent directly to the
//! cluster by a cluster-aware client (the `redis` crate's cluster client).

mod common;

use common::*;
use resp::Value;

/// Both kinds of reply as one comparable text.
fn norm(value: &Value) -> String {
    match value {
        Value::Simple(s) if s == b"OK" => "OK".into(),
        Value::Simple(s) | Value::Bulk(s) => format!("'{}'", String::from_utf8_lossy(s)),
        Value::Error(e) => format!("ERR({})", String::from_utf8_lossy(e)),
        Value::Integer(n) => n.to_string(),
        Value::Null => "nil".into(),
        Value::Array(items) => {
            format!("[{}]", items.iter().map(norm).collect::<Vec<_>>().join(","))
        }
        other => format!("{other:?}"),
    }
}

fn norm_direct(value: &redis::Value) -> String {
    use redis::Value as R;
    match value {
        R::Okay => "OK".into(),
        R::SimpleString(s) => format!("'{s}'"),
        R::BulkString(s) => format!("'{}'", String::from_utf8_lossy(s)),
        R::Int(n) => n.to_string(),
        R::Nil => "nil".into(),
        R::Array(items) => {
            format!("[{}]", items.iter().map(norm_direct).collect::<Vec<_>>().join(","))
        }
        other => format!("{other:?}"),
    }
}

/// Commands of every data type; multi-key ones keep their keys in one slot with hash tags.
const SCRIPT: &[&[&str]] = &[
    &["SET", "s1", "hello"],
    &["GET", "s1"],
    &["APPEND", "s1", " world"],
    &["STRLEN", "s1"],
    &["GETRANGE", "s1", "0", "4"],
    &["SETNX", "s1", "x"],
    &["SET", "s2", "v", "NX"],
    &["SET", "s2", "w", "GET"],
    &["INCR", "n1"],
    &["INCRBY", "n1", "5"],
    &["DECR", "n1"],
    &["HSET", "h1", "a", "1", "b", "2"],
    &["HGET", "h1", "a"],
    &["HINCRBY", "h1", "a", "3"],
    &["HMGET", "h1", "a", "b", "c"],
    &["HLEN", "h1"],
    &["LPUSH", "l1", "a", "b", "c"],
    &["LRANGE", "l1", "0", "-1"],
    &["RPOP", "l1"],
    &["LLEN", "l1"],
    &["SADD", "st1", "a", "b", "c"],
    &["SCARD", "st1"],
    &["SISMEMBER", "st1", "a"],
    &["ZADD", "z1", "1", "a", "2", "b", "3", "c"],
    &["ZRANGE", "z1", "0", "-1", "WITHSCORES"],
    &["ZSCORE", "z1", "b"],
    &["ZADD", "{z}a", "1", "x", "2", "y"],
    &["ZADD", "{z}b", "5", "y"],
    &["ZUNIONSTORE", "{z}out", "2", "{z}a", "{z}b"],
    &["ZRANGE", "{z}out", "0", "-1", "WITHSCORES"],
    &["ZINTER", "2", "{z}a", "{z}b"],
    &["XADD", "x1", "1-1", "f", "v"],
    &["XADD", "x1", "2-1", "g", "w"],
    &["XLEN", "x1"],
    &["XRANGE", "x1", "-", "+"],
    &["XREAD", "COUNT", "1", "STREAMS", "x1", "0"],
    &["EVAL", "return redis.call('GET', KEYS[1])", "1", "s1"],
    &["EVAL", "return ARGV[1]", "0", "no keys"],
    &["MSET", "{t}a", "1", "{t}b", "2"],
    &["MGET", "{t}a", "{t}b", "{t}c"],
    &["RENAME", "{t}a", "{t}c"],
    &["EXPIRE", "s1", "100"],
    &["TTL", "s1"],
    &["TYPE", "h1"],
    &["OBJECT", "ENCODING", "n1"],
    &["EXISTS", "s1"],
    &["SORT", "l1", "ALPHA"],
    &["LPUSH", "{s}src", "3", "1", "2"],
    &["SORT", "{s}src", "STORE", "{s}dst"],
    &["LRANGE", "{s}dst", "0", "-1"],
    &["GETDEL", "s2"],
    &["DEL", "l1"],
    &["PFADD", "hll", "a", "b"],
    &["PFCOUNT", "hll"],
    &["SETRANGE", "s3", "2", "xy"],
    &["GET", "s3"],
    &["LPOS", "{s}src", "1"],
    &["GET", "nokey"],
    &["HGETALL", "nohash"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_group_answers_as_the_cluster_does_directly() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut through_proxy = Vec::new();
    for command in SCRIPT {
        through_proxy.push(norm(&conn.call(command).await));
    }
    assert_eq!(conn.call(&["FLUSHALL"]).await, ok());
    assert_eq!(conn.call(&["DBSIZE"]).await, Value::Integer(0));

    let client = redis::cluster::ClusterClient::new(
        cluster.addrs().iter().map(|a| format!("redis://{a}")).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut direct = client.get_async_connection().await.unwrap();
    for (i, command) in SCRIPT.iter().enumerate() {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        let reply = match cmd.query_async::<redis::Value>(&mut direct).await {
            Ok(value) => norm_direct(&value),
            Err(e) => format!("ERR({})", e.detail().unwrap_or_default()),
        };
        let proxied = &through_proxy[i];
        // The direct client's error text drops the code; compare errors by being errors.
        if reply.starts_with("ERR(") {
            assert!(proxied.starts_with("ERR("), "{command:?}: proxy {proxied}, direct {reply}");
        } else {
            assert_eq!(proxied, &reply, "{command:?}");
        }
    }
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_commands_cover_every_master() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let keys = keys_on_every_master(3, 20);
    for key in &keys {
        assert_eq!(conn.call(&["SET", key, "v"]).await, ok());
    }
    assert_eq!(conn.call(&["DBSIZE"]).await, Value::Integer(keys.len() as i64));
    let Value::Array(found) = conn.call(&["KEYS", "key:*"]).await else { panic!("KEYS") };
    let mut found: Vec<String> =
        found.iter().map(|k| String::from_utf8_lossy(k.as_bytes().unwrap()).into()).collect();
    found.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(found, expected, "KEYS sees every master");

    // SCAN with one cursor walks all masters; MATCH and COUNT pass through.
    let mut scanned = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Value::Array(reply) =
            conn.call(&["SCAN", &cursor, "MATCH", "key:*", "COUNT", "7"]).await
        else {
            panic!("SCAN")
        };
        cursor = String::from_utf8_lossy(reply[0].as_bytes().unwrap()).into();
        scanned.extend(
            reply[1]
                .as_list()
                .unwrap()
                .iter()
                .map(|k| String::from_utf8_lossy(k.as_bytes().unwrap()).into_owned()),
        );
        if cursor == "0" {
            break;
        }
    }
    scanned.sort();
    scanned.dedup();
    assert_eq!(scanned, expected, "SCAN sees every key once the cursor is back to 0");
    let Value::Array(typed) = conn.call(&["SCAN", "0", "TYPE", "hash"]).await else { panic!() };
    assert_eq!(typed[1], Value::Array(vec![]), "no hashes");

    let random = conn.call(&["RANDOMKEY"]).await;
    assert!(keys.iter().any(|k| Some(k.as_bytes()) == random.as_bytes()), "{random:?}");

    let Value::Bulk(info) = conn.call(&["INFO"]).await else { panic!("INFO") };
    let info = String::from_utf8(info).unwrap();
    assert!(
        info.contains("# Proxy") && info.contains(&format!("db0:keys={},", keys.len())),
        "{info}"
    );
    // `INFO proxy` is the proxy's own section only, answered without asking any node (the
    // health check keepalived runs must not wait on a dead one).
    let Value::Bulk(info) = conn.call(&["INFO", "proxy"]).await else { panic!("INFO proxy") };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("# Proxy") && !info.contains("db0:"), "{info}");

    let Value::Bulk(sha) = conn.call(&["SCRIPT", "LOAD", "return KEYS[1]"]).await else { panic!() };
    let sha = String::from_utf8(sha).unwrap();
    assert_eq!(
        conn.call(&["SCRIPT", "EXISTS", &sha, "0000"]).await,
        Value::Array(vec![Value::Integer(1), Value::Integer(0)])
    );
    // Loaded on every master, so EVALSHA works whatever slot the key is in.
    for key in keys.iter().step_by(20) {
        assert_eq!(conn.call(&["EVALSHA", &sha, "1", key]).await, bulk(key));
    }

    assert_eq!(conn.call(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]).await, ok());
    assert_eq!(
        conn.call(&["CONFIG", "GET", "maxmemory-policy"]).await,
        Value::Array(vec![bulk("maxmemory-policy"), bulk("allkeys-lru")])
    );
    assert_eq!(conn.call(&["FLUSHALL"]).await, ok());
    assert_eq!(conn.call(&["DBSIZE"]).await, Value::Integer(0));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_commands_are_answered_by_the_proxy() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    assert_eq!(conn.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()));
    assert_eq!(conn.call(&["PING", "hi"]).await, bulk("hi"));
    assert_eq!(conn.call(&["ECHO", "x y"]).await, bulk("x y"));
    assert_eq!(conn.call(&["SELECT", "0"]).await, ok());
    assert!(error_text(&conn.call(&["SELECT", "1"]).await).contains("not allowed in cluster mode"));
    assert_eq!(conn.call(&["CLIENT", "SETNAME", "tester"]).await, ok());
    assert_eq!(conn.call(&["CLIENT", "GETNAME"]).await, bulk("tester"));
    let Value::Integer(id) = conn.call(&["CLIENT", "ID"]).await else { panic!() };
    let Value::Bulk(info) = conn.call(&["CLIENT", "INFO"]).await else { panic!() };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains(&format!("id={id} ")) && info.contains("name=tester"), "{info}");
    let Value::Array(time) = conn.call(&["TIME"]).await else { panic!() };
    assert_eq!(time.len(), 2);
    let Value::Integer(count) = conn.call(&["COMMAND", "COUNT"]).await else { panic!() };
    assert!(count > 200, "{count}");
    let Value::Array(hello) = conn.call(&["HELLO", "2"]).await else { panic!() };
    assert!(hello.contains(&bulk("proto")) && hello.contains(&Value::Integer(2)));
    // The version is the cluster's own, as a node reports it.
    let mut node = Conn::connect(cluster.addrs()[0].as_str()).await;
    let Value::Bulk(server) = node.call(&["INFO", "server"]).await else { panic!() };
    let server = String::from_utf8(server).unwrap();
    let version = server.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap();
    let at = hello.iter().position(|v| *v == bulk("version")).unwrap();
    assert_eq!(hello[at + 1], bulk(version), "HELLO's version is the nodes'");
    assert!(matches!(conn.call(&["HELLO", "3"]).await, Value::Map(_)), "RESP3 map after HELLO 3");
    assert_eq!(conn.call(&["QUIT"]).await, ok());
    assert_eq!(conn.reply_or_eof().await, None, "QUIT closes the connection");
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_run_on_the_node_of_their_keys() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    assert_eq!(conn.call(&["MULTI"]).await, ok());
    assert_eq!(conn.call(&["SET", "{tx}a", "1"]).await, Value::Simple(b"QUEUED".to_vec()));
    assert_eq!(conn.call(&["INCR", "{tx}a"]).await, Value::Simple(b"QUEUED".to_vec()));
    assert_eq!(conn.call(&["GET", "{tx}a"]).await, Value::Simple(b"QUEUED".to_vec()));
    assert_eq!(conn.call(&["EXEC"]).await, Value::Array(vec![ok(), Value::Integer(2), bulk("2")]));

    // WATCH, then a change by another client: EXEC aborts (null), as Redis does.
    let mut other = Conn::connect(proxy.local_addr).await;
    assert_eq!(conn.call(&["WATCH", "{tx}a"]).await, ok());
    assert_eq!(other.call(&["SET", "{tx}a", "changed"]).await, ok());
    assert_eq!(conn.call(&["MULTI"]).await, ok());
    assert_eq!(conn.call(&["SET", "{tx}a", "mine"]).await, Value::Simple(b"QUEUED".to_vec()));
    assert_eq!(conn.call(&["EXEC"]).await, Value::Null);
    assert_eq!(conn.call(&["GET", "{tx}a"]).await, bulk("changed"));

    // A key of another slot inside the transaction is refused; EXEC then aborts.
    let keys = keys_on_every_master(3, 1);
    assert_eq!(conn.call(&["MULTI"]).await, ok());
    assert_eq!(conn.call(&["SET", &keys[0], "1"]).await, Value::Simple(b"QUEUED".to_vec()));
    let reply = conn.call(&["SET", &keys[1], "1"]).await;
    assert!(matches!(reply, Value::Error(_)) && !is_redirect(&reply), "{reply:?}");
    assert!(error_text(&conn.call(&["EXEC"]).await).starts_with("EXECABORT"));
    assert_eq!(conn.call(&["GET", &keys[0]]).await, Value::Null, "nothing of it ran");

    // DISCARD drops the queue; EXEC without MULTI is Redis' error.
    assert_eq!(conn.call(&["MULTI"]).await, ok());
    assert_eq!(conn.call(&["SET", "{tx}b", "1"]).await, Value::Simple(b"QUEUED".to_vec()));
    assert_eq!(conn.call(&["DISCARD"]).await, ok());
    assert_eq!(conn.call(&["GET", "{tx}b"]).await, Value::Null);
    assert_eq!(error_text(&conn.call(&["EXEC"]).await), "ERR EXEC without MULTI");
    // The connection keeps working normally after transactions.
    assert_eq!(conn.call(&["SET", &keys[2], "after"]).await, ok());
    assert_eq!(conn.call(&["GET", &keys[2]]).await, bulk("after"));
    proxy.shutdown().await;
}

/// The replies to `commands` sent one by one on a fresh connection to `addr`, as raw bytes;
/// "<closed>" when the connection closed instead of answering.
async fn exchange(addr: &str, commands: &[&[&str]]) -> Vec<String> {
    let mut conn = Conn::connect(addr).await;
    let mut replies = Vec::new();
    for command in commands {
        let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
        conn.send(&args).await;
        match conn.reply_or_eof().await {
            Some(value) => replies.push(norm(&value)),
            None => {
                replies.push("<closed>".into());
                break;
            }
        }
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_with_a_refused_command_is_aborted_as_redis_aborts_it() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "{t}k").await;
    let proxy_addr = proxy.local_addr.to_string();
    let cross = keys_on_every_master(3, 1);
    let cross_slot: &[&str] = &["MGET", &cross[0], &cross[1]];
    // Each sequence leaves `{t}k` unset when Redis discards the transaction.
    let sequences: Vec<Vec<&[&str]>> = vec![
        vec![&["MULTI"], &["SET", "{t}k", "1"], &["NOSUCHCOMMAND"], &["EXEC"]],
        vec![&["MULTI"], &["SET", "{t}k", "1"], &["GET"], &["EXEC"]],
        vec![&["MULTI"], &["SET", "{t}k", "1"], cross_slot, &["EXEC"]],
        // WATCH inside MULTI is an error that does not abort it.
        vec![&["MULTI"], &["SET", "{t}k", "1"], &["WATCH", "{t}x"], &["EXEC"], &["DEL", "{t}k"]],
        // A nested MULTI is an error that does not abort.
        vec![&["MULTI"], &["MULTI"], &["SET", "{t}k", "1"], &["EXEC"], &["DEL", "{t}k"]],
        // RESET and QUIT end the transaction at once.
        vec![&["MULTI"], &["SET", "{t}k", "1"], &["RESET"], &["EXEC"]],
        vec![&["MULTI"], &["SET", "{t}k", "1"], &["QUIT"], &["PING"]],
        vec![&["WATCH", "{t}k"], &["QUIT"], &["PING"]],
    ];
    let mut checker = Conn::connect(&proxy_addr).await;
    for sequence in &sequences {
        let direct = exchange(&node, sequence).await;
        let through_proxy = exchange(&proxy_addr, sequence).await;
        assert_eq!(through_proxy, direct, "{sequence:?}");
        assert_eq!(checker.call(&["GET", "{t}k"]).await, Value::Null, "{sequence:?}");
    }

    // Refused by the proxy, where Redis would have queued them: the transaction is aborted
    // (never partly run), and the connection keeps its protocol and name.
    let mut conn = Conn::connect(&proxy_addr).await;
    for refused in [&["MIGRATE", "h", "1", "k", "0", "0"][..], &["HELLO", "3"], &["SUBSCRIBE", "c"]]
    {
        assert_eq!(conn.call(&["MULTI"]).await, ok());
        assert_eq!(conn.call(&["SET", "{t}k", "1"]).await, Value::Simple(b"QUEUED".to_vec()));
        let reply = conn.call(refused).await;
        assert!(matches!(reply, Value::Error(_)), "{refused:?}: {reply:?}");
        assert!(error_text(&conn.call(&["EXEC"]).await).starts_with("EXECABORT"), "{refused:?}");
        assert_eq!(conn.call(&["GET", "{t}k"]).await, Value::Null, "{refused:?}");
    }
    assert_eq!(conn.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()), "still RESP2");

    // While only WATCHing, the proxy's own commands stay the proxy's: the name is the
    // client's, not the transaction connection's.
    assert_eq!(conn.call(&["WATCH", "{t}k"]).await, ok());
    assert_eq!(conn.call(&["CLIENT", "SETNAME", "watcher"]).await, ok());
    assert_eq!(conn.call(&["UNWATCH"]).await, ok());
    assert_eq!(conn.call(&["CLIENT", "GETNAME"]).await, bulk("watcher"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_commands_do_not_stall_other_clients() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut waiter = Conn::connect(proxy.local_addr).await;
    waiter.send(&[b"BLPOP", b"queue", b"0"]).await;
    // Meanwhile other clients, on the same worker threads, are served.
    let mut others = Vec::new();
    for i in 0..4 {
        let mut conn = Conn::connect(proxy.local_addr).await;
        assert_eq!(conn.call(&["SET", &format!("busy:{i}"), "1"]).await, ok());
        assert_eq!(conn.call(&["GET", &format!("busy:{i}")]).await, bulk("1"));
        others.push(conn);
    }
    assert_eq!(others[0].call(&["RPUSH", "queue", "job"]).await, Value::Integer(1));
    assert_eq!(waiter.reply().await, Value::Array(vec![bulk("queue"), bulk("job")]));
    // The waiter's connection goes on with ordinary commands, in order.
    waiter.send(&[b"BRPOP", b"empty", b"0.1"]).await;
    waiter.send(&[b"GET", b"busy:0"]).await;
    assert_eq!(waiter.reply().await, Value::Null, "BRPOP timed out");
    assert_eq!(waiter.reply().await, bulk("1"));

    // XREAD with BLOCK waits on its own connection too.
    waiter.send(&[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"stream", b"$"]).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let Value::Bulk(_) = others[1].call(&["XADD", "stream", "*", "f", "v"]).await else { panic!() };
    let Value::Array(read) = waiter.reply().await else { panic!("XREAD") };
    assert_eq!(read.len(), 1);
    proxy.shutdown().await;
}

fn message(kind: &str, channel: &str, payload: &str) -> Value {
    Value::Array(vec![bulk(kind), bulk(channel), bulk(payload)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_hears_the_whole_cluster_and_shard_channels_their_shard() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut subscriber = Conn::connect(proxy.local_addr).await;
    assert_eq!(subscriber.call(&["SET", "before", "1"]).await, ok());
    subscriber.send(&[b"SUBSCRIBE", b"news", b"sport"]).await;
    assert_eq!(
        subscriber.reply().await,
        Value::Array(vec![bulk("subscribe"), bulk("news"), Value::Integer(1)])
    );
    assert_eq!(
        subscriber.reply().await,
        Value::Array(vec![bulk("subscribe"), bulk("sport"), Value::Integer(2)])
    );
    // Published on every node directly: the subscriber hears each.
    for addr in cluster.addrs() {
        let mut node = Conn::connect(addr.as_str()).await;
        let Value::Integer(_) = node.call(&["PUBLISH", "news", &format!("from {addr}")]).await
        else {
            panic!()
        };
        assert_eq!(subscriber.reply().await, message("message", "news", &format!("from {addr}")));
    }
    // And through the proxy.
    let mut publisher = Conn::connect(proxy.local_addr).await;
    assert_eq!(publisher.call(&["PUBLISH", "sport", "goal"]).await, Value::Integer(1));
    assert_eq!(subscriber.reply().await, message("message", "sport", "goal"));

    // Only Pub/Sub commands in subscribed mode, as in Redis (RESP2).
    subscriber.send(&[b"GET", b"before"]).await;
    assert!(error_text(&subscriber.reply().await).contains("only (P|S)SUBSCRIBE"));
    subscriber.send(&[b"PING"]).await;
    assert_eq!(subscriber.reply().await, Value::Array(vec![bulk("pong"), bulk("")]));

    // Shard channels: on the shard of their slot.
    subscriber.send(&[b"SSUBSCRIBE", b"orders"]).await;
    assert_eq!(
        subscriber.reply().await,
        Value::Array(vec![bulk("ssubscribe"), bulk("orders"), Value::Integer(1)])
    );
    assert_eq!(publisher.call(&["SPUBLISH", "orders", "o-1"]).await, Value::Integer(1));
    assert_eq!(subscriber.reply().await, message("smessage", "orders", "o-1"));

    // Unsubscribing from everything returns to normal mode.
    subscriber.send(&[b"UNSUBSCRIBE"]).await;
    let mut left = Vec::new();
    left.push(subscriber.reply().await);
    left.push(subscriber.reply().await);
    assert!(
        left.contains(&Value::Array(vec![bulk("unsubscribe"), bulk("news"), Value::Integer(1)]))
            || left.contains(&Value::Array(vec![
                bulk("unsubscribe"),
                bulk("sport"),
                Value::Integer(1)
            ]))
    );
    subscriber.send(&[b"SUNSUBSCRIBE"]).await;
    assert_eq!(
        subscriber.reply().await,
        Value::Array(vec![bulk("sunsubscribe"), bulk("orders"), Value::Integer(0)])
    );
    // Normal mode again once every subscription is gone.
    assert_eq!(subscriber.call(&["GET", "before"]).await, bulk("1"));
    proxy.shutdown().await;
}

/// The `key=value` fields of a CLIENT LIST line.
/// The replies to `commands` sent in one write on a fresh connection, up to the reply `end`
/// (each sequence ends with `ECHO end`, in normal mode).
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
        let reply = conn.reply().await;
        let end = reply == bulk("end");
        replies.push(norm(&reply));
        if end {
            return replies;
        }
    }
}

/// Each sequence, sent as one pipeline, gets the same replies through the proxy as from the
/// node (the master of the sequence's keys).
async fn assert_pipelines_answer_as_the_node(node: &str, proxy: &str, sequences: &[Vec<&[&str]>]) {
    for sequence in sequences {
        let direct = pipelined(node, sequence).await;
        let through_proxy = pipelined(proxy, sequence).await;
        assert_eq!(through_proxy, direct, "{sequence:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_subscribed_mode_replies_keep_the_order_of_the_commands_as_with_redis() {
    let (cluster, proxy) = cluster_and_proxy().await;
    // Shard channel `{t}ch` lives on this node; the others are keyless or on any node.
    let node = master_of(&cluster, "{t}ch").await;
    let proxy_addr = proxy.local_addr.to_string();
    let sequences: Vec<Vec<&[&str]>> = vec![
        // Errors made by the proxy come after the confirmations before them; after the last
        // unsubscribe, commands are in normal mode again, also in the same pipeline.
        vec![
            &["SUBSCRIBE", "c"],
            &["MULTI"],
            &["PING"],
            &["PING", "x"],
            &["NOSUCHCOMMAND"],
            &["UNSUBSCRIBE", "c"],
            &["PING"],
            &["ECHO", "end"],
        ],
        // (One channel per unsubscribe of all: Redis lists several in its hash order.)
        vec![
            &["SUBSCRIBE", "a", "b"],
            &["PSUBSCRIBE", "p*"],
            &["UNSUBSCRIBE", "b"],
            &["UNSUBSCRIBE"],
            &["PING"],
            &["PUNSUBSCRIBE"],
            &["ECHO", "end"],
        ],
        // Two connections behind the proxy (a shard channel and a classic one): their
        // confirmations still come in the order of the commands.
        vec![
            &["SSUBSCRIBE", "{t}ch"],
            &["SUBSCRIBE", "d"],
            &["SUNSUBSCRIBE"],
            &["PING"],
            &["UNSUBSCRIBE"],
            &["ECHO", "end"],
        ],
        // A refused subscribe leaves the client in normal mode.
        vec![&["SSUBSCRIBE", "{t}ch", "{u}ch"], &["ECHO", "end"]],
    ];
    assert_pipelines_answer_as_the_node(&node, &proxy_addr, &sequences).await;

    // With RESP3 every command runs in subscribed mode, its reply in line with the pushes
    // (HELLO's own reply names the connection, so it is left out).
    let resp3: Vec<&[&str]> = vec![
        &["HELLO", "3"],
        &["SUBSCRIBE", "c"],
        &["PING"],
        &["SET", "{t}k", "1"],
        &["GET", "{t}k"],
        &["SUBSCRIBE", "d"],
        &["DEL", "{t}k"],
        &["UNSUBSCRIBE", "d"],
        &["UNSUBSCRIBE"],
        &["ECHO", "end"],
    ];
    let direct = pipelined(&node, &resp3).await;
    let through_proxy = pipelined(&proxy_addr, &resp3).await;
    assert_eq!(through_proxy[1..], direct[1..]);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_with_blocking_commands_runs_in_the_order_sent_as_with_redis() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "{t}l").await;
    let sequence: Vec<&[&str]> = vec![
        &["DEL", "{t}l"],
        &["RPUSH", "{t}l", "old"],
        &["DEL", "{t}l"],
        &["RPUSH", "{t}l", "new"],
        // Runs after the commands before it although it goes over another connection.
        &["BLPOP", "{t}l", "1"],
        // Blocks until its timeout: the RPUSH after it waits, as a blocked client's commands
        // wait in Redis, instead of feeding it.
        &["BLPOP", "{t}l", "0.2"],
        &["RPUSH", "{t}l", "after"],
        &["XREAD", "BLOCK", "100", "STREAMS", "{t}s", "$"],
        &["LRANGE", "{t}l", "0", "-1"],
        &["DEL", "{t}l"],
        &["ECHO", "end"],
    ];
    assert_pipelines_answer_as_the_node(&node, &proxy.local_addr.to_string(), &[sequence]).await;
    proxy.shutdown().await;
}

/// Waits (up to 30 s) until the node's client list shows a client blocked in BLPOP, or none.
async fn wait_for_blpop_on(node: &mut Conn, blocked: bool) {
    for _ in 0..300 {
        let Value::Bulk(list) = node.call(&["CLIENT", "LIST"]).await else { panic!("a list") };
        if String::from_utf8_lossy(&list).contains("cmd=blpop") == blocked {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the node never showed a BLPOP client {}", if blocked { "blocked" } else { "gone" });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_while_blocked_takes_nothing_from_the_list() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut node = Conn::connect(master_of(&cluster, "{t}gone").await).await;
    let mut blocked = Conn::connect(proxy.local_addr).await;
    // A reply is owed when BLPOP comes: it waits for it, then blocks.
    blocked.send(&[b"SET", b"{t}before", b"1"]).await;
    blocked.send(&[b"BLPOP", b"{t}gone", b"0"]).await;
    assert_eq!(blocked.reply().await, ok());
    wait_for_blpop_on(&mut node, true).await;
    drop(blocked);
    // The proxy notices the client left and ends its connection to the node, as Redis ends
    // a blocked client that left: a value pushed later stays in the list.
    wait_for_blpop_on(&mut node, false).await;
    let mut other = Conn::connect(proxy.local_addr).await;
    assert_eq!(other.call(&["RPUSH", "{t}gone", "kept"]).await, Value::Integer(1));
    assert_eq!(
        other.call(&["LRANGE", "{t}gone", "0", "-1"]).await,
        Value::Array(vec![bulk("kept")])
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_with_transactions_runs_in_the_order_sent_as_with_redis() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let node = master_of(&cluster, "{t}k").await;
    // The transactions go over a connection of their own, the rest over the shared one: the
    // commands before a transaction run before it, and those after it see what it did.
    let sequence: Vec<&[&str]> = vec![
        &["DEL", "{t}k"],
        &["SET", "{t}k", "1"],
        &["MULTI"],
        &["INCR", "{t}k"],
        &["EXEC"],
        &["GET", "{t}k"],
        &["INCR", "{t}k"],
        &["WATCH", "{t}k"],
        &["GET", "{t}k"],
        &["MULTI"],
        &["INCR", "{t}k"],
        &["EXEC"],
        &["GET", "{t}k"],
        &["WATCH", "{t}k"],
        &["UNWATCH"],
        &["DEL", "{t}k"],
        &["ECHO", "end"],
    ];
    assert_pipelines_answer_as_the_node(&node, &proxy.local_addr.to_string(), &[sequence]).await;
    proxy.shutdown().await;
}

fn client_fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split(' ')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn client_list(
    conn: &mut Conn,
    args: &[&str],
) -> Vec<std::collections::HashMap<String, String>> {
    let mut command = vec!["CLIENT", "LIST"];
    command.extend(args);
    match conn.call(&command).await {
        Value::Bulk(text) => String::from_utf8(text).unwrap().lines().map(client_fields).collect(),
        other => panic!("CLIENT LIST: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_every_client_of_every_worker_thread() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    // Clients go to the two worker threads in turn: a and c on one, b on the other.
    let mut a = Conn::connect(proxy.local_addr).await;
    let mut b = Conn::connect(proxy.local_addr).await;
    let mut c = Conn::connect(proxy.local_addr).await;
    let mut ids = Vec::new();
    for conn in [&mut a, &mut b, &mut c] {
        let Value::Integer(id) = conn.call(&["CLIENT", "ID"]).await else { panic!() };
        ids.push(id.to_string());
    }
    assert_eq!(a.call(&["CLIENT", "SETNAME", "alpha"]).await, ok());
    assert_eq!(a.call(&["GET", "some-key"]).await, Value::Null);
    assert!(matches!(b.call(&["HELLO", "2", "SETNAME", "beta"]).await, Value::Array(_)));
    b.send(&[b"SUBSCRIBE", b"news"]).await;
    assert!(matches!(b.reply().await, Value::Array(_)), "subscribed");

    let list = client_list(&mut c, &[]).await;
    assert_eq!(list.len(), 3, "{list:?}");
    let find = |id: &str| list.iter().find(|f| f["id"] == id).unwrap_or_else(|| panic!("{id}"));
    let (fa, fb, fc) = (find(&ids[0]), find(&ids[1]), find(&ids[2]));
    for (fields, conn) in [(fa, &a), (fb, &b), (fc, &c)] {
        assert_eq!(fields["addr"], conn.local_addr().to_string());
        assert_eq!(fields["laddr"], proxy.local_addr.to_string());
        assert_eq!(fields["db"], "0");
        for key in ["fd", "age", "idle"] {
            assert!(fields[key].parse::<u64>().is_ok(), "{key} in {fields:?}");
        }
    }
    assert_eq!(
        (fa["name"].as_str(), fa["cmd"].as_str(), fa["flags"].as_str()),
        ("alpha", "get", "N")
    );
    assert_eq!(
        (fb["name"].as_str(), fb["cmd"].as_str(), fb["flags"].as_str()),
        ("beta", "subscribe", "P")
    );
    assert_eq!((fc["name"].as_str(), fc["cmd"].as_str()), ("", "client|list"));

    let pubsub = client_list(&mut c, &["TYPE", "pubsub"]).await;
    assert_eq!(pubsub.iter().map(|f| f["id"].clone()).collect::<Vec<_>>(), [ids[1].clone()]);
    let normal = client_list(&mut c, &["TYPE", "normal"]).await;
    assert_eq!(normal.len(), 2);
    let by_id = client_list(&mut c, &["ID", &ids[0], &ids[2]]).await;
    assert_eq!(by_id.len(), 2);
    let Value::Bulk(info) = c.call(&["CLIENT", "INFO"]).await else { panic!() };
    let info = client_fields(String::from_utf8(info).unwrap().trim_end());
    assert_eq!((info["id"].as_str(), info["cmd"].as_str()), (ids[2].as_str(), "client|info"));

    // A client that left is no longer listed (once the proxy has seen it close).
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client_list(&mut c, &[]).await.iter().any(|f| f["id"] == ids[0]) {
        assert!(std::time::Instant::now() < deadline, "a is still listed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(client_list(&mut c, &[]).await.len(), 2);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_hello_3_replies_are_resp3_as_redis_gives_them() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let mut node = Conn::connect(master_of(&cluster, "{r3}").await.as_str()).await;
    for c in [&mut conn, &mut node] {
        assert!(matches!(c.call(&["HELLO", "3"]).await, Value::Map(_)));
    }
    for setup in [
        &["HSET", "{r3}h", "a", "1", "b", "2"][..],
        &["ZADD", "{r3}z", "1.5", "m", "2", "n"],
        &["SADD", "{r3}s", "x", "y"],
    ] {
        assert!(matches!(conn.call(setup).await, Value::Integer(2)), "{setup:?}");
    }
    // Through the proxy, byte for byte what the node itself says in RESP3.
    let same: [&[&str]; 11] = [
        &["HGETALL", "{r3}h"],
        &["ZSCORE", "{r3}z", "m"],
        &["ZRANGE", "{r3}z", "0", "-1", "WITHSCORES"],
        &["SMEMBERS", "{r3}s"],
        &["GET", "{r3}missing"],
        &["BLPOP", "{r3}nolist", "0.01"],
        &["CONFIG", "GET", "maxmemory-policy"],
        &["COMMAND", "INFO", "get"],
        &["MULTI"],
        &["HGETALL", "{r3}h"],
        &["EXEC"],
    ];
    for command in same {
        let direct = node.call_bytes(command).await;
        let proxied = conn.call_bytes(command).await;
        assert_eq!(
            String::from_utf8_lossy(&proxied),
            String::from_utf8_lossy(&direct),
            "{command:?}"
        );
    }
    assert!(conn.call_bytes(&["HGETALL", "{r3}h"]).await.starts_with(b"%2\r\n"));
    // The whole table (in each node's own order): the node's RESP3 reply, with flags as sets.
    let table = conn.call_bytes(&["COMMAND"]).await;
    assert!(table.starts_with(b"*") && table.windows(3).any(|w| w == b"\r\n~"), "COMMAND");
    assert_eq!(conn.call_bytes(&["ZSCORE", "{r3}z", "m"]).await, b",1.5\r\n");

    // Replies the proxy builds or merges are in RESP3 too.
    let keys = keys_on_every_master(3, 1);
    let mset: Vec<&str> = ["MSET", &keys[0], "v0", &keys[2], "v2"].to_vec();
    assert_eq!(conn.call_bytes(&mset).await, b"+OK\r\n");
    let mget = conn.call_bytes(&["MGET", &keys[0], &keys[1], &keys[2]]).await;
    assert_eq!(mget, b"*3\r\n$2\r\nv0\r\n_\r\n$2\r\nv2\r\n", "nulls of RESP3 in a split MGET");
    assert_eq!(conn.call_bytes(&["CLIENT", "GETNAME"]).await, b"_\r\n");
    for text_reply in [&["INFO"][..], &["CLIENT", "INFO"], &["CLIENT", "LIST"]] {
        let reply = conn.call_bytes(text_reply).await;
        assert!(
            reply.starts_with(b"=") && reply.windows(6).any(|w| w == b"\r\ntxt:"),
            "{text_reply:?}"
        );
    }
    assert!(matches!(conn.call(&["DBSIZE"]).await, Value::Integer(5)));

    // HELLO 2 on the same connection: RESP2 again, as from the node.
    for c in [&mut conn, &mut node] {
        assert!(matches!(c.call(&["HELLO", "2"]).await, Value::Array(_)));
    }
    for command in [&["HGETALL", "{r3}h"][..], &["ZSCORE", "{r3}z", "m"], &["GET", "{r3}missing"]] {
        assert_eq!(conn.call_bytes(command).await, node.call_bytes(command).await, "{command:?}");
    }
    assert_eq!(conn.call_bytes(&["MGET", &keys[1]]).await, b"*1\r\n$-1\r\n");
    proxy.shutdown().await;
}
