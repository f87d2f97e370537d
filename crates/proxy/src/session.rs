//! One client connection: read requests, route each, write the replies in request order.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use cluster::key_slot;
use resp::{Parsed, RequestParser, write};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::backend::Backend;
use crate::client::{Client, Flushed};
use crate::clients::{ClientEntry, Filter};
use crate::commands::{
    Args, CommandInfo, InTransaction, Local, Merge, Route, Split, in_transaction, key_positions,
};
use crate::fanout::MergeKind;
use crate::pubsub::{PLACEHOLDER_PING, Pong, Subscriber};
use crate::shared::Stats;
use crate::worker::{Ctx, Fanout, Pending, Request, Sink, Target};

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

/// A subscription connection and its subscription count (see [`Subscriber::count`]).
type Subscription = (Rc<Backend>, Rc<Cell<Option<i64>>>);

/// The connections of a client in subscribed mode, each with its subscription count.
#[derive(Default)]
struct Subscriptions {
    /// SUBSCRIBE and PSUBSCRIBE: one master hears every node's messages.
    classic: Option<Subscription>,
    /// SSUBSCRIBE: the master of each shard channel's slot.
    shards: Vec<Subscription>,
    /// The connection of the client's last (un)subscribe: its PINGs, and the proxy's
    /// placeholders, go there while it has subscriptions (see [`Session::send_ping`]).
    last: Option<Rc<Backend>>,
}

impl Subscriptions {
    fn all(&self) -> impl Iterator<Item = &Subscription> {
        self.classic.iter().chain(&self.shards)
    }

    /// Every connection confirmed it has no subscription left, and answered every PING (true
    /// too when no connection was made: the subscribe was refused).
    fn done(&self) -> bool {
        let answered = |backend: &Backend| {
            backend.subscriber.borrow().as_ref().is_none_or(|s| s.pongs.is_empty())
        };
        self.all().all(|(backend, count)| count.get() == Some(0) && answered(backend))
    }

    fn close(&self) {
        self.all().for_each(|(backend, _)| backend.close());
    }
}

/// A transaction (or WATCH) pinned to one node's connection.
#[derive(Default)]
struct Transaction {
    /// Inside MULTI (not only WATCH).
    multi: bool,
    /// The pinned connection, made at the first key.
    backend: Option<Rc<Backend>>,
    /// Commands queued after MULTI before any key said which node.
    held: Vec<(Bytes, u64)>,
    /// A command queued after MULTI may write: with `--write-ack replica`, EXEC waits for a
    /// replica (the commands inside are only queued; EXEC runs them).
    writes: bool,
    /// The proxy refused a command inside MULTI: EXEC discards the transaction and answers
    /// EXECABORT, as Redis does when it rejects a command while queueing. Without it, EXEC
    /// would run the rest of a transaction the client saw fail.
    aborted: Cell<bool>,
}

pub struct Session {
    ctx: Rc<Ctx>,
    client: Rc<Client>,
    next_seq: u64,
    keys: Vec<usize>,
    resp3: bool,
    name: Option<Vec<u8>>,
    closing: bool,
    tx: Option<Transaction>,
    /// Connections of this client's own for blocking commands, by node.
    blocking: HashMap<String, Rc<Backend>>,
    /// In subscribed mode: the subscription connections.
    subscribed: Option<Subscriptions>,
    /// A SUBSCRIBE waits at the start of the input until every earlier reply is written, so
    /// that no reply of the normal mode lands among Pub/Sub frames.
    waiting_for_replies: bool,
    /// In subscribed mode, (un)subscribes whose confirmations are not all in (see
    /// [`Pong::Sync`]): the next command waits for them.
    syncs: Rc<Cell<u32>>,
    /// Requests wait in the input until `syncs` is zero.
    paused_by_sync: bool,
    /// What CLIENT LIST shows of this client.
    entry: Arc<ClientEntry>,
}

