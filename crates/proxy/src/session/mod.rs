//! One client connection: read requests, classify each once into a [`Plan`]
//! ([`crate::plan`]), execute the plan, and write the replies in request order.
//!
//! The execution is split by the mode the client is in: [`normal`] (keyed, split, fanned
//! out), [`local`] (what the proxy answers itself), [`transaction`] (MULTI/EXEC/WATCH on a
//! connection of the client's own), [`blocked`] (blocking commands on a connection of the
//! client's own), [`subscribed`] (Pub/Sub).

mod answers;
mod blocked;
mod local;
mod normal;
mod subscribed;
mod transaction;

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use resp::{Parsed, RequestParser, write};
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::client::{Client, Flushed};
use crate::clients::ClientEntry;
use crate::commands::{Args, CommandInfo};
use crate::plan::{ClientState, Plan, Policy, Tx, classify};
use crate::request::{Request, Sink, Target};
use crate::shared::{Shared, Stats};
use crate::worker::Ctx;

use subscribed::Subscriptions;
use transaction::Transaction;

/// The arguments of the request just parsed, as slices of its bytes.
struct ReqArgs<'a> {
    parser: &'a RequestParser,
    frame: &'a [u8],
}

impl Args for ReqArgs<'_> {
    fn count(&self) -> usize {
        self.parser.argc()
    }
    fn arg(&self, i: usize) -> &[u8] {
        self.parser.arg(self.frame, i)
    }
}

pub struct Session {
    ctx: Rc<Ctx>,
    client: Rc<Client>,
    policy: Policy,
    next_seq: u64,
    /// The lane of the worker's shared node connections that carries this client's requests
    /// (see [`crate::worker::BULK_LANES`]).
    lane: u8,
    /// The command of the request being handled, for counting the proxy's errors to it.
    command: Option<u16>,
    keys: Vec<usize>,
    resp3: bool,
    name: Option<Vec<u8>>,
    closing: bool,
    tx: Option<Transaction>,
    /// Connections of this client's own for blocking commands, by node.
    blocking: HashMap<String, Rc<Backend>>,
    /// In subscribed mode: the subscription connections.
    subscribed: Option<Subscriptions>,
    /// A request that goes over another connection than the earlier ones (see
    /// [`Plan::waits_for_earlier_replies`]) waits at the start of the input until every
    /// earlier reply is written.
    waiting_for_replies: bool,
    /// In subscribed mode, (un)subscribes whose confirmations are not all in (see
    /// [`crate::pubsub::Pong::Sync`]): the next command waits for them.
    syncs: Rc<Cell<u32>>,
    /// Requests wait in the input until `syncs` is zero.
    paused_by_sync: bool,
    /// A request waits at the start of the input for a CLIENT PAUSE to end (checked again
    /// every [`PAUSE_RECHECK`], so that an UNPAUSE from any thread ends the wait).
    held_by_pause: bool,
    /// What CLIENT LIST shows of this client.
    entry: Arc<ClientEntry>,
    /// The user the client authenticated as (`None`: not yet), and its address, by which
    /// failed AUTH attempts are limited.
    user: Option<crate::acl::UserId>,
    peer_ip: Option<std::net::IpAddr>,
}

