//! A client's subscriptions: SUBSCRIBE/PSUBSCRIBE on one connection to a master (a message
//! published on any node reaches every node of the cluster), SSUBSCRIBE on a connection to the
//! master of each shard channel's slot. Frames from these connections go to the client as they
//! come; the session leaves subscribed mode when every connection reports zero subscriptions.
//! The replies the proxy makes itself are put in line with the nodes' frames by PINGs whose
//! pongs they replace (see [`Pong`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use resp::write;

use crate::client::Client;
use crate::fanout::{elements, integer};

/// The client side of one subscription connection.
pub struct Subscriber {
    pub client: Rc<Client>,
    /// The client said HELLO 3: Pub/Sub frames become RESP3 pushes.
    pub resp3: bool,
    /// Subscriptions on this connection as its last confirmation said; `None` before any.
    pub count: Rc<Cell<Option<i64>>>,
    /// What each PING sent on this connection and not answered yet stands for, in the order
    /// they went (pongs come back in that order).
    pub pongs: VecDeque<Pong>,
    /// The session's count of [`Pong::Sync`] PINGs not answered yet.
    pub syncs: Rc<Cell<u32>>,
    /// For a connection of shard channels: the client's shard subscriptions over all its
    /// shard connections. Each confirmation says this connection's count; the client is told
    /// the total instead, as one node would count them (see [`Subscriber::on_frame`]).
    pub shard_total: Option<Rc<Cell<i64>>>,
}

/// Why a PING went on a subscription connection.
#[derive(Debug, PartialEq)]
pub enum Pong {
    /// The client's own: its pong goes to the client.
    Client,
    /// The proxy's placeholder for a reply the proxy made (an error for a command not allowed
    /// in subscribed mode): the pong is replaced by it, so it comes after the confirmations
    /// of the client's earlier commands.
    Reply(Vec<u8>),
    /// The proxy's, after each (un)subscribe: once its pong is in, every confirmation before
    /// it is. The session reads the client's next command only then, so confirmations on two
    /// of its connections cannot cross, and after the last unsubscribe the next command is
    /// read in normal mode.
    Sync,
}

/// The PING the proxy sends to hold its own reply in line (see [`Subscriber::pongs`]).
pub const PLACEHOLDER_PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

impl Subscriber {
    pub fn new(
        client: Rc<Client>,
        resp3: bool,
        count: Rc<Cell<Option<i64>>>,
        syncs: Rc<Cell<u32>>,
    ) -> Subscriber {
        Subscriber { client, resp3, count, pongs: VecDeque::new(), syncs, shard_total: None }
    }

    /// A subscriber for a connection of shard channels, counted into `total`.
    pub fn for_shard(mut self, total: Rc<Cell<i64>>) -> Subscriber {
        self.shard_total = Some(total);
        self
    }

    pub fn on_frame(&mut self, frame: &[u8]) {
        if is_pong(frame) {
            match self.pongs.pop_front() {
                Some(Pong::Reply(reply)) => return self.client.push(&reply),
                Some(Pong::Sync) => {
                    self.syncs.set(self.syncs.get().saturating_sub(1));
                    return self.client.wake.notify();
                }
                Some(Pong::Client) | None => {}
            }
        }
        let kind = pubsub_kind(frame);
        let mut total_frame = None;
        if let Some(kind) = kind
            && kind.ends_with(b"subscribe")
            && let Some(elements) = elements(frame)
            && let Some(count) = elements.get(2).and_then(|c| integer(c))
        {
            let before = self.count.replace(Some(count)).unwrap_or(0);
            if let Some(total) = &self.shard_total {
                // Confirmations come one at a time on one thread: the other connections'
                // counts are those their last confirmations said.
                total.set(total.get() + count - before);
                total_frame = Some(with_count(&elements, total.get()));
            }
        }
        let frame = total_frame.as_deref().unwrap_or(frame);
        if self.resp3 && kind.is_some() && frame.first() == Some(&b'*') {
            // Same elements, announced as a push.
            let mut push = frame.to_vec();
            push[0] = b'>';
            self.client.push(&push);
        } else {
            self.client.push(frame);
        }
    }

    /// The subscription connection broke: the client hears it and is closed (it must
    /// subscribe again, as after losing a connection to Redis itself).
    pub fn lost(&self, addr: &str, reason: &str) {
        let mut out = Vec::new();
        let text = format!("ERR redkeep: lost the subscription connection to {addr}: {reason}");
        write::error(&mut out, text.as_bytes());
        self.client.push(&out);
        self.client.broken.set(true);
        self.client.wake.notify();
    }
}

