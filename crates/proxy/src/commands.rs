//! The command table: for every command, where its keys are and how the proxy serves it.
//!
//! Key positions come from the cluster's own `COMMAND` reply (so new and module commands route
//! right); the reply of Debian's Redis 7.0.15 is built in as the fallback. Commands whose keys
//! move with their arguments (`numkeys`, `STREAMS`, `STORE`) are found by [`key_positions`]
//! with rules of our own. How each command is served ([`Route`]) is the proxy's policy and is
//! decided here, once, when the table is built. Pure: no I/O.

use crate::fasthash::FastMap;

use resp::{Limits, Value, parse_value};

/// The `COMMAND` reply of redis-server 7.0.15, used when the cluster's cannot be read.
const BUILTIN_COMMAND_REPLY: &[u8] = include_bytes!("../fixtures/command-redis-7.0.15.resp");

/// How the proxy serves a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the master owning the slot of its keys, which must all be in one slot.
    Keyed,
    /// Keys spread over slots are split into one command per slot, and the replies merged.
    Split(Split),
    /// Keyed, but may block: runs on a connection of its own.
    Blocking,
    /// Answered by the proxy itself.
    Local(Local),
    /// Sent to every master, replies merged.
    AllMasters(Merge),
    /// Keyless, and any master gives the same answer.
    AnyMaster,
    /// MULTI/EXEC/DISCARD/WATCH/UNWATCH: pinned to one backend connection.
    Transaction,
    /// SUBSCRIBE and friends: the client turns into a subscriber.
    PubSub,
    /// Refused with an error that names the command and says why.
    Unsupported(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// MGET: one array, in the order of the keys.
    Values,
    /// MSET: `+OK` when every part said so.
    Ok,
    /// DEL, UNLINK, EXISTS, TOUCH: the parts' integers added.
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Integers added (DBSIZE).
    Sum,
    /// The smallest integer (LASTSAVE: the oldest master's save).
    Min,
    /// `+OK` when every master said so (FLUSHALL, SCRIPT FLUSH, ...).
    AllOk,
    /// The first master's reply, when all succeeded (SCRIPT LOAD returns the same sha1).
    First,
    /// Arrays concatenated (KEYS).
    Concat,
    /// SCRIPT EXISTS: an array of 0/1, 1 only where every master has it.
    AllTrue,
    /// RANDOMKEY: some master's non-null reply, null only when every master has none.
    AnyValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Local {
    Ping,
    Echo,
    Quit,
    Hello,
    Select,
    Auth,
    Client,
    Command,
    Time,
    Reset,
    Info,
    Scan,
    Config,
    Readonly,
    /// CLUSTER ...: the proxy as a one-node cluster (see [`crate::cluster_view`]).
    Cluster,
    /// ROLE: the proxy answers as a master.
    Role,
    /// SLOWLOG, LATENCY, MEMORY reports: asked of the nodes, merged and labelled (see
    /// [`crate::reports`]).
    Reports,
    /// ACL WHOAMI and ACL CAT: the proxy's users, not the nodes'.
    Acl,
}

/// What a command does while the client has a transaction open (WATCH, or MULTI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTransaction {
    /// Sent on the transaction's connection (inside MULTI the node queues it).
    Pinned,
    /// Handled as outside a transaction.
    AsUsual,
    /// Refused: the proxy could not give Redis' answer for it there.
    Refused(&'static str),
}

/// The policy for a command (not MULTI/EXEC/DISCARD/WATCH/UNWATCH themselves) while a
/// transaction is open; `multi` when inside MULTI, not only WATCH.
///
/// Commands of keys go to the transaction's node. QUIT and RESET act at once, as in Redis.
/// Inside MULTI the node queues what it can answer itself; what only the proxy can answer
/// (its clients, its cursor, settings for every node, its INFO) and what runs on every master
/// (KEYS, DBSIZE, FLUSHALL, ...) is refused, since EXEC's reply is the one node's. A protocol change (HELLO) is refused while the transaction's connection, opened in
/// the old protocol, is in use. Pub/Sub would turn that connection into a subscriber.
pub fn in_transaction(route: Route, multi: bool) -> InTransaction {
    use InTransaction::*;
    match route {
        Route::Local(self::Local::Quit | self::Local::Reset) => AsUsual,
        Route::Local(self::Local::Hello) => Refused(
            "HELLO cannot change the protocol while a transaction is open; send it before WATCH \
             or MULTI, or after EXEC, DISCARD or UNWATCH",
        ),
        // What any node answers as the proxy would is queued by the node; what only the proxy
        // can answer (CLIENT, SCAN, CONFIG, INFO, and any new local command unless listed
        // here) is refused. So is AUTH: queued, it would log in the node's connection, not the
        // client.
        Route::Local(
            self::Local::Ping
            | self::Local::Echo
            | self::Local::Time
            | self::Local::Command
            | self::Local::Select
            | self::Local::Readonly,
        ) if multi => Pinned,
        Route::Local(_) if multi => Refused(
            "this command is answered by the proxy, not queued by a node; send it outside MULTI",
        ),
        Route::AllMasters(_) if multi => Refused(
            "this command runs on every master, so it cannot be queued in one node's \
             transaction; send it outside MULTI",
        ),
        Route::Local(_) | Route::Unsupported(_) => AsUsual,
        Route::PubSub => Refused("Pub/Sub commands are not supported inside a transaction"),
        Route::Keyed
        | Route::Split(_)
        | Route::Blocking
        | Route::AllMasters(_)
        | Route::AnyMaster
        | Route::Transaction => Pinned,
    }
}

/// A request's arguments, `arg(0)` being the command name. Implemented for slices and for the
/// session's parsed request, so that no vector of arguments is built per request.
pub trait Args {
    fn count(&self) -> usize;
    fn arg(&self, i: usize) -> &[u8];

    /// The position of the first argument equal to `word` (any case) at or after `from`.
    fn find(&self, from: usize, word: &[u8]) -> Option<usize> {
        (from..self.count()).find(|&i| self.arg(i).eq_ignore_ascii_case(word))
    }
}

impl Args for [&[u8]] {
    fn count(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        self[i]
    }
}

/// One command's entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandInfo {
    /// Lower case, `container|sub` for subcommands.
    pub name: String,
    /// Index into per-command statistics ([`CommandTable::name_of`] gives the name back).
    pub id: u16,
    /// Redis' arity: exact when positive, a minimum when negative; counts the name.
    pub arity: i32,
    pub first_key: i32,
    pub last_key: i32,
    pub key_step: i32,
    pub flags: Flags,
    pub route: Route,
    /// May change data, so `--write-ack replica` waits for a replica to confirm it: flagged
    /// `write`, or a keyed command that is not `readonly` (EVAL, EVALSHA and FCALL carry
    /// neither flag, and a script may write; EVAL_RO and FCALL_RO are read-only).
    pub writes: bool,
    /// ACL categories, key specs and the command policy's guard (see [`crate::acl`]).
    pub acl: crate::acl::CommandAcl,
}

