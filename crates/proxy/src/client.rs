//! A client's replies, kept in request order whatever order the nodes answer in, and written
//! to the client.
//!
//! Each request gets a sequence number when it is read. A reply whose turn has come is copied
//! straight into the output buffer (the common case, no allocation); an early one is copied
//! into a side buffer until the replies before it are there (no allocation either, once that
//! buffer has grown to what a client keeps in flight). A large reply is not copied at all: it
//! stays in the node connection's read buffer, shared, and is written from there with the
//! output around it in one `writev`.
//!
//! Replies are written where they arrive, without waking the session: once every request read
//! so far is answered, the output goes out in one write at once (a pipeline's replies from
//! several nodes make one write, not one per node). Output that still waits on a slower node
//! goes out when the worker's [`FlushQueue`] runs, after the worker looked for more replies
//! once, so it is never held longer than that. A write the socket cannot take whole is
//! finished by the session, which waits for room.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;

use crate::notify::LocalNotify;
use crate::tls::TlsStream;

/// Where a client's replies go: its socket, or its TLS connection over it.
pub enum Writer {
    Plain(OwnedWriteHalf),
    Tls(Rc<TlsStream>),
}

/// The reply side of one client connection, shared by its session and the backends that
/// answer its requests (all on one worker thread).
pub struct Client {
    pub id: u64,
    replies: RefCell<Replies>,
    /// Wakes the session: a write stalled, or it [watches](Client::watch) replies.
    pub wake: LocalNotify,
    /// Set when the session ended; late replies are dropped.
    pub gone: Cell<bool>,
    /// A reply to it was large (see [`Client::got_large_reply`]).
    large_reply: Cell<bool>,
    /// Set when a connection the client's state depends on broke (its subscriptions): the
    /// session closes the client after writing what it has.
    pub broken: Cell<bool>,
    /// The sending half of the client's connection (none in unit tests).
    writer: RefCell<Option<Writer>>,
    /// Requests read so far: when `answered` reaches it, nothing more is coming soon.
    sent: Cell<u64>,
    /// The session is handling a read event: replies made during it go out at its end.
    reading: Cell<bool>,
    /// The session waits on replies (to close, to subscribe, below its pending limit...):
    /// each one wakes it.
    pub watch: Cell<bool>,
    /// A write did not take the whole output (or failed): the session finishes it.
    stalled: Cell<bool>,
    /// In the worker's flush queue.
    queued: Cell<bool>,
    /// Replies delivered so far (in order or early): the flush queue's measure of progress.
    arrivals: Cell<u64>,
    /// `arrivals` when the flush queue last looked, and how many times it looked.
    flush_seen: Cell<u64>,
    flush_rounds: Cell<u32>,
    flush_queue: Rc<FlushQueue>,
}

#[derive(Default)]
pub struct Replies {
    /// Ready to write, in order: `chunks`, then `out`.
    chunks: VecDeque<Bytes>,
    out: BytesMut,
    /// A reply is going out in parts (its first ones are in the output, its rest is due): no
    /// frame may come between them.
    partial: bool,
    /// Pub/Sub frames that came while a reply was partly out: they follow it.
    deferred: Vec<u8>,
    /// The sequence number whose reply goes next into the output.
    next: u64,
    /// Replies that arrived early: `held[i]` is for sequence `next + i`.
    held: VecDeque<Option<Held>>,
    /// The bytes of small early replies.
    early: Vec<u8>,
    /// Requests whose replies are dropped (`CLIENT REPLY OFF` / `SKIP`).
    muted: Vec<std::ops::Range<u64>>,
}

/// An early reply: small ones are copied (`early[start..end]`), large ones kept as they are.
#[derive(Clone)]
enum Held {
    Copied(usize, usize),
    Shared(Bytes),
}

/// A reply frame for [`Client::deliver`]: large replies come as the node connection's bytes,
/// to be written from there.
pub enum Reply<'a> {
    Slice(&'a [u8]),
    Shared(Bytes),
    /// The last part of a large bulk reply whose first parts went out as they arrived
    /// ([`Client::stream_part`]): not a frame of its own.
    Rest(Bytes),
}

