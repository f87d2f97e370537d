//! Large values through the proxy: bulk replies from 256 KiB up go to the client in parts as
//! they arrive from the node (see `backend::STREAM_REPLY`). Every byte must arrive, in order,
//! whatever else the connection and the node connection carry around them.

mod common;

use common::*;
use resp::Value;

/// A value of `len` bytes that differs from every other (`seed`), with RESP-looking text
/// inside it (a redirect, CRLFs) that the proxy must pass on as data.
fn value(seed: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 97 {
            0 => out.extend_from_slice(b"\r\n-MOVED 1 127.0.0.1:1\r\n"),
            1 => out.extend_from_slice(b"\r\n$5\r\n"),
            _ => out.push(x as u8),
        }
    }
    out.truncate(len);
    out
}

const SIZES: [usize; 4] = [256 * 1024, 300 * 1024 + 7, 512 * 1024, 1200 * 1024 + 3];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_arrive_whole_and_in_order_among_small_replies_on_shared_connections() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    // One worker: every client's requests share its one connection per node.
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let keys = keys_on_every_master(3, 2);
    let mut setup = Conn::connect(proxy.local_addr).await;
    let mut values = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let v = value(i, SIZES[i % SIZES.len()]);
        setup.send(&[b"SET", key.as_bytes(), &v]).await;
        assert_eq!(setup.reply().await, ok(), "SET {key}");
        values.push(v);
    }
    let mut clients = Vec::new();
    for c in 0..4usize {
        let (keys, values, addr) = (keys.clone(), values.clone(), proxy.local_addr);
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await;
            for round in 0..5usize {
                // A pipeline that mixes large replies from every node with small ones, so
                // that a large reply is sometimes the client's next and sometimes early.
                let mut pipeline = Vec::new();
                let mut expected = Vec::new();
                for k in 0..keys.len() {
                    let i = (k + c + round) % keys.len();
                    resp::write::command(&mut pipeline, &[b"GET".as_slice(), keys[i].as_bytes()]);
                    expected.push(Value::Bulk(values[i].clone()));
                    let echo = format!("c{c} r{round} k{k}");
                    resp::write::command(&mut pipeline, &[b"ECHO".as_slice(), echo.as_bytes()]);
                    expected.push(bulk(&echo));
                }
                conn.send_raw(&pipeline).await;
                for (n, want) in expected.iter().enumerate() {
                    let got = conn.reply().await;
                    assert!(&got == want, "client {c} round {round}: reply {n} differs");
                }
                // One at a time, as most applications ask.
                for (i, key) in keys.iter().enumerate() {
                    conn.send(&[b"GET", key.as_bytes()]).await;
                    assert!(conn.reply().await == Value::Bulk(values[i].clone()), "GET {key}");
                }
            }
        }));
    }
    for client in clients {
        client.await.expect("a client's checks pass");
    }
    proxy.shutdown().await;
}

/// Large values on one master, and a small key there too: the requests of every client of
/// the proxy's one worker share one connection to that node.
async fn one_node_with_large_values(
    proxy: &proxy::ProxyHandle,
    count: usize,
) -> (Vec<String>, Vec<Vec<u8>>, String) {
    let keys: Vec<String> = (0..count).map(|i| format!("{{big}}:{i}")).collect();
    let mut setup = Conn::connect(proxy.local_addr).await;
    let mut values = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let v = value(100 + i, 512 * 1024);
        setup.send(&[b"SET", key.as_bytes(), &v]).await;
        assert_eq!(setup.reply().await, ok(), "SET {key}");
        values.push(v);
    }
    setup.send(&[b"SET", b"{big}:small", b"small"]).await;
    assert_eq!(setup.reply().await, ok());
    (keys, values, "{big}:small".to_string())
}