/// The `COMMAND` flags the proxy acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub readonly: bool,
    pub write: bool,
    pub blocking: bool,
    pub movable_keys: bool,
    pub pubsub: bool,
    pub no_multi: bool,
    /// May run before AUTH, and needs no ACL right (AUTH, HELLO, QUIT, RESET).
    pub no_auth: bool,
}

/// Every command, by lower-case name (`container|sub` for subcommands).
#[derive(Debug, Clone)]
pub struct CommandTable {
    commands: FastMap<Box<[u8]>, CommandInfo>,
    /// Containers (`client`, `config`, ...) whose subcommands have entries of their own.
    containers: FastMap<Box<[u8]>, ()>,
    /// The raw `COMMAND` reply, given to clients that ask for `COMMAND`.
    pub raw_reply: Vec<u8>,
    /// Names by id.
    names: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TableError {
    #[error("the COMMAND reply is not valid RESP")]
    NotResp,
    #[error("the COMMAND reply is not an array of command descriptions")]
    NotArray,
    #[error("a COMMAND entry is malformed: {0}")]
    BadEntry(String),
}

impl CommandTable {
    /// The table of Redis 7.0.15, built in.
    pub fn builtin() -> CommandTable {
        CommandTable::from_reply(BUILTIN_COMMAND_REPLY).expect("the built-in COMMAND reply parses")
    }

