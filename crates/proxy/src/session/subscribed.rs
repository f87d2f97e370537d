//! Subscribed mode: the client's subscriptions live on connections of its own — one to a
//! master for SUBSCRIBE/PSUBSCRIBE (a message published on any node reaches every node), one
//! to the master of each shard channel's slot for SSUBSCRIBE — whose frames go to the client
//! as they come (see [`crate::pubsub`]).

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;
use resp::write;

use super::{ReqArgs, Session};
use crate::backend::Backend;
use crate::commands::Args;
use crate::plan::PubSub;
use crate::pubsub::{PLACEHOLDER_PING, Pong, Subscriber};

/// A subscription connection and its subscription count (see [`Subscriber::count`]).
type Subscription = (Rc<Backend>, Rc<Cell<Option<i64>>>);

/// The connections of a client in subscribed mode, each with its subscription count.
#[derive(Default)]
pub(super) struct Subscriptions {
    /// SUBSCRIBE and PSUBSCRIBE: one master hears every node's messages.
    classic: Option<Subscription>,
    /// SSUBSCRIBE: the master of each shard channel's slot.
    shards: Vec<Subscription>,
    /// The client's shard channels over all of `shards`, as its confirmations count them.
    shard_total: Rc<Cell<i64>>,
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

    pub(super) fn close(&self) {
        self.all().for_each(|(backend, _)| backend.close());
    }
}

/// Redis' reply to an unsubscribe of channels the client is not subscribed to: one frame per
/// channel named (a nil channel when none is), each with the client's count of subscriptions
/// of that kind, `count`.
pub(super) fn nothing_to_unsubscribe(kind: &str, channels: &[&[u8]], count: i64) -> Vec<u8> {
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
        write::integer(&mut out, count);
    }
    out
}

fn channels<'a>(args: &'a ReqArgs) -> Vec<&'a [u8]> {
    (1..args.count()).map(|i| args.arg(i)).collect()
}

fn error_frame(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    write::error(&mut out, text.as_bytes());
    out
}

impl Session {
    pub(super) fn leave_subscribed_mode_when_done(&mut self) {
        if self.subscribed.as_ref().is_some_and(Subscriptions::done)
            && let Some(subscriptions) = self.subscribed.take()
        {
            subscriptions.close();
        }
    }

    /// A subscribe in normal mode: the client enters subscribed mode.
    pub(super) fn subscribe(&mut self, seq: u64, action: PubSub, args: &ReqArgs, frame: &Bytes) {
        // The subscribe answers with Pub/Sub frames, not a numbered reply.
        self.reply(seq, b"");
        self.subscribed = Some(Subscriptions::default());
        self.subscribed_request(action, args, frame);
        if self.subscribed.as_ref().is_some_and(|s| s.all().next().is_none()) {
            // No connection was made (no master): the client stays in normal mode.
            self.subscribed = None;
        }
    }

    /// A command in subscribed mode (see [`PubSub`]).
    pub(super) fn subscribed_request(&mut self, action: PubSub, args: &ReqArgs, frame: &[u8]) {
        match action {
            PubSub::Classic { name, subscribe } => match self.classic_subscription(subscribe) {
                Some(backend) => self.send_subscription_command(&backend, frame),
                None => self.reply_subscribed(nothing_to_unsubscribe(name, &channels(args), 0)),
            },
            PubSub::Shard { name, subscribe, slot } => {
                self.shard_subscription(name, subscribe, slot, args, frame)
            }
            PubSub::Ping => self.send_ping(frame, Pong::Client),
            PubSub::Quit => {
                self.client.push(b"+OK\r\n");
                self.closing = true;
            }
            PubSub::Reset => {
                self.end();
                self.resp3 = false;
                self.set_name(None);
                // Back to the user a new client starts as, as Redis' RESET does.
                self.set_user(self.ctx.shared.security.users.initial());
                self.client.push(b"+RESET\r\n");
            }
            PubSub::Error(text) => self.reply_subscribed(error_frame(&text)),
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

    /// SSUBSCRIBE/SUNSUBSCRIBE go to the master of their channels' slot; an SUNSUBSCRIBE of
    /// everything (`slot` is `None`) to every shard connection that has subscriptions.
    fn shard_subscription(
        &mut self,
        name: &str,
        subscribe: bool,
        slot: Option<u16>,
        args: &ReqArgs,
        frame: &[u8],
    ) {
        let subscriptions = self.subscribed.as_ref().expect("in subscribed mode");
        let total = subscriptions.shard_total.get();
        let Some(slot) = slot else {
            let shards: Vec<Rc<Backend>> = subscriptions
                .shards
                .iter()
                .filter(|(_, count)| count.get() != Some(0))
                .map(|(backend, _)| backend.clone())
                .collect();
            if shards.is_empty() {
                return self.reply_subscribed(nothing_to_unsubscribe(name, &[], total));
            }
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
        let existing = subscriptions.shards.iter().find(|(b, _)| b.addr == addr);
        let backend = match existing {
            Some((backend, _)) => backend.clone(),
            None if !subscribe => {
                let reply = nothing_to_unsubscribe(name, &channels(args), total);
                return self.reply_subscribed(reply);
            }
            None => {
                let count = Rc::new(Cell::new(None));
                let subscriber =
                    self.subscriber(&count).for_shard(subscriptions.shard_total.clone());
                let backend = self.ctx.pubsub_backend(&addr, subscriber);
                if let Some(subscriptions) = self.subscribed.as_mut() {
                    subscriptions.shards.push((backend.clone(), count));
                }
                backend
            }
        };
        self.send_subscription_command(&backend, frame);
    }
}