/// A client that asks for megabytes and reads none of it must not stall the node connection
/// it shares with the worker's other clients: what it does not read waits in its own output,
/// and the node connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_holds_up_no_other_client_of_its_node_connection() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let (keys, values, small) = one_node_with_large_values(&proxy, 4).await;
    let mut sleeper = Conn::connect(proxy.local_addr).await;
    let mut pipeline = Vec::new();
    for _ in 0..4 {
        for key in &keys {
            resp::write::command(&mut pipeline, &[b"GET".as_slice(), key.as_bytes()]);
        }
    }
    sleeper.send_raw(&pipeline).await;
    let mut other = Conn::connect(proxy.local_addr).await;
    for round in 0..3 {
        for (key, v) in keys.iter().zip(&values) {
            other.send(&[b"GET", key.as_bytes()]).await;
            assert!(other.reply().await == Value::Bulk(v.clone()), "round {round}: GET {key}");
        }
        other.send(&[b"GET", small.as_bytes()]).await;
        assert_eq!(other.reply().await, bulk("small"));
    }
    // The sleeper's replies are all still there for it, in order.
    for n in 0..16 {
        let got = sleeper.reply().await;
        assert!(got == Value::Bulk(values[n % values.len()].clone()), "sleeper's reply {n}");
    }
    proxy.shutdown().await;
}

/// A client that leaves in the middle of large replies (part of one read, the rest in the
/// proxy's output for it) leaves the proxy serving the others, the same node connection
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_in_the_middle_of_a_large_reply_leaves_the_others_served() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let (keys, values, small) = one_node_with_large_values(&proxy, 3).await;
    for _ in 0..3 {
        let mut leaver = Conn::connect(proxy.local_addr).await;
        let mut pipeline = Vec::new();
        for key in &keys {
            resp::write::command(&mut pipeline, &[b"GET".as_slice(), key.as_bytes()]);
        }
        leaver.send_raw(&pipeline).await;
        leaver.read_some().await;
        drop(leaver);
    }
    let mut other = Conn::connect(proxy.local_addr).await;
    for (key, v) in keys.iter().zip(&values) {
        other.send(&[b"GET", key.as_bytes()]).await;
        assert!(other.reply().await == Value::Bulk(v.clone()), "GET {key}");
    }
    other.send(&[b"GET", small.as_bytes()]).await;
    assert_eq!(other.reply().await, bulk("small"));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_reply_the_client_muted_is_not_written() {
    let (_cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    let big = value(7, 700 * 1024);
    conn.send(&[b"SET", b"big", &big]).await;
    assert_eq!(conn.reply().await, ok());
    conn.send_raw(
        b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n",
    )
    .await;
    conn.send(&[b"PING"]).await;
    assert_eq!(conn.reply().await, Value::Simple(b"PONG".to_vec()));
    conn.send(&[b"GET", b"big"]).await;
    assert!(conn.reply().await == Value::Bulk(big), "the value, whole");
    proxy.shutdown().await;
}

/// A node that dies in the middle of a large reply: the client gets what came, then the proxy
/// closes its connection (the reply can neither be completed nor retried after its first part)
/// instead of leaving it waiting for the rest for ever. Redis writes at most 64 KiB to a client
/// per turn of its event loop, so a 128 MiB reply is still going out when the node is killed,
/// right after its first bytes reached the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_reply_a_dying_node_cut_off_is_closed_after_what_came() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let huge = vec![b'v'; 128 * 1024 * 1024];
    let mut conn = Conn::connect(proxy.local_addr).await;
    conn.send(&[b"SET", b"huge", &huge]).await;
    assert_eq!(conn.reply().await, ok());
    let master = master_of(&cluster, "huge").await;
    let port: u16 = master.rsplit(':').next().unwrap().parse().unwrap();
    conn.send(&[b"GET", b"huge"]).await;
    conn.read_some().await;
    cluster.kill9(port);
    let got = conn.read_to_close().await;
    let whole = format!("${}\r\n", huge.len()).len() + huge.len() + 2;
    assert!(got < whole, "the whole reply came ({got} bytes): the node finished before it died");
    proxy.shutdown().await;
}

