//! Classify once, then execute: [`classify`] turns a request into a [`Plan`] — keyed to a
//! slot, split per slot, fanned out and merged, answered locally, a step of a transaction,
//! blocking, Pub/Sub, or refused with its error — and the session runs the plan
//! ([`crate::session`]). Pure: a table lookup, the key positions and their slots, the
//! client's state and the proxy's policy in, a plan out; no I/O, so every decision is tested
//! without sockets.
//!
//! Everything that can refuse a request is decided here, in the one pass over it: unknown
//! commands, arity, CROSSSLOT, what a transaction or subscribed mode allows, the proxy's own
//! settings ([`Policy`]). Security checks (the client's AUTH state, its ACL rights, a command
//! policy) belong here too: they become fields of [`ClientState`] and [`Policy`] read after
//! the lookup, so they cost no second lookup.

use std::borrow::Cow;
use std::sync::Arc;

use cluster::key_slot;

use crate::acl::{self, UserId};
use crate::commands::{
    Args, CommandInfo, CommandTable, InTransaction, Local, Merge, Route, Split, in_transaction,
    key_positions,
};
use crate::security::Security;

/// What the classification needs to know of the client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientState {
    pub tx: Tx,
    /// In subscribed mode.
    pub subscribed: bool,
    /// Said `HELLO 3`.
    pub resp3: bool,
    /// The user the client authenticated as; `None`: it must AUTH first.
    pub user: Option<UserId>,
}

/// The client's transaction, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tx {
    #[default]
    None,
    /// WATCH without MULTI yet.
    Watching,
    /// Inside MULTI.
    Multi,
}

/// The proxy's settings that refuse commands.
#[derive(Debug, Clone)]
pub struct Policy {
    /// FLUSHALL/FLUSHDB allowed (`--no-flush` refuses them).
    pub allow_flush: bool,
    /// CONFIG SET allowed (`--no-config-set` refuses it).
    pub allow_config_set: bool,
    /// Users and the command policy's `--allow` (see [`crate::acl`]).
    pub security: Arc<Security>,
}

impl Default for Policy {
    /// No users (every client has every right), the default command policy, Redis 7.0's
    /// commands.
    fn default() -> Policy {
        let table = CommandTable::builtin();
        let security = Security::new(&Default::default(), &table).expect("no users compile");
        Policy { allow_flush: true, allow_config_set: true, security: Arc::new(security) }
    }
}