impl Reply<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Reply::Slice(frame) => frame,
            Reply::Shared(frame) | Reply::Rest(frame) => frame,
        }
    }

    /// An error reply (a redirect, TRYAGAIN, ...). The rest of a streamed bulk is never one,
    /// whatever its first byte.
    pub fn is_error(&self) -> bool {
        !matches!(self, Reply::Rest(_)) && self.bytes().first() == Some(&b'-')
    }
}

/// Replies of at least this size are passed on without a copy (smaller ones are cheaper to
/// copy than to reference and gather).
pub const SHARED_REPLY: usize = 2048;

/// The most buffers one `writev` gathers.
const IOVECS: usize = 64;

/// `early` is compacted when it grows past this while replies are still held (a client that
/// never lets its early replies drain would otherwise grow it without bound).
const EARLY_COMPACT: usize = 256 * 1024;

/// What a write of the output did.
#[derive(Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything is written (or there was nothing to write).
    All,
    /// The socket has no room for the rest now.
    Blocked,
    Failed,
}

impl Client {
    /// A client whose output is only read back with [`Client::take_output`] (tests).
    pub fn new(id: u64) -> Client {
        Client::with_writer(id, None, Rc::default())
    }

    /// A client whose replies are written to `writer`; output that waits on slower replies
    /// is written by `flush_queue`'s task.
    pub fn with_writer(id: u64, writer: Option<Writer>, flush_queue: Rc<FlushQueue>) -> Client {
        Client {
            id,
            replies: RefCell::new(Replies::default()),
            wake: LocalNotify::new(),
            gone: Cell::new(false),
            large_reply: Cell::new(false),
            broken: Cell::new(false),
            writer: RefCell::new(writer),
            sent: Cell::new(0),
            reading: Cell::new(false),
            watch: Cell::new(false),
            stalled: Cell::new(false),
            queued: Cell::new(false),
            arrivals: Cell::new(0),
            flush_seen: Cell::new(0),
            flush_rounds: Cell::new(0),
            flush_queue,
        }
    }

    /// The reply to request `seq`.
    pub fn deliver(self: &Rc<Self>, seq: u64, frame: &[u8]) {
        self.deliver_reply(seq, Reply::Slice(frame));
    }

    /// The reply to request `seq`, copied when small, kept as it is when large.
    pub fn deliver_reply(self: &Rc<Self>, seq: u64, frame: Reply) {
        if self.gone.get() {
            return;
        }
        self.arrivals.set(self.arrivals.get() + 1);
        let grew = self.replies.borrow_mut().deliver(seq, frame);
        if grew {
            self.output_ready();
        }
    }

    /// A node is sending this client a large reply (see `backend::STREAM_REPLY`).
    pub fn large_reply_coming(&self) {
        self.large_reply.set(true);
    }

    /// Whether a large reply came for this client: its requests then go on a bulk lane of
    /// the worker's node connections (see [`crate::worker::BULK_LANES`]).
    pub fn got_large_reply(&self) -> bool {
        self.large_reply.get()
    }

    /// Whether the reply to `seq` may go out in parts as it arrives: every reply before it
    /// is in the output, and it is not muted.
    pub fn can_stream(&self, seq: u64) -> bool {
        let replies = self.replies.borrow();
        replies.next == seq && !replies.muted.iter().any(|m| m.contains(&seq))
    }

    /// A part of the reply to the next request in order (see [`Client::can_stream`]), written
    /// at once; its last part comes as [`Reply::Rest`] through [`Client::deliver_reply`].
    pub fn stream_part(self: &Rc<Self>, part: Bytes) {
        if self.gone.get() {
            return;
        }
        let mut replies = self.replies.borrow_mut();
        replies.append(Reply::Shared(part));
        replies.partial = true;
        drop(replies);
        if !self.stalled.get() {
            self.flush();
        }
    }