/// Serves one client until it leaves, breaks the protocol, or the proxy shuts down.
pub async fn serve(ctx: Rc<Ctx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let shared = ctx.shared.clone();
    let peer_ip = stream.peer_addr().ok().map(|a| a.ip());
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    // Replies are written from where they arrive (see `client`); the session reads.
    let (reader, writer) = stream.into_split();
    let (mut reader, writer) = match crate::tls::ClientReader::new(&shared, reader, writer) {
        Ok(sides) => sides,
        Err(e) => return tracing::warn!(error = %e, "cannot start TLS for a client"),
    };
    let client = Rc::new(Client::with_writer(
        shared.next_client_id(),
        Some(writer),
        ctx.flush_queue.clone(),
    ));
    let entry = Arc::new(ClientEntry::new(client.id, peer, laddr, fd));
    // Declared after the socket's halves, so dropped before them, also in a panic: a client
    // leaves the registry before its socket closes, as CLIENT KILL relies on.
    let _listed = shared.clients.register(entry.clone());
    let config = &shared.config;
    let mut session = Session {
        ctx,
        client: client.clone(),
        policy: Policy {
            allow_flush: config.allow_flush,
            allow_config_set: config.allow_config_set,
            security: shared.security.clone(),
        },
        next_seq: 0,
        lane: 0,
        command: None,
        keys: Vec::with_capacity(16),
        resp3: false,
        name: None,
        closing: false,
        tx: None,
        blocking: HashMap::new(),
        subscribed: None,
        waiting_for_replies: false,
        syncs: Rc::default(),
        paused_by_sync: false,
        held_by_pause: false,
        entry,
        user: None,
        peer_ip,
    };
    session.set_user(shared.security.users.initial());
    let mut input = BytesMut::with_capacity(INPUT_MIN);
    let mut parser = RequestParser::new(config.limits);
    let mut last_activity = Instant::now();
    // Made once: each `cancelled()` registers with the token's lock, which every worker
    // thread shares.
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    // How much room a read gets: grows when reads fill it (large values, deep pipelines).
    let mut read_size = INPUT_MIN;
    loop {
        if client.broken.get() {
            session.closing = true;
        }
        // A write the socket did not take whole is finished here; before closing or a
        // request that waits for earlier replies, every reply is written first.
        let drain = session.closing || session.waiting_for_replies;
        if client.is_stalled() || (drain && client.has_output()) {
            match client.finish_write() {
                Flushed::All => {}
                Flushed::Blocked => {
                    if std::future::poll_fn(|cx| client.poll_writable(cx)).await.is_err() {
                        break;
                    }
                    continue;
                }
                Flushed::Failed => break,
            }
        }
        let in_flight = session.next_seq - client.answered();
        // A reply cut off in the middle is never answered: nothing else can be written after
        // its first part, so the client goes once that is out.
        if session.closing && (in_flight == 0 || client.is_cut_off()) {
            break;
        }
        if session.waiting_for_replies && in_flight == 0 {
            session.waiting_for_replies = false;
            session.read_requests(&mut input, &mut parser);
            continue;
        }
        session.leave_subscribed_mode_when_done();
        let synced = session.syncs.get() == 0;
        if synced && session.paused_by_sync {
            // The unsubscribes are confirmed: the requests after them, in whichever mode the
            // client is in now.
            session.paused_by_sync = false;
            session.read_requests(&mut input, &mut parser);
            continue;
        }
        // Requests wait in the input (for earlier replies, or confirmations). The socket is
        // still read, up to a bound, so that a client that leaves while its BLPOP blocks is
        // noticed: its connection to the node is closed, and nothing is popped for nobody.
        let paused = session.waiting_for_replies || !synced || session.held_by_pause;
        let can_read = !session.closing
            && (!paused || input.len() < INPUT_MAX)
            && in_flight < config.max_pending_per_client as u64;
        let idle_deadline =
            config.client_idle_timeout.map(|t| tokio::time::Instant::from_std(last_activity + t));
        // Replies are written without the session; it hears of them only when it waits on
        // them.
        client.watch.set(
            !can_read
                || paused
                || session.subscribed.is_some()
                || (idle_deadline.is_some() && in_flight > 0),
        );
        if can_read && input.capacity() - input.len() < read_size / 4 {
            // Room for a whole read. Without it, a full buffer whose requests are still in
            // flight (they share its memory) is replaced by one no larger than the first.
            input.reserve(read_size);
        }
        let room = input.capacity() - input.len();
        tokio::select! {
            _ = client.wake.notified() => {}
            read = reader.read(&mut input), if can_read => {
                match read {
                    // Like Redis: a client that closed its side is gone.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        crate::metrics::bump(&session.ctx.traffic.bytes_in, n as u64);
                        read_size = match n {
                            n if n == room => (read_size * 2).min(INPUT_MAX),
                            n if n < read_size / 4 => (read_size / 2).max(INPUT_MIN),
                            _ => read_size,
                        };
                        last_activity = session.ctx.tick();
                        session.read_requests(&mut input, &mut parser);
                        session.publish_state(last_activity);
                    }
                }
            }
            _ = tokio::time::sleep(PAUSE_RECHECK), if session.held_by_pause => {
                // Read again: held again if the pause still holds it.
                session.held_by_pause = false;
                session.read_requests(&mut input, &mut parser);
                session.publish_state(session.ctx.tick());
            }
            _ = &mut shutdown, if !session.closing => session.closing = true,
            // A client held by CLIENT PAUSE is waiting, not idle (as in Redis).
            _ = sleep_until(idle_deadline),
                if idle_deadline.is_some() && in_flight == 0 && !session.held_by_pause => break,
        }
    }
    client.close();
    session.end();
}

/// How often a request held by CLIENT PAUSE looks whether the pause is over.
const PAUSE_RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