    /// Builds the table from the raw bytes of a `COMMAND` reply.
    pub fn from_reply(raw: &[u8]) -> Result<CommandTable, TableError> {
        let limits = Limits::default();
        let (value, _) = parse_value(raw, &limits).ok().flatten().ok_or(TableError::NotResp)?;
        let entries = value.as_list().ok_or(TableError::NotArray)?;
        let mut table = CommandTable {
            commands: FastMap::default(),
            containers: FastMap::default(),
            raw_reply: raw.to_vec(),
            names: Vec::new(),
        };
        for entry in entries {
            let info = parse_entry(entry)?;
            if let Some(Value::Array(subs)) = entry.as_list().and_then(|e| e.get(9)) {
                if !subs.is_empty() {
                    table.containers.insert(info.name.as_bytes().into(), ());
                }
                for sub in subs {
                    table.add(parse_entry(sub)?);
                }
            }
            table.add(info);
        }
        Ok(table)
    }

    fn add(&mut self, mut info: CommandInfo) {
        info.id = self.names.len() as u16;
        self.names.push(info.name.clone());
        self.commands.insert(info.name.as_bytes().into(), info);
    }

    /// The entry of a lower-case name (`container|sub` for a subcommand).
    pub fn get(&self, name: &[u8]) -> Option<&CommandInfo> {
        self.commands.get(name)
    }

    /// Whether `name` (lower case) is a container of subcommands (CONFIG, CLIENT, ...).
    pub fn is_container(&self, name: &[u8]) -> bool {
        self.containers.contains_key(name)
    }

    /// Every entry, subcommands included, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &CommandInfo> {
        self.commands.values()
    }

    /// The name of command `id`.
    pub fn name_of(&self, id: usize) -> &str {
        self.names.get(id).map_or("?", String::as_str)
    }

    /// Commands without their subcommands, as `COMMAND COUNT` counts them.
    pub fn top_level_count(&self) -> usize {
        self.commands.keys().filter(|name| !name.contains(&b'|')).count()
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The entry for a request's arguments (`args[0]` is the name, `args[1]` the subcommand of
    /// a container), any case. `None` for a command Redis does not know.
    pub fn lookup(&self, args: &(impl Args + ?Sized)) -> Option<&CommandInfo> {
        if args.count() == 0 {
            return None;
        }
        let mut name = [0u8; 64];
        let len = lower(args.arg(0), &mut name)?.len();
        if self.containers.contains_key(&name[..len]) && args.count() > 1 {
            {
                let sub = args.arg(1);
                name[len] = b'|';
                let sub_len = lower(sub, &mut name[len + 1..])?.len();
                if let Some(info) = self.commands.get(&name[..len + 1 + sub_len]) {
                    return Some(info);
                }
            }
        }
        self.commands.get(&name[..len])
    }
}

/// `text` in lower case, written into `out`; `None` when it does not fit (no command is that
/// long).
fn lower<'a>(text: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
    let out = out.get_mut(..text.len())?;
    for (o, c) in out.iter_mut().zip(text) {
        *o = c.to_ascii_lowercase();
    }
    Some(out)
}

