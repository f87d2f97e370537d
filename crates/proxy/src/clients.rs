//! Every client of the proxy, across worker threads, for `CLIENT LIST` and `CLIENT INFO`.
//!
//! The registry's lock is taken when a client connects, leaves or changes its name, and by
//! `CLIENT LIST`; never per request. What changes per request (the last command, when it was
//! active) lives in relaxed atomics of the client's own entry, written by its worker thread
//! and only read by a `CLIENT LIST`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::commands::CommandTable;

/// One client connection as `CLIENT LIST` shows it.
pub struct ClientEntry {
    pub id: u64,
    /// The client's address, as the proxy sees it.
    pub addr: String,
    /// The proxy's address the client connected to.
    pub laddr: String,
    /// The proxy's socket for this client.
    pub fd: i32,
    created: Instant,
    name: Mutex<Option<Vec<u8>>>,
    /// The user the client authenticated as (`default` before AUTH, as Redis shows it); set
    /// on AUTH, HELLO and RESET only, so its lock is never taken per request.
    user: Mutex<String>,
    /// Milliseconds from the registry's start to the client's last request.
    last_active_ms: AtomicU64,
    /// Command table id + 1 of the last command; 0 before the first.
    last_cmd: AtomicU32,
    resp3: AtomicBool,
    /// [`SUBSCRIBED`] and [`IN_MULTI`].
    flags: AtomicU8,
}

/// In subscribed mode (flag `P`).
pub const SUBSCRIBED: u8 = 1;
/// Inside MULTI (flag `x`).
pub const IN_MULTI: u8 = 2;

impl ClientEntry {
    pub fn new(id: u64, addr: String, laddr: String, fd: i32) -> ClientEntry {
        ClientEntry {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(None),
            user: Mutex::new("default".into()),
            last_active_ms: AtomicU64::new(0),
            last_cmd: AtomicU32::new(0),
            resp3: AtomicBool::new(false),
            flags: AtomicU8::new(0),
        }
    }

    pub fn set_name(&self, name: Option<&[u8]>) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.map(<[u8]>::to_vec);
    }

    pub fn set_user(&self, user: &str) {
        let mut current = self.user.lock().unwrap_or_else(|e| e.into_inner());
        if *current != user {
            *current = user.to_owned();
        }
    }

    pub fn user(&self) -> String {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The command just read (its table id).
    pub fn set_command(&self, id: u16) {
        self.last_cmd.store(u32::from(id) + 1, Relaxed);
    }

    /// State after a read event: when, the protocol, subscribed or in MULTI.
    pub fn set_state(&self, active_ms: u64, resp3: bool, flags: u8) {
        self.last_active_ms.store(active_ms, Relaxed);
        self.resp3.store(resp3, Relaxed);
        self.flags.store(flags, Relaxed);
    }

    pub fn is_subscribed(&self) -> bool {
        self.flags.load(Relaxed) & SUBSCRIBED != 0
    }

    /// The client's line, in Redis' format (the fields the proxy knows), ending in `\n`.
    pub fn line(&self, now_ms: u64, table: &CommandTable, out: &mut String) {
        let name = self.name.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        let flags = self.flags.load(Relaxed);
        let mut flag_text = String::new();
        if flags & SUBSCRIBED != 0 {
            flag_text.push('P');
        }
        if flags & IN_MULTI != 0 {
            flag_text.push('x');
        }
        if flag_text.is_empty() {
            flag_text.push('N');
        }
        let cmd = match self.last_cmd.load(Relaxed) {
            0 => "NULL",
            id => table.name_of(id as usize - 1),
        };
        let user = self.user();
        let idle = now_ms.saturating_sub(self.last_active_ms.load(Relaxed)) / 1000;
        let _ = writeln!(
            out,
            "id={} addr={} laddr={} fd={} name={} age={} idle={idle} flags={flag_text} db=0 \
             multi={} cmd={cmd} user={user} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&name),
            self.created.elapsed().as_secs(),
            if flags & IN_MULTI != 0 { 0 } else { -1 },
            if self.resp3.load(Relaxed) { 3 } else { 2 },
        );
    }
}

/// Which clients `CLIENT LIST` shows.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `TYPE normal` (false) or `TYPE pubsub` (true); `None` shows both.
    pub subscribed: Option<bool>,
    /// `ID id ...`; empty shows every id.
    pub ids: Vec<u64>,
    /// `TYPE master|replica`: the proxy's clients are neither.
    pub none: bool,
}

/// The clients of every worker thread.
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    started: Instant,
    /// CLIENT PAUSE: when it ends, in milliseconds since `started` (0: no pause). Read once
    /// per read event; only a pause makes the reader look at the clock.
    pause_end_ms: AtomicU64,
    /// The pause holds every command (`ALL`), not only writes.
    pause_all: AtomicBool,
}

impl Default for ClientRegistry {
    fn default() -> Self {
        ClientRegistry {
            clients: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            pause_end_ms: AtomicU64::new(0),
            pause_all: AtomicBool::new(false),
        }
    }
}

/// A pause in force: whether it holds every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub all: bool,
}

impl ClientRegistry {
    /// Milliseconds since the registry started, for [`ClientEntry::set_state`].
    pub fn ms_since_start(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_millis() as u64
    }

