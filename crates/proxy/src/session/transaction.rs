//! A transaction (MULTI/EXEC/DISCARD, WATCH/UNWATCH) runs on a connection of the client's own
//! to the node of its first key, as Redis Cluster requires its keys to be on one node.

use std::cell::Cell;
use std::rc::Rc;

use bytes::Bytes;

use super::{ReqArgs, Session};
use crate::backend::Backend;
use crate::commands::CommandInfo;
use crate::plan::TxStep;
use crate::request::{Pending, Sink, Target};

/// A transaction (or WATCH) pinned to one node's connection.
#[derive(Default)]
pub(super) struct Transaction {
    /// Inside MULTI (not only WATCH).
    pub(super) multi: bool,
    /// The pinned connection, made at the first key.
    pub(super) backend: Option<Rc<Backend>>,
    /// Commands queued after MULTI before any key said which node. The proxy answered each
    /// `QUEUED` itself (a keyless command is queued by any node alike), so that the client
    /// is never left without a reply while the node is unknown; they are sent after MULTI
    /// once the node is known, at the latest at EXEC, their replies dropped.
    held: Vec<Bytes>,
    /// A command queued after MULTI may write: with `--write-ack replica`, EXEC waits for a
    /// replica (the commands inside are only queued; EXEC runs them). CLIENT PAUSE WRITE
    /// holds such an EXEC.
    pub(super) writes: bool,
    /// The proxy refused a command inside MULTI: EXEC discards the transaction and answers
    /// EXECABORT, as Redis does when it rejects a command while queueing. Without it, EXEC
    /// would run the rest of a transaction the client saw fail.
    pub(super) aborted: Cell<bool>,
}

const QUEUED: &[u8] = b"+QUEUED\r\n";

impl Session {
    /// One step of a transaction (see [`TxStep`]).
    pub(super) fn transaction(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        step: TxStep,
        args: &ReqArgs,
        frame: &Bytes,
    ) {
        match step {
            TxStep::Multi => {
                let tx = self.tx.get_or_insert_with(Transaction::default);
                tx.multi = true;
                if let Some(backend) = tx.backend.clone() {
                    // WATCH pinned it already: MULTI goes there, its +OK is the client's.
                    let req = self.request(info, args, frame.clone(), Target::Slot(0));
                    backend.send(Pending { req, sink: self.sink(seq) });
                } else {
                    self.reply(seq, b"+OK\r\n");
                }
            }
            TxStep::Exec | TxStep::Discard => self.exec_or_discard(seq, info, step, args, frame),
            TxStep::Watch { slot } => {
                let mut tx = self.tx.take().unwrap_or_default();
                let Some(backend) = self.pin(&mut tx, Some(slot)) else {
                    return self.reply_error(seq, "CLUSTERDOWN Hash slot not served");
                };
                let req = self.request(info, args, frame.clone(), Target::Slot(0));
                backend.send(Pending { req, sink: self.sink(seq) });
                self.tx = Some(tx);
            }
            TxStep::Unwatch => {
                let Some(backend) = self.tx.take().and_then(|tx| tx.backend) else {
                    return self.reply(seq, b"+OK\r\n");
                };
                let req = self.request(info, args, frame.clone(), Target::Slot(0));
                backend.send(Pending { req, sink: self.sink(seq) });
                backend.retire();
                self.waiting_for_replies = true;
            }
            TxStep::Queue { slot } => self.queue_in_transaction(seq, info, slot, args, frame),
        }
    }

    fn exec_or_discard(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        step: TxStep,
        args: &ReqArgs,
        frame: &Bytes,
    ) {
        let mut tx = self.tx.take().expect("classified inside MULTI");
        if tx.backend.is_none() && step == TxStep::Discard {
            return self.reply(seq, b"+OK\r\n");
        }
        if tx.aborted.get() && step == TxStep::Exec {
            if let Some(backend) = tx.backend {
                backend.send_raw(b"*1\r\n$7\r\nDISCARD\r\n", Sink::Discard);
                backend.retire();
            }
            return self.reply_error_only(
                seq,
                "EXECABORT Transaction discarded because of previous errors.",
            );
        }
        // A transaction of keyless commands only runs on any master.
        let Some(backend) = self.pin(&mut tx, None) else {
            return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet");
        };
        let mut req = self.request(info, args, frame.clone(), Target::Slot(0));
        req.ack = self.ctx.write_ack && tx.writes && step == TxStep::Exec;
        backend.send(Pending { req, sink: self.sink(seq) });
        backend.retire();
        // The client's next commands go over the shared connections again: they wait until
        // the transaction ran.
        self.waiting_for_replies = true;
    }

    /// A command while a transaction is open: on its connection (inside MULTI the node
    /// queues it), or held until a key names the node.
    fn queue_in_transaction(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        slot: Option<u16>,
        args: &ReqArgs,
        frame: &Bytes,
    ) {
        let mut tx = self.tx.take().expect("inside a transaction");
        tx.writes |= tx.multi && info.writes;
        if tx.backend.is_none() && slot.is_none() {
            tx.held.push(frame.clone());
            self.tx = Some(tx);
            return self.reply(seq, QUEUED);
        }
        let Some(backend) = self.pin(&mut tx, slot) else {
            self.tx = Some(tx);
            return self.reply_error(seq, "CLUSTERDOWN Hash slot not served");
        };
        let mut req = self.request(info, args, frame.clone(), Target::Slot(0));
        // Inside MULTI it is only queued: EXEC waits for the replica.
        req.ack &= !tx.multi;
        backend.send(Pending { req, sink: self.sink(seq) });
        self.tx = Some(tx);
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
        for bytes in tx.held.drain(..) {
            // Answered QUEUED already.
            backend.send_raw(&bytes, Sink::Discard);
        }
        tx.backend = Some(backend.clone());
        Some(backend)
    }
}