/// The proxy's open connections to `node` (every worker's, every lane's).
fn connections_to(proxy: &proxy::ProxyHandle, node: &str) -> i64 {
    let nodes = proxy.shared.registry.nodes();
    nodes.iter().find(|n| n.0 == node).map_or(0, |n| n.3)
}

/// A client that got a large reply moves to a connection that only a few clients share (a
/// bulk lane, see `worker::BULK_LANES`): Redis writes at most 64 KiB per connection per turn
/// of its event loop, so large replies to clients sharing one connection come slower. Clients
/// of small values keep sharing one connection, where their requests batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gets_a_large_reply_moves_to_a_bulk_lane_and_small_clients_stay_shared() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let (keys, values, small) = one_node_with_large_values(&proxy, 1).await;
    let node = master_of(&cluster, &small).await;
    let mut smalls = [Conn::connect(proxy.local_addr).await, Conn::connect(proxy.local_addr).await];
    for conn in &mut smalls {
        conn.send(&[b"GET", small.as_bytes()]).await;
        assert_eq!(conn.reply().await, bulk("small"));
    }
    assert_eq!(connections_to(&proxy, &node), 1, "every client so far shares one connection");
    let mut large = Conn::connect(proxy.local_addr).await;
    large.send(&[b"GET", keys[0].as_bytes()]).await;
    assert!(large.reply().await == Value::Bulk(values[0].clone()), "the large value");
    large.send(&[b"GET", small.as_bytes()]).await;
    assert_eq!(large.reply().await, bulk("small"));
    assert_eq!(connections_to(&proxy, &node), 2, "the large client's request went on a lane");
    for conn in &mut smalls {
        conn.send(&[b"GET", small.as_bytes()]).await;
        assert_eq!(conn.reply().await, bulk("small"));
    }
    assert_eq!(connections_to(&proxy, &node), 2, "the small clients still share one");
    proxy.shutdown().await;
}

/// Moving to a bulk lane never lets a request of the client overtake an earlier one: each
/// client's counter, increased in pipelines around large replies (the first pipeline sent
/// before its first large reply came, the next ones while replies of the previous are still
/// coming), counts up one by one, and a value written in a pipeline is read back after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_keeps_the_order_of_its_requests_when_it_moves_to_a_bulk_lane() {
    let cluster = deploy::testing::TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |c| c.threads = 1).await;
    let (keys, values, _) = one_node_with_large_values(&proxy, 2).await;
    let mut tasks = Vec::new();
    for c in 0..6usize {
        let (keys, values, addr) = (keys.clone(), values.clone(), proxy.local_addr);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(addr).await;
            let counter = format!("{{big}}:counter:{c}");
            let mut count = 0;
            for round in 0..6usize {
                let mut pipeline = Vec::new();
                let mut expected = Vec::new();
                let written = format!("c{c} r{round}");
                for step in 0..4usize {
                    resp::write::command(&mut pipeline, &[b"INCR".as_slice(), counter.as_bytes()]);
                    count += 1;
                    expected.push(Value::Integer(count));
                    let i = (c + round + step) % keys.len();
                    resp::write::command(&mut pipeline, &[b"GET".as_slice(), keys[i].as_bytes()]);
                    expected.push(Value::Bulk(values[i].clone()));
                }
                let key = format!("{{big}}:written:{c}");
                resp::write::command(&mut pipeline, &[b"SET", key.as_bytes(), written.as_bytes()]);
                expected.push(ok());
                resp::write::command(&mut pipeline, &[b"GET".as_slice(), key.as_bytes()]);
                expected.push(bulk(&written));
                // Half of the pipeline now, the rest once the first large reply has begun.
                let half = pipeline.len() / 2;
                conn.send_raw(&pipeline[..half]).await;
                conn.read_some().await;
                conn.send_raw(&pipeline[half..]).await;
                for (n, want) in expected.iter().enumerate() {
                    let got = conn.reply().await;
                    assert!(&got == want, "client {c} round {round}: reply {n} out of order");
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client's replies come in order");
    }
    proxy.shutdown().await;
}