    /// The replies to requests `seqs` are not written (`CLIENT REPLY OFF` / `SKIP`).
    pub fn mute(&self, seqs: std::ops::Range<u64>) {
        let mut replies = self.replies.borrow_mut();
        let next = replies.next;
        replies.muted.retain(|m| m.end > next);
        replies.muted.push(seqs);
    }

    /// The replies to requests from `seq` on are written again (`CLIENT REPLY ON`).
    pub fn unmute_from(&self, seq: u64) {
        for muted in self.replies.borrow_mut().muted.iter_mut() {
            if muted.start < seq && muted.end > seq {
                muted.end = seq;
            }
        }
    }

    /// A frame that answers no numbered request (a Pub/Sub message or confirmation), put
    /// after everything already in the output.
    pub fn push(self: &Rc<Self>, frame: &[u8]) {
        if self.gone.get() {
            return;
        }
        self.replies.borrow_mut().push(frame);
        // Messages of one read from the node go out together.
        self.queue_flush();
        if self.watch.get() {
            self.wake.notify();
        }
    }

    /// The session starts handling a read event: replies wait for its end.
    pub fn start_reading(&self) {
        self.reading.set(true);
    }

    /// The session handled a read event that took the request count to `sent`.
    pub fn end_reading(self: &Rc<Self>, sent: u64) {
        self.sent.set(sent);
        self.reading.set(false);
        if self.has_output() {
            self.output_ready();
        }
    }

    /// New output: written now when nothing more is due soon, else after the worker looked
    /// for more replies once.
    fn output_ready(self: &Rc<Self>) {
        if self.watch.get() {
            self.wake.notify();
        }
        if self.reading.get() || self.stalled.get() {
            return;
        }
        if self.replies.borrow().next == self.sent.get() {
            self.flush();
        } else {
            self.queue_flush();
        }
    }

    fn queue_flush(self: &Rc<Self>) {
        if !self.queued.get() && self.writer.borrow().is_some() {
            self.queued.set(true);
            self.flush_seen.set(self.arrivals.get());
            self.flush_rounds.set(0);
            self.flush_queue.add(self.clone());
        }
    }

    /// Writes what the output holds, as far as the socket takes it without waiting. When it
    /// cannot take it all, the session is woken to finish (it waits for room).
    pub fn flush(&self) -> Flushed {
        if self.reading.get() {
            return Flushed::All;
        }
        let result = self.write_out();
        if result != Flushed::All {
            self.stalled.set(true);
            self.wake.notify();
        }
        result
    }

