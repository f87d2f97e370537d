//! The proxy in front of nodes hardened with ACL users, as the Redis security guide advises:
//! the `default` user is off, the proxy has a user of its own, and replicas authenticate to
//! their masters as a replication-only user (`masteruser`/`masterauth`). The proxy logs in as
//! its user (`--node-user`) and serves every path; the `default` password opens nothing.
//!
//! One test in its own binary: the node credentials are the process's, for every connection.

mod common;

use std::time::Duration;

use common::{Conn, bulk, error_text, ok, start_proxy};
use deploy::testing::TestCluster;
use resp::Value;

const PROXY_SECRET: &str = "proxy-secret-91c2";
const REPLICA_SECRET: &str = "replica-secret-4d0e";

/// One command on a fresh connection to a node, as `user` when given.
async fn node_call(addr: &str, user: Option<&str>, args: &[&str]) -> Value {
    let mut conn = Conn::connect(addr).await;
    if let Some(user) = user {
        assert_eq!(conn.call(&["AUTH", user, PROXY_SECRET]).await, ok(), "AUTH on {addr}");
    }
    conn.call(args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_logs_in_as_its_acl_user_to_nodes_whose_default_user_is_off() {
    let cluster = TestCluster::start(3, 1).await;
    let addrs = cluster.addrs();
    for addr in &addrs {
        let setup = [
            vec!["ACL", "SETUSER", "proxy", "on", ">proxy-secret-91c2", "~*", "&*", "+@all"],
            vec!["ACL", "SETUSER", "replication", "on", ">replica-secret-4d0e", "+psync"],
            vec!["ACL", "SETUSER", "replication", "+replconf", "+ping"],
            vec!["CONFIG", "SET", "masteruser", "replication"],
            vec!["CONFIG", "SET", "masterauth", REPLICA_SECRET],
        ];
        for args in setup {
            assert_eq!(node_call(addr, None, &args).await, ok(), "{args:?} on {addr}");
        }
    }
    for addr in &addrs {
        let off = node_call(addr, None, &["ACL", "SETUSER", "default", "off"]).await;
        assert_eq!(off, ok(), "default off on {addr}");
        // Replication links made before log in again, now as the replication user.
        let killed = node_call(addr, Some("proxy"), &["CLIENT", "KILL", "TYPE", "master"]).await;
        assert!(matches!(killed, Value::Integer(_)), "{killed:?}");
    }
    // Nothing is open to the default user any more.
    let mut anonymous = Conn::connect(addrs[0].as_str()).await;
    let refused = anonymous.call(&["GET", "k"]).await;
    assert!(error_text(&refused).starts_with("NOAUTH"), "{refused:?}");
    let refused = anonymous.call(&["AUTH", "default", PROXY_SECRET]).await;
    assert!(error_text(&refused).starts_with("WRONGPASS"), "{refused:?}");
    // Every replica is in sync again over the replication user.
    for addr in &addrs {
        let mut synced = false;
        for _ in 0..100 {
            let Value::Bulk(info) = node_call(addr, Some("proxy"), &["INFO", "replication"]).await
            else {
                panic!("INFO replication")
            };
            let info = String::from_utf8_lossy(&info).to_string();
            if info.contains("role:master") || info.contains("master_link_status:up") {
                synced = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(synced, "{addr}: the replica's link to its master is up, as user replication");
    }

    let credentials = cluster::admin::Credentials {
        user: Some("proxy".to_string()),
        password: PROXY_SECRET.to_string(),
    };
    let proxy = start_proxy(&cluster, |c| {
        c.security.node_credentials = Some(credentials.clone());
        assert!(!format!("{c:?}").contains(PROXY_SECRET), "the password is not in debug output");
    })
    .await;
    let mut client = Conn::connect(proxy.local_addr).await;
    assert_eq!(client.call(&["SET", "acl:a", "1"]).await, ok());
    assert_eq!(client.call(&["MSET", "acl:b", "2", "acl:c", "3"]).await, ok());
    let Value::Array(values) = client.call(&["MGET", "acl:a", "acl:b", "acl:c"]).await else {
        panic!("MGET")
    };
    assert_eq!(values, [bulk("1"), bulk("2"), bulk("3")]);
    assert_eq!(client.call(&["DBSIZE"]).await, Value::Integer(3));
    // Reads from replicas over the same user (READONLY connections).
    let mut resp3 = Conn::connect(proxy.local_addr).await;
    assert!(matches!(resp3.call(&["HELLO", "3"]).await, Value::Map(_)));
    assert_eq!(resp3.call(&["GET", "acl:a"]).await, bulk("1"));
    proxy.shutdown().await;
}
