//! Normal mode: a request keyed to a slot, split per slot, or sent to every master or any.

use bytes::Bytes;
use cluster::key_slot;
use resp::write;

use super::{ReqArgs, Session};
use crate::commands::{Args, CommandInfo, Merge, Split};
use crate::fanout::MergeKind;
use crate::request::{Fanout, Sink, Target};

impl Session {
    /// Sends a request whose keys are all in `slot` (`None`: it has no key).
    pub(super) fn keyed_at(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        args: &ReqArgs,
        frame: &Bytes,
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
        let req = self.request(info, args, frame.clone(), target);
        self.ctx.dispatch(req, self.sink(seq));
    }

    /// MGET, MSET, DEL, UNLINK, EXISTS, TOUCH over several slots: one command per slot,
    /// replies merged.
    pub(super) fn split(&mut self, seq: u64, info: &CommandInfo, split: Split, args: &ReqArgs) {
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

    pub(super) fn all_masters(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        merge: Merge,
        frame: &Bytes,
    ) {
        let masters = self.nodes(false);
        let ack = self.ctx.write_ack && info.writes;
        let kind = MergeKind::Merge(merge);
        self.fan_out(seq, masters, frame.clone(), kind, info.flags.readonly, ack);
    }

    /// Sends `bytes` to each of `nodes`; the merged reply goes to the client. With `ack`,
    /// each part waits for a replica of its node (FLUSHALL with `--write-ack replica`).
    pub(super) fn fan_out(
        &mut self,
        seq: u64,
        nodes: Vec<std::rc::Rc<str>>,
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
                self.client_request(bytes.clone(), Target::Node(addr), readonly, readonly);
            req.command = self.command;
            req.ack = ack;
            self.ctx.dispatch(req, Sink::Part { fanout: fanout.clone(), index });
        }
    }

    /// Sends the request as it is to one master (commands whose answer any node gives).
    pub(super) fn any_master(&mut self, seq: u64, info: &CommandInfo, frame: &Bytes) {
        let Some(addr) = self.first_master() else {
            return self.reply_error(seq, "CLUSTERDOWN redkeep: no master known yet");
        };
        let readonly = info.flags.readonly;
        let mut req = self.client_request(frame.clone(), Target::Node(addr), readonly, readonly);
        req.command = Some(info.id);
        self.ctx.dispatch(req, self.sink(seq));
    }
}
