//! A request on its way to a node, and where its reply goes: the vocabulary the session,
//! the worker and the backend connections share. Kept apart from [`crate::worker`] and
//! [`crate::backend`] so that neither has to import the other's module for it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;

use crate::client::Client;
use crate::fanout::{MergeKind, merge};

/// A command on its way to a node.
pub struct Request {
    /// RESP, as sent.
    pub bytes: Bytes,
    pub target: Target,
    /// May go to a node again after a connection broke with it in flight: read-only, or
    /// idempotent with the same reply (SET without NX/XX/GET, ...).
    pub retry_safe: bool,
    /// Read-only: may go to a replica with `--read-from replica`.
    pub readonly: bool,
    /// When the first retry was decided; the retry budget counts from there (no clock read on
    /// the common path).
    pub retrying_since: Option<Instant>,
    pub attempts: u32,
    /// When the proxy read it (the worker's clock of that read event).
    pub received: Instant,
    /// For per-command statistics; `None` for the proxy's own requests and parts.
    pub command: Option<u16>,
    /// With `--write-ack replica`: a write whose reply waits until a replica confirmed it
    /// (see [`Backend::send`]).
    pub ack: bool,
    /// The client speaks RESP3 (after `HELLO 3`): sent on a RESP3 connection, so that the
    /// node's reply is already in the client's protocol.
    pub resp3: bool,
    /// Which of the worker's shared connections to the node carries it (see
    /// [`crate::worker::BULK_LANES`]): 0, the one every client shares, unless its client
    /// moved to a bulk lane.
    pub lane: u8,
}

impl Request {
    pub fn new(
        bytes: Bytes,
        target: Target,
        readonly: bool,
        retry_safe: bool,
        received: Instant,
    ) -> Request {
        Request {
            bytes,
            target,
            retry_safe,
            readonly,
            retrying_since: None,
            attempts: 0,
            received,
            command: None,
            ack: false,
            resp3: false,
            lane: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Target {
    /// The master of this slot (or one of its replicas, for reads, when so configured).
    Slot(u16),
    /// This node.
    Node(Rc<str>),
}

/// Where a reply goes.
pub enum Sink {
    Client {
        client: Rc<Client>,
        seq: u64,
    },
    Part {
        fanout: Rc<RefCell<Fanout>>,
        index: usize,
    },
    /// A SCAN on master `index` of `masters`: the cursor is rewritten for the client.
    Scan {
        client: Rc<Client>,
        seq: u64,
        index: usize,
        masters: usize,
    },
    /// ASKING's and READONLY's replies.
    Discard,
    /// The reply to a `WAIT` the proxy sent after writes (`--write-ack replica`): it decides
    /// the replies of the writes before it that wait on their connection (see
    /// [`Ctx::on_wait_reply`]).
    Wait,
}

pub struct Pending {
    pub req: Request,
    pub sink: Sink,
}

impl Pending {
    /// An entry for bytes the proxy sent on its own (ASKING, READONLY).
    pub fn internal(sink: Sink) -> Pending {
        Pending {
            req: Request::new(Bytes::new(), Target::Slot(0), false, false, Instant::now()),
            sink,
        }
    }
}

/// A command split over several nodes, waiting for all their replies.
pub struct Fanout {
    client: Rc<Client>,
    seq: u64,
    kind: MergeKind,
    /// The merged reply is built in RESP3.
    resp3: bool,
    parts: Vec<Vec<u8>>,
    left: usize,
}

impl Fanout {
    pub fn new(
        client: Rc<Client>,
        seq: u64,
        kind: MergeKind,
        parts: usize,
        resp3: bool,
    ) -> Rc<RefCell<Fanout>> {
        Rc::new(RefCell::new(Fanout {
            client,
            seq,
            kind,
            resp3,
            parts: vec![Vec::new(); parts],
            left: parts,
        }))
    }

    pub fn part_done(fanout: &RefCell<Fanout>, index: usize, frame: &[u8]) {
        let mut f = fanout.borrow_mut();
        f.parts[index] = frame.to_vec();
        f.left -= 1;
        if f.left == 0 {
            let reply = merge(&f.kind, &f.parts, f.resp3);
            f.client.deliver(f.seq, &reply);
        }
    }
}
