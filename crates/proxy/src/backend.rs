//! One pipelined connection to a node, shared by every client of a worker thread.
//!
//! Requests are appended to a write buffer together with an entry in the pending queue, in the
//! same step, so the n-th reply read belongs to the n-th pending entry. The writer sends the
//! whole buffer at once (one write for everything queued during a read event); the reader
//! scans reply frames and hands each, as the bytes the node sent, to its entry's sink.
//!
//! With `--write-ack replica`, a write's request is marked `ack`: a `WAIT 1 <timeout>` follows
//! it on the same connection, and its successful reply is held until WAIT's reply says whether
//! a replica has it. On a shared connection one WAIT closes each write buffer that holds a
//! write (WAIT counts every earlier write of the connection, so it covers them all); on a
//! private one it follows each write at once, so that it never lands inside the client's
//! MULTI or behind its next blocking command.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use cluster::net::{NodeStream, connect_node};
use resp::Scanner;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::client::{Reply, SHARED_REPLY};
use crate::metrics::NodeStats;
use crate::notify::LocalNotify;
use crate::request::{Pending, Sink};
use crate::shared::Shared;

/// What a connection needs from the worker that owns it: where replies and lost requests go.
/// A trait, so that this module does not depend on [`crate::worker`] (which makes the
/// connections); [`Backend::run`] is generic over it, so the calls are static.
pub trait Owner: 'static {
    fn shared(&self) -> &Shared;
    /// Reads the clock for a new read event.
    fn tick(&self) -> std::time::Instant;
    /// The owner's statistics block for node `addr`.
    fn node_stats(&self, addr: &str) -> std::sync::Arc<NodeStats>;
    /// The connection ended: a new one is made for the next request.
    fn forget_backend(&self, backend: &Backend);
    /// A reply frame for `pending`.
    fn on_reply(self: &Rc<Self>, backend: &Backend, pending: Pending, reply: Reply);
    /// The reply of a `WAIT` the connection sent after the writes in `held`.
    fn on_wait_reply(
        self: &Rc<Self>,
        backend: &Backend,
        held: Vec<(Pending, Vec<u8>)>,
        reply: &[u8],
    );
    /// Writes whose `WAIT` reply was lost with the connection.
    fn on_wait_lost(&self, backend: &Backend, held: Vec<(Pending, Vec<u8>)>, reason: &str);
    /// A request whose connection ended before its reply.
    fn on_lost(
        self: &Rc<Self>,
        backend: &Backend,
        pending: Pending,
        maybe_sent: bool,
        reason: &str,
    );
}

/// How the frames of a connection are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Shared by the worker's clients; redirects are followed.
    Shared,
    /// One client's own (a transaction, a blocking command): redirects are not followed,
    /// because the client's state lives on this connection.
    Private,
    /// One client's subscriptions: every frame (confirmations, messages, PING replies) goes
    /// to that client as it comes; nothing waits in the pending queue.
    PubSub,
}

pub struct Backend {
    pub addr: String,
    pub mode: Mode,
    /// A replica connection for reads (`READONLY` sent first).
    pub readonly: bool,
    /// Speaks RESP3 (`HELLO 3` was sent first): replies are in the protocol of the clients
    /// that said `HELLO 3`, as bytes to pass on.
    pub resp3: bool,
    /// For [`Mode::Shared`]: the lane it serves (see [`crate::worker::BULK_LANES`]).
    pub lane: u8,
    queue: RefCell<BytesMut>,
    pending: RefCell<VecDeque<Pending>>,
    wake: LocalNotify,
    /// Wakes `run` to end a private connection whose client left.
    closing: LocalNotify,
    /// A private connection whose work is done: it ends once its last reply is in.
    retiring: Cell<bool>,
    /// Ended on purpose by [`Backend::close`].
    closed: Cell<bool>,
    broken: Cell<bool>,
    /// For [`Mode::PubSub`]: who gets the frames, and what they say about subscriptions.
    pub subscriber: RefCell<Option<crate::pubsub::Subscriber>>,
    /// `WAIT 1 <timeout>`, sent after writes marked `ack`.
    wait: Bytes,
    /// A write marked `ack` is queued and no WAIT follows it yet (shared connections: the
    /// writer adds one before it sends the buffer).
    wait_due: Cell<bool>,
    /// Writes whose successful reply is in, waiting for the reply of the WAIT after them.
    held: RefCell<Vec<(Pending, Vec<u8>)>>,
    /// The first pending entry's reply is a large bulk string going to its client in parts as
    /// it arrives (see [`Backend::start_stream`]).
    streaming: Cell<bool>,
}