/// Serves one client until it leaves, breaks the protocol, or the proxy shuts down.
pub async fn serve(ctx: Rc<Ctx>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let shared = ctx.shared.clone();
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let laddr = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    // Replies are written from where they arrive (see `client`); the session reads.
    let (mut reader, writer) = stream.into_split();
    let client = Rc::new(Client::with_writer(
        shared.next_client_id(),
        Some(writer),
        ctx.flush_queue.clone(),
    ));
    let entry = Arc::new(ClientEntry::new(client.id, peer, laddr, fd));
    // Declared after the socket's halves, so dropped before them, also in a panic: a client
    // leaves the registry before its socket closes, as CLIENT KILL relies on.
    let _listed = shared.clients.register(entry.clone());
    let mut session = Session {
        ctx,
        client: client.clone(),
        next_seq: 0,
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
        entry,
    };
    let config = &shared.config;
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
        // SUBSCRIBE, every reply is written first.
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
        if session.closing && in_flight == 0 {
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
        let paused = session.waiting_for_replies || !synced;
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
            read = reader.read_buf(&mut input), if can_read => {
                match read {
                    // Like Redis: a client that closed its side is gone.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
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
            _ = &mut shutdown, if !session.closing => session.closing = true,
            _ = sleep_until(idle_deadline), if idle_deadline.is_some() && in_flight == 0 => break,
        }
    }
    client.close();
    session.end();
}

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

    fn set_name(&mut self, name: Option<Vec<u8>>) {
        self.entry.set_name(name.as_deref());
        self.name = name;
    }

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
        while !self.closing
            && !self.waiting_for_replies
            && self.syncs.get() == 0
            && !input.is_empty()
        {
            match parser.parse(input) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty { consumed }) => {
                    let _ = input.split_to(consumed);
                }
                Ok(Parsed::Request { consumed }) => {
                    if self.must_wait_before(&ReqArgs { parser, frame: parser.resp(input) }) {
                        parser.reset();
                        self.waiting_for_replies = true;
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
                    self.handle(frame, parser);
                }
                Err(e) => {
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

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq - 1
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
        let mut out = Vec::with_capacity(text.len() + 3);
        write::error(&mut out, text.as_bytes());
        self.reply(seq, &out);
    }

    fn handle(&mut self, frame: Bytes, parser: &RequestParser) {
        let shared = self.ctx.shared.clone();
        let args = ReqArgs { parser, frame: &frame };
        let info = shared.table.lookup(&args);
        if let Some(info) = info {
            self.entry.set_command(info.id);
        }
        if self.subscribed.is_some() && !(self.resp3 && runs_while_subscribed(info)) {
            return self.subscribed_request(info, &args, frame.clone());
        }
        let seq = self.take_seq();
        let Some(info) = info else {
            return self.reply_error(seq, &unknown_command(&args));
        };
        crate::metrics::bump(&self.ctx.commands.calls[usize::from(info.id)], 1);
        if let Err(e) = key_positions(info, &args, &mut self.keys) {
            return self.reply_error(seq, &format!("ERR {e}"));
        }
        if info.route == Route::Transaction {
            return self.transaction(seq, info, &args, frame.clone());
        }
        if let Some(tx) = &self.tx {
            match in_transaction(info.route, tx.multi) {
                InTransaction::Pinned => return self.transaction(seq, info, &args, frame.clone()),
                InTransaction::Refused(why) => return self.reply_error(seq, &format!("ERR {why}")),
                InTransaction::AsUsual => {}
            }
        }
        match info.route {
            Route::Keyed => self.keyed(seq, info, &args, frame.clone()),
            Route::Split(split) => self.split(seq, info, split, &args, frame.clone()),
            Route::Blocking => self.blocking(seq, info, &args, frame.clone()),
            Route::Local(local) => self.local(seq, info, local, &args, frame.clone()),
            Route::AllMasters(merge) => self.all_masters(seq, info, merge, frame.clone()),
            Route::AnyMaster => self.any_master(seq, info, frame.clone()),
            Route::Transaction => unreachable!("handled above"),
            Route::PubSub => self.pubsub_outside_subscribed_mode(seq, info, &args, frame.clone()),
            Route::Unsupported(why) => {
                let name = String::from_utf8_lossy(args.arg(0)).to_ascii_uppercase();
                self.reply_error(
                    seq,
                    &format!("ERR redkeep proxy does not support '{name}': {why}"),
                )
            }
        }
    }

    /// The one slot of the request's keys; an error reply when they span several.
    fn slot_of_keys(&self, args: &ReqArgs) -> Result<Option<u16>, &'static str> {
        let mut slot = None;
        for &i in &self.keys {
            let s = key_slot(args.arg(i));
            match slot {
                None => slot = Some(s),
                Some(prev) if prev != s => {
                    return Err("CROSSSLOT Keys in request don't hash to the same slot");
                }
                _ => {}
            }
        }
        Ok(slot)
    }

    fn request(&self, info: &CommandInfo, args: &ReqArgs, bytes: Bytes, target: Target) -> Request {
        let retry_safe = info.flags.readonly || is_idempotent(info, args);
        let mut req = Request::new(bytes, target, info.flags.readonly, retry_safe, self.ctx.now());
        req.command = Some(info.id);
        req.ack = self.ctx.write_ack && info.writes;
        req.resp3 = self.resp3;
        req
    }

    fn sink(&self, seq: u64) -> Sink {
        Sink::Client { client: self.client.clone(), seq }
    }

    fn keyed(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        match self.slot_of_keys(args) {
            Err(e) => self.reply_error(seq, e),
            Ok(slot) => self.keyed_at(seq, info, args, frame, slot),
        }
    }

    /// Sends a request whose keys are all in `slot` (`None`: it has no key).
    fn keyed_at(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        args: &ReqArgs,
        frame: Bytes,
        slot: Option<u16>,
    ) {
        let target = match slot {
            Some(slot) => Target::Slot(slot),
            // EVAL with no keys and the like: any master runs it the same.
            None => match self.first_master() {
                Some(addr) => Target::Node(addr),
                None => return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet"),
            },
        };
        let req = self.request(info, args, frame, target);
        self.ctx.dispatch(req, self.sink(seq));
    }

    fn first_master(&self) -> Option<Rc<str>> {
        let map = self.ctx.map();
        map.serving_masters().first().map(|&m| map.addr(m).into())
    }

    /// MGET, MSET, DEL, UNLINK, EXISTS, TOUCH: one command per slot, replies merged.
    fn split(&mut self, seq: u64, info: &CommandInfo, split: Split, args: &ReqArgs, frame: Bytes) {
        if let Ok(slot) = self.slot_of_keys(args) {
            return self.keyed_at(seq, info, args, frame, slot);
        }
        // Key numbers (0-based, in request order) grouped by slot, in order of first sight.
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (n, &i) in self.keys.iter().enumerate() {
            let slot = key_slot(args.arg(i));
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, keys)) => keys.push(n),
                None => groups.push((slot, vec![n])),
            }
        }
        let kind = match split {
            Split::Values => MergeKind::Values {
                positions: groups.iter().map(|(_, k)| k.clone()).collect(),
                total: self.keys.len(),
            },
            other => MergeKind::Split(other),
        };
        let fanout = Fanout::new(self.client.clone(), seq, kind, groups.len(), self.resp3);
        let with_values = split == Split::Ok;
        for (index, (slot, key_numbers)) in groups.iter().enumerate() {
            let per_key = if with_values { 2 } else { 1 };
            let mut bytes = Vec::new();
            write::array_len(&mut bytes, 1 + key_numbers.len() * per_key);
            write::bulk(&mut bytes, args.arg(0));
            for &n in key_numbers {
                let at = self.keys[n];
                write::bulk(&mut bytes, args.arg(at));
                if with_values {
                    write::bulk(&mut bytes, args.arg(at + 1));
                }
            }
            let mut req = self.request(info, args, bytes.into(), Target::Slot(*slot));
            // MSET's parts are idempotent with the same reply.
            req.retry_safe |= with_values;
            self.ctx.dispatch(req, Sink::Part { fanout: fanout.clone(), index });
        }
    }

    /// A command that may block runs on this client's own connection to the node.
    /// A command that may block runs on a connection of the client's own to its node, after
    /// every earlier command of the client is answered (it waits in the input until then),
    /// and the client's later commands wait until it is answered: as with Redis, where a
    /// blocked client runs nothing else, so its commands run in the order it sent them
    /// although they go over two connections.
    fn blocking(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        if !blocks(info, args) {
            return self.keyed(seq, info, args, frame);
        }
        let slot = match self.slot_of_keys(args) {
            Err(e) => return self.reply_error(seq, e),
            Ok(slot) => slot.unwrap_or(0),
        };
        let addr = {
            let map = self.ctx.map();
            match map.master_of(slot) {
                Some(m) => map.addr(m).to_string(),
                None => return self.reply_error(seq, "CLUSTERDOWN Hash slot not served"),
            }
        };
        let backend = match self.blocking.get(&addr) {
            Some(b) if !b.is_broken() => b.clone(),
            _ => {
                let b = self.ctx.private_backend(&addr, self.resp3);
                // Named for the client on the node, for CLIENT UNBLOCK.
                let name = crate::client_admin::blocking_connection_name(self.client.id);
                let mut setname = Vec::new();
                write::command(&mut setname, &[&b"CLIENT"[..], b"SETNAME", name.as_bytes()]);
                b.send_raw(&setname, Sink::Discard);
                self.blocking.insert(addr.clone(), b.clone());
                b
            }
        };
        let req = self.request(info, args, frame, Target::Node(addr.as_str().into()));
        backend.send(Pending { req, sink: self.sink(seq) });
        self.waiting_for_replies = true;
    }

    /// WATCH or MULTI outside a transaction (by name: no table lookup).
    fn opens_transaction(&self, args: &ReqArgs) -> bool {
        let name = args.arg(0);
        self.tx.is_none()
            && name.len() == 5
            && (name.eq_ignore_ascii_case(b"watch") || name.eq_ignore_ascii_case(b"multi"))
    }

    fn all_masters(&mut self, seq: u64, info: &CommandInfo, merge: Merge, frame: Bytes) {
        let config = &self.ctx.shared.config;
        if !config.allow_flush && info.name.starts_with("flush") {
            let name = info.name.to_ascii_uppercase();
            return self
                .reply_error(seq, &format!("ERR redkeep: {name} is disabled on this proxy"));
        }
        let masters = self.nodes(false);
        let ack = self.ctx.write_ack && info.writes;
        self.fan_out(seq, masters, frame, MergeKind::Merge(merge), info.flags.readonly, ack);
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

    /// Sends `bytes` to each of `nodes`; the merged reply goes to the client. With `ack`,
    /// each part waits for a replica of its node (FLUSHALL with `--write-ack replica`).
    fn fan_out(
        &mut self,
        seq: u64,
        nodes: Vec<Rc<str>>,
        bytes: Bytes,
        kind: MergeKind,
        readonly: bool,
        ack: bool,
    ) {
        if nodes.is_empty() {
            return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet");
        }
        let fanout = Fanout::new(self.client.clone(), seq, kind, nodes.len(), self.resp3);
        for (index, addr) in nodes.into_iter().enumerate() {
            let mut req =
                Request::new(bytes.clone(), Target::Node(addr), readonly, readonly, self.ctx.now());
            req.ack = ack;
            req.resp3 = self.resp3;
            self.ctx.dispatch(req, Sink::Part { fanout: fanout.clone(), index });
        }
    }

    /// SCAN over every master in turn, with one cursor (see [`crate::fanout::scan_reply`]).
    fn scan(&mut self, seq: u64, args: &ReqArgs) {
        let cursor = std::str::from_utf8(args.arg(1)).ok().and_then(|c| c.parse::<u64>().ok());
        let Some(cursor) = cursor else { return self.reply_error(seq, "ERR invalid cursor") };
        let (index, node_cursor) = crate::fanout::split_scan_cursor(cursor);
        let masters = self.nodes(false);
        let Some(addr) = masters.get(index).cloned() else {
            return self.reply(seq, b"*2\r\n$1\r\n0\r\n*0\r\n");
        };
        let node_cursor = node_cursor.to_string();
        let mut command: Vec<&[u8]> = vec![b"SCAN", node_cursor.as_bytes()];
        command.extend((2..args.count()).map(|i| args.arg(i)));
        let mut bytes = Vec::new();
        write::command(&mut bytes, &command);
        let mut req = Request::new(bytes.into(), Target::Node(addr), true, true, self.ctx.now());
        req.resp3 = self.resp3;
        let sink = Sink::Scan { client: self.client.clone(), seq, index, masters: masters.len() };
        self.ctx.dispatch(req, sink);
    }

    /// INFO [section ...]: the masters' sections merged, the proxy's own (see [`crate::info`]).
    /// Sections the proxy makes itself (`proxy`, `cluster`) are answered without asking any
    /// node, so a health check does not wait on a dead one.
    fn info(&mut self, seq: u64, args: &ReqArgs) {
        let names: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
        let sections = crate::info::requested(&names);
        let port = self.entry.laddr.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
        let local = crate::info::local(&self.ctx.shared, &self.ctx.map(), port.unwrap_or(0));
        let Some(command) = crate::info::node_command(&sections) else {
            let mut reply = Vec::new();
            let text = crate::info::render(&sections, &local, &[]);
            crate::fanout::write_text(&mut reply, text.as_bytes(), self.resp3);
            return self.reply(seq, &reply);
        };
        let mut bytes = Vec::new();
        write::command(&mut bytes, &command);
        let masters = self.nodes(false);
        let kind = MergeKind::Info(Box::new((sections, local)));
        self.fan_out(seq, masters, bytes.into(), kind, true, false);
    }

    /// CLUSTER ...: the proxy as the one node of a cluster (see [`crate::cluster_view`]).
    fn cluster(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        use crate::cluster_view::{ClusterAnswer, View, announced, answer};
        let config = &self.ctx.shared.config;
        let (host, port, id) = announced(config.announce.as_deref(), &self.entry.laddr);
        let uncovered = self.ctx.map().uncovered();
        let view = View { host: &host, port, id: &id, uncovered, resp3: self.resp3 };
        match answer(&view, args) {
            ClusterAnswer::Reply(reply) => self.reply(seq, &reply),
            ClusterAnswer::ToSlot(slot) => self.keyed_at(seq, info, args, frame, Some(slot)),
            ClusterAnswer::Refused(error) => self.reply_error(seq, &error),
        }
    }

    /// SLOWLOG, LATENCY, MEMORY reports: every node's (or master's), merged and labelled.
    fn reports(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        use crate::reports::{Nodes, report_of};
        let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
        let (report, which) = match report_of(&info.name, &list) {
            Ok(Some(found)) => found,
            Ok(None) => return self.reply_error(seq, &unknown_command(args)),
            Err(e) => return self.reply_error(seq, &e),
        };
        let nodes = self.nodes(which == Nodes::All);
        let names = nodes.iter().map(|n| n.to_string()).collect();
        let kind = MergeKind::Reports(Box::new((report, names)));
        self.fan_out(seq, nodes, frame, kind, true, false);
    }

    /// CLIENT UNBLOCK id: the client's blocking command runs on a connection of its own to a
    /// master, named for the client there (see [`Session::blocking`]); the master that has it
    /// is asked to unblock it, and answers the blocked command as Redis would (a nil for
    /// TIMEOUT, an UNBLOCKED error for ERROR).
    fn client_unblock(&mut self, seq: u64, args: &ReqArgs) {
        let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
        let (id, error) = match crate::client_admin::parse_unblock(&list) {
            Ok(parsed) => parsed,
            Err(e) => return self.reply_error(seq, &e),
        };
        let masters: Vec<String> = self.nodes(false).iter().map(|n| n.to_string()).collect();
        let client = self.client.clone();
        tokio::task::spawn_local(async move {
            let unblocked = unblock_on_masters(&masters, id, error).await;
            let mut out = Vec::new();
            write::integer(&mut out, unblocked);
            client.deliver(seq, &out);
        });
    }

    /// CONFIG GET from one master; CONFIG SET and RESETSTAT on every node.
    fn config(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        let sub = args.arg(1).to_ascii_uppercase();
        if sub == b"GET" {
            return self.any_master(seq, info, frame);
        }
        if sub == b"SET" && !self.ctx.shared.config.allow_config_set {
            return self.reply_error(seq, "ERR redkeep: CONFIG SET is disabled on this proxy");
        }
        let nodes = self.nodes(true);
        self.fan_out(seq, nodes, frame, MergeKind::Merge(Merge::AllOk), false, false);
    }

    /// Sends the request as it is to one master (commands whose answer any node gives).
    fn any_master(&mut self, seq: u64, info: &CommandInfo, frame: Bytes) {
        let Some(addr) = self.first_master() else {
            return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet");
        };
        let readonly = info.flags.readonly;
        let mut req = Request::new(frame, Target::Node(addr), readonly, readonly, self.ctx.now());
        req.command = Some(info.id);
        req.resp3 = self.resp3;
        self.ctx.dispatch(req, self.sink(seq));
    }

    /// MULTI/EXEC/DISCARD/WATCH/UNWATCH, and every command while a transaction is open.
    fn transaction(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: Bytes) {
        let name = info.name.as_str();
        let slot = match self.slot_of_keys(args) {
            Ok(slot) => slot,
            Err(e) => return self.reply_error(seq, e),
        };
        match name {
            "multi" => {
                let tx = self.tx.get_or_insert_with(Transaction::default);
                if tx.multi {
                    return self.reply_error_only(seq, "ERR MULTI calls can not be nested");
                }
                tx.multi = true;
                if let Some(backend) = tx.backend.clone() {
                    // WATCH pinned it already: MULTI goes there, its +OK is the client's.
                    let req = self.request(info, args, frame, Target::Slot(0));
                    backend.send(Pending { req, sink: self.sink(seq) });
                } else {
                    self.reply(seq, b"+OK\r\n");
                }
            }
            "exec" | "discard" => {
                let Some(mut tx) = self.tx.take() else {
                    let upper = name.to_ascii_uppercase();
                    return self.reply_error(seq, &format!("ERR {upper} without MULTI"));
                };
                if !tx.multi {
                    self.tx = Some(tx);
                    let upper = name.to_ascii_uppercase();
                    return self.reply_error(seq, &format!("ERR {upper} without MULTI"));
                }
                if tx.backend.is_none() && name == "discard" {
                    return self.reply(seq, b"+OK\r\n");
                }
                if tx.aborted.get() && name == "exec" {
                    if let Some(backend) = tx.backend {
                        backend.send_raw(b"*1\r\n$7\r\nDISCARD\r\n", Sink::Discard);
                        backend.retire();
                    }
                    return self.reply_error_only(
                        seq,
                        "EXECABORT Transaction discarded because of previous errors.",
                    );
                }
                let Some(backend) = self.pin(&mut tx, None) else {
                    return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet");
                };
                let mut req = self.request(info, args, frame, Target::Slot(0));
                req.ack = self.ctx.write_ack && tx.writes && name == "exec";
                backend.send(Pending { req, sink: self.sink(seq) });
                backend.retire();
                // The client's next commands go over the shared connections again: they
                // wait until the transaction ran.
                self.waiting_for_replies = true;
            }
            "watch" | "unwatch" if self.tx.as_ref().is_none_or(|t| !t.multi) => {
                let mut tx = self.tx.take().unwrap_or_default();
                if name == "unwatch" && tx.backend.is_none() {
                    return self.reply(seq, b"+OK\r\n");
                }
                let Some(backend) = self.pin(&mut tx, slot) else {
                    return self.reply_error(seq, "CLUSTERDOWN Hash slot not served");
                };
                let req = self.request(info, args, frame, Target::Slot(0));
                backend.send(Pending { req, sink: self.sink(seq) });
                if name == "unwatch" {
                    backend.retire();
                    self.waiting_for_replies = true;
                } else {
                    self.tx = Some(tx);
                }
            }
            // Redis answers it without aborting the transaction.
            "watch" => self.reply_error_only(seq, "ERR WATCH inside MULTI is not allowed"),
            _ => {
                let mut tx = self.tx.take().expect("inside a transaction");
                tx.writes |= tx.multi && info.writes;
                if tx.backend.is_none() && slot.is_none() {
                    tx.held.push((frame, seq));
                } else {
                    match self.pin(&mut tx, slot) {
                        Some(backend) => {
                            let mut req = self.request(info, args, frame, Target::Slot(0));
                            // Inside MULTI it is only queued: EXEC waits for the replica.
                            req.ack &= !tx.multi;
                            backend.send(Pending { req, sink: self.sink(seq) });
                        }
                        None => {
                            self.tx = Some(tx);
                            return self.reply_error(seq, "CLUSTERDOWN Hash slot not served");
                        }
                    }
                }
                self.tx = Some(tx);
            }
        }
    }

    /// The transaction's connection: made on the node of `slot` (or the first master) when
    /// there is none yet, with MULTI and the held commands sent first.
    fn pin(&self, tx: &mut Transaction, slot: Option<u16>) -> Option<Rc<Backend>> {
        if let Some(backend) = &tx.backend {
            return Some(backend.clone());
        }
        let addr = {
            let map = self.ctx.map();
            let master = match slot {
                Some(slot) => map.master_of(slot)?,
                None => *map.serving_masters().first()?,
            };
            map.addr(master).to_string()
        };
        let backend = self.ctx.private_backend(&addr, self.resp3);
        if tx.multi {
            backend.send_raw(b"*1\r\n$5\r\nMULTI\r\n", Sink::Discard);
        }
        for (bytes, seq) in tx.held.drain(..) {
            let req = Request::new(bytes, Target::Slot(0), false, false, self.ctx.now());
            backend.send(Pending { req, sink: Sink::Client { client: self.client.clone(), seq } });
        }
        tx.backend = Some(backend.clone());
        Some(backend)
    }

    fn local(&mut self, seq: u64, info: &CommandInfo, local: Local, args: &ReqArgs, frame: Bytes) {
        let mut out = Vec::new();
        let argc = args.count();
        match local {
            Local::Ping if argc == 1 => write::simple(&mut out, b"PONG"),
            Local::Ping if argc == 2 => write::bulk(&mut out, args.arg(1)),
            Local::Ping => {
                return self.reply_error(seq, "ERR wrong number of arguments for 'ping' command");
            }
            Local::Echo => write::bulk(&mut out, args.arg(1)),
            Local::Quit => {
                write::simple(&mut out, b"OK");
                self.closing = true;
            }
            Local::Hello => {
                if let Err(e) = self.hello(args, &mut out) {
                    return self.reply_error(seq, &e);
                }
            }
            Local::Select if args.arg(1) == b"0" => write::simple(&mut out, b"OK"),
            Local::Select if !is_integer(args.arg(1)) => {
                return self.reply_error(seq, "ERR value is not an integer or out of range");
            }
            Local::Select => {
                return self.reply_error(seq, "ERR SELECT is not allowed in cluster mode");
            }
            Local::Auth => {
                return self.reply_error(
                    seq,
                    "ERR AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                );
            }
            Local::Client if args.arg(1).eq_ignore_ascii_case(b"UNBLOCK") => {
                return self.client_unblock(seq, args);
            }
            Local::Client => {
                if let Err(e) = self.client_command(seq, args, &mut out) {
                    return self.reply_error(seq, &e);
                }
            }
            Local::Command => {
                let table = &self.ctx.shared.table;
                if argc == 1 && self.resp3 {
                    // The node's own RESP3 reply (flags are sets, and so on).
                    return self.any_master(seq, info, frame);
                } else if argc == 1 {
                    out.extend_from_slice(&table.raw_reply);
                } else if args.arg(1).eq_ignore_ascii_case(b"COUNT") {
                    write::integer(&mut out, table.top_level_count() as i64);
                } else {
                    return self.any_master(seq, info, frame);
                }
            }
            Local::Time => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                write::array_len(&mut out, 2);
                write::bulk(&mut out, now.as_secs().to_string().as_bytes());
                write::bulk(&mut out, now.subsec_micros().to_string().as_bytes());
            }
            Local::Reset => {
                self.end();
                self.resp3 = false;
                self.set_name(None);
                write::simple(&mut out, b"RESET");
            }
            Local::Readonly => write::simple(&mut out, b"OK"),
            Local::Cluster => return self.cluster(seq, info, args, frame),
            Local::Role => {
                // A master with no replicas of its own: the proxy is what clients write to.
                write::array_len(&mut out, 3);
                write::bulk(&mut out, b"master");
                write::integer(&mut out, 0);
                write::array_len(&mut out, 0);
            }
            Local::Reports => return self.reports(seq, info, args, frame),
            Local::Scan => return self.scan(seq, args),
            Local::Info => return self.info(seq, args),
            Local::Config => return self.config(seq, info, args, frame),
        }
        self.reply(seq, &out);
    }

    fn hello(&mut self, args: &ReqArgs, out: &mut Vec<u8>) -> Result<(), String> {
        let mut resp3 = self.resp3;
        let mut i = 1;
        if args.count() > 1 {
            match args.arg(1) {
                b"2" => resp3 = false,
                b"3" => resp3 = true,
                _ => return Err("NOPROTO unsupported protocol version".into()),
            }
            i = 2;
        }
        while i < args.count() {
            let option = args.arg(i);
            if option.eq_ignore_ascii_case(b"SETNAME") && i + 1 < args.count() {
                self.set_name(Some(args.arg(i + 1).to_vec()));
                i += 2;
            } else if option.eq_ignore_ascii_case(b"AUTH") && i + 2 < args.count() {
                return Err("ERR redkeep proxy: AUTH is not configured".into());
            } else {
                let shown = String::from_utf8_lossy(option);
                return Err(format!("ERR Syntax error in HELLO option '{shown}'"));
            }
        }
        if resp3 != self.resp3 {
            // Connections for blocking commands speak the old protocol: new ones as needed.
            self.blocking.drain().for_each(|(_, backend)| backend.retire());
        }
        self.resp3 = resp3;
        let version = self.ctx.shared.redis_version();
        let fields: [(&str, HelloValue); 7] = [
            ("server", HelloValue::Text("redis")),
            ("version", HelloValue::Text(&version)),
            ("proto", HelloValue::Int(if resp3 { 3 } else { 2 })),
            ("id", HelloValue::Int(self.client.id as i64)),
            // As INFO's redis_mode: the proxy answers CLUSTER as a one-node cluster.
            ("mode", HelloValue::Text("cluster")),
            ("role", HelloValue::Text("master")),
            ("modules", HelloValue::Empty),
        ];
        if resp3 {
            write::map_len(out, fields.len());
        } else {
            write::array_len(out, fields.len() * 2);
        }
        for (key, value) in fields {
            write::bulk(out, key.as_bytes());
            match value {
                HelloValue::Text(t) => write::bulk(out, t.as_bytes()),
                HelloValue::Int(n) => write::integer(out, n),
                HelloValue::Empty => write::array_len(out, 0),
            }
        }
        Ok(())
    }

    fn client_command(
        &mut self,
        seq: u64,
        args: &ReqArgs,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        use crate::client_admin::{ReplyMode, check_on_off, parse_kill, parse_reply};
        let sub = args.arg(1).to_ascii_uppercase();
        match sub.as_slice() {
            b"SETNAME" if args.count() == 3 => {
                let name = args.arg(2);
                if name.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Err(
                        "ERR Client names cannot contain spaces, newlines or special characters."
                            .into(),
                    );
                }
                self.set_name((!name.is_empty()).then(|| name.to_vec()));
                write::simple(out, b"OK");
            }
            b"GETNAME" => match &self.name {
                Some(name) => write::bulk(out, name),
                None if self.resp3 => write::null(out),
                None => write::null_bulk(out),
            },
            b"ID" => write::integer(out, self.client.id as i64),
            b"INFO" => {
                self.publish_state(self.ctx.now());
                let mut line = String::new();
                let now_ms = self.ctx.shared.clients.ms_since_start(Instant::now());
                self.entry.line(now_ms, &self.ctx.shared.table, &mut line);
                crate::fanout::write_text(out, line.as_bytes(), self.resp3);
            }
            b"LIST" => {
                self.publish_state(self.ctx.now());
                let filter = client_list_filter(args)?;
                let shared = &self.ctx.shared;
                let list = shared.clients.list(&shared.table, &filter);
                crate::fanout::write_text(out, list.as_bytes(), self.resp3);
            }
            b"SETINFO" => write::simple(out, b"OK"),
            b"NO-EVICT" | b"NO-TOUCH" => {
                check_on_off(args.arg(2))?;
                write::simple(out, b"OK");
            }
            b"REPLY" => match parse_reply(args.arg(2))? {
                ReplyMode::On => {
                    self.client.unmute_from(seq);
                    write::simple(out, b"OK");
                }
                ReplyMode::Off => self.client.mute(seq..u64::MAX),
                ReplyMode::Skip => self.client.mute(seq..seq + 2),
            },
            b"KILL" => {
                let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
                let filter = parse_kill(&list)?;
                let (picked, me) = self.ctx.shared.clients.kill(&filter, self.client.id);
                // Its own connection closes after this reply, as in Redis.
                self.closing |= me;
                match (filter.old_form, picked) {
                    (true, 0) => return Err("ERR No such client".into()),
                    (true, _) => write::simple(out, b"OK"),
                    (false, n) => write::integer(out, n as i64),
                }
            }
            b"PAUSE" => return Err(crate::client_admin::PAUSE_REFUSED.into()),
            // Nothing is paused (PAUSE is refused), so there is nothing to resume.
            b"UNPAUSE" => write::simple(out, b"OK"),
            _ => {
                let shown = String::from_utf8_lossy(&sub);
                return Err(format!("ERR redkeep proxy does not support 'CLIENT {shown}'"));
            }
        }
        Ok(())
    }
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]`.
fn client_list_filter(args: &ReqArgs) -> Result<Filter, String> {
    let mut filter = Filter::default();
    let mut i = 2;
    while i < args.count() {
        let option = args.arg(i);
        if option.eq_ignore_ascii_case(b"TYPE") && i + 1 < args.count() {
            match args.arg(i + 1).to_ascii_lowercase().as_slice() {
                b"normal" => filter.subscribed = Some(false),
                b"pubsub" => filter.subscribed = Some(true),
                b"master" | b"replica" | b"slave" => filter.none = true,
                other => {
                    let shown = String::from_utf8_lossy(other);
                    return Err(format!("ERR Unknown client type '{shown}'"));
                }
            }
            i += 2;
        } else if option.eq_ignore_ascii_case(b"ID") && i + 1 < args.count() {
            i += 1;
            while i < args.count() {
                let id = std::str::from_utf8(args.arg(i)).ok().and_then(|t| t.parse().ok());
                match id {
                    Some(id) if id > 0 => filter.ids.push(id),
                    _ => return Err("ERR Invalid client ID".into()),
                }
                i += 1;
            }
        } else {
            return Err("ERR syntax error".into());
        }
    }
    Ok(filter)
}

enum HelloValue<'a> {
    Text(&'a str),
    Int(i64),
    Empty,
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

/// Asks each master for the connection named for proxy client `id` and unblocks it there:
/// 1 when a master had it blocked, else 0 (as Redis answers for a client that is not blocked).
async fn unblock_on_masters(masters: &[String], id: u64, error: bool) -> i64 {
    use crate::client_admin::{blocking_connection_name, node_client_id};
    let name = blocking_connection_name(id);
    let timeout = std::time::Duration::from_secs(2);
    for master in masters {
        let ask = async {
            let mut conn = cluster::admin::AdminConn::connect(master, timeout).await.ok()?;
            let list = conn.query_text(&["CLIENT", "LIST", "TYPE", "normal"]).await.ok()?;
            let node_id = node_client_id(&list, &name)?.to_string();
            let mode = if error { "ERROR" } else { "TIMEOUT" };
            match conn.query(&["CLIENT", "UNBLOCK", &node_id, mode]).await.ok()? {
                resp::Value::Integer(n) => Some(n),
                _ => None,
            }
        };
        if let Ok(Some(n)) = tokio::time::timeout(timeout * 2, ask).await {
            return n;
        }
    }
    0
}

/// Redis' own wording for a command it does not know.
fn unknown_command(args: &ReqArgs) -> String {
    let name = String::from_utf8_lossy(args.arg(0));
    let mut text = format!("ERR unknown command '{name}', with args beginning with: ");
    for i in 1..args.count().min(10) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(args.arg(i))));
    }
    text
}

/// Redis' reply to an unsubscribe with nothing subscribed: one frame per channel named (a nil
/// channel when none is), each with a count of 0.
fn nothing_to_unsubscribe(kind: &str, channels: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let none: [&[u8]; 1] = [b""];
    let listed: &[&[u8]] = if channels.is_empty() { &none } else { channels };
    for channel in listed {
        write::array_len(&mut out, 3);
        write::bulk(&mut out, kind.as_bytes());
        if channels.is_empty() {
            write::null_bulk(&mut out);
        } else {
            write::bulk(&mut out, channel);
        }
        write::integer(&mut out, 0);
    }
    out
}

impl Session {
    /// A SUBSCRIBE, a blocking command, or the WATCH or MULTI that opens a transaction, with
    /// replies still owed, waits until they are written: each goes over a connection other
    /// than the client's earlier commands, and must run after them.
    fn must_wait_before(&self, args: &ReqArgs) -> bool {
        if self.next_seq == self.client.answered() {
            return false;
        }
        if self.opens_transaction(args) {
            return true;
        }
        // Every pipelined request comes here: the table is looked up only for names that can
        // be a blocking command (they start with B or X) or a subscribe (9 or 10 letters; 11
        // or 12 for an unsubscribe, which only a RESP3 client in subscribed mode sends with
        // replies outstanding).
        let name = args.arg(0);
        let subscribed = self.subscribed.is_some();
        if !(matches!(name.first(), Some(b'B' | b'b' | b'X' | b'x'))
            || matches!(name.len(), 9 | 10)
            || subscribed && matches!(name.len(), 11 | 12))
        {
            return false;
        }
        match self.ctx.shared.table.lookup(args) {
            Some(info) if info.route == Route::Blocking => blocks(info, args),
            Some(info) if info.route == Route::PubSub => {
                subscribed || !info.name.ends_with("unsubscribe")
            }
            _ => false,
        }
    }

    fn leave_subscribed_mode_when_done(&mut self) {
        if self.subscribed.as_ref().is_some_and(Subscriptions::done)
            && let Some(subscriptions) = self.subscribed.take()
        {
            subscriptions.close();
        }
    }

    /// A Pub/Sub command in normal mode: a subscribe enters subscribed mode; an unsubscribe
    /// has nothing to undo.
    fn pubsub_outside_subscribed_mode(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        args: &ReqArgs,
        frame: Bytes,
    ) {
        let name = info.name.as_str();
        if name.ends_with("unsubscribe") {
            let channels: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
            return self.reply(seq, &nothing_to_unsubscribe(name, &channels));
        }
        // The subscribe answers with Pub/Sub frames, not a numbered reply.
        self.reply(seq, b"");
        self.subscribed = Some(Subscriptions::default());
        self.subscribed_request(Some(info), args, frame);
        if self.subscribed.as_ref().is_some_and(|s| s.all().next().is_none()) {
            // Refused (CROSSSLOT, no master): the client stays in normal mode, as with Redis.
            self.subscribed = None;
        }
    }

    /// A command in subscribed mode: only the Pub/Sub commands, PING, QUIT and RESET, as
    /// Redis allows in RESP2 (with RESP3 only those of them that keep their subscribed-mode
    /// handling come here; see [`runs_while_subscribed`]).
    fn subscribed_request(&mut self, info: Option<&CommandInfo>, args: &ReqArgs, frame: Bytes) {
        let name = info.map_or("", |i| i.name.as_str());
        match name {
            "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" => {
                match self.classic_subscription(!name.ends_with("unsubscribe")) {
                    Some(backend) => self.send_subscription_command(&backend, &frame),
                    None => {
                        let channels: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
                        self.reply_subscribed(nothing_to_unsubscribe(name, &channels));
                    }
                }
            }
            "ssubscribe" | "sunsubscribe" => {
                let info = info.expect("a known command");
                if let Err(e) = key_positions(info, args, &mut self.keys) {
                    let mut out = Vec::new();
                    write::error(&mut out, format!("ERR {e}").as_bytes());
                    return self.reply_subscribed(out);
                }
                self.shard_subscription(name, args, &frame)
            }
            "ping" => self.send_ping(&frame, Pong::Client),
            "quit" => {
                self.client.push(b"+OK\r\n");
                self.closing = true;
            }
            "reset" => {
                if let Some(subscriptions) = self.subscribed.take() {
                    subscriptions.close();
                }
                self.end();
                self.resp3 = false;
                self.set_name(None);
                self.client.push(b"+RESET\r\n");
            }
            // Redis names an unknown command as such before it looks at the context.
            _ if info.is_none() => {
                let mut out = Vec::new();
                write::error(&mut out, unknown_command(args).as_bytes());
                self.reply_subscribed(out);
            }
            _ => {
                let shown = String::from_utf8_lossy(args.arg(0)).to_ascii_lowercase();
                let text = format!(
                    "ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / \
                     QUIT / RESET are allowed in this context"
                );
                let mut out = Vec::new();
                write::error(&mut out, text.as_bytes());
                self.reply_subscribed(out);
            }
        }
    }

    /// Sends a (P|S)(UN)SUBSCRIBE on a subscription connection. The client's next command
    /// waits until its confirmations are in: so they cannot be overtaken by those of a command
    /// on another of the client's connections, and after an unsubscribe the next command is
    /// read in the mode the client is then in.
    fn send_subscription_command(&mut self, backend: &Rc<Backend>, frame: &[u8]) {
        backend.queue_bytes(frame);
        self.syncs.set(self.syncs.get() + 1);
        self.expect_pong(backend, Pong::Sync);
        backend.queue_bytes(PLACEHOLDER_PING);
        if let Some(subscriptions) = self.subscribed.as_mut() {
            subscriptions.last = Some(backend.clone());
        }
    }

    /// A reply the proxy makes in subscribed mode: it goes out after the replies to the
    /// client's earlier PINGs (see [`Pong::Reply`]).
    fn reply_subscribed(&mut self, reply: Vec<u8>) {
        self.send_ping(PLACEHOLDER_PING, Pong::Reply(reply));
    }

    /// Sends a PING (the client's, or the proxy's placeholder) on the connection of the
    /// client's last subscription command, or one that still has subscriptions (whose pong
    /// has the subscribed mode's form).
    fn send_ping(&mut self, ping: &[u8], pong: Pong) {
        let subscriptions = self.subscribed.as_ref().expect("in subscribed mode");
        let subscribed = |b: &Rc<Backend>| {
            subscriptions.all().any(|(s, count)| Rc::ptr_eq(s, b) && count.get() != Some(0))
        };
        let backend = subscriptions
            .last
            .clone()
            .filter(subscribed)
            .or_else(|| subscriptions.all().map(|s| s.0.clone()).find(subscribed))
            .or_else(|| subscriptions.all().next().map(|s| s.0.clone()));
        match (backend, pong) {
            (Some(backend), pong) => {
                self.expect_pong(&backend, pong);
                backend.queue_bytes(ping);
            }
            (None, Pong::Reply(reply)) => self.client.push(&reply),
            (None, _) => {}
        }
    }

    fn expect_pong(&self, backend: &Backend, pong: Pong) {
        if let Some(subscriber) = backend.subscriber.borrow_mut().as_mut() {
            subscriber.pongs.push_back(pong);
        }
    }

    fn subscriber(&self, count: &Rc<Cell<Option<i64>>>) -> Subscriber {
        Subscriber::new(self.client.clone(), self.resp3, count.clone(), self.syncs.clone())
    }

    /// The connection for SUBSCRIBE/PSUBSCRIBE, made when `create` and there is none.
    fn classic_subscription(&mut self, create: bool) -> Option<Rc<Backend>> {
        if let Some((backend, _)) = self.subscribed.as_ref().and_then(|s| s.classic.as_ref()) {
            return Some(backend.clone());
        }
        if !create {
            return None;
        }
        let addr = self.first_master()?;
        let count = Rc::new(Cell::new(None));
        let backend = self.ctx.pubsub_backend(&addr, self.subscriber(&count));
        self.subscribed.as_mut()?.classic = Some((backend.clone(), count));
        Some(backend)
    }

    /// SSUBSCRIBE/SUNSUBSCRIBE go to the master of their channels' slot.
    fn shard_subscription(&mut self, name: &str, args: &ReqArgs, frame: &[u8]) {
        let slot = match self.slot_of_keys(args) {
            Ok(slot) => slot,
            Err(e) => {
                let mut out = Vec::new();
                write::error(&mut out, e.as_bytes());
                return self.reply_subscribed(out);
            }
        };
        let Some(slot) = slot else {
            // SUNSUBSCRIBE of everything: every shard connection.
            let subscriptions = self.subscribed.as_ref().expect("in subscribed mode");
            if subscriptions.shards.is_empty() {
                return self.reply_subscribed(nothing_to_unsubscribe(name, &[]));
            }
            let shards: Vec<Rc<Backend>> =
                subscriptions.shards.iter().map(|s| s.0.clone()).collect();
            for backend in &shards {
                self.send_subscription_command(backend, frame);
            }
            return;
        };
        let addr = {
            let map = self.ctx.map();
            map.master_of(slot).map(|m| map.addr(m).to_string())
        };
        let Some(addr) = addr else {
            return self.reply_subscribed(b"-CLUSTERDOWN Hash slot not served\r\n".to_vec());
        };
        let existing =
            self.subscribed.as_ref().and_then(|s| s.shards.iter().find(|(b, _)| b.addr == addr));
        let backend = match existing {
            Some((backend, _)) => backend.clone(),
            None if name == "sunsubscribe" => {
                let channels: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
                return self.reply_subscribed(nothing_to_unsubscribe(name, &channels));
            }
            None => {
                let count = Rc::new(Cell::new(None));
                let backend = self.ctx.pubsub_backend(&addr, self.subscriber(&count));
                if let Some(subscriptions) = self.subscribed.as_mut() {
                    subscriptions.shards.push((backend.clone(), count));
                }
                backend
            }
        };
        self.send_subscription_command(&backend, frame);
    }
}

/// With RESP3, Redis runs any command in subscribed mode but the Pub/Sub ones and QUIT/RESET,
/// which keep their subscribed-mode handling.
fn runs_while_subscribed(info: Option<&CommandInfo>) -> bool {
    info.is_some_and(|i| {
        i.route != Route::PubSub && !matches!(i.route, Route::Local(Local::Quit | Local::Reset))
    })
}

/// A command of the blocking route that blocks as sent: XREAD and XREADGROUP only with BLOCK
/// (before STREAMS).
fn blocks(info: &CommandInfo, args: &ReqArgs) -> bool {
    !info.name.starts_with("xread")
        || args.find(1, b"BLOCK").is_some_and(|b| args.find(1, b"STREAMS") > Some(b))
}

/// A decimal integer, as Redis reads one.
fn is_integer(arg: &[u8]) -> bool {
    std::str::from_utf8(arg).is_ok_and(|text| text.parse::<i64>().is_ok())
}
