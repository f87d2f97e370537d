//! What the proxy's integration tests share: a proxy in front of a real test cluster, and a
//! plain RESP connection to talk to it (no cluster support, like the clients the proxy is for).

#![allow(dead_code)]

pub mod pki;

use std::time::Duration;

use deploy::testing::TestCluster;
use proxy::{ProxyConfig, ProxyHandle};
use resp::{Limits, Value, parse_value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A 3+1 test cluster and a proxy in front of it on a free loopback port.
pub async fn cluster_and_proxy() -> (TestCluster, ProxyHandle) {
    let cluster = TestCluster::start(3, 1).await;
    let proxy = start_proxy(&cluster, |_| {}).await;
    (cluster, proxy)
}

pub async fn start_proxy(
    cluster: &TestCluster,
    tune: impl FnOnce(&mut ProxyConfig),
) -> ProxyHandle {
    let mut config = ProxyConfig::new(cluster.addrs());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.threads = 2;
    tune(&mut config);
    proxy::start(config).await.expect("proxy starts")
}

/// A plain RESP connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Conn {
        Conn::from_stream(TcpStream::connect(addr).await.expect("connects"))
    }

    pub fn from_stream(stream: TcpStream) -> Conn {
        Conn { stream, buf: Vec::new() }
    }

    /// This end's address: how the proxy sees the client.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.stream.local_addr().expect("a local address")
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    pub async fn send(&mut self, args: &[&[u8]]) {
        let mut out = Vec::new();
        resp::write::command(&mut out, args);
        self.send_raw(&out).await;
    }

    /// The next reply; panics after 30 s without one (a hang is a failure, not a wait).
    pub async fn reply(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(30), self.reply_or_eof())
            .await
            .expect("a reply within 30 s")
            .expect("a reply before the connection closed")
    }

    /// The next reply if one comes within `wait` (to check that none has come yet).
    pub async fn reply_within(&mut self, wait: Duration) -> Option<Value> {
        tokio::time::timeout(wait, self.reply_or_eof()).await.ok().flatten()
    }

    /// The next reply as the bytes that came (to compare protocols exactly).
    pub async fn reply_bytes(&mut self) -> Vec<u8> {
        let read = async {
            loop {
                if let Some(len) = resp::frame_len(&self.buf, &Limits::default()).expect("RESP") {
                    return self.buf.drain(..len).collect();
                }
                self.buf.reserve(64 * 1024);
                assert!(self.stream.read_buf(&mut self.buf).await.unwrap_or(0) > 0, "closed");
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("a reply within 30 s")
    }

    /// The raw reply to `args`.
    pub async fn call_bytes(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args).await;
        self.reply_bytes().await
    }

    /// Reads what has come, at least one byte, without waiting for a whole reply.
    pub async fn read_some(&mut self) {
        self.buf.reserve(64 * 1024);
        let read =
            tokio::time::timeout(Duration::from_secs(30), self.stream.read_buf(&mut self.buf));
        assert!(read.await.expect("bytes within 30 s").unwrap_or(0) > 0, "closed");
    }

    /// Reads until the proxy closes the connection; returns how many bytes came in all.
    pub async fn read_to_close(&mut self) -> usize {
        let read = async {
            loop {
                self.buf.reserve(1024 * 1024);
                if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return self.buf.len();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the proxy closes the connection within 30 s")
    }

    /// The next reply, or `None` when the proxy closed the connection.
    pub async fn reply_or_eof(&mut self) -> Option<Value> {
        loop {
            if let Some((value, len)) =
                parse_value(&self.buf, &Limits::default()).expect("valid RESP")
            {
                self.buf.drain(..len);
                return Some(value);
            }
            // Read on the heap: a big array in an async fn's state overflows debug stacks.
            self.buf.reserve(64 * 1024);
            if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }

    pub async fn call(&mut self, args: &[&str]) -> Value {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args).await;
        self.reply().await
    }
}

/// The master serving `key`, as the cluster reports it.
pub async fn master_of(cluster: &TestCluster, key: &str) -> String {
    let topology = cluster::ops::topology_of(&cluster.addrs()[0]).await.unwrap();
    let slot = cluster::key_slot(key.as_bytes());
    topology.masters().find(|m| m.slots.iter().any(|r| r.contains(slot))).unwrap().addr()
}

pub fn bulk(text: &str) -> Value {
    Value::Bulk(text.as_bytes().to_vec())
}

pub fn ok() -> Value {
    Value::Simple(b"OK".to_vec())
}

pub fn is_redirect(value: &Value) -> bool {
    matches!(value, Value::Error(e) if e.starts_with(b"MOVED") || e.starts_with(b"ASK"))
}

pub fn error_text(value: &Value) -> String {
    match value {
        Value::Error(e) => String::from_utf8_lossy(e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Keys that land on each of the cluster's masters: `per_master` keys for each.
pub fn keys_on_every_master(cluster_masters: usize, per_master: usize) -> Vec<String> {
    let ranges: Vec<(u16, u16)> = (0..cluster_masters)
        .map(|i| {
            let per = cluster::SLOT_COUNT as usize / cluster_masters;
            let start = i * per;
            let end =
                if i + 1 == cluster_masters { cluster::SLOT_COUNT as usize } else { start + per };
            (start as u16, (end - 1) as u16)
        })
        .collect();
    let mut found: Vec<Vec<String>> = vec![Vec::new(); cluster_masters];
    let mut n = 0;
    while found.iter().any(|f| f.len() < per_master) {
        let key = format!("key:{n}");
        let slot = cluster::key_slot(key.as_bytes());
        // Stay a few slots clear of range edges, where the planner's split may differ by one.
        if let Some(i) = ranges.iter().position(|&(s, e)| slot >= s + 2 && slot + 2 <= e)
            && found[i].len() < per_master
        {
            found[i].push(key);
        }
        n += 1;
    }
    found.into_iter().flatten().collect()
}