/// How the session serves one request.
#[derive(Debug, PartialEq)]
pub enum Plan<'t> {
    /// To the master of `slot`; `None`: no key, and any master runs it the same (EVAL with no
    /// keys).
    Slot { info: &'t CommandInfo, slot: Option<u16> },
    /// Keys over several slots: one command per slot, replies merged (the keys are in the
    /// positions [`classify`] filled in).
    Split { info: &'t CommandInfo, split: Split },
    /// To every master, replies merged.
    FanOut { info: &'t CommandInfo, merge: Merge },
    /// To one master, as it is.
    AnyMaster { info: &'t CommandInfo },
    /// Answered by the proxy (INFO, SCAN and CONFIG ask the nodes for their part).
    Local { info: &'t CommandInfo, local: Local },
    /// A step of a transaction, on the client's own connection to the transaction's node.
    Transaction { info: &'t CommandInfo, step: TxStep },
    /// A command that blocks: on the client's own connection to the master of `slot`.
    Blocking { info: &'t CommandInfo, slot: u16 },
    /// A subscribe in normal mode: the client enters subscribed mode, then `action` runs.
    Subscribe { info: &'t CommandInfo, action: PubSub<'t> },
    /// An unsubscribe in normal mode: nothing to undo, answered by the proxy.
    NothingToUnsubscribe { info: &'t CommandInfo },
    /// A command in subscribed mode (RESP2, or a Pub/Sub command, QUIT or RESET with RESP3):
    /// its replies are Pub/Sub frames, put in line with the subscriptions' frames.
    Subscribed { info: Option<&'t CommandInfo>, action: PubSub<'t> },
    /// Refused with an error.
    Refuse(Refusal<'t>),
}

/// A transaction's command and what it does there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStep {
    Multi,
    Exec,
    Discard,
    /// WATCH outside MULTI: pins the transaction to the master of `slot`.
    Watch {
        slot: u16,
    },
    /// UNWATCH outside MULTI.
    Unwatch,
    /// Any other command while a transaction is open: sent on its connection (inside MULTI
    /// the node queues it). `slot` of its keys, `None` without keys.
    Queue {
        slot: Option<u16>,
    },
}

/// What a Pub/Sub command does in subscribed mode.
#[derive(Debug, Clone, PartialEq)]
pub enum PubSub<'t> {
    /// (P)SUBSCRIBE and (P)UNSUBSCRIBE, on the client's one connection for them.
    Classic {
        name: &'t str,
        subscribe: bool,
    },
    /// SSUBSCRIBE and SUNSUBSCRIBE, on the connection to the master of `slot`; `None`: an
    /// SUNSUBSCRIBE of every shard channel.
    Shard {
        name: &'t str,
        subscribe: bool,
        slot: Option<u16>,
    },
    Ping,
    Quit,
    Reset,
    /// An error, in line with the subscriptions' frames.
    Error(String),
}

/// A refused request.
#[derive(Debug, PartialEq)]
pub struct Refusal<'t> {
    /// For statistics: the command refused, when known.
    pub info: Option<&'t CommandInfo>,
    pub error: Cow<'static, str>,
    /// Inside MULTI it aborts the transaction (EXEC answers EXECABORT), as Redis aborts one
    /// with a command it rejected while queueing. A nested MULTI and a WATCH inside MULTI
    /// do not, in Redis either.
    pub aborts: bool,
}

impl<'t> Plan<'t> {
    /// The command of the request, when the table knows it.
    pub fn info(&self) -> Option<&'t CommandInfo> {
        match self {
            Plan::Slot { info, .. }
            | Plan::Split { info, .. }
            | Plan::FanOut { info, .. }
            | Plan::AnyMaster { info }
            | Plan::Local { info, .. }
            | Plan::Transaction { info, .. }
            | Plan::Blocking { info, .. }
            | Plan::Subscribe { info, .. }
            | Plan::NothingToUnsubscribe { info } => Some(info),
            Plan::Subscribed { info, .. } => *info,
            Plan::Refuse(refusal) => refusal.info,
        }
    }

    /// The request goes over another connection than the client's earlier requests (its own
    /// connection for a blocking command or a transaction, or a subscription connection), so
    /// it must wait until their replies are written: then it runs after them, and no reply of
    /// normal mode lands among Pub/Sub frames.
    pub fn waits_for_earlier_replies(&self, state: ClientState) -> bool {
        match self {
            Plan::Blocking { .. } | Plan::Subscribe { .. } => true,
            Plan::Transaction { step: TxStep::Multi | TxStep::Watch { .. }, .. } => {
                state.tx == Tx::None
            }
            Plan::Subscribed { action: PubSub::Classic { .. } | PubSub::Shard { .. }, .. } => true,
            _ => false,
        }
    }
}

/// The plan for one request (`args`, `args[0]` the command), given the client's state and the
/// proxy's policy. Fills `keys` with the positions of the request's keys.
pub fn classify<'t>(
    table: &'t CommandTable,
    policy: &Policy,
    state: ClientState,
    args: &(impl Args + ?Sized),
    keys: &mut Vec<usize>,
) -> Plan<'t> {
    let info = table.lookup(args);
    if state.subscribed && !(state.resp3 && runs_while_subscribed(info)) {
        let action = match info.map(|info| admitted(policy, state, info, args, keys)) {
            Some(Err(e)) => PubSub::Error(e.into_owned()),
            _ => in_subscribed_mode(info, args, keys),
        };
        return Plan::Subscribed { info, action };
    }
    let Some(info) = info else {
        return refuse(None, unknown_command(args));
    };
    if let Err(e) = admitted(policy, state, info, args, keys) {
        return refuse(Some(info), e);
    }
    if info.route == Route::Transaction {
        return transaction_step(info, state.tx, args, keys);
    }
    if state.tx != Tx::None {
        match in_transaction(info.route, state.tx == Tx::Multi) {
            InTransaction::Pinned => {
                return match slot_of(args, keys) {
                    Ok(slot) => Plan::Transaction { info, step: TxStep::Queue { slot } },
                    Err(e) => refuse(Some(info), e),
                };
            }
            InTransaction::Refused(why) => return refuse(Some(info), format!("ERR {why}")),
            InTransaction::AsUsual => {}
        }
    }
    match info.route {
        Route::Keyed => keyed(info, args, keys),
        Route::Split(split) => match slot_of(args, keys) {
            Ok(slot) => Plan::Slot { info, slot },
            Err(_) => Plan::Split { info, split },
        },
        Route::Blocking if blocks(info, args) => match slot_of(args, keys) {
            Ok(slot) => Plan::Blocking { info, slot: slot.unwrap_or(0) },
            Err(e) => refuse(Some(info), e),
        },
        Route::Blocking => keyed(info, args, keys),
        Route::Local(Local::Config) => config(info, policy, args),
        Route::Local(local) => Plan::Local { info, local },
        Route::AllMasters(_) if !policy.allow_flush && info.name.starts_with("flush") => {
            let name = info.name.to_ascii_uppercase();
            refuse(Some(info), format!("ERR redkeep: {name} is disabled on this proxy"))
        }
        Route::AllMasters(merge) => Plan::FanOut { info, merge },
        Route::AnyMaster => Plan::AnyMaster { info },
        Route::PubSub if info.name.ends_with("unsubscribe") => Plan::NothingToUnsubscribe { info },
        Route::PubSub => match in_subscribed_mode(Some(info), args, keys) {
            // Refused (CROSSSLOT): the client stays in normal mode, as with Redis.
            PubSub::Error(e) => refuse(Some(info), e),
            action => Plan::Subscribe { info, action },
        },
        Route::Unsupported(why) => {
            let name = String::from_utf8_lossy(args.arg(0)).to_ascii_uppercase();
            refuse(Some(info), format!("ERR redkeep proxy does not support '{name}': {why}"))
        }
        Route::Transaction => unreachable!("classified above"),
    }
}

/// Whether the request may run at all, in Redis' order: its arity (filling `keys`), then the
/// client's AUTH, then its user's rights, then the proxy's command policy. One pass over what
/// the lookup found; nothing is allocated unless the request is refused.
fn admitted(
    policy: &Policy,
    state: ClientState,
    info: &CommandInfo,
    args: &(impl Args + ?Sized),
    keys: &mut Vec<usize>,
) -> Result<(), Cow<'static, str>> {
    if let Err(e) = key_positions(info, args, keys) {
        return Err(format!("ERR {e}").into());
    }
    let users = &policy.security.users;
    let Some(user) = state.user else {
        // Only AUTH, HELLO (which must then authenticate), QUIT and RESET, which need no
        // rights.
        return Ok(acl::auth::gate(None, info)?);
    };
    let user = users.get(user);
    acl::check(user, info, args, keys).map_err(|denied| denied.message())?;
    acl::policy::refused(info, args, policy.security.allow, user.dangerous)
        .map_err(|refusal| refusal.message().into())
}

fn refuse<'t>(info: Option<&'t CommandInfo>, error: impl Into<Cow<'static, str>>) -> Plan<'t> {
    Plan::Refuse(Refusal { info, error: error.into(), aborts: true })
}

/// An error that leaves an open transaction as it is.
fn refuse_only<'t>(info: &'t CommandInfo, error: &'static str) -> Plan<'t> {
    Plan::Refuse(Refusal { info: Some(info), error: error.into(), aborts: false })
}

fn keyed<'t>(info: &'t CommandInfo, args: &(impl Args + ?Sized), keys: &[usize]) -> Plan<'t> {
    match slot_of(args, keys) {
        Ok(slot) => Plan::Slot { info, slot },
        Err(e) => refuse(Some(info), e),
    }
}

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// The one slot of the keys at `keys`; `None` without keys, an error when they span several.
pub fn slot_of(args: &(impl Args + ?Sized), keys: &[usize]) -> Result<Option<u16>, &'static str> {
    let mut slot = None;
    for &i in keys {
        let s = key_slot(args.arg(i));
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Err(CROSSSLOT),
            _ => {}
        }
    }
    Ok(slot)
}

/// MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis answers them in each state.
fn transaction_step<'t>(
    info: &'t CommandInfo,
    tx: Tx,
    args: &(impl Args + ?Sized),
    keys: &[usize],
) -> Plan<'t> {
    let slot = match slot_of(args, keys) {
        Ok(slot) => slot,
        Err(e) => return refuse(Some(info), e),
    };
    let multi = tx == Tx::Multi;
    let step = match info.name.as_str() {
        "multi" if multi => return refuse_only(info, "ERR MULTI calls can not be nested"),
        "multi" => TxStep::Multi,
        "exec" | "discard" if !multi => {
            let name = info.name.to_ascii_uppercase();
            return refuse(Some(info), format!("ERR {name} without MULTI"));
        }
        "exec" => TxStep::Exec,
        "discard" => TxStep::Discard,
        "watch" if multi => return refuse_only(info, "ERR WATCH inside MULTI is not allowed"),
        "watch" => TxStep::Watch { slot: slot.unwrap_or(0) },
        // Inside MULTI the node queues UNWATCH like any command.
        "unwatch" if !multi => TxStep::Unwatch,
        _ => TxStep::Queue { slot },
    };
    Plan::Transaction { info, step }
}

/// Settings that the proxy refuses to set on every node even when the command policy allows
/// CONFIG SET of them: a password or an ACL file set through the proxy would lock it out of its
/// own cluster, whose credentials it was started with.
const CREDENTIAL_SETTINGS: [&str; 4] = ["requirepass", "masterauth", "masteruser", "aclfile"];

