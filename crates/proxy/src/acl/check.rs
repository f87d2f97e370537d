//! The rights check of one request, as Redis 7's `ACLCheckAllPerm`: the command, then each
//! key with the access its key spec gives, then each channel. Runs after the command was
//! found and its arity checked (Redis answers an unknown command or a wrong arity first).
//! No allocation: the request's arguments are read in place.

use super::keys::{self, Access};
use super::user::User;
use super::{Channels, Variable, glob};
use crate::commands::{Args, CommandInfo};

/// Why a request was refused; [`Denied::message`] is Redis' `-NOPERM` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied<'a> {
    /// The command (`container|sub` for a subcommand), by name.
    Command(&'a str),
    Key,
    Channel,
}

impl Denied<'_> {
    /// The error line without its `-` and CRLF, as Redis 7.0 words it.
    pub fn message(&self) -> String {
        match self {
            Denied::Command(name) => {
                format!("NOPERM this user has no permissions to run the '{name}' command")
            }
            Denied::Key => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .to_string()
            }
            Denied::Channel => "NOPERM this user has no permissions to access one of the \
                                channels used as arguments"
                .to_string(),
        }
    }
}

/// Whether `user` may run this request. `routed_keys` are the key positions the proxy found
/// for routing: used when the key specs cannot place the keys for these arguments, with the
/// access of all the command's specs together.
pub fn check<'a>(
    user: &User,
    info: &'a CommandInfo,
    args: &(impl Args + ?Sized),
    routed_keys: &[usize],
) -> Result<(), Denied<'a>> {
    // AUTH, HELLO, QUIT and RESET: anyone may, as in Redis.
    if info.flags.no_auth {
        return Ok(());
    }
    if !user.may_run(info.id) {
        return Err(Denied::Command(&info.name));
    }
    if !user.all_keys && !keys_allowed(user, info, args, routed_keys) {
        return Err(Denied::Key);
    }
    if !user.all_channels && !channels_allowed(user, info.acl.channels, args) {
        return Err(Denied::Channel);
    }
    Ok(())
}

fn keys_allowed(
    user: &User,
    info: &CommandInfo,
    args: &(impl Args + ?Sized),
    routed_keys: &[usize],
) -> bool {
    let allowed = |pos: usize, access: Access| key_allowed(user, args.arg(pos), access);
    match info.acl.variable {
        Variable::Set => allowed(1, set_access(args)),
        Variable::Bitfield => allowed(1, bitfield_access(args)),
        Variable::Sort => {
            let read = Access { read: true, write: false };
            let write = Access { read: false, write: true };
            allowed(1, read) && sort_store(args).is_none_or(|dest| allowed(dest, write))
        }
        Variable::None => {
            let specs = &info.acl.key_specs;
            let mut ok = true;
            let exact = keys::specs_are_exact(specs)
                && keys::for_each_key(specs, args, |pos, access| {
                    ok = allowed(pos, access);
                    ok
                })
                .is_ok();
            if exact {
                return ok;
            }
            let access = keys::union_access(specs);
            routed_keys.iter().all(|&pos| allowed(pos, access))
        }
    }
}

/// Redis' `ACLSelectorCheckKey`: some pattern granting at least `needed` matches the key. A
/// key its spec neither reads nor writes (EXISTS, TYPE: `RO` alone) passes any matching
/// pattern.
fn key_allowed(user: &User, key: &[u8], needed: Access) -> bool {
    user.keys.iter().any(|p| {
        (p.access.read || !needed.read)
            && (p.access.write || !needed.write)
            && glob::matches(&p.pattern, key)
    })
}

/// SET writes its key; with a `GET` argument it also reads it.
fn set_access(args: &(impl Args + ?Sized)) -> Access {
    let get = (3..args.count()).any(|i| args.arg(i).eq_ignore_ascii_case(b"GET"));
    Access { read: get, write: true }
}

/// BITFIELD reads only when every operation is a GET (Redis' `bitfieldGetKeys`: anything
/// it cannot read as GET/OVERFLOW counts as a write).
fn bitfield_access(args: &(impl Args + ?Sized)) -> Access {
    let mut i = 2;
    while i < args.count() {
        let rest = args.count() - i - 1;
        let op = args.arg(i);
        if op.eq_ignore_ascii_case(b"GET") && rest >= 2 {
            i += 3;
        } else if op.eq_ignore_ascii_case(b"OVERFLOW") && rest >= 1 {
            i += 2;
        } else {
            return Access { read: true, write: true };
        }
    }
    Access { read: true, write: false }
}

/// The destination of SORT's last STORE, as Redis' `sortGetKeys` finds it (skipping the
/// arguments of LIMIT, GET and BY).
fn sort_store(args: &(impl Args + ?Sized)) -> Option<usize> {
    let mut dest = None;
    let mut i = 2;
    while i < args.count() {
        let arg = args.arg(i);
        if arg.eq_ignore_ascii_case(b"LIMIT") {
            i += 2;
        } else if arg.eq_ignore_ascii_case(b"GET") || arg.eq_ignore_ascii_case(b"BY") {
            i += 1;
        } else if arg.eq_ignore_ascii_case(b"STORE") && i + 1 < args.count() {
            dest = Some(i + 1);
        }
        i += 1;
    }
    dest
}

