//! What the proxy answers itself: PING, ECHO, HELLO, CLIENT, COMMAND, TIME, RESET, ROLE, ...,
//! and INFO, SCAN, CONFIG, CLUSTER and the nodes' reports, which ask the nodes for their part
//! (the last ones in [`super::answers`]). [`Session::local`] is the
//! one place a [`Local`] command is dispatched: a new one is a variant of [`Local`] (with its
//! names in `commands::route_of`) and an arm there.

use std::time::Instant;

use bytes::Bytes;
use resp::write;

use super::{ReqArgs, Session};
use crate::clients::Filter;
use crate::commands::{Args, CommandInfo, Local, Merge};
use crate::fanout::MergeKind;
use crate::request::{Sink, Target};

impl Session {
    /// SCAN over every master in turn, with one cursor (see [`crate::fanout::scan_reply`]).
    pub(super) fn scan(&mut self, seq: u64, args: &ReqArgs) {
        let cursor = std::str::from_utf8(args.arg(1)).ok().and_then(|c| c.parse::<u64>().ok());
        let Some(cursor) = cursor else { return self.reply_error(seq, "ERR invalid cursor") };
        let (index, node_cursor) = crate::fanout::split_scan_cursor(cursor);
        let masters = self.nodes(false);
        let Some(addr) = masters.get(index).cloned() else {
            return self.reply(seq, b"*2\r\n$1\r\n0\r\n*0\r\n");
        };
        let node_cursor = node_cursor.to_string();
        let mut command: Vec<&[u8]> = vec![b"SCAN", node_cursor.as_bytes()];
        command.extend((2..args.count()).map(|i| args.arg(i)));
        let mut bytes = Vec::new();
        write::command(&mut bytes, &command);
        let mut req = self.client_request(bytes.into(), Target::Node(addr), true, true);
        req.command = self.command;
        let sink = Sink::Scan { client: self.client.clone(), seq, index, masters: masters.len() };
        self.ctx.dispatch(req, sink);
    }

    /// CONFIG GET from one master; CONFIG SET and RESETSTAT on every node (RESETSTAT resets
    /// the proxy's own counters too, as INFO shows them). What CONFIG SET may not set is
    /// refused by the classification.
    fn config(&mut self, seq: u64, info: &CommandInfo, frame: &Bytes) {
        match info.name.as_str() {
            "config|get" => return self.any_master(seq, info, frame),
            "config|resetstat" => {
                self.ctx.shared.stats.reset_counters();
                self.ctx.shared.registry.reset();
            }
            _ => {}
        }
        let nodes = self.nodes(true);
        self.fan_out(seq, nodes, frame.clone(), MergeKind::Merge(Merge::AllOk), false, false);
    }

