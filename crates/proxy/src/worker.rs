//! A worker thread: its clients, its shared backend connections, and what happens to a
//! request between the client and the node — routing, redirects, retries, fan-out.
//!
//! Everything here runs on one thread (a current-thread runtime), so state is `Rc`/`RefCell`
//! and nothing is locked per request.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use resp::write;

use crate::backend::{Backend, Mode, Owner};
use crate::client::{FlushQueue, Reply};
use crate::config::{ReadFrom, WriteAck};
use crate::fasthash::FastMap;
use crate::metrics::{CommandStats, NodeStats};
use crate::request::{Fanout, Pending, Request, Sink, Target};
use crate::shared::{Shared, Stats};
use crate::slotmap::{Redirect, SlotMap, is_transient_error, parse_redirect};

/// Redirects followed at once; after these, each waits a backoff first (the cluster is
/// mid-change and nodes disagree), within the retry budget.
const IMMEDIATE_REDIRECTS: u32 = 4;

/// Shared connections per node and protocol beside the one every client uses: a client that
/// got a large reply (256 KiB or more) moves to one of these, by its id. Redis writes at most
/// 64 KiB to one connection per turn of its event loop, so large replies to clients sharing
/// one connection come at a fraction of the rate they come over connections of their own
/// (measured: 0.56-0.67 of it for four 512 KiB GETs at a time, `scripts/floor-bench.sh`);
/// clients of small requests keep sharing one connection, where their requests batch.
pub const BULK_LANES: u8 = 4;

/// Where the shared connections of a protocol and lane are kept in [`Ctx`].
fn backend_index(resp3: bool, lane: u8) -> usize {
    2 * usize::from(lane) + usize::from(resp3)
}

/// The bulk lane of client `id`.
pub fn bulk_lane(id: u64) -> u8 {
    1 + (id % u64::from(BULK_LANES)) as u8
}

/// One worker thread's routing state.
pub struct Ctx {
    pub shared: Arc<Shared>,
    map: RefCell<SlotMap>,
    epoch: Cell<u64>,
    /// Shared connections by node: `[RESP2, RESP3]` for lane 0, then for each bulk lane.
    backends: [RefCell<FastMap<String, Rc<Backend>>>; 2 * (1 + BULK_LANES as usize)],
    /// The time of the current read event: one clock read per event, not per request.
    now: Cell<Instant>,
    /// This worker's statistics blocks.
    pub commands: Arc<CommandStats>,
    node_stats: RefCell<FastMap<String, Arc<NodeStats>>>,
    /// Bytes read from and written to this worker's clients.
    pub traffic: Arc<crate::metrics::ClientTraffic>,
    /// `--write-ack replica`: writes are confirmed by a replica before they are answered.
    pub write_ack: bool,
    /// `WAIT 1 <timeout ms>`, as sent after writes when `write_ack`.
    wait: Bytes,
    /// Clients whose output waits on slower replies (see [`crate::client`]).
    pub flush_queue: Rc<FlushQueue>,
}

impl Ctx {
    pub fn new(shared: Arc<Shared>) -> Rc<Ctx> {
        let map = (*shared.map()).clone();
        let epoch = shared.epoch();
        let commands = shared.registry.command_block(shared.table.len());
        let traffic = shared.registry.traffic_block();
        Rc::new(Ctx {
            map: RefCell::new(map),
            epoch: Cell::new(epoch),
            backends: Default::default(),
            now: Cell::new(Instant::now()),
            commands,
            node_stats: RefCell::new(FastMap::default()),
            write_ack: shared.config.write_ack == WriteAck::Replica,
            wait: wait_command(shared.config.write_ack_timeout),
            flush_queue: Rc::new(FlushQueue::counting(traffic.clone())),
            traffic,
            shared,
        })
    }

    /// Reads the clock for a new read event.
    pub fn tick(&self) -> Instant {
        let now = Instant::now();
        self.now.set(now);
        now
    }

    pub fn now(&self) -> Instant {
        self.now.get()
    }