/// Bulk replies at least this large go to their client as they arrive, instead of once whole:
/// the client's transfer overlaps the node's, and the proxy holds no whole copy.
pub const STREAM_REPLY: usize = 256 * 1024;

/// Room each read gets while a reply streams.
const STREAM_READ: usize = 256 * 1024;

impl Backend {
    /// A connection to `addr`, connected by [`Backend::run`]. A RESP3 one gets `HELLO 3`
    /// first, a replica used for reads `READONLY` (their replies are dropped).
    pub fn new(
        addr: &str,
        mode: Mode,
        readonly: bool,
        resp3: bool,
        lane: u8,
        wait: Bytes,
    ) -> Rc<Backend> {
        let backend = Rc::new(Backend {
            addr: addr.to_string(),
            mode,
            readonly,
            resp3,
            lane,
            queue: RefCell::new(BytesMut::with_capacity(16 * 1024)),
            pending: RefCell::new(VecDeque::new()),
            wake: LocalNotify::new(),
            closing: LocalNotify::new(),
            retiring: Cell::new(false),
            closed: Cell::new(false),
            broken: Cell::new(false),
            subscriber: RefCell::new(None),
            wait,
            wait_due: Cell::new(false),
            held: RefCell::new(Vec::new()),
            streaming: Cell::new(false),
        });
        if let Some(credentials) = cluster::admin::credentials() {
            // First, as the nodes answer NOAUTH to anything else; a wrong password shows as
            // the NOAUTH errors of the requests after it.
            let mut auth = Vec::new();
            resp::write::command(&mut auth, &credentials.auth_args());
            backend.send_raw(&auth, Sink::Discard);
        }
        if resp3 {
            backend.send_raw(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", Sink::Discard);
        }
        if readonly {
            backend.send_raw(b"*1\r\n$8\r\nREADONLY\r\n", Sink::Discard);
        }
        backend
    }

    pub fn is_broken(&self) -> bool {
        self.broken.get()
    }

    /// Queues a request; its reply goes to `pending.sink` (for a request marked `ack`, once
    /// the WAIT after it answered).
    pub fn send(&self, pending: Pending) {
        let ack = pending.req.ack;
        self.queue_bytes(&pending.req.bytes);
        self.pending.borrow_mut().push_back(pending);
        if ack {
            match self.mode {
                Mode::Shared => self.wait_due.set(true),
                _ => self.push_wait(),
            }
        }
    }

    /// Appends `WAIT` to the queue (never empty here: a write was just queued before it, or
    /// the writer is about to send the buffer, so no wake-up is needed).
    fn push_wait(&self) {
        self.queue.borrow_mut().extend_from_slice(&self.wait);
        self.pending.borrow_mut().push_back(Pending::internal(Sink::Wait));
    }

    /// Queues bytes whose reply goes to `sink` and is not a client request (ASKING, READONLY).
    pub fn send_raw(&self, bytes: &[u8], sink: Sink) {
        self.queue_bytes(bytes);
        self.pending.borrow_mut().push_back(Pending::internal(sink));
    }

    /// Queues bytes whose replies are not matched to requests ([`Mode::PubSub`]).
    pub fn queue_bytes(&self, bytes: &[u8]) {
        let mut queue = self.queue.borrow_mut();
        // The writer empties the queue each time it wakes: only the first bytes need a wake-up.
        if queue.is_empty() {
            self.wake.notify();
        }
        queue.extend_from_slice(bytes);
    }

    /// Ends the connection (a private one whose client left); pending entries are failed.
    pub fn close(&self) {
        self.closed.set(true);
        self.closing.notify();
    }

    /// Ends the connection once every pending reply has arrived.
    pub fn retire(&self) {
        self.retiring.set(true);
        if self.pending.borrow().is_empty() {
            self.close();
        }
    }

    /// The proxy ended one client's connection itself ([`Backend::close`]: the client left
    /// or said RESET), or the connection retired with nothing left to answer. (A shared
    /// connection closed because its node failed is a failure: its requests count as lost.)
    pub fn closed_on_purpose(&self) -> bool {
        (self.closed.get() && self.mode != Mode::Shared)
            || (self.retiring.get() && self.pending.borrow().is_empty())
    }

    pub fn in_flight(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Connects, then writes and reads until the connection breaks or `stop` is cancelled.
    /// Afterwards every pending entry is handed back to the worker, which retries or fails it.
    pub async fn run<O: Owner>(self: Rc<Self>, ctx: Rc<O>) {
        let shared = ctx.shared();
        let connect =
            tokio::time::timeout(shared.config.connect_timeout, connect_node(self.addr.as_str()));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return self.fail(&ctx, false, &format!("cannot connect: {e}")),
            Err(_) => return self.fail(&ctx, false, "connect timed out"),
        };
        crate::shared::Stats::add(&shared.stats.backend_connects, 1);
        // The loops are generic over the halves: the plain path keeps tokio's own split halves
        // (no lock, no indirection); TLS shares one stream between them.
        match stream {
            NodeStream::Plain(stream) => {
                let (reader, writer) = stream.into_split();
                self.serve(ctx, reader, writer).await
            }
            NodeStream::Tls(stream) => {
                let (reader, writer) = tokio::io::split(stream);
                self.serve(ctx, reader, writer).await
            }
        }
    }

    /// Writes and reads on a connected stream until it breaks or is closed.
    async fn serve<O: Owner, R, W>(self: Rc<Self>, ctx: Rc<O>, mut reader: R, mut writer: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let stats = ctx.node_stats(&self.addr);
        stats.connections.fetch_add(1, Relaxed);
        let _open = OpenConnection(&stats);
        let write_loop = async {
            let mut spare = BytesMut::with_capacity(16 * 1024);
            loop {
                self.wake.notified().await;
                loop {
                    if self.wait_due.replace(false) {
                        self.push_wait();
                    }
                    std::mem::swap(&mut *self.queue.borrow_mut(), &mut spare);
                    if spare.is_empty() {
                        break;
                    }
                    writer.write_all(&spare).await?;
                    // TLS may keep records back until flushed (for TCP it does nothing).
                    writer.flush().await?;
                    spare.clear();
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        };
        let read_loop = async {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut scanner = Scanner::new(resp::Limits::default());
            // While a reply streams: its bytes still to come (they are not scanned).
            let mut stream_left = 0;
            loop {
                if reader.read_buf(&mut buf).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the node closed the connection",
                    ));
                }
                let now = ctx.tick();
                if stream_left > 0 {
                    stream_left = self.continue_stream(&ctx, &mut buf, stream_left, now, &stats)?;
                    if stream_left > 0 {
                        buf.reserve(STREAM_READ);
                        continue;
                    }
                }
                let mut at = 0;
                while let Some(len) = scanner.scan(&buf[at..]).map_err(std::io::Error::other)? {
                    // A large reply leaves the buffer as shared bytes: it reaches the client
                    // without a copy.
                    let shared = match len >= SHARED_REPLY && self.mode != Mode::PubSub {
                        true => {
                            buf.advance(at);
                            at = 0;
                            Some(buf.split_to(len).freeze())
                        }
                        false => {
                            at += len;
                            None
                        }
                    };
                    let frame = match &shared {
                        Some(frame) => frame,
                        None => &buf[at - len..at],
                    };
                    if let Some(subscriber) = self.subscriber.borrow_mut().as_mut() {
                        subscriber.on_frame(frame);
                        continue;
                    }
                    let Some(pending) = self.pending.borrow_mut().pop_front() else {
                        return Err(std::io::Error::other("a reply nobody asked for"));
                    };
                    crate::metrics::bump(&stats.replies, 1);
                    if frame.first() == Some(&b'-') {
                        crate::metrics::bump(&stats.errors, 1);
                    }
                    stats.latency.record(now.saturating_duration_since(pending.req.received));
                    if matches!(pending.sink, Sink::Wait) {
                        let held = std::mem::take(&mut *self.held.borrow_mut());
                        if !held.is_empty() {
                            ctx.on_wait_reply(&self, held, frame);
                        }
                        continue;
                    }
                    if pending.req.ack && frame.first() != Some(&b'-') {
                        // Answered once the WAIT after it says a replica has it. An error
                        // (a redirect, TRYAGAIN, ...) is handled at once; WAIT's reply then
                        // has nothing to decide.
                        self.held.borrow_mut().push((pending, frame.to_vec()));
                        continue;
                    }
                    let reply = match &shared {
                        Some(frame) => Reply::Shared(frame.clone()),
                        None => Reply::Slice(frame),
                    };
                    ctx.on_reply(&self, pending, reply);
                }
                buf.advance(at);
                if self.retiring.get()
                    && self.pending.borrow().is_empty()
                    && self.held.borrow().is_empty()
                {
                    return Ok(());
                }
                match scanner.wanted(&buf) {
                    Some(end) if end >= STREAM_REPLY && self.start_stream(&buf) => {
                        scanner.reset();
                        stream_left = end;
                        stream_left =
                            self.continue_stream(&ctx, &mut buf, stream_left, now, &stats)?;
                        buf.reserve(STREAM_READ);
                    }
                    // A large value: room for all of it at once (one allocation, reads as
                    // large as the socket gives, no copy of what came so far at each step).
                    Some(end) if end > buf.capacity() => buf.reserve(end - buf.len()),
                    _ if buf.capacity() - buf.len() < 4096 => buf.reserve(64 * 1024),
                    _ => {}
                }
            }
        };
        let reason = tokio::select! {
            r = write_loop => r.err(),
            r = read_loop => r.err(),
            _ = self.closing.notified() => None,
        };
        match reason {
            Some(e) => self.fail(&ctx, true, &e.to_string()),
            None => self.fail(&ctx, true, "closed by the proxy"),
        }
    }