    /// Every command the proxy answers itself, by its [`Local`] kind.
    pub(super) fn local(
        &mut self,
        seq: u64,
        info: &CommandInfo,
        local: Local,
        args: &ReqArgs,
        frame: &Bytes,
    ) {
        let mut out = Vec::new();
        let argc = args.count();
        match local {
            Local::Ping if argc == 1 => write::simple(&mut out, b"PONG"),
            Local::Ping if argc == 2 => write::bulk(&mut out, args.arg(1)),
            Local::Ping => {
                return self.reply_error(seq, "ERR wrong number of arguments for 'ping' command");
            }
            Local::Echo => write::bulk(&mut out, args.arg(1)),
            Local::Quit => {
                write::simple(&mut out, b"OK");
                self.closing = true;
            }
            Local::Hello => {
                if let Err(e) = self.hello(args, &mut out) {
                    return self.reply_error(seq, &e);
                }
            }
            Local::Select if args.arg(1) == b"0" => write::simple(&mut out, b"OK"),
            Local::Select if !is_integer(args.arg(1)) => {
                return self.reply_error(seq, "ERR value is not an integer or out of range");
            }
            Local::Select => {
                return self.reply_error(seq, "ERR SELECT is not allowed in cluster mode");
            }
            Local::Auth => {
                let authenticated = crate::acl::auth::auth_args(args).and_then(|(user, pass)| {
                    self.ctx.shared.security.authenticate(self.peer_ip, user, pass)
                });
                match authenticated {
                    Ok(user) => {
                        self.set_user(Some(user));
                        write::simple(&mut out, b"OK");
                    }
                    // A failed AUTH leaves the client as it was, as in Redis.
                    Err(e) => return self.reply_error(seq, &e.message()),
                }
            }
            Local::Acl => {
                let done = if info.name == "acl|whoami" {
                    crate::acl::replies::whoami(&mut out, self.user_name());
                    Ok(())
                } else {
                    let category = (argc > 2).then(|| args.arg(2));
                    if argc > 3 {
                        Err("ERR unknown subcommand or wrong number of arguments for 'CAT'. Try \
                             ACL HELP."
                            .to_string())
                    } else {
                        crate::acl::replies::cat(&mut out, &self.ctx.shared.table, category)
                    }
                };
                if let Err(e) = done {
                    return self.reply_error(seq, &e);
                }
            }
            Local::Client if args.arg(1).eq_ignore_ascii_case(b"UNBLOCK") => {
                return self.client_unblock(seq, args);
            }
            Local::Client => {
                if let Err(e) = self.client_command(seq, args, &mut out) {
                    return self.reply_error(seq, &e);
                }
            }
            Local::Command => {
                let table = &self.ctx.shared.table;
                if argc == 1 && self.resp3 {
                    // The node's own RESP3 reply (flags are sets, and so on).
                    return self.any_master(seq, info, frame);
                } else if argc == 1 {
                    out.extend_from_slice(&table.raw_reply);
                } else if args.arg(1).eq_ignore_ascii_case(b"COUNT") {
                    write::integer(&mut out, table.top_level_count() as i64);
                } else {
                    return self.any_master(seq, info, frame);
                }
            }
            Local::Time => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                write::array_len(&mut out, 2);
                write::bulk(&mut out, now.as_secs().to_string().as_bytes());
                write::bulk(&mut out, now.subsec_micros().to_string().as_bytes());
            }
            Local::Reset => {
                self.end();
                self.resp3 = false;
                self.set_name(None);
                // Back to the user a new client starts as, as Redis' RESET does.
                self.set_user(self.ctx.shared.security.users.initial());
                write::simple(&mut out, b"RESET");
            }
            Local::Readonly => write::simple(&mut out, b"OK"),
            Local::Scan => return self.scan(seq, args),
            Local::Info => return self.info(seq, args),
            Local::Config => return self.config(seq, info, frame),
            Local::Cluster => return self.cluster(seq, info, args, frame),
            Local::Role => {
                // A master with no replicas of its own: the proxy is what clients write to.
                write::array_len(&mut out, 3);
                write::bulk(&mut out, b"master");
                write::integer(&mut out, 0);
                write::array_len(&mut out, 0);
            }
            Local::Reports => return self.reports(seq, info, args, frame),
        }
        self.reply(seq, &out);
    }

    fn hello(&mut self, args: &ReqArgs, out: &mut Vec<u8>) -> Result<(), String> {
        let mut resp3 = self.resp3;
        let mut i = 1;
        if args.count() > 1 {
            match args.arg(1) {
                b"2" => resp3 = false,
                b"3" => resp3 = true,
                _ => return Err("NOPROTO unsupported protocol version".into()),
            }
            i = 2;
        }
        // As Redis 7: every option is read first, then AUTH is checked, then the name set.
        let (mut name, mut credentials) = (None, None);
        while i < args.count() {
            let option = args.arg(i);
            if option.eq_ignore_ascii_case(b"SETNAME") && i + 1 < args.count() {
                name = Some(args.arg(i + 1));
                i += 2;
            } else if option.eq_ignore_ascii_case(b"AUTH") && i + 2 < args.count() {
                credentials = Some((args.arg(i + 1), args.arg(i + 2)));
                i += 3;
            } else {
                let shown = String::from_utf8_lossy(option);
                return Err(format!("ERR Syntax error in HELLO option '{shown}'"));
            }
        }
        match credentials {
            None if self.user.is_none() => return Err(crate::acl::auth::HELLO_NOAUTH.into()),
            None => {}
            Some((user, pass)) => {
                let security = &self.ctx.shared.security;
                let user = security
                    .authenticate(self.peer_ip, Some(user), pass)
                    .map_err(|e| e.message())?;
                self.set_user(Some(user));
            }
        }
        if let Some(name) = name {
            self.set_name(Some(name.to_vec()));
        }
        if resp3 != self.resp3 {
            // Connections for blocking commands speak the old protocol: new ones as needed.
            self.blocking.drain().for_each(|(_, backend)| backend.retire());
        }
        self.resp3 = resp3;
        let version = self.ctx.shared.redis_version();
        let fields: [(&str, HelloValue); 7] = [
            ("server", HelloValue::Text("redis")),
            ("version", HelloValue::Text(&version)),
            ("proto", HelloValue::Int(if resp3 { 3 } else { 2 })),
            ("id", HelloValue::Int(self.client.id as i64)),
            // As INFO's redis_mode: the proxy answers CLUSTER as a one-node cluster.
            ("mode", HelloValue::Text("cluster")),
            ("role", HelloValue::Text("master")),
            ("modules", HelloValue::Empty),
        ];
        if resp3 {
            write::map_len(out, fields.len());
        } else {
            write::array_len(out, fields.len() * 2);
        }
        for (key, value) in fields {
            write::bulk(out, key.as_bytes());
            match value {
                HelloValue::Text(t) => write::bulk(out, t.as_bytes()),
                HelloValue::Int(n) => write::integer(out, n),
                HelloValue::Empty => write::array_len(out, 0),
            }
        }
        Ok(())
    }

    /// The name of the client's user (`default` before AUTH, as Redis says).
    fn user_name(&self) -> &str {
        let users = &self.ctx.shared.security.users;
        self.user.map_or("default", |id| users.get(id).name.as_str())
    }

    fn client_command(
        &mut self,
        seq: u64,
        args: &ReqArgs,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        use crate::client_admin::{ReplyMode, check_on_off, parse_kill, parse_reply};
        let sub = args.arg(1).to_ascii_uppercase();
        match sub.as_slice() {
            b"SETNAME" if args.count() == 3 => {
                let name = args.arg(2);
                if name.iter().any(|&b| b <= b' ' || b > b'~') {
                    return Err(
                        "ERR Client names cannot contain spaces, newlines or special characters."
                            .into(),
                    );
                }
                self.set_name((!name.is_empty()).then(|| name.to_vec()));
                write::simple(out, b"OK");
            }
            b"GETNAME" => match &self.name {
                Some(name) => write::bulk(out, name),
                None if self.resp3 => write::null(out),
                None => write::null_bulk(out),
            },
            b"ID" => write::integer(out, self.client.id as i64),
            b"INFO" => {
                self.publish_state(self.ctx.now());
                let mut line = String::new();
                let now_ms = self.ctx.shared.clients.ms_since_start(Instant::now());
                self.entry.line(now_ms, &self.ctx.shared.table, &mut line);
                crate::fanout::write_text(out, line.as_bytes(), self.resp3);
            }
            b"LIST" => {
                self.publish_state(self.ctx.now());
                let filter = client_list_filter(args)?;
                let shared = &self.ctx.shared;
                let list = shared.clients.list(&shared.table, &filter);
                crate::fanout::write_text(out, list.as_bytes(), self.resp3);
            }
            b"SETINFO" if args.count() == 4 => {
                // As Redis 7.2 answers it (clients send it when they connect; 7.0 does not
                // know it). The proxy keeps nothing of it.
                let option = args.arg(2);
                if !(option.eq_ignore_ascii_case(b"lib-name")
                    || option.eq_ignore_ascii_case(b"lib-ver"))
                {
                    let shown = String::from_utf8_lossy(option);
                    return Err(format!("ERR Unrecognized option '{shown}'"));
                }
                if args.arg(3).iter().any(|b| !(b'!'..=b'~').contains(b)) {
                    let shown = String::from_utf8_lossy(option).to_ascii_lowercase();
                    return Err(format!(
                        "ERR {shown} cannot contain spaces, newlines or special characters."
                    ));
                }
                write::simple(out, b"OK");
            }
            b"SETINFO" => {
                return Err("ERR wrong number of arguments for 'client|setinfo' command".into());
            }
            b"NO-EVICT" | b"NO-TOUCH" => {
                check_on_off(args.arg(2))?;
                write::simple(out, b"OK");
            }
            b"REPLY" => match parse_reply(args.arg(2))? {
                ReplyMode::On => {
                    self.client.unmute_from(seq);
                    write::simple(out, b"OK");
                }
                ReplyMode::Off => self.client.mute(seq..u64::MAX),
                ReplyMode::Skip => self.client.mute(seq..seq + 2),
            },
            b"KILL" => {
                let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
                let filter = parse_kill(&list)?;
                let (picked, me) = self.ctx.shared.clients.kill(&filter, self.client.id);
                // Its own connection closes after this reply, as in Redis.
                self.closing |= me;
                match (filter.old_form, picked) {
                    (true, 0) => return Err("ERR No such client".into()),
                    (true, _) => write::simple(out, b"OK"),
                    (false, n) => write::integer(out, n as i64),
                }
            }
            b"PAUSE" => {
                let list: Vec<&[u8]> = (0..args.count()).map(|i| args.arg(i)).collect();
                let (timeout_ms, all) = crate::client_admin::parse_pause(&list)?;
                self.ctx.shared.clients.pause(timeout_ms, all);
                write::simple(out, b"OK");
            }
            b"UNPAUSE" => {
                self.ctx.shared.clients.unpause();
                write::simple(out, b"OK");
            }
            _ => {
                let shown = String::from_utf8_lossy(&sub);
                return Err(format!("ERR redkeep proxy does not support 'CLIENT {shown}'"));
            }
        }
        Ok(())
    }
}