/// A confirmation `[kind, channel, count]` with another count.
fn with_count(elements: &[&[u8]], count: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write::array_len(&mut out, elements.len());
    for element in &elements[..2] {
        out.extend_from_slice(element);
    }
    write::integer(&mut out, count);
    out
}

/// A PING's reply: in subscribed mode `pong` and the PING's argument, `+PONG` once the
/// connection left it (the last unsubscribe was confirmed).
fn is_pong(frame: &[u8]) -> bool {
    frame == b"+PONG\r\n"
        || elements(frame)
            .is_some_and(|e| e.first().is_some_and(|first| first.ends_with(b"\npong\r\n")))
}

/// `message`, `subscribe`, ... when `frame` is a Pub/Sub frame.
fn pubsub_kind(frame: &[u8]) -> Option<&[u8]> {
    let first = *elements(frame)?.first()?;
    let (_, rest) = first.split_at(first.iter().position(|&b| b == b'\n')? + 1);
    let kind = rest.strip_suffix(b"\r\n")?;
    let known: [&[u8]; 9] = [
        b"message",
        b"pmessage",
        b"smessage",
        b"subscribe",
        b"psubscribe",
        b"ssubscribe",
        b"unsubscribe",
        b"punsubscribe",
        b"sunsubscribe",
    ];
    known.contains(&kind).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_count_subscriptions_and_resp3_clients_get_pushes() {
        let client = Rc::new(Client::new(1));
        let count = Rc::new(Cell::new(None));
        let mut subscriber = Subscriber::new(client.clone(), true, count.clone(), Rc::default());
        subscriber.on_frame(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(count.get(), Some(1));
        subscriber.on_frame(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
        subscriber.on_frame(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
        assert_eq!(count.get(), Some(0));
        let out = client.take_output();
        assert!(out.starts_with(b">3\r\n$9\r\nsubscribe"));
        assert!(out.windows(9).any(|w| w == b">3\r\n$7\r\nm"));
    }

    #[test]
    fn shard_confirmations_count_the_subscriptions_of_every_shard_connection() {
        let client = Rc::new(Client::new(1));
        let total = Rc::new(Cell::new(0));
        let shard = |count: &Rc<Cell<Option<i64>>>| {
            Subscriber::new(client.clone(), false, count.clone(), Rc::default())
                .for_shard(total.clone())
        };
        let (count_a, count_b) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(None)));
        let (mut a, mut b) = (shard(&count_a), shard(&count_b));
        a.on_frame(b"*3\r\n$10\r\nssubscribe\r\n$3\r\nfoo\r\n:1\r\n");
        b.on_frame(b"*3\r\n$10\r\nssubscribe\r\n$3\r\nbar\r\n:1\r\n");
        b.on_frame(b"*3\r\n$12\r\nsunsubscribe\r\n$3\r\nbar\r\n:0\r\n");
        a.on_frame(b"*3\r\n$12\r\nsunsubscribe\r\n$3\r\nfoo\r\n:0\r\n");
        assert_eq!((count_a.get(), count_b.get(), total.get()), (Some(0), Some(0), 0));
        let out = String::from_utf8(client.take_output()).unwrap();
        let counts: Vec<&str> = out.split("\r\n").filter(|l| l.starts_with(':')).collect();
        assert_eq!(counts, [":1", ":2", ":1", ":0"]);
    }

    #[test]
    fn a_placeholder_pong_is_replaced_by_the_reply_it_holds() {
        let client = Rc::new(Client::new(1));
        let syncs = Rc::new(Cell::new(1));
        let mut subscriber = Subscriber::new(client.clone(), false, Rc::default(), syncs.clone());
        subscriber.pongs.push_back(Pong::Client);
        subscriber.pongs.push_back(Pong::Reply(b"-ERR held\r\n".to_vec()));
        subscriber.pongs.push_back(Pong::Sync);
        subscriber.on_frame(b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n");
        subscriber.on_frame(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        subscriber.on_frame(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        subscriber.on_frame(b"+PONG\r\n");
        assert_eq!(syncs.get(), 0, "the sync's pong (after leaving subscribed mode) is counted");
        let out = client.take_output();
        assert_eq!(
            out,
            b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n-ERR held\r\n"
        );
        assert!(subscriber.pongs.is_empty());
    }
}