    /// This worker's statistics block for `addr`.
    pub fn node_stats(&self, addr: &str) -> Arc<NodeStats> {
        if let Some(block) = self.node_stats.borrow().get(addr) {
            return block.clone();
        }
        let block = self.shared.registry.node_block(addr);
        self.node_stats.borrow_mut().insert(addr.to_string(), block.clone());
        block
    }

    /// This worker's view of the slot map, brought up to date first.
    pub fn map(&self) -> std::cell::Ref<'_, SlotMap> {
        let epoch = self.shared.epoch();
        if epoch != self.epoch.get() {
            *self.map.borrow_mut() = (*self.shared.map()).clone();
            self.epoch.set(epoch);
            self.close_stale_backends();
        }
        self.map.borrow()
    }

    /// Ends the shared connections to nodes the new map no longer sends requests to. A node
    /// that failed (a master failed over, possibly behind a partition where its connection
    /// hangs instead of breaking) is closed at once: its requests in flight are handed back,
    /// retried on the new owner when that is safe and answered "outcome unknown" otherwise,
    /// instead of waiting on a node that will not reply. A healthy node that just lost its
    /// slots (a resharding) is retired: it ends after its last reply.
    fn close_stale_backends(&self) {
        let map = self.map.borrow();
        let serving: Vec<&str> = map.serving_masters().iter().map(|&m| map.addr(m)).collect();
        for backend in
            self.backends.iter().flat_map(|b| b.borrow().values().cloned().collect::<Vec<_>>())
        {
            let node = map.index_of(&backend.addr).map(|i| &map.nodes[usize::from(i)]);
            let failing = node.is_none_or(|n| n.failing);
            let still_used = match backend.readonly {
                false => serving.contains(&backend.addr.as_str()),
                true => !failing,
            };
            match (still_used, failing) {
                (true, _) => {}
                (false, true) => {
                    tracing::info!(node = %backend.addr, "closing the connection to a failed node");
                    backend.close();
                }
                (false, false) => backend.retire(),
            }
        }
    }

    /// Sends a request to its node.
    pub fn dispatch(self: &Rc<Self>, req: Request, sink: Sink) {
        if let Some(refusal) = self.unackable(&req) {
            crate::metrics::command_error(&self.commands, req.command);
            return deliver(&self.shared, sink, &refusal);
        }
        let backend = {
            let map = self.map();
            let node = match &req.target {
                Target::Node(addr) => Some((addr.as_ref(), false)),
                Target::Slot(slot) => {
                    map.master_of(*slot).map(|master| match self.shared.config.read_from {
                        ReadFrom::Replica if req.readonly => pick_replica(&map, master)
                            .map_or((map.addr(master), false), |r| (map.addr(r), true)),
                        _ => (map.addr(master), false),
                    })
                }
            };
            node.map(|(addr, readonly)| self.backend(addr, readonly, req.resp3, req.lane))
        };
        match backend {
            Some(backend) => backend.send(Pending { req, sink }),
            None => {
                // No master for the slot (a failover is under way, or the map is not loaded).
                self.shared.want_refresh();
                self.retry_later(Pending { req, sink }, b"-CLUSTERDOWN Hash slot not served\r\n");
            }
        }
    }

    /// With `--write-ack replica`, a write to a master that has no replica up (its replica was
    /// just promoted, or is down) is refused before it runs: no replica could confirm it, and
    /// waiting the ack timeout for each write would stall every request queued behind it on
    /// that master's connection. Redis' own `min-replicas-to-write` answers alike.
    fn unackable(&self, req: &Request) -> Option<Vec<u8>> {
        let Target::Slot(slot) = req.target else { return None };
        if !req.ack {
            return None;
        }
        let map = self.map();
        let master = map.master_of(slot)?;
        if map.replicas_of(master).next().is_some() {
            return None;
        }
        Stats::add(&self.shared.stats.acks_missing, 1);
        let mut reply = Vec::new();
        let text = format!(
            "NOREPLICAS redkeep: no replica of {} is up to confirm the write, so it was not run \
             (--write-ack replica)",
            map.addr(master)
        );
        write::error(&mut reply, text.as_bytes());
        Some(reply)
    }

    /// The shared connection to `addr` in the protocol of `resp3` on `lane`, made on first
    /// use and after it broke.
    fn backend(self: &Rc<Self>, addr: &str, readonly: bool, resp3: bool, lane: u8) -> Rc<Backend> {
        let backends = &self.backends[backend_index(resp3, lane)];
        if let Some(backend) = backends.borrow().get(addr) {
            return backend.clone();
        }
        let backend = Backend::new(addr, Mode::Shared, readonly, resp3, lane, self.wait.clone());
        backends.borrow_mut().insert(addr.to_string(), backend.clone());
        tokio::task::spawn_local(backend.clone().run(self.clone()));
        backend
    }

    /// A connection of one client's own to `addr`, in the client's protocol.
    pub fn private_backend(self: &Rc<Self>, addr: &str, resp3: bool) -> Rc<Backend> {
        let backend = Backend::new(addr, Mode::Private, false, resp3, 0, self.wait.clone());
        tokio::task::spawn_local(backend.clone().run(self.clone()));
        backend
    }

    /// A connection for one client's subscriptions to `addr`.
    pub fn pubsub_backend(
        self: &Rc<Self>,
        addr: &str,
        subscriber: crate::pubsub::Subscriber,
    ) -> Rc<Backend> {
        // RESP2: the subscriber turns its frames into RESP3 pushes when the client wants them.
        let backend = Backend::new(addr, Mode::PubSub, false, false, 0, Bytes::new());
        *backend.subscriber.borrow_mut() = Some(subscriber);
        tokio::task::spawn_local(backend.clone().run(self.clone()));
        backend
    }

    pub fn forget_backend(&self, backend: &Backend) {
        let mut backends = self.backends[backend_index(backend.resp3, backend.lane)].borrow_mut();
        if backends.get(&backend.addr).is_some_and(|b| std::ptr::eq(b.as_ref(), backend)) {
            backends.remove(&backend.addr);
        }
    }

    /// A reply frame from `backend` for `pending`.
    pub fn on_reply(self: &Rc<Self>, backend: &Backend, mut pending: Pending, reply: Reply) {
        let frame = reply.bytes();
        let is_error = reply.is_error();
        if is_error && !matches!(pending.sink, Sink::Discard) {
            if let Some(redirect) = parse_redirect(frame) {
                if backend.mode == Mode::Private {
                    crate::metrics::command_error(&self.commands, pending.req.command);
                    return deliver(&self.shared, pending.sink, &private_redirect_error(&redirect));
                }
                if pending.req.attempts < IMMEDIATE_REDIRECTS {
                    pending.req.attempts += 1;
                    return self.follow(redirect, pending);
                }
                if let Redirect::Moved { slot, addr } = &redirect {
                    self.map.borrow_mut().apply_moved(*slot, addr);
                }
                return self.retry_later(pending, frame);
            } else if is_transient_error(frame) && backend.mode == Mode::Shared {
                return self.retry_later(pending, frame);
            }
        }
        // What the client gets: redirects followed and errors retried above are not counted.
        if !matches!(pending.sink, Sink::Discard | Sink::Wait) {
            let latency = self.now().saturating_duration_since(pending.req.received);
            crate::metrics::answered(&self.commands, pending.req.command, latency, is_error);
        }
        match pending.sink {
            Sink::Client { client, seq } => client.deliver_reply(seq, reply),
            sink => deliver(&self.shared, sink, frame),
        }
    }

    fn follow(self: &Rc<Self>, redirect: Redirect, pending: Pending) {
        match redirect {
            Redirect::Moved { slot, addr } => {
                Stats::add(&self.shared.stats.moved, 1);
                self.map.borrow_mut().apply_moved(slot, &addr);
                self.shared.want_refresh();
                match pending.req.target {
                    Target::Slot(_) => self.dispatch(pending.req, pending.sink),
                    Target::Node(_) => {
                        let mut req = pending.req;
                        req.target = Target::Node(addr.as_str().into());
                        self.dispatch(req, pending.sink)
                    }
                }
            }
            Redirect::Ask { addr, .. } => {
                Stats::add(&self.shared.stats.ask, 1);
                let backend = self.backend(&addr, false, pending.req.resp3, pending.req.lane);
                backend.send_raw(b"*1\r\n$6\r\nASKING\r\n", Sink::Discard);
                backend.send(pending);
            }
        }
    }

    /// Sends the request again after a pause, while its retry budget lasts; then `last_reply`
    /// goes to the client.
    fn retry_later(self: &Rc<Self>, mut pending: Pending, last_reply: &[u8]) {
        let budget = self.shared.config.retry_budget;
        let since = *pending.req.retrying_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= budget {
            crate::metrics::command_error(&self.commands, pending.req.command);
            return deliver(&self.shared, pending.sink, last_reply);
        }
        Stats::add(&self.shared.stats.retries, 1);
        pending.req.attempts += 1;
        let pause = backoff(pending.req.attempts);
        let ctx = self.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(pause).await;
            ctx.dispatch(pending.req, pending.sink);
        });
    }

    /// A request whose connection broke before its reply.
    pub fn on_lost(
        self: &Rc<Self>,
        backend: &Backend,
        pending: Pending,
        maybe_sent: bool,
        reason: &str,
    ) {
        if matches!(pending.sink, Sink::Discard | Sink::Wait) {
            return;
        }
        let on_purpose = backend.closed_on_purpose();
        if !on_purpose {
            self.shared.want_refresh();
        }
        let addr = &backend.addr;
        if backend.mode == Mode::Shared && (!maybe_sent || pending.req.retry_safe) {
            let mut reply = Vec::new();
            write::error(
                &mut reply,
                format!("CLUSTERDOWN redkeep: node {addr} unreachable: {reason}").as_bytes(),
            );
            return self.retry_later(pending, &reply);
        }
        if !on_purpose {
            Stats::add(&self.shared.stats.outcome_unknown, 1);
        }
        let mut reply = Vec::new();
        let text = format!(
            "ERR redkeep: the connection to {addr} broke after the command was sent ({reason}); \
             it may or may not have run"
        );
        write::error(&mut reply, text.as_bytes());
        crate::metrics::command_error(&self.commands, pending.req.command);
        deliver(&self.shared, pending.sink, &reply);
    }
}