    fn write_out(&self) -> Flushed {
        let mut replies = self.replies.borrow_mut();
        let writer = self.writer.borrow();
        let writer = match writer.as_ref() {
            None => return Flushed::All,
            Some(Writer::Tls(tls)) => return write_tls(&mut replies, tls),
            Some(Writer::Plain(writer)) => writer,
        };
        let replies = &mut *replies;
        loop {
            let written = match replies.chunks.is_empty() {
                true if replies.out.is_empty() => return Flushed::All,
                true => writer.try_write(&replies.out),
                false => {
                    let mut slices = [io::IoSlice::new(&[]); IOVECS];
                    let mut n = 0;
                    for chunk in replies.chunks.iter().take(IOVECS - 1) {
                        slices[n] = io::IoSlice::new(chunk);
                        n += 1;
                    }
                    if !replies.out.is_empty() && n < IOVECS - 1 {
                        slices[n] = io::IoSlice::new(&replies.out);
                        n += 1;
                    }
                    writer.try_write_vectored(&slices[..n])
                }
            };
            match written {
                Ok(n) => {
                    crate::metrics::bump(&self.flush_queue.traffic.bytes_out, n as u64);
                    replies.consume(n)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(_) => return Flushed::Failed,
            }
        }
    }

    /// For the session: writes the output, the rest of a stalled write included; when the
    /// socket cannot take it all, the session waits for room ([`Client::poll_writable`]).
    pub fn finish_write(&self) -> Flushed {
        let result = self.write_out();
        self.stalled.set(result != Flushed::All);
        result
    }

    /// A reply went out in part and its connection to the node broke: the rest never comes.
    pub fn is_cut_off(&self) -> bool {
        self.broken.get() && self.replies.borrow().partial
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled.get()
    }

    /// Ready when the socket has room for more output.
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.writer.borrow().as_ref() {
            Some(Writer::Plain(writer)) => writer.as_ref().poll_write_ready(cx),
            Some(Writer::Tls(tls)) => tls.socket().as_ref().poll_write_ready(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// The session ended: the connection's sending half is closed.
    pub fn close(&self) {
        self.gone.set(true);
        self.writer.borrow_mut().take();
    }

    /// Takes the ready output (tests: a client without a connection).
    pub fn take_output(&self) -> Vec<u8> {
        let mut replies = self.replies.borrow_mut();
        let mut output = Vec::new();
        for chunk in replies.chunks.drain(..) {
            output.extend_from_slice(&chunk);
        }
        output.extend_from_slice(&replies.out);
        replies.out.clear();
        output
    }

    /// How many replies have gone into the output so far.
    pub fn answered(&self) -> u64 {
        self.replies.borrow().next
    }

    pub fn has_output(&self) -> bool {
        let replies = self.replies.borrow();
        let tls_pending =
            matches!(self.writer.borrow().as_ref(), Some(Writer::Tls(tls)) if tls.wants_write());
        !replies.out.is_empty() || !replies.chunks.is_empty() || tls_pending
    }
}

/// The output handed to the TLS connection whole (it encrypts into its own buffer), then as
/// much of the encrypted records written as the socket takes.
fn write_tls(replies: &mut Replies, tls: &TlsStream) -> Flushed {
    let mut handed = 0;
    let chunks = replies.chunks.iter().map(|c| &c[..]);
    for chunk in chunks.chain(std::iter::once(&replies.out[..])) {
        if tls.send(chunk).is_err() {
            return Flushed::Failed;
        }
        handed += chunk.len();
    }
    replies.consume(handed);
    match tls.write_pending() {
        Ok(true) => Flushed::All,
        Ok(false) => Flushed::Blocked,
        Err(_) => Flushed::Failed,
    }
}

/// A worker's clients whose output waits on slower replies. Its task writes them after the
/// worker looked once more for what is ready (its I/O events and the tasks they wake), so
/// that replies arriving together from several nodes leave in one write, yet none waits longer
/// than that look.
#[derive(Default)]
pub struct FlushQueue {
    clients: RefCell<Vec<Rc<Client>>>,
    wake: LocalNotify,
    /// Where the bytes written to the worker's clients are counted.
    traffic: Arc<crate::metrics::ClientTraffic>,
}

impl FlushQueue {
    /// A queue whose clients' written bytes count in `traffic` (the worker's block).
    pub fn counting(traffic: Arc<crate::metrics::ClientTraffic>) -> FlushQueue {
        FlushQueue { clients: RefCell::default(), wake: LocalNotify::new(), traffic }
    }

    fn add(&self, client: Rc<Client>) {
        let mut clients = self.clients.borrow_mut();
        if clients.is_empty() {
            self.wake.notify();
        }
        clients.push(client);
    }

    /// The worker's flushing task.
    pub async fn run(self: Rc<Self>) {
        let mut batch = Vec::new();
        loop {
            self.wake.notified().await;
            loop {
                tokio::task::yield_now().await;
                std::mem::swap(&mut *self.clients.borrow_mut(), &mut batch);
                for client in batch.drain(..) {
                    if client.stalled.get() || client.gone.get() || !client.has_output() {
                        client.queued.set(false);
                        continue;
                    }
                    let arrivals = client.arrivals.get();
                    let rounds = client.flush_rounds.get();
                    if arrivals != client.flush_seen.get() && rounds < FLUSH_ROUNDS {
                        // Its replies are still coming in: wait for them one more round.
                        client.flush_seen.set(arrivals);
                        client.flush_rounds.set(rounds + 1);
                        self.clients.borrow_mut().push(client);
                        continue;
                    }
                    client.queued.set(false);
                    client.flush();
                }
                if self.clients.borrow().is_empty() {
                    break;
                }
            }
        }
    }
}

/// How many rounds of the worker output may wait on further replies that keep arriving.
const FLUSH_ROUNDS: u32 = 8;

impl Replies {
    /// True when the output grew.
    fn deliver(&mut self, seq: u64, frame: Reply) -> bool {
        let frame = match self.muted.is_empty() || !self.muted.iter().any(|m| m.contains(&seq)) {
            true => frame,
            false => Reply::Slice(&[]),
        };
        if seq < self.next {
            debug_assert!(false, "reply {seq} delivered twice");
            return false;
        }
        if seq != self.next {
            let i = (seq - self.next) as usize;
            if self.held.len() <= i {
                self.held.resize(i + 1, None);
            }
            self.held[i] = Some(match frame {
                Reply::Slice(frame) => {
                    let start = self.early.len();
                    self.early.extend_from_slice(frame);
                    Held::Copied(start, self.early.len())
                }
                Reply::Shared(frame) | Reply::Rest(frame) => Held::Shared(frame),
            });
            return false;
        }
        self.append(frame);
        self.next += 1;
        if !self.held.is_empty() {
            self.held.pop_front();
            while let Some(Some(_)) = self.held.front() {
                match self.held.pop_front().flatten().expect("checked above") {
                    Held::Copied(start, end) => {
                        let (out, early) = (&mut self.out, &self.early);
                        out.extend_from_slice(&early[start..end]);
                    }
                    Held::Shared(frame) => self.append(Reply::Shared(frame)),
                }
                self.next += 1;
            }
            if self.held.is_empty() {
                self.early.clear();
            } else if self.early.len() > EARLY_COMPACT {
                self.compact_early();
            }
        }
        true
    }

    /// Puts a frame at the end of the output. The rest of a reply that went out in parts
    /// ends it: the Pub/Sub frames held meanwhile follow.
    fn append(&mut self, frame: Reply) {
        let rest = matches!(frame, Reply::Rest(_));
        match frame {
            Reply::Slice(frame) => self.out.extend_from_slice(frame),
            Reply::Shared(frame) | Reply::Rest(frame) => {
                if !self.out.is_empty() {
                    self.chunks.push_back(self.out.split().freeze());
                }
                self.chunks.push_back(frame);
            }
        }
        if rest {
            self.partial = false;
            self.out.extend_from_slice(&self.deferred);
            self.deferred.clear();
        }
    }

    /// A Pub/Sub frame: at the end of the output, or after the reply that is partly out.
    fn push(&mut self, frame: &[u8]) {
        match self.partial {
            true => self.deferred.extend_from_slice(frame),
            false => self.out.extend_from_slice(frame),
        }
    }

    /// Drops the first `n` bytes of the output (written).
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(chunk) = self.chunks.front_mut() else { break };
            if n < chunk.len() {
                chunk.advance(n);
                return;
            }
            n -= chunk.len();
            self.chunks.pop_front();
        }
        if n == self.out.len() {
            self.out.clear();
        } else {
            self.out.advance(n);
        }
    }

    /// Drops the bytes of early replies already moved to `out`.
    fn compact_early(&mut self) {
        let copied = self.held.iter().flatten().filter_map(|held| match held {
            Held::Copied(start, _) => Some(*start),
            Held::Shared(_) => None,
        });
        let Some(first) = copied.min() else {
            return self.early.clear();
        };
        self.early.drain(..first);
        for held in self.held.iter_mut().flatten() {
            if let Held::Copied(start, end) = held {
                *start -= first;
                *end -= first;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn output(client: &Client) -> Vec<u8> {
        client.take_output()
    }

    #[test]
    fn replies_come_out_in_request_order_whatever_order_they_arrive_in() {
        let client = Rc::new(Client::new(1));
        client.deliver(2, b"c");
        client.deliver(1, b"b");
        assert_eq!(output(&client), b"");
        client.deliver(0, b"a");
        assert_eq!(output(&client), b"abc");
        client.deliver(4, b"e");
        client.deliver(3, b"d");
        assert_eq!(output(&client), b"de");
        assert_eq!(client.answered(), 5);
    }

    #[test]
    fn early_replies_stay_right_when_their_buffer_is_compacted() {
        let client = Rc::new(Client::new(1));
        let big = vec![b'x'; EARLY_COMPACT + 1];
        client.deliver(2, &big);
        client.deliver(4, b"e");
        client.deliver(1, b"b");
        client.deliver(0, b"a");
        // 0, 1 and 2 went out; 4 is still held, and its bytes moved to the buffer's start.
        let mut expected = b"ab".to_vec();
        expected.extend_from_slice(&big);
        assert_eq!(output(&client), expected);
        assert!(client.replies.borrow().early.len() < 8, "the big reply's bytes are dropped");
        client.deliver(3, b"d");
        assert_eq!(output(&client), b"de");
        assert!(client.replies.borrow().early.is_empty());
    }

    #[test]
    fn written_bytes_are_dropped_across_shared_and_copied_output() {
        let mut replies = Replies::default();
        replies.append(Reply::Slice(b"ab"));
        replies.append(Reply::Shared(Bytes::from_static(b"cdef")));
        replies.append(Reply::Slice(b"gh"));
        replies.consume(3);
        assert_eq!(replies.chunks.len(), 1);
        assert_eq!(&replies.chunks[0][..], b"def");
        replies.consume(4);
        assert!(replies.chunks.is_empty());
        assert_eq!(&replies.out[..], b"h");
        replies.consume(1);
        assert!(replies.out.is_empty());
    }

    #[test]
    fn a_push_during_a_reply_that_goes_out_in_parts_follows_that_reply() {
        let client = Rc::new(Client::new(1));
        client.deliver(0, b"+first\r\n");
        client.stream_part(Bytes::from_static(b"$6\r\nab"));
        client.push(b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n");
        client.stream_part(Bytes::from_static(b"cd"));
        client.deliver_reply(1, Reply::Rest(Bytes::from_static(b"ef\r\n")));
        client.push(b">2\r\n$7\r\nmessage\r\n$1\r\ny\r\n");
        let expected = b"+first\r\n$6\r\nabcdef\r\n>2\r\n$7\r\nmessage\r\n$1\r\nx\r\n\
                         >2\r\n$7\r\nmessage\r\n$1\r\ny\r\n";
        assert_eq!(String::from_utf8_lossy(&output(&client)), String::from_utf8_lossy(expected));
    }

    proptest! {
        #[test]
        fn large_and_small_replies_in_any_arrival_order_give_request_order(
            order in Just((0u64..40).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let client = Rc::new(Client::new(1));
            let frame = |seq: u64| format!("{seq}:{}", ".".repeat((seq % 3) as usize * 1000));
            for &seq in &order {
                let bytes = frame(seq);
                match seq % 2 {
                    0 => client.deliver_reply(seq, Reply::Shared(Bytes::from(bytes))),
                    _ => client.deliver(seq, bytes.as_bytes()),
                }
            }
            let expected: String = (0..40).map(frame).collect();
            prop_assert_eq!(String::from_utf8(output(&client)).unwrap(), expected);
        }

        #[test]
        fn any_arrival_order_gives_request_order(
            order in Just((0u64..40).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let client = Rc::new(Client::new(1));
            for seq in &order {
                client.deliver(*seq, format!("{seq},").as_bytes());
            }
            let expected: String = (0..40).map(|s| format!("{s},")).collect();
            prop_assert_eq!(String::from_utf8(output(&client)).unwrap(), expected);
        }
    }
}
