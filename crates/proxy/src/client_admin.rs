//! `CLIENT KILL / UNBLOCK / REPLY / NO-EVICT / PAUSE` for the proxy's own clients: the
//! arguments read as Redis 7.0 reads them, and the decisions made on data. Pure; the session
//! and the client registry act on what these return.

/// `CLIENT KILL`'s filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KillFilter {
    pub id: Option<u64>,
    /// The client's address (`ip:port`), as CLIENT LIST shows it.
    pub addr: Option<String>,
    /// The proxy's address the client connected to.
    pub laddr: Option<String>,
    pub user: Option<String>,
    /// `TYPE normal` (false) or `pubsub` (true); `master`/`replica` match no proxy client.
    pub subscribed: Option<bool>,
    pub no_type_matches: bool,
    /// Leave the calling client alone (the new form's default).
    pub skipme: bool,
    /// `CLIENT KILL addr:port`: `+OK`, or an error when no client has that address.
    pub old_form: bool,
}

/// A client as the filter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub id: u64,
    pub addr: &'a str,
    pub laddr: &'a str,
    /// The user it authenticated as (`default` before AUTH).
    pub user: &'a str,
    pub subscribed: bool,
}

/// Reads `CLIENT KILL ...` (`args[0]` is CLIENT).
pub fn parse_kill(args: &[&[u8]]) -> Result<KillFilter, String> {
    let text = |i: usize| String::from_utf8_lossy(args[i]).into_owned();
    if args.len() == 3 {
        return Ok(KillFilter { addr: Some(text(2)), old_form: true, ..KillFilter::default() });
    }
    let mut filter = KillFilter { skipme: true, ..KillFilter::default() };
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return Err("ERR syntax error".into());
    }
    for i in (2..args.len()).step_by(2) {
        let value = text(i + 1);
        match text(i).to_ascii_lowercase().as_str() {
            "id" => match value.parse::<u64>() {
                Ok(id) if id > 0 => filter.id = Some(id),
                _ => return Err("ERR client-id should be greater than 0".into()),
            },
            "addr" => filter.addr = Some(value),
            "laddr" => filter.laddr = Some(value),
            "user" => filter.user = Some(value),
            "type" => match value.to_ascii_lowercase().as_str() {
                "normal" => filter.subscribed = Some(false),
                "pubsub" => filter.subscribed = Some(true),
                "master" | "replica" | "slave" => filter.no_type_matches = true,
                _ => return Err(format!("ERR Unknown client type '{value}'")),
            },
            "skipme" => match value.to_ascii_lowercase().as_str() {
                "yes" => filter.skipme = true,
                "no" => filter.skipme = false,
                _ => return Err("ERR syntax error".into()),
            },
            _ => return Err("ERR syntax error".into()),
        }
    }
    Ok(filter)
}

impl KillFilter {
    /// Does the filter pick `client`, when `me` asks?
    pub fn matches(&self, client: &Candidate, me: u64) -> bool {
        !(self.no_type_matches
            || (self.skipme && client.id == me)
            || self.id.is_some_and(|id| id != client.id)
            || self.addr.as_deref().is_some_and(|a| a != client.addr)
            || self.laddr.as_deref().is_some_and(|a| a != client.laddr)
            || self.user.as_deref().is_some_and(|u| u != client.user)
            || self.subscribed.is_some_and(|s| s != client.subscribed))
    }
}

/// `CLIENT REPLY ON|OFF|SKIP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    /// No reply to anything, this command included, until `CLIENT REPLY ON`.
    Off,
    /// No reply to this command and the next one.
    Skip,
}

pub fn parse_reply(arg: &[u8]) -> Result<ReplyMode, String> {
    match arg.to_ascii_lowercase().as_slice() {
        b"on" => Ok(ReplyMode::On),
        b"off" => Ok(ReplyMode::Off),
        b"skip" => Ok(ReplyMode::Skip),
        _ => Err("ERR syntax error".into()),
    }
}

/// `CLIENT NO-EVICT on|off`, `CLIENT NO-TOUCH on|off`: only the argument is checked, since the
/// proxy evicts no client and touches no key itself.
pub fn check_on_off(arg: &[u8]) -> Result<(), String> {
    match arg.to_ascii_lowercase().as_slice() {
        b"on" | b"off" => Ok(()),
        _ => Err("ERR syntax error".into()),
    }
}

