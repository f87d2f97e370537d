//! INFO through the proxy, against a real cluster: sections as Redis 7 reads them, the
//! cluster's figures merged from its masters, and the proxy's own.

mod common;

use common::{Conn, bulk, cluster_and_proxy, ok};
use resp::Value;

async fn info(conn: &mut Conn, args: &[&str]) -> String {
    let mut command = vec!["INFO"];
    command.extend(args);
    match conn.call(&command).await {
        Value::Bulk(text) => String::from_utf8(text).unwrap(),
        Value::Verbatim(_, text) => String::from_utf8(text).unwrap(),
        other => panic!("INFO {args:?}: {other:?}"),
    }
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

fn headers(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("# ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_sections_are_the_clusters_merged_and_the_proxys() {
    let (cluster, proxy) = cluster_and_proxy().await;
    let mut conn = Conn::connect(proxy.local_addr).await;
    for i in 0..30 {
        assert_eq!(conn.call(&["SET", &format!("info:{i}"), "v"]).await, ok());
    }
    // Every node gets it (CONFIG SET reaches them all); INFO memory adds up the masters'.
    assert_eq!(conn.call(&["CONFIG", "SET", "maxmemory", "100mb"]).await, ok());

    let server = info(&mut conn, &["server"]).await;
    assert_eq!(headers(&server), ["# Server"], "{server}");
    let mut node = Conn::connect(cluster.addrs()[0].as_str()).await;
    let node_server = info(&mut node, &["server"]).await;
    assert_eq!(field(&server, "redis_version"), field(&node_server, "redis_version"));
    assert_eq!(field(&server, "redis_mode"), Some("cluster"));
    assert_eq!(field(&server, "tcp_port"), Some(proxy.local_addr.port().to_string().as_str()));
    assert_eq!(field(&server, "process_id"), Some(std::process::id().to_string().as_str()));
    assert_eq!(field(&server, "os"), field(&node_server, "os"));

    let memory = info(&mut conn, &["MEMORY"]).await;
    assert_eq!(headers(&memory), ["# Memory"]);
    assert_eq!(field(&memory, "maxmemory"), Some((3u64 * 100 * 1024 * 1024).to_string().as_str()));
    assert_eq!(field(&memory, "maxmemory_human"), Some("300.00M"));

    let keyspace = info(&mut conn, &["keyspace"]).await;
    assert!(field(&keyspace, "db0").unwrap().starts_with("keys=30,expires=0,"), "{keyspace}");

    let replication = info(&mut conn, &["replication"]).await;
    assert_eq!(field(&replication, "role"), Some("master"));
    assert_eq!(field(&replication, "connected_slaves"), Some("3"));
    for i in 0..3 {
        assert!(field(&replication, &format!("slave{i}")).is_some(), "{replication}");
    }

    let clients = info(&mut conn, &["clients"]).await;
    assert_eq!(field(&clients, "connected_clients"), Some("1"), "the proxy's clients: {clients}");

    // Several sections at once, in Redis' order.
    let two = info(&mut conn, &["keyspace", "server"]).await;
    assert_eq!(headers(&two), ["# Server", "# Keyspace"]);

    let all = info(&mut conn, &["all"]).await;
    for header in ["# Server", "# Commandstats", "# Latencystats", "# Cluster", "# Proxy"] {
        assert!(headers(&all).contains(&header), "{header} in INFO all");
    }
    assert!(field(&all, "cmdstat_set").unwrap().starts_with("calls=30,"), "{all}");
    assert_eq!(field(&all, "cluster_enabled"), Some("1"));
    let everything = info(&mut conn, &["everything"]).await;
    assert_eq!(headers(&everything), headers(&all));

    let default = info(&mut conn, &[]).await;
    assert_eq!(headers(&default), headers(&info(&mut conn, &["default"]).await));
    assert!(!headers(&default).contains(&"# Commandstats"));
    for header in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace", "# Proxy"] {
        assert!(headers(&default).contains(&header), "{header} in INFO");
    }
    assert_eq!(conn.call(&["INFO", "nosuchsection"]).await, bulk(""));

    // RESP3: a verbatim string, the same sections.
    assert!(matches!(conn.call(&["HELLO", "3"]).await, Value::Map(_)));
    assert!(matches!(conn.call(&["INFO", "server"]).await, Value::Verbatim(..)));
    proxy.shutdown().await;
}