impl Ctx {
    /// The reply of a `WAIT` sent after writes on `backend`: the writes in `held` (each with
    /// its own successful reply) are answered with that reply when a replica confirmed them,
    /// else with a `NOREPLICAACK` error. WAIT counts every earlier write of the connection, so
    /// one WAIT covers all of them.
    pub fn on_wait_reply(
        self: &Rc<Self>,
        backend: &Backend,
        held: Vec<(Pending, Vec<u8>)>,
        wait_reply: &[u8],
    ) {
        let stats = &self.shared.stats;
        if crate::fanout::integer(wait_reply).is_some_and(|replicas| replicas >= 1) {
            Stats::add(&stats.acks_confirmed, held.len() as u64);
            for (pending, reply) in held {
                self.on_reply(backend, pending, Reply::Slice(&reply));
            }
            return;
        }
        Stats::add(&stats.acks_missing, held.len() as u64);
        let ms = self.shared.config.write_ack_timeout.as_millis().max(1);
        let mut text = format!(
            "NOREPLICAACK redkeep: the write ran on the master {} but no replica confirmed it \
             within {ms} ms; it may be lost if the master fails now",
            backend.addr
        );
        if wait_reply.first() == Some(&b'-') {
            let said = String::from_utf8_lossy(&wait_reply[1..]);
            text.push_str(&format!(" (WAIT answered: {})", said.trim_end()));
        }
        let mut error = Vec::new();
        write::error(&mut error, text.as_bytes());
        for (pending, _) in held {
            self.on_reply(backend, pending, Reply::Slice(&error));
        }
    }

