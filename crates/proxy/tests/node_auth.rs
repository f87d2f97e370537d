//! The proxy in front of nodes that require a password: without the nodes' credentials it
//! does not start, with them every path works (admin connections, backends, fan-outs), and
//! the password shows nowhere in the configuration's debug output.
//!
//! One test in its own binary: the node credentials are the process's, for every connection.

mod common;

use common::{Conn, bulk, ok, start_proxy};
use deploy::testing::TestCluster;
use proxy::ProxyConfig;
use resp::Value;

const SECRET: &str = "node-secret-7f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_authenticates_to_nodes_that_require_a_password() {
    let cluster = TestCluster::start(3, 0).await;
    for addr in cluster.addrs() {
        let mut node = Conn::connect(addr.as_str()).await;
        assert_eq!(node.call(&["CONFIG", "SET", "requirepass", SECRET]).await, ok());
    }

    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let refused = proxy::start(config).await.err().expect("no start without the password");
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");

    let credentials = cluster::admin::Credentials { user: None, password: SECRET.to_string() };
    let proxy = start_proxy(&cluster, |c| {
        c.security.node_credentials = Some(credentials.clone());
        assert!(!format!("{c:?}").contains(SECRET), "the password is not in debug output");
    })
    .await;
    let mut client = Conn::connect(proxy.local_addr).await;
    assert_eq!(client.call(&["SET", "auth:a", "1"]).await, ok());
    assert_eq!(client.call(&["MSET", "auth:b", "2", "auth:c", "3"]).await, ok());
    let Value::Array(values) = client.call(&["MGET", "auth:a", "auth:b", "auth:c"]).await else {
        panic!()
    };
    assert_eq!(values, [bulk("1"), bulk("2"), bulk("3")]);
    assert_eq!(client.call(&["DBSIZE"]).await, Value::Integer(3));
    let mut resp3 = Conn::connect(proxy.local_addr).await;
    assert!(matches!(resp3.call(&["HELLO", "3"]).await, Value::Map(_)));
    assert_eq!(resp3.call(&["GET", "auth:a"]).await, bulk("1"));
    proxy.shutdown().await;
}
