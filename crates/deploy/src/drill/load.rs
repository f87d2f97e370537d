//! The drills' load: tasks on the client host, each on its own connection to the VIP,
//! writing a key and reading it back, over and over, keeping a [`Book`]; then a final read of
//! every acknowledged key. Plain RESP through the proxy, as any non-cluster client would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cluster::admin::{AdminConn, AdminError};
use resp::Value;

use super::book::{Book, ReadVerdict};
use crate::netns::{self, NetnsError};

/// How long a task waits after an error before its next request.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct LoadSettings {
    pub tasks: usize,
    pub keys_per_task: usize,
    /// How long one request may take; longer than the proxy's retry budget, so that a request
    /// the proxy holds through a failover is not counted as an error.
    pub request_timeout: Duration,
}

impl Default for LoadSettings {
    fn default() -> Self {
        LoadSettings { tasks: 8, keys_per_task: 2000, request_timeout: Duration::from_secs(15) }
    }
}

/// A running load; [`Load::stop`] ends it and returns every task's book.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Book>, NetnsError>>,
}

impl Load {
    /// Starts the load from namespace `ns` against `target` (`host:port`).
    pub fn start(ns: &str, target: String, settings: LoadSettings) -> Result<Load, NetnsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = netns::spawn_block_on_in(ns, move || run(target, settings, flag))?;
        Ok(Load { stop, thread })
    }

    pub fn stop(self) -> Result<Vec<Book>, NetnsError> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the load thread does not panic")
    }
}

async fn run(target: String, settings: LoadSettings, stop: Arc<AtomicBool>) -> Vec<Book> {
    let start = Instant::now();
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let tasks: Vec<_> = (0..settings.tasks)
        .map(|task| {
            let book = Book::new(run, task, settings.keys_per_task, start);
            let (target, stop) = (target.clone(), stop.clone());
            tokio::spawn(task_loop(target, book, stop, settings.request_timeout))
        })
        .collect();
    let mut books = Vec::new();
    for task in tasks {
        books.push(task.await.expect("a load task does not panic"));
    }
    books
}

/// Writes key `k`, reads it back, moves to the next key; a broken connection is made again.
async fn task_loop(
    target: String,
    mut book: Book,
    stop: Arc<AtomicBool>,
    timeout: Duration,
) -> Book {
    let mut conn = Reconnecting::new(target, timeout);
    let mut step = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let index = (step / 2) % book.keys();
        let write = step.is_multiple_of(2);
        step += 1;
        let key = book.key(index);
        let reply = if write {
            let value = book.next_value(index);
            let reply = conn.call(&["SET", key.as_str(), value.as_str()]).await;
            if let Ok(Value::Simple(ok)) = &reply
                && ok == b"OK"
            {
                book.acked(index, &value, Instant::now());
                continue;
            }
            reply
        } else {
            let reply = conn.call(&["GET", key.as_str()]).await;
            match &reply {
                Ok(Value::Bulk(value)) => {
                    book.read(index, Some(value), Instant::now());
                    continue;
                }
                Ok(Value::Null) => {
                    book.read(index, None, Instant::now());
                    continue;
                }
                _ => reply,
            }
        };
        match reply {
            Ok(Value::Error(text)) => {
                book.error(String::from_utf8_lossy(&text).into_owned());
                // A client backs off after an error; without the pause an instant refusal
                // (NOREPLICAS) would count thousands of errors a second.
                tokio::time::sleep(ERROR_PAUSE).await;
            }
            Ok(other) => book.error(format!("unexpected reply {other:?}")),
            Err(e) => {
                book.error(e.to_string());
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    book.note_gap(Instant::now());
    book
}

/// A connection to `target`, made again by the next call after one failed.
struct Reconnecting {
    target: String,
    timeout: Duration,
    conn: Option<AdminConn>,
}

impl Reconnecting {
    fn new(target: impl Into<String>, timeout: Duration) -> Reconnecting {
        Reconnecting { target: target.into(), timeout, conn: None }
    }

    /// Sends one command, connecting first when needed; an error reply is a `Value::Error`.
    async fn call(&mut self, args: &[&str]) -> Result<Value, AdminError> {
        if self.conn.is_none() {
            self.conn = Some(AdminConn::connect(&self.target, self.timeout).await?);
        }
        let result = self.conn.as_mut().expect("connected above").raw(args).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }
}

/// The final read of every acknowledged key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    pub checked: u64,
    /// Keys older than (or missing after) their last acknowledged write.
    pub lost: u64,
    pub wrong: u64,
    /// Keys that could not be read back at all (errors until the deadline).
    pub unreadable: u64,
}

/// Reads back every key with an acknowledged write, through `target`, retrying errors; once
/// `timeout` passes without any key read, the keys left count as unreadable. (A deadline per
/// key made a drill whose cluster never came back wait the timeout once per key: hours for
/// thousands of keys.)
pub async fn verify(target: &str, books: &[Book], timeout: Duration) -> Verification {
    let mut result = Verification::default();
    let mut conn = Reconnecting::new(target, Duration::from_secs(5));
    let mut deadline = Instant::now() + timeout;
    for book in books {
        for index in book.acked_keys() {
            result.checked += 1;
            let key = book.key(index);
            let value = loop {
                if Instant::now() > deadline {
                    break None;
                }
                match conn.call(&["GET", key.as_str()]).await {
                    Ok(Value::Bulk(v)) => break Some(Some(v)),
                    Ok(Value::Null) => break Some(None),
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            if value.is_some() {
                deadline = Instant::now() + timeout;
            }
            match value.map(|v| book.verdict(index, v.as_deref())) {
                Some(ReadVerdict::Current) => {}
                Some(ReadVerdict::Stale) => result.lost += 1,
                Some(ReadVerdict::Wrong) => result.wrong += 1,
                None => result.unreadable += 1,
            }
        }
    }
    result
}

/// Sends `SET key` to `target` until its master answers (acknowledged, or refused for want of
/// a replica); the time that took, or `None` after
/// `timeout`. Started right after a fault, it measures how long until the fault's slots are
/// served again.
pub async fn time_until_served(target: &str, key: &str, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut conn = Reconnecting::new(target, Duration::from_secs(2));
    while start.elapsed() < timeout {
        match conn.call(&["SET", key, "probe"]).await {
            Ok(Value::Simple(ok)) if ok == b"OK" => return Some(start.elapsed()),
            // The slot's master answers, and refuses by policy (`--write-ack replica` and no
            // replica left): the slots are served again.
            Ok(Value::Error(e)) if e.starts_with(b"NOREPLICAS") => return Some(start.elapsed()),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