fn parse_entry(entry: &Value) -> Result<CommandInfo, TableError> {
    let bad = |what: &str| TableError::BadEntry(what.to_string());
    let fields = entry.as_list().ok_or_else(|| bad("not an array"))?;
    let name = fields.first().and_then(Value::as_bytes).ok_or_else(|| bad("no name"))?;
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let int = |i: usize| match fields.get(i) {
        Some(Value::Integer(n)) => i32::try_from(*n).map_err(|_| bad(&name)),
        _ => Err(bad(&name)),
    };
    let mut flags = Flags::default();
    for flag in fields.get(2).and_then(Value::as_list).unwrap_or(&[]) {
        match flag.as_bytes().unwrap_or(b"") {
            b"readonly" => flags.readonly = true,
            b"write" => flags.write = true,
            b"blocking" => flags.blocking = true,
            b"movablekeys" => flags.movable_keys = true,
            b"pubsub" => flags.pubsub = true,
            b"no_multi" => flags.no_multi = true,
            b"no_auth" => flags.no_auth = true,
            _ => {}
        }
    }
    let mut info = CommandInfo {
        arity: int(1)?,
        first_key: int(3)?,
        last_key: int(4)?,
        key_step: int(5)?,
        flags,
        route: Route::Keyed,
        writes: false,
        id: 0,
        acl: crate::acl::CommandAcl::from_entry(fields, &name),
        name,
    };
    info.route = route_of(&info);
    info.writes = flags.write
        || (!flags.readonly
            && !flags.pubsub
            && matches!(info.route, Route::Keyed | Route::Split(_) | Route::Blocking));
    Ok(info)
}

/// The proxy's policy for one command.
fn route_of(info: &CommandInfo) -> Route {
    use Route::*;
    let special = match info.name.as_str() {
        "mget" => Some(Split(self::Split::Values)),
        "mset" => Some(Split(self::Split::Ok)),
        "del" | "unlink" | "exists" | "touch" => Some(Split(self::Split::Count)),
        "ping" => Some(Local(self::Local::Ping)),
        "echo" => Some(Local(self::Local::Echo)),
        "quit" => Some(Local(self::Local::Quit)),
        "hello" => Some(Local(self::Local::Hello)),
        "select" => Some(Local(self::Local::Select)),
        "auth" => Some(Local(self::Local::Auth)),
        "command"
        | "command|count"
        | "command|info"
        | "command|docs"
        | "command|list"
        | "command|getkeys"
        | "command|getkeysandflags" => Some(Local(self::Local::Command)),
        "time" => Some(Local(self::Local::Time)),
        "reset" => Some(Local(self::Local::Reset)),
        "info" => Some(Local(self::Local::Info)),
        "scan" => Some(Local(self::Local::Scan)),
        "randomkey" => Some(AllMasters(Merge::AnyValue)),
        // ASKING too: the proxy follows ASK itself, so a client never needs it.
        "readonly" | "readwrite" | "asking" => Some(Local(self::Local::Readonly)),
        "acl|whoami" | "acl|cat" => Some(Local(self::Local::Acl)),
        "config|get" | "config|set" | "config|resetstat" => Some(Local(self::Local::Config)),
        "dbsize" => Some(AllMasters(Merge::Sum)),
        "lastsave" => Some(AllMasters(Merge::Min)),
        "role" => Some(Local(self::Local::Role)),
        "slowlog|get"
        | "slowlog|len"
        | "slowlog|reset"
        | "latency|latest"
        | "latency|history"
        | "latency|reset"
        | "latency|doctor"
        | "memory|stats"
        | "memory|doctor"
        | "memory|malloc-stats"
        | "memory|purge" => Some(Local(self::Local::Reports)),
        "slowlog|help" | "latency|help" | "memory|help" => Some(AnyMaster),
        "latency|graph" | "latency|histogram" => Some(Unsupported(
            "it shows one node's figures; run it on a node, or use LATENCY LATEST / HISTORY",
        )),
        "debug" => Some(Unsupported(
            "DEBUG acts on one node's internals; run it on that node (redis-cli -h NODE -p PORT)",
        )),
        "monitor" => Some(Unsupported(
            "the proxy does not stream the commands it serves; run MONITOR on a node, or see \
             the per-command figures on the proxy's stats page",
        )),
        "keys" => Some(AllMasters(Merge::Concat)),
        "flushall" | "flushdb" | "script|flush" | "function|flush" | "function|delete"
        | "function|restore" => Some(AllMasters(Merge::AllOk)),
        "script|load" | "function|load" | "function|list" | "function|dump" => {
            Some(AllMasters(Merge::First))
        }
        "script|exists" => Some(AllMasters(Merge::AllTrue)),
        "multi" | "exec" | "discard" | "watch" | "unwatch" => Some(Transaction),
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ssubscribe"
        | "sunsubscribe" => Some(PubSub),
        "publish" | "pubsub|channels" | "pubsub|numsub" | "pubsub|numpat" => Some(AnyMaster),
        "lolwut" => Some(AnyMaster),
        "wait" => Some(Unsupported("WAIT needs the connection that wrote; use --write-ack")),
        "migrate" => Some(Unsupported("MIGRATE moves keys between nodes; run it on a node")),
        "client" | "client|setname" | "client|getname" | "client|id" | "client|info"
        | "client|list" | "client|setinfo" | "client|no-evict" | "client|no-touch"
        | "client|reply" | "client|kill" | "client|pause" | "client|unpause" | "client|unblock" => {
            Some(Local(self::Local::Client))
        }
        _ => None,
    };
    if let Some(route) = special {
        return route;
    }
    if info.name == "cluster" || info.name.starts_with("cluster|") {
        return Local(self::Local::Cluster);
    }
    if info.name == "module" || info.name.starts_with("module|") {
        return Unsupported(
            "modules are loaded on each node; run MODULE on every node (the proxy routes a \
             module's keyed commands by the cluster's COMMAND table)",
        );
    }
    if has_keys(info) {
        if info.flags.blocking { Blocking } else { Keyed }
    } else {
        Unsupported("it has no key to route by")
    }
}

