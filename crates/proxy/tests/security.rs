//! Users, AUTH, ACL rights and the command policy, through the proxy in front of a real
//! cluster: each AUTH failure, NOAUTH, NOPERM for a command, a key and a channel, each command
//! the policy refuses, and the options that let them through.

mod common;

use std::time::Duration;

use common::{Conn, bulk, error_text, ok, start_proxy};
use deploy::testing::TestCluster;
use proxy::acl::policy::Kind;
use proxy::acl::user::{parse_user_option, parse_users_file};
use proxy::security::SecurityConfig;
use resp::Value;

const USERS: &str = "\
# the proxy's users
user app on >app-pw +@all -@dangerous ~app:* &news
user reader on >read-pw +@read +@connection +acl|whoami ~*
user retired off >old-pw +@all ~*
user default on >default-pw +@all ~* &*
";

fn security(users_file: &str, allow: &[Kind]) -> SecurityConfig {
    let mut config = SecurityConfig {
        users: parse_users_file(users_file).unwrap(),
        ..SecurityConfig::default()
    };
    config.users.push(parse_user_option("admin:admin-pw").unwrap());
    for &kind in allow {
        config.allow = config.allow.with(kind);
    }
    config
}

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NO_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auth_failure_noauth_and_noperm_as_redis_gives_them() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| c.security = security(USERS, &[])).await;
    let mut client = Conn::connect(proxy.local_addr).await;

    // Before AUTH: only AUTH, HELLO (with AUTH), QUIT and RESET.
    assert_eq!(error_text(&client.call(&["GET", "app:1"]).await), NOAUTH);
    assert_eq!(error_text(&client.call(&["PING"]).await), NOAUTH);
    assert_eq!(error_text(&client.call(&["ACL", "WHOAMI"]).await), NOAUTH);
    assert!(error_text(&client.call(&["HELLO", "3"]).await).starts_with("NOAUTH HELLO must be"));
    assert!(error_text(&client.call(&["NOSUCH"]).await).contains("unknown command"));
    // Each AUTH failure gets Redis' one answer.
    assert_eq!(error_text(&client.call(&["AUTH", "wrong"]).await), WRONGPASS);
    assert_eq!(error_text(&client.call(&["AUTH", "app", "wrong"]).await), WRONGPASS);
    assert_eq!(error_text(&client.call(&["AUTH", "nobody", "app-pw"]).await), WRONGPASS);
    assert_eq!(error_text(&client.call(&["AUTH", "retired", "old-pw"]).await), WRONGPASS, "off");
    assert_eq!(error_text(&client.call(&["AUTH", "a", "b", "c"]).await), "ERR syntax error");
    assert_eq!(error_text(&client.call(&["HELLO", "3", "AUTH", "app", "wrong"]).await), WRONGPASS);
    assert_eq!(error_text(&client.call(&["GET", "app:1"]).await), NOAUTH, "still not in");

    // AUTH pass is the default user's.
    assert_eq!(client.call(&["AUTH", "default-pw"]).await, ok());
    assert_eq!(client.call(&["ACL", "WHOAMI"]).await, bulk("default"));
    // AUTH and a command in one write: the command runs as the new user.
    client
        .send_raw(
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$6\r\napp-pw\r\n*2\r\n$3\r\nACL\r\n$6\r\nWHOAMI\r\n",
        )
        .await;
    assert_eq!(client.reply().await, ok());
    assert_eq!(client.reply().await, bulk("app"));
    // A failed AUTH leaves the client as it was.
    assert_eq!(error_text(&client.call(&["AUTH", "admin", "wrong"]).await), WRONGPASS);
    assert_eq!(client.call(&["ACL", "WHOAMI"]).await, bulk("app"));

    // Rights: commands, keys, channels.
    assert_eq!(client.call(&["SET", "app:1", "v"]).await, ok());
    assert_eq!(client.call(&["GET", "app:1"]).await, bulk("v"));
    assert_eq!(error_text(&client.call(&["SET", "other", "v"]).await), NO_KEY);
    assert_eq!(error_text(&client.call(&["MSET", "app:2", "x", "other", "y"]).await), NO_KEY);
    assert_eq!(
        error_text(&client.call(&["FLUSHALL"]).await),
        "NOPERM this user has no permissions to run the 'flushall' command"
    );
    assert_eq!(
        error_text(&client.call(&["PUBLISH", "other", "m"]).await),
        "NOPERM this user has no permissions to access one of the channels used as arguments"
    );
    assert_eq!(client.call(&["PUBLISH", "news", "m"]).await, Value::Integer(0));
    // Inside MULTI a refused command aborts the transaction, as in Redis.
    assert_eq!(client.call(&["MULTI"]).await, ok());
    assert_eq!(error_text(&client.call(&["SET", "other", "v"]).await), NO_KEY);
    assert!(error_text(&client.call(&["EXEC"]).await).starts_with("EXECABORT"));

    // Nothing refused reached a node: the admin sees no `other` and no `app:2`.
    let mut admin = Conn::connect(proxy.local_addr).await;
    assert_eq!(admin.call(&["AUTH", "admin", "admin-pw"]).await, ok());
    assert_eq!(admin.call(&["EXISTS", "other", "app:2"]).await, Value::Integer(0));
    assert_eq!(admin.call(&["GET", "app:1"]).await, bulk("v"));

    // HELLO 3 AUTH switches user and protocol at once; a reader may read, not write.
    let hello = client.call(&["HELLO", "3", "AUTH", "reader", "read-pw", "SETNAME", "r1"]).await;
    assert!(matches!(hello, Value::Map(_)), "{hello:?}");
    assert_eq!(client.call(&["ACL", "WHOAMI"]).await, bulk("reader"));
    assert_eq!(client.call(&["GET", "app:1"]).await, bulk("v"));
    assert_eq!(
        error_text(&client.call(&["SET", "app:1", "w"]).await),
        "NOPERM this user has no permissions to run the 'set' command"
    );
    assert_eq!(client.call(&["CLIENT", "GETNAME"]).await, bulk("r1"));
    // RESET forgets the user.
    assert_eq!(client.call(&["RESET"]).await, Value::Simple(b"RESET".to_vec()));
    assert_eq!(error_text(&client.call(&["GET", "app:1"]).await), NOAUTH);
    // ACL CAT comes from the proxy, with the cluster's categories.
    assert_eq!(client.call(&["AUTH", "admin", "admin-pw"]).await, ok());
    let Value::Array(categories) = client.call(&["ACL", "CAT"]).await else { panic!() };
    assert!(categories.contains(&bulk("dangerous")) && categories.len() == 21);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_auth_is_limited_per_client_address() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| {
        c.security = security(USERS, &[]);
        // Three failures, then one an hour: the test does not depend on how fast it runs.
        c.security.auth_burst = 3;
        c.security.auth_interval = Duration::from_secs(3600);
    })
    .await;
    let mut guesser = Conn::connect(proxy.local_addr).await;
    for guess in ["a", "b", "c"] {
        assert_eq!(error_text(&guesser.call(&["AUTH", "app", guess]).await), WRONGPASS);
    }
    let limited = error_text(&guesser.call(&["AUTH", "app", "app-pw"]).await);
    assert!(limited.starts_with("ERR too many failed AUTH attempts"), "{limited}");
    // A new connection from the same address is limited too...
    let mut again = Conn::connect(proxy.local_addr).await;
    assert!(error_text(&again.call(&["AUTH", "app", "app-pw"]).await).contains("too many"));
    // ...and one from another address is not.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = Conn::from_stream(socket.connect(proxy.local_addr).await.unwrap());
    assert_eq!(other.call(&["AUTH", "app", "app-pw"]).await, ok());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_policy_refuses_admin_commands_and_names_the_option_that_allows_them() {
    let cluster = TestCluster::start(3, 0).await;
    // Without users every client has every right; the policy applies all the same.
    let proxy = start_proxy(&cluster, |_| {}).await;
    let mut client = Conn::connect(proxy.local_addr).await;
    let refused = [
        (vec!["CONFIG", "SET", "dir", "/tmp"], Kind::ConfigPaths),
        (vec!["CONFIG", "SET", "dbfilename", "x.rdb"], Kind::ConfigPaths),
        (vec!["CONFIG", "SET", "logfile", "/tmp/x.log"], Kind::ConfigPaths),
        (vec!["CONFIG", "SET", "maxmemory", "0", "cluster-config-file", "x"], Kind::ConfigPaths),
        (vec!["CONFIG", "SET", "protected-mode", "no"], Kind::ConfigAuth),
        (vec!["CONFIG", "SET", "requirepass", "x"], Kind::ConfigAuth),
        (vec!["MODULE", "LOAD", "/tmp/x.so"], Kind::Module),
        (vec!["DEBUG", "SLEEP", "0"], Kind::Debug),
        (vec!["REPLICAOF", "NO", "ONE"], Kind::Replication),
        (vec!["SLAVEOF", "NO", "ONE"], Kind::Replication),
        (vec!["CLUSTER", "FORGET", "x"], Kind::ClusterAdmin),
        (vec!["CLUSTER", "RESET"], Kind::ClusterAdmin),
        (vec!["CLUSTER", "FAILOVER"], Kind::ClusterAdmin),
        (vec!["CLUSTER", "SETSLOT", "1", "STABLE"], Kind::ClusterAdmin),
        (vec!["CLUSTER", "ADDSLOTS", "1"], Kind::ClusterAdmin),
        (vec!["CLUSTER", "MEET", "127.0.0.1", "1"], Kind::ClusterAdmin),
        (vec!["SHUTDOWN", "NOSAVE"], Kind::Shutdown),
        (vec!["ACL", "SETUSER", "x", "on"], Kind::AclAdmin),
    ];
    for (line, kind) in &refused {
        let error = error_text(&client.call(line).await);
        assert!(error.starts_with("ERR "), "{line:?}: {error}");
        assert!(error.contains(&format!("--allow {}", kind.name())), "{line:?}: {error}");
    }
    // None of it reached the nodes.
    let node = cluster.addrs()[0].clone();
    let mut direct = Conn::connect(node.as_str()).await;
    let Value::Array(dbfilename) = direct.call(&["CONFIG", "GET", "dbfilename"]).await else {
        panic!()
    };
    assert_ne!(dbfilename[1], bulk("x.rdb"));
    assert_eq!(direct.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()), "not shut down");
    // What the policy does not guard passes.
    assert_eq!(client.call(&["CONFIG", "SET", "maxmemory-samples", "5"]).await, ok());
    assert_eq!(client.call(&["FLUSHALL"]).await, ok(), "every right without users");
    proxy.shutdown().await;

    // --allow lets a kind through, to the nodes.
    let proxy = start_proxy(&cluster, |c| {
        c.security = security(USERS, &[Kind::ConfigPaths, Kind::Debug]);
    })
    .await;
    let mut admin = Conn::connect(proxy.local_addr).await;
    assert_eq!(admin.call(&["AUTH", "admin", "admin-pw"]).await, ok());
    // It reaches the nodes, which have the last word: Redis 7 refuses protected configs
    // itself unless started with enable-protected-configs (the proxy guards nodes that are).
    let error = error_text(&admin.call(&["CONFIG", "SET", "dbfilename", "policy-test.rdb"]).await);
    assert!(error.contains("can't set protected config"), "{error}");
    let debug = error_text(&admin.call(&["DEBUG", "SLEEP", "0"]).await);
    assert!(debug.contains("does not support 'DEBUG'"), "allowed, then routed: {debug}");
    assert!(error_text(&admin.call(&["SHUTDOWN"]).await).contains("--allow shutdown"));
    // Flushes need @dangerous: a user without it is refused SCRIPT FLUSH too (which Redis
    // files under @scripting), the admin is not.
    let mut app = Conn::connect(proxy.local_addr).await;
    assert_eq!(app.call(&["AUTH", "app", "app-pw"]).await, ok());
    let error = error_text(&app.call(&["SCRIPT", "FLUSH"]).await);
    assert!(error.contains("@dangerous"), "{error}");
    assert_eq!(admin.call(&["SCRIPT", "FLUSH"]).await, ok());
    proxy.shutdown().await;
}