    /// Whether the partial frame at the start of `buf` (a bulk string, a large one) can go to
    /// its client in parts: its request's reply is final whatever it says (a bulk is never a
    /// redirect or an error), it is the client's next reply in order, and no WAIT decides it.
    /// Either way the client is told a large reply is coming (its next requests move to a bulk
    /// lane, see [`crate::worker::BULK_LANES`]).
    fn start_stream(&self, buf: &[u8]) -> bool {
        if buf.first() != Some(&b'$') || self.mode == Mode::PubSub {
            return false;
        }
        let pending = self.pending.borrow();
        let streamable = match pending.front() {
            Some(Pending { sink: Sink::Client { client, seq }, req, .. }) => {
                client.large_reply_coming();
                !req.ack && client.can_stream(*seq)
            }
            _ => false,
        };
        self.streaming.set(streamable);
        streamable
    }

    /// Passes on what `buf` holds of the streaming reply (`left` bytes of it to come), and
    /// finishes it when its end is there. Returns the bytes still to come.
    fn continue_stream<O: Owner>(
        &self,
        ctx: &Rc<O>,
        buf: &mut BytesMut,
        left: usize,
        now: std::time::Instant,
        stats: &NodeStats,
    ) -> std::io::Result<usize> {
        // The frame's final CRLF always comes in the last part, where it is checked.
        let take = buf.len().min(left - 2);
        let mut left = left;
        if take > 0 {
            let part = buf.split_to(take).freeze();
            if let Some(Pending { sink: Sink::Client { client, .. }, .. }) =
                self.pending.borrow().front()
            {
                client.stream_part(part);
            }
            left -= take;
        }
        if buf.len() < left {
            return Ok(left);
        }
        let rest = buf.split_to(left).freeze();
        if !rest.ends_with(b"\r\n") {
            return Err(std::io::Error::other("a bulk reply without its final CRLF"));
        }
        self.streaming.set(false);
        let pending = self.pending.borrow_mut().pop_front().expect("the streamed reply's entry");
        crate::metrics::bump(&stats.replies, 1);
        stats.latency.record(now.saturating_duration_since(pending.req.received));
        ctx.on_reply(self, pending, Reply::Rest(rest));
        Ok(0)
    }

