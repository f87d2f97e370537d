//! The stats page with a real monitor (its API on a free port) watching a real 3+1 cluster: a
//! killed node shows as the monitor's alarm and in its event timeline, on the page and in
//! `/stats/parts`; with the monitor stopped, the page says it is unreachable and shows its own
//! alarms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deploy::testing::TestCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path`: the body of a `Connection: close` answer.
async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connects to the stats server");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// `/stats/parts` once `done` holds for it (the monitor and the proxy's checks take a few
/// polls to see a change), else a panic showing the last parts.
async fn parts_once(
    stats: SocketAddr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let parts: serde_json::Value =
            serde_json::from_str(&get(stats, "/stats/parts").await).unwrap();
        if done(&parts) {
            return parts;
        }
        assert!(Instant::now() < deadline, "{what} within 60 s: {parts:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_monitors_alarms_and_events_and_its_own_when_the_monitor_is_gone() {
    let cluster = TestCluster::start(3, 1).await;
    let monitor_addr: SocketAddr =
        format!("127.0.0.1:{}", deploy::ports::free_port()).parse().unwrap();
    let options = monitor::runner::Options {
        seeds: cluster.addrs(),
        config: monitor::Config::default(),
        heal: monitor::heal::Mode::Off,
        listen: Some(monitor_addr),
        supervisor: Arc::new(monitor::heal::NoSupervisor),
        print: None,
    };
    let watcher = monitor::runner::start(options).await.expect("the monitor starts");
    let mut config = proxy::ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
    let handle = proxy::start(config).await.expect("proxy starts");
    let url = web::monitor::MonitorUrl::parse(&format!("http://{monitor_addr}")).unwrap();
    let web_options = web::WebOptions { monitor: Some(url), ..web::WebOptions::default() };
    let stats = web::serve_with(
        handle.shared.clone(),
        handle.local_addr.to_string(),
        "127.0.0.1:0".parse().unwrap(),
        web_options,
    )
    .await
    .expect("stats server starts")
    .local_addr;

    let healthy = parts_once(stats, "the monitor's empty alarm list", |p| {
        p["alarms"].as_str().unwrap().contains("No alarms.")
    })
    .await;
    assert!(
        healthy["alarms"]
            .as_str()
            .unwrap()
            .contains(&format!("Alarms from the monitor at {monitor_addr}"))
    );

    // The replica (the fourth node): no failover, the node just stays down.
    let victim = cluster.ports()[3];
    cluster.kill9(victim);
    let victim_addr = format!("127.0.0.1:{victim}");
    let parts = parts_once(stats, "the monitor's RedisNodeDown alarm and its event", |p| {
        p["alarms"].as_str().unwrap().contains("data-alarm=\"RedisNodeDown\"")
            && p["events"].as_str().unwrap().contains("alarm RedisNodeDown")
    })
    .await;
    let alarms = parts["alarms"].as_str().unwrap();
    assert!(alarms.contains(&victim_addr), "{alarms}");
    // One source at a time: not the page's own "is down" line.
    assert!(!alarms.contains("is down for"), "{alarms}");
    let page = get(stats, "/stats").await;
    assert!(page.contains("data-alarm=\"RedisNodeDown\""));
    assert!(page.contains("<ol class=\"events\">") && page.contains("alarm RedisNodeDown"));

    watcher.stop().await;
    let parts = parts_once(stats, "the fallback to the page's own alarms", |p| {
        let alarms = p["alarms"].as_str().unwrap();
        alarms.contains("could not be reached") && alarms.contains("is down")
    })
    .await;
    let alarms = parts["alarms"].as_str().unwrap();
    assert!(alarms.contains(&format!("The monitor at {monitor_addr} could not be reached")));
    assert!(alarms.contains(&format!("{victim_addr} (replica) is down")), "{alarms}");
    assert!(parts["events"].as_str().unwrap().contains("could not be reached"));
    let page = get(stats, "/stats").await;
    assert!(page.contains("these alarms are the proxy's own"));
    handle.shutdown().await;
}