/// The `user=` field of a `CLIENT LIST` / `CLIENT INFO` line.
fn user_field(line: &str) -> &str {
    line.split(' ').find_map(|f| f.strip_prefix("user=")).unwrap_or_else(|| panic!("{line}"))
}

/// The user `CLIENT LIST ID id` shows for client `id`.
async fn user_of(admin: &mut Conn, id: &str) -> String {
    user_field(text(admin.call(&["CLIENT", "LIST", "ID", id]).await).trim_end()).to_owned()
}

fn text(value: Value) -> String {
    match value {
        Value::Bulk(b) | Value::Verbatim(_, b) => String::from_utf8(b).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_and_client_kill_user_picks_the_authenticated_user() {
    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| c.security = security(USERS, &[])).await;
    let mut admin = Conn::connect(proxy.local_addr).await;
    assert_eq!(admin.call(&["AUTH", "admin", "admin-pw"]).await, ok());
    let mut app = Conn::connect(proxy.local_addr).await;
    assert_eq!(app.call(&["AUTH", "app", "app-pw"]).await, ok());
    let mut reader = Conn::connect(proxy.local_addr).await;
    let hello = reader.call(&["HELLO", "2", "AUTH", "reader", "read-pw"]).await;
    assert!(matches!(hello, Value::Array(_)), "{hello:?}");
    let mut anonymous = Conn::connect(proxy.local_addr).await;
    let id_of = |value: Value| match value {
        Value::Integer(id) => id.to_string(),
        other => panic!("{other:?}"),
    };
    let app_id = id_of(app.call(&["CLIENT", "ID"]).await);
    let reader_id = id_of(reader.call(&["CLIENT", "ID"]).await);

    assert_eq!(user_of(&mut admin, &app_id).await, "app");
    assert_eq!(user_of(&mut admin, &reader_id).await, "reader");
    assert_eq!(user_field(text(app.call(&["CLIENT", "INFO"]).await).trim_end()), "app");
    assert_eq!(user_field(text(admin.call(&["CLIENT", "INFO"]).await).trim_end()), "admin");
    // Before AUTH a client is `default`, as in Redis.
    let all = text(admin.call(&["CLIENT", "LIST"]).await);
    assert_eq!(all.lines().filter(|l| user_field(l) == "default").count(), 1, "{all}");

    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "app"]).await, Value::Integer(1));
    assert_eq!(app.reply_or_eof().await, None, "killed as user app");
    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "default"]).await, Value::Integer(1));
    assert_eq!(anonymous.reply_or_eof().await, None, "killed as user default");
    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "nobody"]).await, Value::Integer(0));
    assert_eq!(reader.call(&["PING"]).await, Value::Simple(b"PONG".to_vec()), "not picked");
    // RESET makes the client `default` again.
    assert_eq!(reader.call(&["RESET"]).await, Value::Simple(b"RESET".to_vec()));
    assert_eq!(user_of(&mut admin, &reader_id).await, "default");
    proxy.shutdown().await;
}