/// A client's first read buffer, and the room each read gets at first.
const INPUT_MIN: usize = 16 * 1024;
/// The most room a read gets, for clients whose reads fill what they are given.
const INPUT_MAX: usize = 256 * 1024;

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// What CLIENT LIST shows that changes with requests: once per read event.
    fn publish_state(&self, at: Instant) {
        let mut flags = 0;
        if self.subscribed.is_some() {
            flags |= crate::clients::SUBSCRIBED;
        }
        if self.tx.as_ref().is_some_and(|tx| tx.multi) {
            flags |= crate::clients::IN_MULTI;
        }
        let ms = self.ctx.shared.clients.ms_since_start(at);
        self.entry.set_state(ms, self.resp3, flags);
    }

    /// The user the client is now, also as CLIENT LIST shows it and CLIENT KILL USER picks it.
    fn set_user(&mut self, user: Option<crate::acl::UserId>) {
        self.user = user;
        let users = &self.ctx.shared.security.users;
        self.entry.set_user(user.map_or("default", |id| users.get(id).name.as_str()));
    }

    fn set_name(&mut self, name: Option<Vec<u8>>) {
        self.entry.set_name(name.as_deref());
        self.name = name;
    }

    /// What the classification needs to know of this client.
    fn state(&self) -> ClientState {
        let tx = match &self.tx {
            None => Tx::None,
            Some(tx) if tx.multi => Tx::Multi,
            Some(_) => Tx::Watching,
        };
        ClientState {
            tx,
            subscribed: self.subscribed.is_some(),
            resp3: self.resp3,
            user: self.user,
        }
    }

    /// Ends the client's own connections (it left, or said RESET).
    fn end(&mut self) {
        for (_, backend) in self.blocking.drain() {
            backend.close();
        }
        if let Some(subscriptions) = self.subscribed.take() {
            subscriptions.close();
        }
        if let Some(backend) = self.tx.take().and_then(|tx| tx.backend) {
            backend.close();
        }
    }

    /// Handles every complete request in `input`.
    fn read_requests(&mut self, input: &mut BytesMut, parser: &mut RequestParser) {
        let first_seq = self.next_seq;
        self.client.start_reading();
        self.parse_and_handle(input, parser);
        self.client.end_reading(self.next_seq);
        // One shared counter update per read, not per request.
        Stats::add(&self.ctx.shared.stats.commands, self.next_seq - first_seq);
    }

    fn parse_and_handle(&mut self, input: &mut BytesMut, parser: &mut RequestParser) {
        // Once per read: the plans borrow the command table from it.
        let shared: Arc<Shared> = self.ctx.shared.clone();
        // Once per read, not per request: without a pause, one atomic load.
        let pause = shared.clients.paused();
        while !self.closing
            && !self.waiting_for_replies
            && !self.held_by_pause
            && self.syncs.get() == 0
            && !input.is_empty()
        {
            match parser.parse(input) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty { consumed }) => {
                    let _ = input.split_to(consumed);
                }
                Ok(Parsed::Request { consumed }) => {
                    let state = self.state();
                    let args = ReqArgs { parser, frame: parser.resp(input) };
                    let plan = classify(&shared.table, &self.policy, state, &args, &mut self.keys);
                    if plan.waits_for_earlier_replies(state)
                        && self.next_seq != self.client.answered()
                    {
                        // Read again (and classified again) once they are written.
                        parser.reset();
                        self.waiting_for_replies = true;
                        break;
                    }
                    if pause.is_some_and(|p| self.held_by(p, plan.info())) {
                        // Read again (and classified again) when the pause is over.
                        parser.reset();
                        self.held_by_pause = true;
                        break;
                    }
                    let inline = input[0] != b'*';
                    let frame = if inline {
                        let frame = Bytes::copy_from_slice(parser.resp(input));
                        let _ = input.split_to(consumed);
                        frame
                    } else {
                        input.split_to(consumed).freeze()
                    };
                    self.execute(plan, &ReqArgs { parser, frame: &frame }, &frame);
                }
                Err(e) => {
                    self.command = None;
                    Stats::add(&self.ctx.shared.stats.protocol_errors, 1);
                    let seq = self.take_seq();
                    self.reply_error(seq, &format!("ERR Protocol error: {e}"));
                    self.closing = true;
                    input.clear();
                }
            }
        }
        self.paused_by_sync = self.syncs.get() > 0 && !input.is_empty();
    }

    /// Whether `pause` holds a request of this command (`None`: one the proxy refuses).
    fn held_by(&self, pause: crate::clients::Pause, info: Option<&CommandInfo>) -> bool {
        let command = info.map(|info| {
            let exec_writes = info.name == "exec" && self.tx.as_ref().is_some_and(|tx| tx.writes);
            (info.name.as_str(), info.writes || exec_writes)
        });
        crate::client_admin::held_by_pause(pause.all, command)
    }

    /// Runs a request's plan.
    fn execute(&mut self, plan: Plan<'_>, args: &ReqArgs, frame: &Bytes) {
        let info = plan.info();
        self.command = info.map(|info| info.id);
        if let Some(info) = info {
            self.entry.set_command(info.id);
        }
        if let Plan::Subscribed { action, .. } = plan {
            // Answered by Pub/Sub frames, not a numbered reply.
            return self.subscribed_request(action, args, frame);
        }
        let seq = self.take_seq();
        if let Some(info) = info {
            crate::metrics::bump(&self.ctx.commands.calls[usize::from(info.id)], 1);
        }
        match plan {
            Plan::Slot { info, slot } => self.keyed_at(seq, info, args, frame, slot),
            Plan::Split { info, split } => self.split(seq, info, split, args),
            Plan::FanOut { info, merge } => self.all_masters(seq, info, merge, frame),
            Plan::AnyMaster { info } => self.any_master(seq, info, frame),
            Plan::Local { info, local } => self.local(seq, info, local, args, frame),
            Plan::Transaction { info, step } => self.transaction(seq, info, step, args, frame),
            Plan::Blocking { info, slot } => self.blocking(seq, info, slot, args, frame),
            Plan::Subscribe { action, .. } => self.subscribe(seq, action, args, frame),
            Plan::NothingToUnsubscribe { info } => {
                let channels: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
                self.reply(seq, &subscribed::nothing_to_unsubscribe(&info.name, &channels, 0));
            }
            Plan::Subscribed { .. } => unreachable!("executed above"),
            Plan::Refuse(refusal) if refusal.aborts => self.reply_error(seq, &refusal.error),
            Plan::Refuse(refusal) => self.reply_error_only(seq, &refusal.error),
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        // A client that got a large reply moves to a bulk lane, at a request with none before
        // it in flight: its requests to a node are never on two connections at once, so none
        // can overtake another.
        if self.lane == 0 && self.client.got_large_reply() && self.client.answered() == seq {
            self.lane = crate::worker::bulk_lane(self.client.id);
        }
        self.next_seq += 1;
        seq
    }

    fn reply(&self, seq: u64, frame: &[u8]) {
        self.client.deliver(seq, frame);
    }

    /// An error the proxy gives to a request. Inside MULTI it aborts the transaction.
    fn reply_error(&self, seq: u64, text: &str) {
        if let Some(tx) = self.tx.as_ref().filter(|tx| tx.multi) {
            tx.aborted.set(true);
        }
        self.reply_error_only(seq, text);
    }

    /// An error that leaves an open transaction as it is (a nested MULTI, as in Redis).
    fn reply_error_only(&self, seq: u64, text: &str) {
        Stats::add(&self.ctx.shared.stats.errors, 1);
        crate::metrics::proxy_error(&self.ctx.commands, self.command);
        let mut out = Vec::with_capacity(text.len() + 3);
        write::error(&mut out, text.as_bytes());
        self.reply(seq, &out);
    }

    fn request(&self, info: &CommandInfo, args: &ReqArgs, bytes: Bytes, target: Target) -> Request {
        let retry_safe = info.flags.readonly || is_idempotent(info, args);
        let mut req = self.client_request(bytes, target, info.flags.readonly, retry_safe);
        req.command = Some(info.id);
        req.ack = self.ctx.write_ack && info.writes;
        req
    }

    /// A request of this client's: in its protocol, on its lane.
    fn client_request(
        &self,
        bytes: Bytes,
        target: Target,
        readonly: bool,
        retry_safe: bool,
    ) -> Request {
        let mut req = Request::new(bytes, target, readonly, retry_safe, self.ctx.now());
        req.resp3 = self.resp3;
        req.lane = self.lane;
        req
    }

    fn sink(&self, seq: u64) -> Sink {
        Sink::Client { client: self.client.clone(), seq }
    }

    fn first_master(&self) -> Option<Rc<str>> {
        let map = self.ctx.map();
        map.serving_masters().first().map(|&m| map.addr(m).into())
    }

    /// The serving masters (and with `replicas`, every replica too), in address order.
    fn nodes(&self, replicas: bool) -> Vec<Rc<str>> {
        let map = self.ctx.map();
        let masters = map.serving_masters();
        let mut nodes: Vec<Rc<str>> = masters.iter().map(|&m| map.addr(m).into()).collect();
        if replicas {
            for &m in &masters {
                nodes.extend(map.replicas_of(m).map(|r| Rc::from(map.addr(r))));
            }
        }
        nodes
    }
}

/// True for writes that may be sent again after a lost connection and give the same reply:
/// SET without NX/XX/GET, SETEX, PSETEX, HMSET.
fn is_idempotent(info: &CommandInfo, args: &ReqArgs) -> bool {
    match info.name.as_str() {
        "set" => (3..args.count()).all(|i| {
            let a = args.arg(i);
            !(a.eq_ignore_ascii_case(b"NX")
                || a.eq_ignore_ascii_case(b"XX")
                || a.eq_ignore_ascii_case(b"GET"))
        }),
        "setex" | "psetex" | "hmset" | "mset" => true,
        _ => false,
    }
}
