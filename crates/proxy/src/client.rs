//! A client's replies, kept in request order whatever order the nodes answer in.
//!
//! Each request gets a sequence number when it is read. A reply whose turn has come is copied
//! straight into the output buffer (the common case, no allocation); an early one waits in a
//! slot until the replies before it are there.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

/// The reply side of one client connection, shared by its session and the backends that
/// answer its requests (all on one worker thread).
pub struct Client {
    pub id: u64,
    replies: RefCell<Replies>,
    /// Wakes the session when there is output to write.
    pub wake: Notify,
    /// Set when the session ended; late replies are dropped.
    pub gone: Cell<bool>,
    /// Set when a connection the client's state depends on broke (its subscriptions): the
    /// session closes the client after writing what it has.
    pub broken: Cell<bool>,
}

#[derive(Default)]
pub struct Replies {
    /// Ready to write, in order.
    out: BytesMut,
    /// The sequence number whose reply goes next into `out`.
    next: u64,
    /// Replies that arrived early: `held[i]` is for sequence `next + i`.
    held: VecDeque<Option<Bytes>>,
}

impl Client {
    pub fn new(id: u64) -> Client {
        Client {
            id,
            replies: RefCell::new(Replies::default()),
            wake: Notify::new(),
            gone: Cell::new(false),
            broken: Cell::new(false),
        }
    }

    /// The reply to request `seq`.
    pub fn deliver(&self, seq: u64, frame: &[u8]) {
        if self.gone.get() {
            return;
        }
        let mut replies = self.replies.borrow_mut();
        let was_empty = replies.out.is_empty();
        // The session empties the output each time it wakes: only the first reply wakes it.
        if replies.deliver(seq, frame) && was_empty {
            self.wake.notify_one();
        }
    }

    /// A frame that answers no numbered request (a Pub/Sub message or confirmation), put
    /// after everything already in the output.
    pub fn push(&self, frame: &[u8]) {
        if self.gone.get() {
            return;
        }
        let mut replies = self.replies.borrow_mut();
        if replies.out.is_empty() {
            self.wake.notify_one();
        }
        replies.out.extend_from_slice(frame);
    }

    /// Swaps the ready output with `spare` (an empty buffer, to keep its capacity).
    pub fn take_output(&self, spare: &mut BytesMut) {
        std::mem::swap(&mut self.replies.borrow_mut().out, spare);
    }

    /// How many replies have gone into the output so far.
    pub fn answered(&self) -> u64 {
        self.replies.borrow().next
    }

    pub fn has_output(&self) -> bool {
        !self.replies.borrow().out.is_empty()
    }
}

impl Replies {
    /// True when `out` grew.
    fn deliver(&mut self, seq: u64, frame: &[u8]) -> bool {
        if seq < self.next {
            debug_assert!(false, "reply {seq} delivered twice");
            return false;
        }
        if seq != self.next {
            let i = (seq - self.next) as usize;
            if self.held.len() <= i {
                self.held.resize(i + 1, None);
            }
            self.held[i] = Some(Bytes::copy_from_slice(frame));
            return false;
        }
        self.out.extend_from_slice(frame);
        self.next += 1;
        if !self.held.is_empty() {
            self.held.pop_front();
            while let Some(Some(_)) = self.held.front() {
                let frame = self.held.pop_front().flatten().expect("checked above");
                self.out.extend_from_slice(&frame);
                self.next += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn output(client: &Client) -> Vec<u8> {
        let mut spare = BytesMut::new();
        client.take_output(&mut spare);
        spare.to_vec()
    }

    #[test]
    fn replies_come_out_in_request_order_whatever_order_they_arrive_in() {
        let client = Client::new(1);
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

    proptest! {
        #[test]
        fn any_arrival_order_gives_request_order(
            order in Just((0u64..40).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let client = Client::new(1);
            for seq in &order {
                client.deliver(*seq, format!("{seq},").as_bytes());
            }
            let expected: String = (0..40).map(|s| format!("{s},")).collect();
            prop_assert_eq!(String::from_utf8(output(&client)).unwrap(), expected);
        }
    }
}