    /// `CLIENT PAUSE`: as in Redis, the later end and the stricter mode of the pauses in
    /// force win.
    pub fn pause(&self, timeout_ms: u64, all: bool) {
        let now = self.ms_since_start(Instant::now());
        // `max(1)`: 0 means no pause.
        let end = now.saturating_add(timeout_ms).max(1);
        let previous = self.pause_end_ms.fetch_max(end, Relaxed);
        if previous <= now {
            // The earlier pause is over: its mode no longer counts.
            self.pause_all.store(all, Relaxed);
        } else if all {
            self.pause_all.store(true, Relaxed);
        }
    }

    /// `CLIENT UNPAUSE`.
    pub fn unpause(&self) {
        self.pause_end_ms.store(0, Relaxed);
        self.pause_all.store(false, Relaxed);
    }

    /// The pause in force now, if any.
    pub fn paused(&self) -> Option<Pause> {
        let end = self.pause_end_ms.load(Relaxed);
        if end == 0 || self.ms_since_start(Instant::now()) >= end {
            return None;
        }
        Some(Pause { all: self.pause_all.load(Relaxed) })
    }

    /// Lists `entry` until the returned guard is dropped (when the client leaves).
    pub fn register(self: &Arc<Self>, entry: Arc<ClientEntry>) -> Registered {
        let id = entry.id;
        self.lock().insert(id, entry);
        Registered { registry: self.clone(), id }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientEntry>>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `CLIENT KILL`: ends the connections of the clients `filter` picks when client `me`
    /// asks, but `me`'s own (its session closes it after the reply). Returns how many it
    /// picked, and whether `me` is one.
    pub fn kill(&self, filter: &crate::client_admin::KillFilter, me: u64) -> (usize, bool) {
        let clients = self.lock();
        let (mut picked, mut me_picked) = (0, false);
        for entry in clients.values() {
            let user = entry.user();
            let candidate = crate::client_admin::Candidate {
                id: entry.id,
                addr: &entry.addr,
                laddr: &entry.laddr,
                user: &user,
                subscribed: entry.is_subscribed(),
            };
            if !filter.matches(&candidate, me) {
                continue;
            }
            picked += 1;
            if entry.id == me {
                me_picked = true;
            } else {
                shut_down(entry.fd);
            }
        }
        (picked, me_picked)
    }

    /// `CLIENT LIST`: a line per client, by id.
    pub fn list(&self, table: &CommandTable, filter: &Filter) -> String {
        if filter.none {
            return String::new();
        }
        let now_ms = self.ms_since_start(Instant::now());
        // Copy the entries out: formatting happens outside the lock.
        let entries: Vec<Arc<ClientEntry>> = self
            .lock()
            .values()
            .filter(|e| filter.ids.is_empty() || filter.ids.contains(&e.id))
            .cloned()
            .collect();
        let mut out = String::new();
        for entry in entries {
            if filter.subscribed.is_none_or(|s| s == entry.is_subscribed()) {
                entry.line(now_ms, table, &mut out);
            }
        }
        out
    }
}

/// Ends both directions of a client's socket: its session reads the end of its input and
/// ends as when the client leaves (on whichever worker thread it runs).
fn shut_down(fd: i32) {
    // SAFETY: shutdown(2) neither closes nor frees anything. `fd` is the socket of a client
    // still in the registry, whose lock the caller holds: a session leaves the registry before
    // its socket is closed (see `session::serve`), so `fd` cannot be another file meanwhile.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Keeps a client listed; removes it when dropped.
pub struct Registered {
    registry: Arc<ClientRegistry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_listed_while_registered_in_redis_format() {
        let registry = Arc::new(ClientRegistry::default());
        let table = CommandTable::builtin();
        let a = Arc::new(ClientEntry::new(7, "127.0.0.1:5000".into(), "127.0.0.1:7010".into(), 9));
        let b = Arc::new(ClientEntry::new(8, "127.0.0.1:5001".into(), "127.0.0.1:7010".into(), 10));
        let _a = registry.register(a.clone());
        let b_listed = registry.register(b.clone());
        a.set_name(Some(b"worker"));
        b.set_user("alice");
        a.set_command(table.lookup(&[&b"GET"[..], b"k"][..]).unwrap().id);
        b.set_state(0, true, SUBSCRIBED);
        let text = registry.list(&table, &Filter::default());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:7010 fd=9 "));
        assert!(lines[0].contains(" name=worker ") && lines[0].contains(" cmd=get "), "{text}");
        assert!(lines[0].contains(" flags=N db=0 ") && lines[0].ends_with(" resp=2"), "{text}");
        assert!(lines[0].contains(" user=default "), "{text}");
        assert!(lines[1].contains(" user=alice "), "{text}");
        assert!(lines[1].contains(" flags=P ") && lines[1].ends_with(" resp=3"), "{text}");
        let pubsub = Filter { subscribed: Some(true), ..Filter::default() };
        assert!(registry.list(&table, &pubsub).starts_with("id=8 "));
        let by_id = Filter { ids: vec![7], ..Filter::default() };
        assert_eq!(registry.list(&table, &by_id).lines().count(), 1);
        drop(b_listed);
        assert_eq!(registry.len(), 1);
    }
}
