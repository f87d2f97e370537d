//! Commands about the whole cluster or the proxy's own clients that the proxy answers from
//! the nodes' reports and its own state: INFO sections, CLUSTER as a one-node cluster,
//! SLOWLOG/LATENCY/MEMORY reports, CLIENT UNBLOCK. The decisions are pure functions in
//! [`crate::info`], [`crate::cluster_view`], [`crate::reports`] and [`crate::client_admin`];
//! this is their wiring.

use bytes::Bytes;
use resp::write;

use super::{ReqArgs, Session};
use crate::commands::{Args, CommandInfo};
use crate::fanout::MergeKind;

impl Session {
    /// INFO [section ...]: the masters' sections merged, the proxy's own (see [`crate::info`]).
    /// Sections the proxy makes itself (`proxy`, `cluster`) are answered without asking any
    /// node, so a health check does not wait on a dead one.
    pub(super) fn info(&mut self, seq: u64, args: &ReqArgs) {
        let names: Vec<&[u8]> = (1..args.count()).map(|i| args.arg(i)).collect();
        let sections = crate::info::requested(&names);
        let port = self.entry.laddr.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
        let local = crate::info::local(&self.ctx.shared, &self.ctx.map(), port.unwrap_or(0));
        let Some(command) = crate::info::node_command(&sections) else {
            let mut reply = Vec::new();
            let text = crate::info::render(&sections, &local, &[]);
            crate::fanout::write_text(&mut reply, text.as_bytes(), self.resp3);
            return self.reply(seq, &reply);
        };
        let mut bytes = Vec::new();
        write::command(&mut bytes, &command);
        let masters = self.nodes(false);
        let kind = MergeKind::Info(Box::new((sections, local)));
        self.fan_out(seq, masters, bytes.into(), kind, true, false);
    }

    /// CLUSTER ...: the proxy as the one node of a cluster (see [`crate::cluster_view`]).
    pub(super) fn cluster(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: &Bytes) {
        use crate::cluster_view::{ClusterAnswer, View, announced, answer};
        let config = &self.ctx.shared.config;
        let (host, port, id) = announced(config.announce.as_deref(), &self.entry.laddr);
        let uncovered = self.ctx.map().uncovered();
        let view = View { host: &host, port, id: &id, uncovered, resp3: self.resp3 };
        match answer(&view, args) {
            ClusterAnswer::Reply(reply) => self.reply(seq, &reply),
            ClusterAnswer::ToSlot(slot) => self.keyed_at(seq, info, args, frame, Some(slot)),
            ClusterAnswer::Refused(error) => self.reply_error(seq, &error),
        }
    }

    /// SLOWLOG, LATENCY, MEMORY reports: every node's (or master's), merged and labelled.
    pub(super) fn reports(&mut self, seq: u64, info: &CommandInfo, args: &ReqArgs, frame: &Bytes) {
        use crate::reports::{Nodes, report_of};
        let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
        let (report, which) = match report_of(&info.name, &list) {
            Ok(Some(found)) => found,
            Ok(None) => return self.reply_error(seq, &crate::plan::unknown_command(args)),
            Err(e) => return self.reply_error(seq, &e),
        };
        let nodes = self.nodes(which == Nodes::All);
        let names = nodes.iter().map(|n| n.to_string()).collect();
        let kind = MergeKind::Reports(Box::new((report, names)));
        self.fan_out(seq, nodes, frame.clone(), kind, true, false);
    }

    /// CLIENT UNBLOCK id: the client's blocking command runs on a connection of its own to a
    /// master, named for the client there (see [`Session::blocking`]); the master that has it
    /// is asked to unblock it, and answers the blocked command as Redis would (a nil for
    /// TIMEOUT, an UNBLOCKED error for ERROR).
    pub(super) fn client_unblock(&mut self, seq: u64, args: &ReqArgs) {
        let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
        let (id, error) = match crate::client_admin::parse_unblock(&list) {
            Ok(parsed) => parsed,
            Err(e) => return self.reply_error(seq, &e),
        };
        let masters: Vec<String> = self.nodes(false).iter().map(|n| n.to_string()).collect();
        let client = self.client.clone();
        tokio::task::spawn_local(async move {
            let unblocked = unblock_on_masters(&masters, id, error).await;
            let mut out = Vec::new();
            write::integer(&mut out, unblocked);
            client.deliver(seq, &out);
        });
    }
}

/// `CLIENT SETNAME <name>` for the connection a client's blocking commands run on, so that
/// CLIENT UNBLOCK finds it on the node.
pub(super) fn name_blocking_connection(client_id: u64) -> Vec<u8> {
    let name = crate::client_admin::blocking_connection_name(client_id);
    let mut setname = Vec::new();
    write::command(&mut setname, &[&b"CLIENT"[..], b"SETNAME", name.as_bytes()]);
    setname
}

/// Asks each master for the connection named for proxy client `id` and unblocks it there:
/// 1 when a master had it blocked, else 0 (as Redis answers for a client that is not blocked).
async fn unblock_on_masters(masters: &[String], id: u64, error: bool) -> i64 {
    use crate::client_admin::{blocking_connection_name, node_client_id};
    let name = blocking_connection_name(id);
    let timeout = std::time::Duration::from_secs(2);
    for master in masters {
        let ask = async {
            let mut conn = cluster::admin::AdminConn::connect(master, timeout).await.ok()?;
            let list = conn.query_text(&["CLIENT", "LIST", "TYPE", "normal"]).await.ok()?;
            let node_id = node_client_id(&list, &name)?.to_string();
            let mode = if error { "ERROR" } else { "TIMEOUT" };
            match conn.query(&["CLIENT", "UNBLOCK", &node_id, mode]).await.ok()? {
                resp::Value::Integer(n) => Some(n),
                _ => None,
            }
        };
        if let Ok(Some(n)) = tokio::time::timeout(timeout * 2, ask).await {
            return n;
        }
    }
    0
}