    /// Marks the connection broken and gives every pending entry back to the worker.
    /// `maybe_sent` says whether the requests may have reached the node.
    fn fail<O: Owner>(&self, ctx: &Rc<O>, maybe_sent: bool, reason: &str) {
        self.broken.set(true);
        let pending = self.pending.borrow().len();
        if self.closed_on_purpose() {
            // A client left (or said RESET) while its transaction, blocking command or
            // subscriptions had this connection: nothing went wrong.
            tracing::debug!(node = %self.addr, %reason, pending, "backend connection closed");
        } else {
            crate::shared::Stats::add(&ctx.shared().stats.backend_failures, 1);
            tracing::warn!(node = %self.addr, %reason, pending, "backend connection ended");
        }
        ctx.forget_backend(self);
        if let Some(subscriber) = self.subscriber.borrow().as_ref()
            && !self.closed.get()
        {
            subscriber.lost(&self.addr, reason);
        }
        self.queue.borrow_mut().clear();
        self.wait_due.set(false);
        // Writes that ran but whose WAIT reply is lost come first: they were sent first.
        let held = std::mem::take(&mut *self.held.borrow_mut());
        ctx.on_wait_lost(self, held, reason);
        if self.streaming.replace(false)
            && let Some(Pending { sink: Sink::Client { client, .. }, .. }) =
                self.pending.borrow_mut().pop_front()
        {
            // Part of its reply is written: nothing can follow it on that connection.
            client.broken.set(true);
            client.wake.notify();
        }
        let pending: Vec<Pending> = self.pending.borrow_mut().drain(..).collect();
        for p in pending {
            ctx.on_lost(self, p, maybe_sent, reason);
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection<'a>(&'a crate::metrics::NodeStats);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
    }
}