/// `CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]`.
fn client_list_filter(args: &ReqArgs) -> Result<Filter, String> {
    let mut filter = Filter::default();
    let mut i = 2;
    while i < args.count() {
        let option = args.arg(i);
        if option.eq_ignore_ascii_case(b"TYPE") && i + 1 < args.count() {
            match args.arg(i + 1).to_ascii_lowercase().as_slice() {
                b"normal" => filter.subscribed = Some(false),
                b"pubsub" => filter.subscribed = Some(true),
                b"master" | b"replica" | b"slave" => filter.none = true,
                other => {
                    let shown = String::from_utf8_lossy(other);
                    return Err(format!("ERR Unknown client type '{shown}'"));
                }
            }
            i += 2;
        } else if option.eq_ignore_ascii_case(b"ID") && i + 1 < args.count() {
            i += 1;
            while i < args.count() {
                let id = std::str::from_utf8(args.arg(i)).ok().and_then(|t| t.parse().ok());
                match id {
                    Some(id) if id > 0 => filter.ids.push(id),
                    _ => return Err("ERR Invalid client ID".into()),
                }
                i += 1;
            }
        } else {
            return Err("ERR syntax error".into());
        }
    }
    Ok(filter)
}

enum HelloValue<'a> {
    Text(&'a str),
    Int(i64),
    Empty,
}

/// A decimal integer, as Redis reads one.
fn is_integer(arg: &[u8]) -> bool {
    std::str::from_utf8(arg).is_ok_and(|text| text.parse::<i64>().is_ok())
}
