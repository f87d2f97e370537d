//! The benchmark's connections: plain (a proxy or a standalone Redis), or one per node with
//! the client's own slot routing (`--cluster`, following MOVED and ASK). Requests are written
//! in pipelines and every reply is classified in place, without copying values.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::{Buf, BytesMut};
use resp::{Limits, Scanner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one reply was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// GET found the value written for its key.
    Match,
    /// GET found nothing.
    Missing,
    /// GET found another value.
    Wrong,
    /// An error reply (text kept for the first few) or a lost connection.
    Error(String),
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Set,
    Get,
    /// UNLINK, to clean up after a size (not measured).
    Del,
}

/// One operation of a pipeline.
pub struct Op {
    pub kind: OpKind,
    pub key: String,
    pub size: usize,
}

/// Which node serves each slot, shared by all connections of a `--cluster` run.
#[derive(Debug)]
pub struct SlotTable {
    pub slots: Vec<String>,
}

impl SlotTable {
    pub async fn load(seed: &str) -> Result<SlotTable, String> {
        let topology = cluster::ops::topology_of(seed).await.map_err(|e| e.to_string())?;
        let owners = topology.slot_owners();
        let slots: Vec<String> = owners
            .iter()
            .map(|o| o.map(|i| topology.nodes[i].addr()).unwrap_or_else(|| seed.to_string()))
            .collect();
        Ok(SlotTable { slots })
    }
}

/// Checks that `addr` answers a PING, for a run to fail at once, with one error, when its
/// target is down or is not a Redis server.
pub async fn probe(addr: &str) -> Result<(), String> {
    let hint = "is the proxy (or Redis) running there? `redkeep up` starts a local cluster \
                with its proxy; --target names another";
    let mut conn = NodeConn::connect(addr).await.map_err(|e| format!("{e}: {hint}"))?;
    conn.stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .await
        .map_err(|e| format!("{addr}: {e}: {hint}"))?;
    let mut scanner = Scanner::new(Limits::default());
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(5), conn.next_frame(&mut scanner));
    match answer.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{addr} did not answer PING ({e}): {hint}")),
        Err(_) => Err(format!("{addr} did not answer PING within 5 s: {hint}")),
    }
}

struct NodeConn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
}

impl NodeConn {
    async fn connect(addr: &str) -> Result<NodeConn, String> {
        let stream =
            TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(NodeConn {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: Vec::with_capacity(64 * 1024),
        })
    }

    /// Reads the next reply frame; returns its length at the start of `self.read`.
    async fn next_frame(&mut self, scanner: &mut Scanner) -> Result<usize, String> {
        loop {
            if let Some(len) = scanner.scan(&self.read).map_err(|e| format!("invalid RESP: {e}"))? {
                return Ok(len);
            }
            if self.read.capacity() - self.read.len() < 16 * 1024 {
                self.read.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.read).await.map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection".into());
            }
        }
    }
}

/// One benchmark connection (or, with a slot table, one per node).
pub struct Client {
    single: Option<String>,
    table: Option<Arc<RwLock<SlotTable>>>,
    conns: HashMap<String, NodeConn>,
    scanner: Scanner,
    value: Vec<u8>,
    /// Reused list of a pipeline's operation indexes.
    indexes: Vec<usize>,
}

impl Client {
    pub fn plain(addr: &str) -> Client {
        Client::new(Some(addr.to_string()), None)
    }

    pub fn cluster(table: Arc<RwLock<SlotTable>>) -> Client {
        Client::new(None, Some(table))
    }

    fn new(single: Option<String>, table: Option<Arc<RwLock<SlotTable>>>) -> Client {
        Client {
            single,
            table,
            conns: HashMap::new(),
            scanner: Scanner::new(Limits::default()),
            value: Vec::new(),
            indexes: Vec::new(),
        }
    }

    fn node_of(&self, key: &str) -> String {
        match (&self.single, &self.table) {
            (Some(addr), _) => addr.clone(),
            (None, Some(table)) => {
                let slot = cluster::key_slot(key.as_bytes());
                table.read().unwrap_or_else(|e| e.into_inner()).slots[usize::from(slot)].clone()
            }
            (None, None) => unreachable!("a client has a target"),
        }
    }

