//! A blocking command (BLPOP, BLMOVE, XREAD BLOCK, ...) runs on a connection of the client's
//! own to its node, after every earlier command of the client is answered (it waits in the
//! input until then), and the client's later commands wait until it is answered: as with
//! Redis, where a blocked client runs nothing else, so its commands run in the order it sent
//! them although they go over two connections.

use bytes::Bytes;

use super::{ReqArgs, Session};
use crate::commands::CommandInfo;
use crate::request::{Pending, Sink, Target};

impl Session {
    pub(super) fn blocking(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        slot: u16,
        args: &ReqArgs,
        frame: &Bytes,
    ) {
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
                let setname = super::answers::name_blocking_connection(self.client.id);
                b.send_raw(&setname, Sink::Discard);
                self.blocking.insert(addr.clone(), b.clone());
                b
            }
        };
        let req = self.request(info, args, frame.clone(), Target::Node(addr.as_str().into()));
        backend.send(Pending { req, sink: self.sink(seq) });
        self.waiting_for_replies = true;
    }
}