/// CONFIG GET, SET and RESETSTAT; SET is refused by `--no-config-set`, and for the settings
/// that would lock the proxy out.
fn config<'t>(info: &'t CommandInfo, policy: &Policy, args: &(impl Args + ?Sized)) -> Plan<'t> {
    if info.name == "config|set" {
        if !policy.allow_config_set {
            return refuse(Some(info), "ERR redkeep: CONFIG SET is disabled on this proxy");
        }
        let credential = (2..args.count()).step_by(2).map(|i| args.arg(i)).find(|name| {
            CREDENTIAL_SETTINGS.iter().any(|s| name.eq_ignore_ascii_case(s.as_bytes()))
        });
        if let Some(name) = credential {
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            return refuse(
                Some(info),
                format!(
                    "ERR redkeep: CONFIG SET {name} is refused: set on every node through the \
                     proxy, it would lock the proxy out of its own cluster (every command would \
                     get NOAUTH); set it on the nodes themselves and give the proxy \
                     --node-user/--node-password"
                ),
            );
        }
    }
    Plan::Local { info, local: Local::Config }
}

/// A command in subscribed mode: only the Pub/Sub commands, PING, QUIT and RESET, as Redis
/// allows in RESP2 (with RESP3 only those of them that keep their subscribed-mode handling
/// come here; see [`runs_while_subscribed`]).
fn in_subscribed_mode<'t>(
    info: Option<&'t CommandInfo>,
    args: &(impl Args + ?Sized),
    keys: &mut Vec<usize>,
) -> PubSub<'t> {
    let Some(info) = info else {
        // Redis names an unknown command as such before it looks at the context.
        return PubSub::Error(unknown_command(args));
    };
    let name = info.name.as_str();
    match name {
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" => {
            PubSub::Classic { name, subscribe: !name.ends_with("unsubscribe") }
        }
        "ssubscribe" | "sunsubscribe" => {
            if let Err(e) = key_positions(info, args, keys) {
                return PubSub::Error(format!("ERR {e}"));
            }
            match slot_of(args, keys) {
                Ok(slot) => PubSub::Shard { name, subscribe: name == "ssubscribe", slot },
                Err(e) => PubSub::Error(e.into()),
            }
        }
        "ping" => PubSub::Ping,
        "quit" => PubSub::Quit,
        "reset" => PubSub::Reset,
        _ => {
            let shown = String::from_utf8_lossy(args.arg(0)).to_ascii_lowercase();
            PubSub::Error(format!(
                "ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / \
                 QUIT / RESET are allowed in this context"
            ))
        }
    }
}