    /// Sends `ops` as pipelines (one per node) and fills `outcomes` in the same order.
    pub async fn run(&mut self, ops: &[Op], outcomes: &mut Vec<Outcome>) {
        outcomes.clear();
        outcomes.resize(ops.len(), Outcome::Ok);
        if let Some(addr) = self.single.clone() {
            // One node: the whole pipeline goes there, no grouping (the common, hot case).
            self.indexes.clear();
            self.indexes.extend(0..ops.len());
            let indexes = std::mem::take(&mut self.indexes);
            if let Err(e) = self.run_on(&addr, ops, &indexes, outcomes, false).await {
                self.conns.remove(&addr);
                outcomes
                    .iter_mut()
                    .filter(|o| **o == Outcome::Ok)
                    .for_each(|o| *o = Outcome::Error(e.clone()));
            }
            self.indexes = indexes;
            return;
        }
        let mut by_node: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let node = self.node_of(&op.key);
            match by_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, list)) => list.push(i),
                None => by_node.push((node, vec![i])),
            }
        }
        for (node, indexes) in by_node {
            if let Err(e) = self.run_on(&node, ops, &indexes, outcomes, false).await {
                self.conns.remove(&node);
                for &i in &indexes {
                    if outcomes[i] == Outcome::Ok {
                        outcomes[i] = Outcome::Error(e.clone());
                    }
                }
            }
        }
    }

    async fn run_on(
        &mut self,
        node: &str,
        ops: &[Op],
        indexes: &[usize],
        outcomes: &mut [Outcome],
        asking: bool,
    ) -> Result<(), String> {
        if !self.conns.contains_key(node) {
            let conn = NodeConn::connect(node).await?;
            self.conns.insert(node.to_string(), conn);
        }
        let conn = self.conns.get_mut(node).expect("connected above");
        conn.write.clear();
        for &i in indexes {
            let op = &ops[i];
            if asking {
                conn.write.extend_from_slice(b"*1\r\n$6\r\nASKING\r\n");
            }
            match op.kind {
                OpKind::Set => {
                    crate::values::fill_value(op.key.as_bytes(), op.size, &mut self.value);
                    let args = [b"SET".as_slice(), op.key.as_bytes(), &self.value];
                    resp::write::command(&mut conn.write, &args);
                }
                OpKind::Get => {
                    resp::write::command(&mut conn.write, &[b"GET".as_slice(), op.key.as_bytes()])
                }
                OpKind::Del => resp::write::command(
                    &mut conn.write,
                    &[b"UNLINK".as_slice(), op.key.as_bytes()],
                ),
            }
        }
        conn.stream.write_all(&conn.write).await.map_err(|e| e.to_string())?;
        let mut redirected = Vec::new();
        for &i in indexes {
            if asking {
                let len = conn.next_frame(&mut self.scanner).await?;
                conn.read.advance(len);
            }
            let len = conn.next_frame(&mut self.scanner).await?;
            let frame = &conn.read[..len];
            outcomes[i] = classify(frame, &ops[i]);
            if let Outcome::Error(text) = &outcomes[i]
                && let Some(redirect) = parse_redirect(text)
            {
                redirected.push((i, redirect));
            }
            conn.read.advance(len);
        }
        // Follow redirects one by one (they are rare: a slot moved or a failover).
        for (i, (moved, slot, addr)) in redirected {
            if moved && let Some(table) = &self.table {
                table.write().unwrap_or_else(|e| e.into_inner()).slots[usize::from(slot)] =
                    addr.clone();
            }
            outcomes[i] = Outcome::Ok;
            Box::pin(self.run_on(&addr, ops, &[i], outcomes, !moved)).await?;
        }
        Ok(())
    }
}

fn classify(frame: &[u8], op: &Op) -> Outcome {
    match frame.first() {
        Some(b'-') => {
            Outcome::Error(String::from_utf8_lossy(&frame[1..frame.len() - 2]).into_owned())
        }
        Some(b'+') if op.kind == OpKind::Set => Outcome::Ok,
        Some(b':') if op.kind == OpKind::Del => Outcome::Ok,
        Some(b'$') if op.kind == OpKind::Get => {
            if frame.starts_with(b"$-1") {
                return Outcome::Missing;
            }
            let header = frame.iter().position(|&b| b == b'\n').map_or(frame.len(), |p| p + 1);
            let payload = &frame[header..frame.len() - 2];
            if crate::values::value_matches(op.key.as_bytes(), op.size, payload) {
                Outcome::Match
            } else {
                Outcome::Wrong
            }
        }
        Some(b'_') if op.kind == OpKind::Get => Outcome::Missing,
        _ => Outcome::Error(format!(
            "unexpected reply: {}",
            String::from_utf8_lossy(&frame[..frame.len().min(40)])
        )),
    }
}

/// `MOVED slot addr` → (true, slot, addr); `ASK slot addr` → (false, slot, addr).
fn parse_redirect(text: &str) -> Option<(bool, u16, String)> {
    let mut words = text.split(' ');
    let moved = match words.next()? {
        "MOVED" => true,
        "ASK" => false,
        _ => return None,
    };
    let slot = words.next()?.parse().ok()?;
    Some((moved, slot, words.next()?.to_string()))
}