/// `CLIENT UNBLOCK id [TIMEOUT|ERROR]`: the proxy client and whether it gets an error.
pub fn parse_unblock(args: &[&[u8]]) -> Result<(u64, bool), String> {
    let id = std::str::from_utf8(args[2])
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or("ERR value is not an integer or out of range")?;
    let error = match args.get(3).map(|a| a.to_ascii_lowercase()) {
        None => false,
        Some(mode) if mode == b"timeout" => false,
        Some(mode) if mode == b"error" => true,
        Some(_) => return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into()),
    };
    if args.len() > 4 {
        return Err("ERR syntax error".into());
    }
    Ok((id, error))
}

/// The name the proxy gives, on the node, the connection a client's blocking commands run
/// on: so that `CLIENT UNBLOCK` of that client finds it there.
pub fn blocking_connection_name(client_id: u64) -> String {
    format!("redkeep-blocking-{client_id}")
}

/// The node's client id of the connection named `name` in a node's `CLIENT LIST`.
pub fn node_client_id(client_list: &str, name: &str) -> Option<u64> {
    client_list.lines().find_map(|line| {
        let field =
            |key: &str| line.split(' ').find_map(|f| f.strip_prefix(key)?.strip_prefix('='));
        (field("name") == Some(name)).then(|| field("id")?.parse().ok()).flatten()
    })
}

/// `CLIENT PAUSE timeout [WRITE|ALL]`: the timeout in milliseconds, and whether every
/// command is held (`ALL`, the default) or only those that may write.
pub fn parse_pause(args: &[&[u8]]) -> Result<(u64, bool), String> {
    let timeout = std::str::from_utf8(args[2])
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or("ERR timeout is not an integer or out of range")?;
    if timeout < 0 {
        return Err("ERR timeout is negative".into());
    }
    let all = match args.get(3).map(|a| a.to_ascii_lowercase()) {
        None => true,
        Some(mode) if mode == b"all" => true,
        Some(mode) if mode == b"write" => false,
        Some(_) => return Err("ERR CLIENT PAUSE mode must be WRITE or ALL".into()),
    };
    if args.len() > 4 {
        return Err("ERR syntax error".into());
    }
    Ok((timeout as u64, all))
}