    /// Writes that ran (their reply is in) but whose `WAIT` reply was lost with the
    /// connection: whether a replica has them is unknown, so they are not answered as
    /// successes, nor sent again (they ran once already).
    pub fn on_wait_lost(&self, backend: &Backend, held: Vec<(Pending, Vec<u8>)>, reason: &str) {
        if held.is_empty() {
            return;
        }
        self.shared.want_refresh();
        let stats = &self.shared.stats;
        Stats::add(&stats.acks_missing, held.len() as u64);
        Stats::add(&stats.outcome_unknown, held.len() as u64);
        let text = format!(
            "NOREPLICAACK redkeep: the write ran on the master {} but the connection broke \
             before a replica confirmed it ({reason}); it may be lost if the master fails now",
            backend.addr
        );
        let mut error = Vec::new();
        write::error(&mut error, text.as_bytes());
        for (pending, _) in held {
            crate::metrics::command_error(&self.commands, pending.req.command);
            deliver(&self.shared, pending.sink, &error);
        }
    }
}

/// `WAIT 1 <timeout in ms>`; at least 1 ms, since `WAIT 1 0` waits forever.
fn wait_command(timeout: Duration) -> Bytes {
    let ms = timeout.as_millis().max(1).to_string();
    let mut out = Vec::new();
    let args: [&[u8]; 3] = [b"WAIT", b"1", ms.as_bytes()];
    write::command(&mut out, &args);
    out.into()
}

