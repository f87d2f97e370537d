//! A client's subscriptions: SUBSCRIBE/PSUBSCRIBE on one connection to a master (a message
//! published on any node reaches every node of the cluster), SSUBSCRIBE on a connection to the
//! master of each shard channel's slot. Frames from these connections go to the client as they
//! come; the session leaves subscribed mode when every connection reports zero subscriptions.

use std::cell::Cell;
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
}

impl Subscriber {
    pub fn on_frame(&mut self, frame: &[u8]) {
        let kind = pubsub_kind(frame);
        if let Some(kind) = kind
            && kind.ends_with(b"subscribe")
            && let Some(count) = elements(frame).and_then(|e| e.get(2).and_then(|c| integer(c)))
        {
            self.count.set(Some(count));
        }
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
        let mut subscriber =
            Subscriber { client: client.clone(), resp3: true, count: count.clone() };
        subscriber.on_frame(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(count.get(), Some(1));
        subscriber.on_frame(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n");
        subscriber.on_frame(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
        assert_eq!(count.get(), Some(0));
        let out = client.take_output();
        assert!(out.starts_with(b">3\r\n$9\r\nsubscribe"));
        assert!(out.windows(9).any(|w| w == b">3\r\n$7\r\nm"));
    }
}