/// Whether a pause holds a command (`None`: one the proxy could not read, as a syntax error):
/// `ALL` holds everything, CLIENT UNPAUSE included, as Redis 7 does; `WRITE` what may write
/// or replicate (`writes`: the command's flag, or an EXEC whose transaction queued a write).
pub fn held_by_pause(all: bool, command: Option<(&str, bool)>) -> bool {
    all || command.is_some_and(|(name, writes)| {
        writes
            || matches!(
                name,
                "eval" | "evalsha" | "fcall" | "publish" | "spublish" | "pfcount" | "wait"
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill(line: &str) -> Result<KillFilter, String> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        parse_kill(&args)
    }

    fn client(id: u64, addr: &'static str, subscribed: bool) -> Candidate<'static> {
        Candidate { id, addr, laddr: "127.0.0.1:7010", user: "default", subscribed }
    }

    #[test]
    fn kill_filters_pick_the_clients_redis_would() {
        let a = client(1, "127.0.0.1:5001", false);
        let b = client(2, "127.0.0.1:5002", true);
        let old = kill("CLIENT KILL 127.0.0.1:5002").unwrap();
        assert!(old.old_form && !old.matches(&a, 9) && old.matches(&b, 9));
        assert!(old.matches(&b, 2), "the old form kills the caller too");
        let by_id = kill("CLIENT KILL ID 1").unwrap();
        assert!(by_id.matches(&a, 9) && !by_id.matches(&b, 9));
        assert!(!by_id.matches(&a, 1), "SKIPME yes by default");
        assert!(kill("CLIENT KILL ID 1 SKIPME no").unwrap().matches(&a, 1));
        let pubsub = kill("CLIENT KILL TYPE pubsub").unwrap();
        assert!(!pubsub.matches(&a, 9) && pubsub.matches(&b, 9));
        assert!(!kill("CLIENT KILL TYPE master").unwrap().matches(&a, 9));
        assert!(kill("CLIENT KILL USER default").unwrap().matches(&a, 9));
        assert!(!kill("CLIENT KILL USER alice").unwrap().matches(&a, 9));
        let alice = Candidate { user: "alice", ..a.clone() };
        assert!(kill("CLIENT KILL USER alice").unwrap().matches(&alice, 9));
        assert!(!kill("CLIENT KILL USER default").unwrap().matches(&alice, 9));
        assert!(
            kill("CLIENT KILL LADDR 127.0.0.1:7010 ADDR 127.0.0.1:5001").unwrap().matches(&a, 9)
        );
        assert_eq!(kill("CLIENT KILL ID x"), Err("ERR client-id should be greater than 0".into()));
        assert_eq!(kill("CLIENT KILL TYPE x"), Err("ERR Unknown client type 'x'".into()));
        assert_eq!(kill("CLIENT KILL ID 1 SKIPME"), Err("ERR syntax error".into()));
        assert_eq!(kill("CLIENT KILL FOO bar"), Err("ERR syntax error".into()));
    }

    #[test]
    fn reply_unblock_and_on_off_arguments() {
        assert_eq!(parse_reply(b"Off"), Ok(ReplyMode::Off));
        assert_eq!(parse_reply(b"skip"), Ok(ReplyMode::Skip));
        assert!(parse_reply(b"maybe").is_err());
        assert!(check_on_off(b"ON").is_ok() && check_on_off(b"yes").is_err());
        let unblock = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            parse_unblock(&args)
        };
        assert_eq!(unblock("CLIENT UNBLOCK 7"), Ok((7, false)));
        assert_eq!(unblock("CLIENT UNBLOCK 7 ERROR"), Ok((7, true)));
        assert!(unblock("CLIENT UNBLOCK 7 NOW").unwrap_err().contains("TIMEOUT or ERROR"));
        assert!(unblock("CLIENT UNBLOCK x").is_err());
    }

    #[test]
    fn pause_arguments_and_what_a_pause_holds() {
        let pause = |line: &str| {
            let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            parse_pause(&args)
        };
        assert_eq!(pause("CLIENT PAUSE 100"), Ok((100, true)));
        assert_eq!(pause("CLIENT PAUSE 100 write"), Ok((100, false)));
        assert_eq!(pause("CLIENT PAUSE 100 ALL"), Ok((100, true)));
        assert_eq!(
            pause("CLIENT PAUSE x"),
            Err("ERR timeout is not an integer or out of range".into())
        );
        assert_eq!(pause("CLIENT PAUSE -1"), Err("ERR timeout is negative".into()));
        assert!(pause("CLIENT PAUSE 1 foo").unwrap_err().contains("WRITE or ALL"));
        assert!(held_by_pause(true, Some(("get", false))) && held_by_pause(true, None));
        assert!(!held_by_pause(false, Some(("get", false))) && !held_by_pause(false, None));
        assert!(held_by_pause(false, Some(("set", true))));
        assert!(held_by_pause(false, Some(("exec", true))));
        assert!(!held_by_pause(false, Some(("exec", false))), "a read-only transaction");
        assert!(held_by_pause(false, Some(("publish", false))));
    }

    #[test]
    fn the_blocking_connection_is_found_by_name_in_the_nodes_client_list() {
        let list = "id=3 addr=127.0.0.1:40000 laddr=127.0.0.1:7001 fd=8 name= age=1\n\
                    id=12 addr=127.0.0.1:40002 laddr=127.0.0.1:7001 fd=9 name=redkeep-blocking-5 age=1\n\
                    id=13 addr=127.0.0.1:40003 laddr=127.0.0.1:7001 fd=9 name=redkeep-blocking-55 age=1\n";
        assert_eq!(node_client_id(list, &blocking_connection_name(5)), Some(12));
        assert_eq!(node_client_id(list, &blocking_connection_name(55)), Some(13));
        assert_eq!(node_client_id(list, &blocking_connection_name(6)), None);
    }
}