fn has_keys(info: &CommandInfo) -> bool {
    info.first_key > 0 || info.flags.movable_keys
}

/// Why the keys of a request cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("wrong number of arguments for '{0}' command")]
    Arity(String),
    #[error("syntax error")]
    Syntax,
    #[error("numkeys should be greater than 0")]
    NumKeys,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("at least 1 input key is needed for '{0}' command")]
    NoInputKey(String),
    #[error("the proxy cannot find the keys of '{0}'")]
    Unknown(String),
}

/// Fills `out` with the argument positions of the keys of `args` (a request, `args[0]` the
/// command). Arity is checked first, as Redis does.
pub fn key_positions(
    info: &CommandInfo,
    args: &(impl Args + ?Sized),
    out: &mut Vec<usize>,
) -> Result<(), KeyError> {
    out.clear();
    let argc = args.count() as i32;
    if (info.arity > 0 && argc != info.arity) || (info.arity < 0 && argc < -info.arity) {
        return Err(KeyError::Arity(info.name.clone()));
    }
    if info.flags.movable_keys {
        return movable_key_positions(info, args, out);
    }
    // Keys in groups to the end (MSET's key-value pairs): an incomplete group is Redis' arity
    // error (a split MSET would otherwise read past the last argument).
    if info.first_key > 0 && info.last_key == -1 && info.key_step > 1 {
        let after_first = argc - info.first_key;
        if after_first % info.key_step != 0 {
            return Err(KeyError::Arity(info.name.clone()));
        }
    }
    legacy_key_positions(info, argc as usize, out);
    Ok(())
}

/// first/last/step from `COMMAND`: last -1 means the last argument, -2 the one before.
fn legacy_key_positions(info: &CommandInfo, argc: usize, out: &mut Vec<usize>) {
    if info.first_key <= 0 {
        return;
    }
    let first = info.first_key as usize;
    let last =
        if info.last_key < 0 { argc as i64 + info.last_key as i64 } else { info.last_key as i64 };
    let step = info.key_step.max(1) as usize;
    let mut i = first;
    while (i as i64) <= last && i < argc {
        out.push(i);
        i += step;
    }
}