fn deliver(shared: &Shared, sink: Sink, frame: &[u8]) {
    if frame.first() == Some(&b'-') {
        Stats::add(&shared.stats.errors, 1);
    }
    match sink {
        Sink::Client { client, seq } => client.deliver(seq, frame),
        Sink::Part { fanout, index } => Fanout::part_done(&fanout, index, frame),
        Sink::Scan { client, seq, index, masters } => {
            client.deliver(seq, &crate::fanout::scan_reply(frame, index, masters));
        }
        Sink::Discard | Sink::Wait => {}
    }
}

fn private_redirect_error(redirect: &Redirect) -> Vec<u8> {
    let slot = match redirect {
        Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } => slot,
    };
    let mut out = Vec::new();
    let text = format!(
        "ERR redkeep: slot {slot} is served by another node than this connection's \
         (a transaction or a blocking command keeps to the node of its first key)"
    );
    write::error(&mut out, text.as_bytes());
    out
}

/// A healthy replica of `master`, spread by a cheap rotating choice.
fn pick_replica(map: &SlotMap, master: u16) -> Option<u16> {
    thread_local!(static TURN: Cell<usize> = const { Cell::new(0) });
    let count = map.replicas_of(master).count();
    if count == 0 {
        return None;
    }
    let turn = TURN.with(|t| {
        t.set(t.get().wrapping_add(1));
        t.get()
    });
    map.replicas_of(master).nth(turn % count)
}

/// Pause before retry `attempt`: 10 ms doubling, at most 400 ms.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.min(5).saturating_sub(1)).min(Duration::from_millis(400))
}

/// The connections this worker makes report to it.
impl Owner for Ctx {
    fn shared(&self) -> &Shared {
        &self.shared
    }
    fn tick(&self) -> Instant {
        Ctx::tick(self)
    }
    fn node_stats(&self, addr: &str) -> Arc<NodeStats> {
        Ctx::node_stats(self, addr)
    }
    fn forget_backend(&self, backend: &Backend) {
        Ctx::forget_backend(self, backend)
    }
    fn on_reply(self: &Rc<Self>, backend: &Backend, pending: Pending, reply: Reply) {
        Ctx::on_reply(self, backend, pending, reply)
    }
    fn on_wait_reply(
        self: &Rc<Self>,
        backend: &Backend,
        held: Vec<(Pending, Vec<u8>)>,
        reply: &[u8],
    ) {
        Ctx::on_wait_reply(self, backend, held, reply)
    }
    fn on_wait_lost(&self, backend: &Backend, held: Vec<(Pending, Vec<u8>)>, reason: &str) {
        Ctx::on_wait_lost(self, backend, held, reason)
    }
    fn on_lost(
        self: &Rc<Self>,
        backend: &Backend,
        pending: Pending,
        maybe_sent: bool,
        reason: &str,
    ) {
        Ctx::on_lost(self, backend, pending, maybe_sent, reason)
    }
}