/// With RESP3, Redis runs any command in subscribed mode but the Pub/Sub ones and QUIT/RESET,
/// which keep their subscribed-mode handling.
fn runs_while_subscribed(info: Option<&CommandInfo>) -> bool {
    info.is_some_and(|i| {
        i.route != Route::PubSub && !matches!(i.route, Route::Local(Local::Quit | Local::Reset))
    })
}

/// A command of the blocking route that blocks as sent: XREAD and XREADGROUP only with BLOCK
/// (before STREAMS).
fn blocks(info: &CommandInfo, args: &(impl Args + ?Sized)) -> bool {
    !info.name.starts_with("xread")
        || args.find(1, b"BLOCK").is_some_and(|b| args.find(1, b"STREAMS") > Some(b))
}

/// Redis' own wording for a command it does not know.
pub fn unknown_command(args: &(impl Args + ?Sized)) -> String {
    let name = String::from_utf8_lossy(args.arg(0));
    let mut text = format!("ERR unknown command '{name}', with args beginning with: ");
    for i in 1..args.count().min(10) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(args.arg(i))));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: ClientState =
        ClientState { tx: Tx::None, subscribed: false, resp3: false, user: Some(0) };
    const MULTI: ClientState = ClientState { tx: Tx::Multi, ..NORMAL };
    const WATCHING: ClientState = ClientState { tx: Tx::Watching, ..NORMAL };
    const SUBSCRIBED: ClientState = ClientState { subscribed: true, ..NORMAL };

    /// The plan of `line` (arguments split at spaces), without the command's entry, to compare
    /// briefly; and the keys found.
    fn plan(state: ClientState, policy: Policy, line: &str) -> (String, Vec<usize>) {
        let table = CommandTable::builtin();
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let mut keys = Vec::new();
        let plan = classify(&table, &policy, state, args.as_slice(), &mut keys);
        (brief(&plan), keys)
    }

    fn brief(plan: &Plan) -> String {
        match plan {
            Plan::Slot { slot, .. } => format!("slot {slot:?}"),
            Plan::Split { split, .. } => format!("split {split:?}"),
            Plan::FanOut { merge, .. } => format!("fan out {merge:?}"),
            Plan::AnyMaster { .. } => "any master".into(),
            Plan::Local { local, .. } => format!("local {local:?}"),
            Plan::Transaction { step, .. } => format!("tx {step:?}"),
            Plan::Blocking { slot, .. } => format!("blocking {slot}"),
            Plan::Subscribe { action, .. } => format!("subscribe {action:?}"),
            Plan::NothingToUnsubscribe { .. } => "nothing to unsubscribe".into(),
            Plan::Subscribed { action, .. } => format!("subscribed {action:?}"),
            Plan::Refuse(r) if r.aborts => format!("refused: {}", r.error),
            Plan::Refuse(r) => format!("refused, not aborting: {}", r.error),
        }
    }

    fn normal(line: &str) -> String {
        plan(NORMAL, Policy::default(), line).0
    }

    #[test]
    fn keyed_commands_go_to_their_slot_and_multi_key_ones_split_or_are_crossslot() {
        let slot = |key: &str| key_slot(key.as_bytes());
        assert_eq!(normal("GET a"), format!("slot Some({})", slot("a")));
        assert_eq!(plan(NORMAL, Policy::default(), "MSET a 1 b 2").1, [1, 3]);
        assert_eq!(normal("MGET {t}a {t}b"), format!("slot Some({})", slot("{t}a")));
        assert_eq!(normal("MGET a b"), "split Values");
        assert_eq!(normal("DEL a b"), "split Count");
        assert_eq!(normal("RENAME a b"), format!("refused: {CROSSSLOT}"));
        assert_eq!(normal("EVAL s 0"), "slot None", "no key: any master");
        assert_eq!(normal("DBSIZE"), "fan out Sum");
        assert_eq!(normal("PUBLISH c m"), "any master");
        assert_eq!(normal("PING"), "local Ping");
        assert_eq!(normal("CONFIG GET maxmemory"), "local Config");
    }

    #[test]
    fn refusals_say_why() {
        assert!(normal("NOSUCH a").starts_with("refused: ERR unknown command 'NOSUCH'"));
        assert_eq!(normal("GET"), "refused: ERR wrong number of arguments for 'get' command");
        assert!(normal("WAIT 1 0").contains("does not support 'WAIT': WAIT needs"));
        let no_flush = Policy { allow_flush: false, ..Policy::default() };
        assert_eq!(
            plan(NORMAL, no_flush.clone(), "FLUSHALL").0,
            "refused: ERR redkeep: FLUSHALL is disabled on this proxy"
        );
        assert_eq!(plan(NORMAL, no_flush, "DBSIZE").0, "fan out Sum");
    }

    #[test]
    fn config_set_of_credentials_is_refused_and_the_rest_allowed() {
        for line in [
            "CONFIG SET requirepass x",
            "CONFIG SET RequirePass x",
            "CONFIG SET maxmemory 1mb masterauth x",
            "CONFIG SET masteruser u",
            "CONFIG SET aclfile /tmp/a",
        ] {
            // Refused by the command policy first; with it allowed, still refused while the
            // proxy cannot authenticate to the nodes.
            let plan = normal(line);
            assert!(plan.contains("--allow config-"), "{line}: {plan}");
            use crate::acl::policy::Kind;
            let allowed = secured("", &[Kind::ConfigAuth, Kind::ConfigPaths]);
            let plan = self::plan(NORMAL, allowed, line).0;
            assert!(plan.contains("would lock the proxy out"), "{line}: {plan}");
        }
        assert_eq!(normal("CONFIG SET acllog-max-len 10"), "local Config");
        assert_eq!(normal("CONFIG SET maxmemory requirepass"), "local Config", "a value");
        let no_set = Policy { allow_config_set: false, ..Policy::default() };
        assert!(plan(NORMAL, no_set.clone(), "CONFIG SET maxmemory 1").0.contains("disabled"));
        assert_eq!(plan(NORMAL, no_set, "CONFIG GET maxmemory").0, "local Config");
    }

    #[test]
    fn blocking_commands_block_only_as_sent() {
        assert_eq!(normal("BLPOP {q}a {q}b 0"), format!("blocking {}", key_slot(b"{q}a")));
        assert_eq!(normal("BLPOP a b 0"), format!("refused: {CROSSSLOT}"));
        assert!(normal("XREAD BLOCK 0 STREAMS s 0").starts_with("blocking"));
        assert!(normal("XREAD COUNT 1 STREAMS s 0").starts_with("slot"), "no BLOCK: keyed");
    }

    #[test]
    fn transactions_step_as_redis_does_and_keyless_commands_queue() {
        let tx = |state, line| plan(state, Policy::default(), line).0;
        assert_eq!(tx(NORMAL, "MULTI"), "tx Multi");
        assert_eq!(tx(MULTI, "MULTI"), "refused, not aborting: ERR MULTI calls can not be nested");
        assert_eq!(tx(NORMAL, "EXEC"), "refused: ERR EXEC without MULTI");
        assert_eq!(tx(WATCHING, "DISCARD"), "refused: ERR DISCARD without MULTI");
        assert_eq!(tx(MULTI, "EXEC"), "tx Exec");
        assert_eq!(tx(MULTI, "DISCARD"), "tx Discard");
        assert_eq!(tx(NORMAL, "WATCH k"), format!("tx Watch {{ slot: {} }}", key_slot(b"k")));
        assert_eq!(tx(NORMAL, "WATCH a b"), format!("refused: {CROSSSLOT}"));
        assert!(tx(MULTI, "WATCH k").starts_with("refused, not aborting"));
        assert_eq!(tx(WATCHING, "UNWATCH"), "tx Unwatch");
        assert_eq!(tx(MULTI, "UNWATCH"), "tx Queue { slot: None }");
        // Keyless commands queue on the node like any other, answered by EXEC.
        for line in ["PING", "ECHO x", "TIME", "EVAL s 0"] {
            assert_eq!(tx(MULTI, line), "tx Queue { slot: None }", "{line}");
        }
        assert_eq!(tx(MULTI, "GET k"), format!("tx Queue {{ slot: Some({}) }}", key_slot(b"k")));
        assert_eq!(tx(MULTI, "MGET a b"), format!("refused: {CROSSSLOT}"));
        // What the proxy answers, or every master does, cannot be one node's queued command.
        for line in ["INFO", "CONFIG GET x", "SCAN 0", "CLIENT ID", "DBSIZE", "FLUSHALL", "KEYS *"]
        {
            assert!(tx(MULTI, line).starts_with("refused: ERR"), "{line}: {}", tx(MULTI, line));
        }
        assert!(tx(MULTI, "SUBSCRIBE c").starts_with("refused"));
        assert!(tx(MULTI, "CLUSTER INFO").starts_with("refused"));
        assert_eq!(tx(MULTI, "QUIT"), "local Quit");
        // While only watching, the proxy's own commands are its own.
        assert_eq!(tx(WATCHING, "CLIENT SETNAME n"), "local Client");
        assert_eq!(tx(WATCHING, "INFO"), "local Info");
    }

    #[test]
    fn subscribed_mode_allows_pubsub_ping_quit_reset_and_resp3_everything() {
        let sub = |state, line| plan(state, Policy::default(), line).0;
        assert_eq!(
            sub(NORMAL, "SUBSCRIBE a b"),
            "subscribe Classic { name: \"subscribe\", subscribe: true }"
        );
        assert_eq!(sub(NORMAL, "UNSUBSCRIBE a"), "nothing to unsubscribe");
        assert_eq!(sub(NORMAL, "SSUBSCRIBE a b"), format!("refused: {CROSSSLOT}"));
        assert_eq!(
            sub(SUBSCRIBED, "SUNSUBSCRIBE"),
            "subscribed Shard { name: \"sunsubscribe\", subscribe: false, slot: None }"
        );
        assert_eq!(sub(SUBSCRIBED, "PING"), "subscribed Ping");
        assert!(sub(SUBSCRIBED, "GET k").contains("only (P|S)SUBSCRIBE"));
        assert!(sub(SUBSCRIBED, "NOSUCH").contains("unknown command"));
        let resp3 = ClientState { resp3: true, ..SUBSCRIBED };
        assert!(sub(resp3, "GET k").starts_with("slot"));
        assert_eq!(sub(resp3, "RESET"), "subscribed Reset");
    }

    /// A policy with the users of a users file, and `--allow` kinds.
    fn secured(users: &str, allow: &[crate::acl::policy::Kind]) -> Policy {
        let mut config = crate::security::SecurityConfig {
            users: crate::acl::user::parse_users_file(users).unwrap(),
            ..Default::default()
        };
        for &kind in allow {
            config.allow = config.allow.with(kind);
        }
        let security = Security::new(&config, &CommandTable::builtin()).unwrap();
        Policy { security: Arc::new(security), ..Policy::default() }
    }

    const USERS: &str = "user app on >pw +@all -@dangerous ~app:* &news\n\
                         user admin on >root +@all allkeys allchannels\n";

    #[test]
    fn before_auth_only_auth_hello_quit_reset_and_redis_errors_come_first() {
        let policy = secured(USERS, &[]);
        let anonymous = ClientState { user: None, ..NORMAL };
        let run = |line| plan(anonymous, policy.clone(), line).0;
        assert_eq!(run("GET app:1"), "refused: NOAUTH Authentication required.");
        assert_eq!(run("PING"), "refused: NOAUTH Authentication required.");
        assert_eq!(run("AUTH pw"), "local Auth");
        assert_eq!(run("HELLO 3 AUTH app pw"), "local Hello");
        assert_eq!(run("QUIT"), "local Quit");
        assert_eq!(run("RESET"), "local Reset");
        assert!(run("NOSUCH").contains("unknown command"), "unknown first, as in Redis");
        assert!(run("GET").contains("wrong number of arguments"), "arity first too");
        let subscribed = ClientState { subscribed: true, ..anonymous };
        assert!(plan(subscribed, policy, "SUBSCRIBE x").0.contains("NOAUTH"));
    }

    #[test]
    fn rights_are_checked_in_the_classification() {
        let policy = secured(USERS, &[]);
        let id = policy.security.users.id_of("app");
        let app = ClientState { user: id, ..NORMAL };
        let run = |state, line| plan(state, policy.clone(), line).0;
        assert!(run(app, "GET app:1").starts_with("slot"));
        assert_eq!(
            run(app, "GET other"),
            "refused: NOPERM this user has no permissions to access one of the keys used as \
             arguments"
        );
        assert_eq!(
            run(app, "FLUSHALL"),
            "refused: NOPERM this user has no permissions to run the 'flushall' command"
        );
        assert!(run(app, "PUBLISH other m").contains("NOPERM"));
        assert_eq!(run(app, "PUBLISH news m"), "any master");
        let subscribed = ClientState { subscribed: true, ..app };
        assert!(run(subscribed, "SUBSCRIBE other").contains("subscribed Error(\"NOPERM"));
        let multi = ClientState { tx: Tx::Multi, ..app };
        assert!(run(multi, "GET other").starts_with("refused: NOPERM"), "aborts the MULTI");
        let admin = ClientState { user: policy.security.users.id_of("admin"), ..NORMAL };
        assert!(run(admin, "GET other").starts_with("slot"));
        assert_eq!(run(admin, "FLUSHALL"), "fan out AllOk");
    }

    #[test]
    fn the_command_policy_names_the_option_and_the_option_allows() {
        use crate::acl::policy::Kind;
        let refused = |line: &str| plan(NORMAL, Policy::default(), line).0;
        assert!(refused("DEBUG SLEEP 0").contains("--allow debug"));
        assert!(refused("CONFIG SET dir /tmp").contains("--allow config-paths"));
        assert!(refused("CLUSTER FORGET x").contains("--allow cluster-admin"));
        assert_eq!(refused("CONFIG SET maxmemory 1"), "local Config");
        let allowed = secured("", &[Kind::Debug, Kind::ConfigPaths]);
        let run = |line| plan(NORMAL, allowed.clone(), line).0;
        assert!(run("DEBUG SLEEP 0").contains("does not support 'DEBUG'"), "then routed");
        assert_eq!(run("CONFIG SET dir /tmp"), "local Config");
        let scripts = secured("user s on >p +@all -@dangerous +flushall allkeys\n", &[]);
        let s = ClientState { user: Some(0), ..NORMAL };
        assert!(plan(s, scripts.clone(), "SCRIPT FLUSH").0.contains("@dangerous"));
        assert!(plan(s, scripts, "FLUSHALL").0.contains("@dangerous"), "+flushall alone is not");
    }

    #[test]
    fn what_waits_for_earlier_replies() {
        let table = CommandTable::builtin();
        let waits = |state: ClientState, line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            classify(&table, &Policy::default(), state, args.as_slice(), &mut Vec::new())
                .waits_for_earlier_replies(state)
        };
        for line in ["BLPOP k 0", "MULTI", "WATCH k", "SUBSCRIBE c", "SSUBSCRIBE c"] {
            assert!(waits(NORMAL, line), "{line}");
        }
        for line in ["GET k", "XREAD STREAMS s 0", "UNSUBSCRIBE", "MGET a b", "PING", "EXEC"] {
            assert!(!waits(NORMAL, line), "{line}");
        }
        assert!(!waits(WATCHING, "MULTI"), "the transaction's connection is in use already");
        assert!(waits(SUBSCRIBED, "UNSUBSCRIBE"));
        assert!(!waits(SUBSCRIBED, "PING"));
    }
}