/// Redis' `ACLCheckChannelAgainstList`: a channel must match one of the user's patterns; a
/// PSUBSCRIBE pattern must be one of them, literally.
fn channels_allowed(user: &User, channels: Channels, args: &(impl Args + ?Sized)) -> bool {
    let literal = |channel: &[u8]| user.channels.iter().any(|p| &p[..] == channel);
    let matching = |channel: &[u8]| user.channels.iter().any(|p| glob::matches(p, channel));
    let range = 1..args.count();
    match channels {
        Channels::None => true,
        Channels::First => args.count() < 2 || matching(args.arg(1)),
        Channels::All => range.into_iter().all(|i| matching(args.arg(i))),
        Channels::AllPatterns => range.into_iter().all(|i| literal(args.arg(i))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::user::{Rule, parse_rule};
    use crate::commands::{CommandTable, key_positions};

    fn user(table: &CommandTable, rules: &str) -> User {
        let rules: Vec<Rule> = rules.split_whitespace().map(|r| parse_rule(r).unwrap()).collect();
        User::compile("u", &rules, table).unwrap()
    }

    fn run(table: &CommandTable, user: &User, line: &str) -> Result<(), String> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let info = table.lookup(args.as_slice()).unwrap();
        let mut routed = Vec::new();
        key_positions(info, args.as_slice(), &mut routed).unwrap();
        check(user, info, args.as_slice(), &routed).map_err(|d| d.message())
    }

    const NO_KEY: &str =
        "NOPERM this user has no permissions to access one of the keys used as arguments";

    #[test]
    fn commands_are_refused_with_redis_text() {
        let t = CommandTable::builtin();
        let u = user(&t, "on nopass +get +config|get allkeys");
        assert_eq!(run(&t, &u, "GET k"), Ok(()));
        assert_eq!(
            run(&t, &u, "SET k v"),
            Err("NOPERM this user has no permissions to run the 'set' command".into())
        );
        assert_eq!(
            run(&t, &u, "CONFIG SET a b"),
            Err("NOPERM this user has no permissions to run the 'config|set' command".into())
        );
        assert_eq!(run(&t, &u, "AUTH a b"), Ok(()), "AUTH needs no right");
    }

    #[test]
    fn keys_need_the_access_their_spec_gives() {
        let t = CommandTable::builtin();
        let u = user(&t, "+@all ~app:* %R~r:* %W~w:*");
        assert_eq!(run(&t, &u, "GET app:1"), Ok(()));
        assert_eq!(run(&t, &u, "GET other"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "GET r:1"), Ok(()));
        assert_eq!(run(&t, &u, "GET w:1"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "SET w:1 v"), Ok(()), "SET without GET only writes");
        assert_eq!(run(&t, &u, "SET w:1 v GET"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "SET r:1 v"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "EXISTS r:1"), Ok(()), "EXISTS neither reads nor writes");
        assert_eq!(run(&t, &u, "RENAME r:1 w:1"), Err(NO_KEY.into()), "RENAME deletes r:1");
        assert_eq!(run(&t, &u, "COPY r:1 w:1"), Ok(()));
        assert_eq!(run(&t, &u, "MSET app:1 a w:2 b"), Ok(()));
        assert_eq!(run(&t, &u, "MSET app:1 a r:2 b"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "EVAL s 1 app:1"), Ok(()));
        assert_eq!(run(&t, &u, "EVAL s 2 app:1 r:1"), Err(NO_KEY.into()), "a script may write");
        assert_eq!(run(&t, &u, "EVAL s 1 zz"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "SORT r:1 STORE w:1"), Ok(()));
        assert_eq!(run(&t, &u, "SORT r:1 STORE r:2"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "BITFIELD r:1 GET u8 0"), Ok(()));
        assert_eq!(run(&t, &u, "BITFIELD r:1 SET u8 0 1"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &u, "XREAD STREAMS r:1 app:1 0 0"), Ok(()));
        assert_eq!(run(&t, &u, "PING"), Ok(()), "no keys, nothing to check");
        let none = user(&t, "+@all");
        assert_eq!(run(&t, &none, "GET k"), Err(NO_KEY.into()));
        assert_eq!(run(&t, &none, "EVAL s 0"), Ok(()));
    }

    #[test]
    fn channels_match_patterns_and_psubscribe_needs_the_pattern_itself() {
        let t = CommandTable::builtin();
        let u = user(&t, "+@all allkeys &news.* &exact");
        let denied =
            Err("NOPERM this user has no permissions to access one of the channels used as \
                 arguments"
                .to_string());
        assert_eq!(run(&t, &u, "PUBLISH news.1 m"), Ok(()));
        assert_eq!(run(&t, &u, "PUBLISH other m"), denied);
        assert_eq!(run(&t, &u, "SUBSCRIBE news.a exact"), Ok(()));
        assert_eq!(run(&t, &u, "SUBSCRIBE news.a other"), denied);
        assert_eq!(run(&t, &u, "PSUBSCRIBE news.*"), Ok(()));
        assert_eq!(run(&t, &u, "PSUBSCRIBE news.a*"), denied, "a narrower pattern is not listed");
        assert_eq!(run(&t, &u, "UNSUBSCRIBE other"), Ok(()));
    }
}