fn movable_key_positions(
    info: &CommandInfo,
    args: &(impl Args + ?Sized),
    out: &mut Vec<usize>,
) -> Result<(), KeyError> {
    let name = info.name.as_str();
    match name {
        // EVAL script numkeys key... arg...
        "eval" | "eval_ro" | "evalsha" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            script_keys(args, out)
        }
        // ZUNION numkeys key...; SINTERCARD/ZINTERCARD numkeys key...; LMPOP/ZMPOP numkeys key...
        "zunion" | "zinter" | "zdiff" => set_operation_keys(name, args, 1, out),
        "zintercard" | "sintercard" | "lmpop" | "zmpop" => numkeys_at(args, 1, 2, 1, out),
        // ZUNIONSTORE dest numkeys key...; BLMPOP/BZMPOP timeout numkeys key...
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            out.push(1);
            set_operation_keys(name, args, 2, out)
        }
        "blmpop" | "bzmpop" => numkeys_at(args, 2, 3, 1, out),
        // XREAD [COUNT n] [BLOCK ms] STREAMS key... id...
        "xread" | "xreadgroup" => {
            let streams = args.find(1, b"STREAMS").ok_or(KeyError::Syntax)?;
            let rest = args.count() - streams - 1;
            if rest == 0 || !rest.is_multiple_of(2) {
                return Err(KeyError::Syntax);
            }
            out.extend(streams + 1..streams + 1 + rest / 2);
            Ok(())
        }
        // SORT key ... [STORE dest]; SORT_RO has no STORE.
        "sort" | "sort_ro" => {
            out.push(1);
            let mut i = 2;
            while i < args.count() {
                if args.arg(i).eq_ignore_ascii_case(b"STORE") && i + 1 < args.count() {
                    out.push(i + 1);
                    i += 1;
                }
                i += 1;
            }
            Ok(())
        }
        // GEORADIUS key ... [STORE key] [STOREDIST key]
        "georadius" | "georadiusbymember" => {
            out.push(1);
            let mut i = 2;
            while i + 1 < args.count() {
                let a = args.arg(i);
                if a.eq_ignore_ascii_case(b"STORE") || a.eq_ignore_ascii_case(b"STOREDIST") {
                    out.push(i + 1);
                    i += 1;
                }
                i += 1;
            }
            Ok(())
        }
        _ => Err(KeyError::Unknown(info.name.clone())),
    }
}

/// EVAL script numkeys key... arg... (and EVALSHA, FCALL). A numkeys the node would refuse
/// (not a number, negative, more than the arguments) finds no key: the request then goes to
/// any master, which refuses it in its own words and order (FCALL looks up the function
/// first) without running anything, or queues it inside MULTI as Redis does.
fn script_keys(args: &(impl Args + ?Sized), out: &mut Vec<usize>) -> Result<(), KeyError> {
    let count = std::str::from_utf8(args.arg(2)).ok().and_then(|s| s.parse::<usize>().ok());
    if let Some(count) = count.filter(|&count| count <= args.count() - 3) {
        out.extend(3..3 + count);
    }
    Ok(())
}

/// ZUNION/ZINTER/ZDIFF numkeys key... (and their STORE forms, numkeys at `count_at`), with
/// Redis' errors.
fn set_operation_keys(
    name: &str,
    args: &(impl Args + ?Sized),
    count_at: usize,
    out: &mut Vec<usize>,
) -> Result<(), KeyError> {
    let count: i64 = std::str::from_utf8(args.arg(count_at))
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(KeyError::NotInteger)?;
    if count < 1 {
        return Err(KeyError::NoInputKey(name.to_string()));
    }
    let first = count_at + 1;
    if count as u64 > (args.count() - first) as u64 {
        return Err(KeyError::Syntax);
    }
    out.extend(first..first + count as usize);
    Ok(())
}

/// Keys announced by a count at `count_at`, starting at `first`, every `step` (SINTERCARD,
/// LMPOP, ...): a count that is not a number above 0 is Redis' "numkeys" error for these.
fn numkeys_at(
    args: &(impl Args + ?Sized),
    count_at: usize,
    first: usize,
    step: usize,
    out: &mut Vec<usize>,
) -> Result<(), KeyError> {
    if count_at >= args.count() {
        return Err(KeyError::Syntax);
    }
    let count: usize = std::str::from_utf8(args.arg(count_at))
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(KeyError::NumKeys)?;
    if count == 0 {
        return Err(KeyError::NumKeys);
    }
    let end = first + count * step;
    if end > args.count() {
        return Err(KeyError::Syntax);
    }
    out.extend((first..end).step_by(step));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(table: &CommandTable, line: &str) -> Result<Vec<String>, KeyError> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let info = table.lookup(args.as_slice()).expect("known command");
        let mut out = Vec::new();
        key_positions(info, args.as_slice(), &mut out)?;
        Ok(out.iter().map(|&i| String::from_utf8_lossy(args[i]).into_owned()).collect())
    }

    #[test]
    fn the_builtin_table_knows_every_command_of_redis_7_0() {
        let table = CommandTable::builtin();
        assert!(table.len() > 300, "commands and subcommands: {}", table.len());
        let get = table.lookup(&[&b"GeT"[..], b"k"][..]).unwrap();
        assert_eq!((get.arity, get.first_key, get.last_key, get.key_step), (2, 1, 1, 1));
        assert!(get.flags.readonly && !get.flags.write);
        assert_eq!(get.route, Route::Keyed);
        assert!(table.lookup(&[&b"nosuchcommand"[..]][..]).is_none());
    }

    #[test]
    fn fixed_key_positions_follow_first_last_step() {
        let table = CommandTable::builtin();
        assert_eq!(keys(&table, "SET k v").unwrap(), ["k"]);
        assert_eq!(keys(&table, "MSET a 1 b 2").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "MGET a b c").unwrap(), ["a", "b", "c"]);
        assert_eq!(keys(&table, "RENAME a b").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "BLPOP a b 0").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "OBJECT ENCODING k").unwrap(), ["k"]);
        assert_eq!(keys(&table, "SET k"), Err(KeyError::Arity("set".into())));
        assert_eq!(keys(&table, "MSET a 1 b 2").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "MSET a 1 b"), Err(KeyError::Arity("mset".into())));
        assert_eq!(keys(&table, "MSETNX a"), Err(KeyError::Arity("msetnx".into())));
    }

    #[test]
    fn movable_keys_are_found_exactly() {
        let table = CommandTable::builtin();
        assert_eq!(keys(&table, "EVAL s 2 a b x y").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "EVALSHA s 0 x").unwrap(), Vec::<String>::new());
        assert_eq!(keys(&table, "FCALL_RO f 1 a x").unwrap(), ["a"]);
        // The node refuses these in its own words.
        assert_eq!(keys(&table, "EVAL s 3 a b").unwrap(), Vec::<String>::new());
        assert_eq!(keys(&table, "EVAL s k1").unwrap(), Vec::<String>::new());
        assert_eq!(keys(&table, "FCALL f -1").unwrap(), Vec::<String>::new());
        assert_eq!(keys(&table, "ZUNION x a"), Err(KeyError::NotInteger));
        assert_eq!(
            keys(&table, "ZINTERSTORE d 0 a"),
            Err(KeyError::NoInputKey("zinterstore".into()))
        );
        assert_eq!(keys(&table, "XREAD COUNT 2 STREAMS s1 s2 0 0").unwrap(), ["s1", "s2"]);
        assert_eq!(keys(&table, "XREADGROUP GROUP g c STREAMS s >").unwrap(), ["s"]);
        assert_eq!(keys(&table, "XREAD STREAMS s1 s2 0"), Err(KeyError::Syntax));
        assert_eq!(keys(&table, "ZUNION 2 a b WEIGHTS 1 2").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "ZUNIONSTORE d 2 a b").unwrap(), ["d", "a", "b"]);
        assert_eq!(keys(&table, "SORT k BY w STORE d").unwrap(), ["k", "d"]);
        assert_eq!(keys(&table, "SORT_RO k ALPHA").unwrap(), ["k"]);
        assert_eq!(keys(&table, "LMPOP 2 a b LEFT").unwrap(), ["a", "b"]);
        assert_eq!(keys(&table, "BZMPOP 0 1 a MIN").unwrap(), ["a"]);
        assert_eq!(keys(&table, "LMPOP 0 a LEFT"), Err(KeyError::NumKeys));
        assert_eq!(keys(&table, "GEORADIUS k 0 0 1 km STORE d").unwrap(), ["k", "d"]);
    }

    #[test]
    fn routes_follow_the_proxy_policy() {
        let table = CommandTable::builtin();
        let route = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            table.lookup(args.as_slice()).unwrap().route
        };
        assert_eq!(route("MGET a"), Route::Split(Split::Values));
        assert_eq!(route("DEL a"), Route::Split(Split::Count));
        assert_eq!(route("BLPOP a 0"), Route::Blocking);
        assert_eq!(route("BRPOPLPUSH a b 0"), Route::Blocking);
        assert_eq!(route("XREAD BLOCK 0 STREAMS s 0"), Route::Blocking); // without BLOCK: keyed
        assert_eq!(route("CLIENT SETNAME x"), Route::Local(Local::Client));
        assert_eq!(route("SCRIPT LOAD x"), Route::AllMasters(Merge::First));
        assert_eq!(route("DBSIZE"), Route::AllMasters(Merge::Sum));
        assert!(matches!(route("MIGRATE h 1 k 0 0"), Route::Unsupported(_)));
        assert_eq!(route("LASTSAVE"), Route::AllMasters(Merge::Min));
        assert_eq!(route("SLOWLOG GET 5"), Route::Local(Local::Reports));
        assert_eq!(route("CLUSTER SLOTS"), Route::Local(Local::Cluster));
        assert!(matches!(route("MONITOR"), Route::Unsupported(_)));
        assert!(matches!(route("MODULE LIST"), Route::Unsupported(_)));
        assert!(matches!(route("DEBUG SLEEP 0"), Route::Unsupported(_)));
        assert_eq!(route("MSETNX a 1 b 2"), Route::Keyed);
    }

    #[test]
    fn writes_and_scripts_are_writes_and_reads_are_not() {
        let table = CommandTable::builtin();
        let writes = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            table.lookup(args.as_slice()).unwrap().writes
        };
        for line in ["SET k v", "MSET a 1", "DEL a", "UNLINK a", "INCR k", "BLMOVE a b LEFT LEFT 0"]
        {
            assert!(writes(line), "{line}");
        }
        for line in ["EVAL s 1 k", "EVALSHA s 0", "FCALL f 1 k", "FLUSHALL"] {
            assert!(writes(line), "{line}");
        }
        for line in ["GET k", "MGET a", "EXISTS a", "EVAL_RO s 1 k", "FCALL_RO f 1 k"] {
            assert!(!writes(line), "{line}");
        }
        for line in ["PUBLISH c m", "SPUBLISH c m", "WATCH k", "CONFIG SET a b", "PING", "EXEC"] {
            assert!(!writes(line), "{line}");
        }
    }

    #[test]
    fn inside_a_transaction_keys_go_to_its_node_and_proxy_answers_are_kept_apart() {
        let table = CommandTable::builtin();
        let policy = |line: &str, multi: bool| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            in_transaction(table.lookup(args.as_slice()).unwrap().route, multi)
        };
        use InTransaction::*;
        for multi in [false, true] {
            assert_eq!(policy("GET k", multi), Pinned);
            assert_eq!(policy("MGET a b", multi), Pinned);
            assert_eq!(policy("QUIT", multi), AsUsual);
            assert_eq!(policy("RESET", multi), AsUsual);
            assert!(matches!(policy("HELLO 3", multi), Refused(_)));
            assert!(matches!(policy("SUBSCRIBE c", multi), Refused(_)));
            assert_eq!(policy("MIGRATE h 1 k 0 0", multi), AsUsual, "refused as usual");
        }
        assert_eq!(policy("CLIENT SETNAME n", false), AsUsual);
        assert!(matches!(policy("CLIENT SETNAME n", true), Refused(_)));
        assert!(matches!(policy("SCAN 0", true), Refused(_)));
        assert_eq!(policy("PING", false), AsUsual);
        assert_eq!(policy("PING", true), Pinned, "queued by the node, answered by EXEC");
    }
}
