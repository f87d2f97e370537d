//! ACL users: Redis 7's `ACL SETUSER` rule grammar, the `--users FILE` format (Redis' ACL
//! file: `user NAME rule...` per line) and `--user NAME:PASSWORD`, compiled against the
//! command table into one bit per command.
//!
//! Rules apply in order, as in Redis (`-@all +get` and `+get -@all` differ). A new user is
//! `off`, with no password, no commands, no keys and no channels (Redis 7's
//! `acl-pubsub-default resetchannels`). Not supported, with an error saying so: selectors
//! `(...)` and first-argument rules (`+select|0`).

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use super::keys::Access;
use super::{CATEGORIES, Categories};
use crate::commands::CommandTable;

/// A SHA-256 of a password, as Redis' ACL stores it; its `Debug` shows nothing of it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PasswordHash(pub [u8; 32]);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

pub fn hash_password(password: &[u8]) -> PasswordHash {
    PasswordHash(Sha256::digest(password).into())
}

/// One parsed rule, before it is compiled against a command table. Passwords are kept only
/// as their hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    On,
    Off,
    NoPass,
    ResetPass,
    AddPassword(PasswordHash),
    RemovePassword(PasswordHash),
    AllKeys,
    ResetKeys,
    Keys { pattern: Box<[u8]>, access: Access },
    AllChannels,
    ResetChannels,
    Channel(Box<[u8]>),
    AllCommands,
    NoCommands,
    Category { allow: bool, bit: u32 },
    Command { allow: bool, name: String },
    Reset,
}

/// A rule that cannot be used, with the rule's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Redis' own wording, so the message reads as `ACL SETUSER`'s would.
        write!(f, "Error in ACL SETUSER modifier '{}': {}", self.rule, self.reason)
    }
}

impl std::error::Error for RuleError {}

fn rule_error(rule: &str, reason: &str) -> RuleError {
    RuleError { rule: rule.to_string(), reason: reason.to_string() }
}

const UNKNOWN_NAME: &str = "Unknown command or category name in ACL";
const SYNTAX: &str = "Syntax error";

/// Parses one rule of `ACL SETUSER`'s grammar.
pub fn parse_rule(text: &str) -> Result<Rule, RuleError> {
    let err = |reason: &str| rule_error(text, reason);
    let lower = text.to_ascii_lowercase();
    let rule = match lower.as_str() {
        "on" => Rule::On,
        "off" => Rule::Off,
        "nopass" => Rule::NoPass,
        "resetpass" => Rule::ResetPass,
        "allkeys" => Rule::AllKeys,
        "resetkeys" => Rule::ResetKeys,
        "allchannels" => Rule::AllChannels,
        "resetchannels" => Rule::ResetChannels,
        "allcommands" => Rule::AllCommands,
        "nocommands" => Rule::NoCommands,
        "reset" => Rule::Reset,
        _ => return parse_prefixed(text),
    };
    if text.is_empty() {
        return Err(err(SYNTAX));
    }
    Ok(rule)
}

fn parse_prefixed(text: &str) -> Result<Rule, RuleError> {
    let err = |reason: &str| rule_error(text, reason);
    let (first, rest) = text.split_at(text.chars().next().map_or(0, char::len_utf8));
    match first {
        ">" => Ok(Rule::AddPassword(hash_password(rest.as_bytes()))),
        "<" => Ok(Rule::RemovePassword(hash_password(rest.as_bytes()))),
        "#" => parse_hash(rest).map(Rule::AddPassword).ok_or_else(|| err(BAD_HASH)),
        "!" => parse_hash(rest).map(Rule::RemovePassword).ok_or_else(|| err(BAD_HASH)),
        "~" if rest == "*" => Ok(Rule::AllKeys),
        "~" => key_pattern(rest, Access { read: true, write: true }).map_err(err),
        "%" => {
            let (perms, pattern) = rest.split_once('~').ok_or_else(|| err(SYNTAX))?;
            let mut access = Access::default();
            for c in perms.chars() {
                match c.to_ascii_uppercase() {
                    'R' if !access.read => access.read = true,
                    'W' if !access.write => access.write = true,
                    _ => return Err(err(SYNTAX)),
                }
            }
            if !access.read && !access.write {
                return Err(err(SYNTAX));
            }
            key_pattern(pattern, access).map_err(err)
        }
        "&" if rest == "*" => Ok(Rule::AllChannels),
        "&" if rest.is_empty() || rest.contains(' ') => Err(err(SYNTAX)),
        "&" => Ok(Rule::Channel(rest.as_bytes().into())),
        "+" | "-" => command_rule(first == "+", rest).map_err(err),
        "(" => Err(err("selectors are not supported by the proxy's ACL")),
        _ => Err(err(SYNTAX)),
    }
}

const BAD_HASH: &str = "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters";

fn key_pattern(pattern: &str, access: Access) -> Result<Rule, &'static str> {
    if pattern.is_empty() || pattern.contains(' ') {
        return Err(SYNTAX);
    }
    Ok(Rule::Keys { pattern: pattern.as_bytes().into(), access })
}

fn command_rule(allow: bool, name: &str) -> Result<Rule, &'static str> {
    if let Some(category) = name.strip_prefix('@') {
        if category.eq_ignore_ascii_case("all") {
            return Ok(if allow { Rule::AllCommands } else { Rule::NoCommands });
        }
        let bit = Categories::bit(category.as_bytes()).ok_or(UNKNOWN_NAME)?;
        return Ok(Rule::Category { allow, bit });
    }
    if name.is_empty() {
        return Err(UNKNOWN_NAME);
    }
    Ok(Rule::Command { allow, name: name.to_ascii_lowercase() })
}

/// 64 lower-case hex digits, as Redis requires of `#<hash>`.
fn parse_hash(hex: &str) -> Option<PasswordHash> {
    let digits = hex.as_bytes();
    if digits.len() != 64 || !digits.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(PasswordHash(out))
}

/// A user as configured: a name and its rules in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// `--user NAME:PASSWORD`: a user with every right (`on >PASSWORD allcommands allkeys
/// allchannels`).
pub fn parse_user_option(text: &str) -> Result<UserSpec, String> {
    let (name, password) = text.split_once(':').ok_or_else(|| {
        format!("--user {text:?}: expected NAME:PASSWORD (use --users FILE for narrower rights)")
    })?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("--user: the name {name:?} must be non-empty, without spaces"));
    }
    if password.is_empty() {
        return Err(format!("--user {name}: the password is empty"));
    }
    Ok(UserSpec {
        name: name.to_string(),
        rules: vec![
            Rule::On,
            Rule::AddPassword(hash_password(password.as_bytes())),
            Rule::AllCommands,
            Rule::AllKeys,
            Rule::AllChannels,
        ],
    })
}

/// A line of a users file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersError {
    /// 1-based; 0 when the problem is not on one line (a duplicate from `--user`).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for UsersError {}

/// A users file: `user NAME rule...` per line, as Redis' ACL file; blank lines and lines
/// starting with `#` are skipped.
pub fn parse_users_file(text: &str) -> Result<Vec<UserSpec>, UsersError> {
    let mut specs: Vec<UserSpec> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let fail = |message: String| UsersError { line: line_no, message };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => continue,
            [first, ..] if first.starts_with('#') => continue,
            ["user", name, rules @ ..] => {
                if specs.iter().any(|s| s.name == *name) {
                    return Err(fail(format!("duplicate user '{name}'")));
                }
                let rules = rules
                    .iter()
                    .map(|r| parse_rule(r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(format!("user '{name}': {e}")))?;
                specs.push(UserSpec { name: name.to_string(), rules });
            }
            ["user"] => return Err(fail("'user' needs a name".to_string())),
            [other, ..] => {
                return Err(fail(format!(
                    "expected 'user NAME rule...' (as in a Redis ACL file), found '{other}'"
                )));
            }
        }
    }
    Ok(specs)
}

/// The index of a user in [`Users`].
pub type UserId = u16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Box<[u8]>,
    pub access: Access,
}

/// A user compiled against a command table.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    passwords: Vec<PasswordHash>,
    /// One bit per command table id.
    commands: Box<[u64]>,
    pub all_keys: bool,
    pub keys: Vec<KeyPattern>,
    pub all_channels: bool,
    pub channels: Vec<Box<[u8]>>,
    /// Holds every command of `@dangerous`: the command policy lets such a user flush.
    pub dangerous: bool,
}

impl fmt::Debug for User {
    // Without the password hashes: a debug log must not carry them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .field("nopass", &self.nopass)
            .field("passwords", &self.passwords.len())
            .field("all_keys", &self.all_keys)
            .field("all_channels", &self.all_channels)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A user as `ACL SETUSER name` with no rules makes it.
    fn new(name: &str, table: &CommandTable) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            commands: vec![0; table.len().div_ceil(64)].into_boxed_slice(),
            all_keys: false,
            keys: Vec::new(),
            all_channels: false,
            channels: Vec::new(),
            dangerous: false,
        }
    }

    /// The user a proxy without users serves everyone as: Redis' default user out of the box
    /// (`on nopass ~* &* +@all`).
    pub fn unrestricted(table: &CommandTable) -> User {
        let rules = [Rule::On, Rule::NoPass, Rule::AllKeys, Rule::AllChannels, Rule::AllCommands];
        User::compile("default", &rules, table).expect("the default rules compile")
    }

    pub fn compile(name: &str, rules: &[Rule], table: &CommandTable) -> Result<User, RuleError> {
        let mut user = User::new(name, table);
        for rule in rules {
            user.apply(rule, table)?;
        }
        user.dangerous = table
            .iter()
            .filter(|c| c.acl.categories.contains(Categories::bit(b"dangerous").unwrap_or(0)))
            .all(|c| user.may_run(c.id));
        Ok(user)
    }

    fn apply(&mut self, rule: &Rule, table: &CommandTable) -> Result<(), RuleError> {
        match rule {
            Rule::On => self.enabled = true,
            Rule::Off => self.enabled = false,
            Rule::NoPass => {
                self.nopass = true;
                self.passwords.clear();
            }
            Rule::ResetPass => {
                self.nopass = false;
                self.passwords.clear();
            }
            Rule::AddPassword(hash) => {
                self.nopass = false;
                if !self.passwords.contains(hash) {
                    self.passwords.push(*hash);
                }
            }
            Rule::RemovePassword(hash) => {
                let before = self.passwords.len();
                self.passwords.retain(|h| h != hash);
                if self.passwords.len() == before {
                    return Err(rule_error(
                        "<...",
                        "The password you are trying to remove from the user does not exist",
                    ));
                }
            }
            Rule::AllKeys => {
                self.all_keys = true;
                self.keys.clear();
            }
            Rule::ResetKeys => {
                self.all_keys = false;
                self.keys.clear();
            }
            Rule::Keys { pattern, access } => {
                if self.all_keys {
                    return Err(rule_error(
                        &format!("~{}", String::from_utf8_lossy(pattern)),
                        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not \
                         valid and does not have any effect. Try 'resetkeys' to start with an \
                         empty list of patterns",
                    ));
                }
                match self.keys.iter_mut().find(|k| k.pattern == *pattern) {
                    Some(existing) => existing.access = existing.access.union(*access),
                    None => {
                        self.keys.push(KeyPattern { pattern: pattern.clone(), access: *access })
                    }
                }
            }
            Rule::AllChannels => {
                self.all_channels = true;
                self.channels.clear();
            }
            Rule::ResetChannels => {
                self.all_channels = false;
                self.channels.clear();
            }
            Rule::Channel(pattern) => {
                if self.all_channels {
                    return Err(rule_error(
                        &format!("&{}", String::from_utf8_lossy(pattern)),
                        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not \
                         valid and does not have any effect. Try 'resetchannels' to start with \
                         an empty list of channels",
                    ));
                }
                if !self.channels.contains(pattern) {
                    self.channels.push(pattern.clone());
                }
            }
            Rule::AllCommands => self.commands.fill(u64::MAX),
            Rule::NoCommands => self.commands.fill(0),
            Rule::Category { allow, bit } => {
                for info in table.iter().filter(|c| c.acl.categories.contains(*bit)) {
                    self.set_with_subcommands(table, &info.name, *allow);
                }
            }
            Rule::Command { allow, name } => self.command_rule(table, name, *allow)?,
            Rule::Reset => {
                let fresh = User::new(&self.name, table);
                *self = fresh;
            }
        }
        Ok(())
    }

    fn command_rule(
        &mut self,
        table: &CommandTable,
        name: &str,
        allow: bool,
    ) -> Result<(), RuleError> {
        let sign = if allow { '+' } else { '-' };
        let unknown = || rule_error(&format!("{sign}{name}"), UNKNOWN_NAME);
        match name.split_once('|') {
            Some((container, _)) => {
                if table.get(container.as_bytes()).is_none() {
                    return Err(unknown());
                }
                if !table.is_container(container.as_bytes()) {
                    return Err(rule_error(
                        &format!("{sign}{name}"),
                        "first-argument rules (as +select|0) are not supported by the proxy's ACL",
                    ));
                }
                let sub = table.get(name.as_bytes()).ok_or_else(unknown)?;
                self.set(sub.id, allow);
            }
            None => {
                if table.get(name.as_bytes()).is_none() {
                    return Err(unknown());
                }
                self.set_with_subcommands(table, name, allow);
            }
        }
        Ok(())
    }

    /// A command and, for a container (CONFIG, CLIENT, ...), each of its subcommands.
    fn set_with_subcommands(&mut self, table: &CommandTable, name: &str, allow: bool) {
        if let Some(info) = table.get(name.as_bytes()) {
            self.set(info.id, allow);
        }
        if table.is_container(name.as_bytes()) {
            let prefix = format!("{name}|");
            let subs: Vec<u16> =
                table.iter().filter(|c| c.name.starts_with(&prefix)).map(|c| c.id).collect();
            for id in subs {
                self.set(id, allow);
            }
        }
    }

    fn set(&mut self, id: u16, allow: bool) {
        let (word, bit) = (usize::from(id) / 64, id % 64);
        if let Some(w) = self.commands.get_mut(word) {
            if allow {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }

    /// Whether the user may run the command table entry `id`.
    pub fn may_run(&self, id: u16) -> bool {
        let (word, bit) = (usize::from(id) / 64, id % 64);
        self.commands.get(word).is_some_and(|w| w >> bit & 1 == 1)
    }

    /// Whether `password` opens this user (any, with `nopass`); compares every stored hash in
    /// full, so the time taken says nothing about how close a guess was.
    pub fn password_matches(&self, password: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let given = hash_password(password);
        let mut found = false;
        for stored in &self.passwords {
            let diff = stored.0.iter().zip(&given.0).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= diff == 0;
        }
        found
    }
}

/// The proxy's users. Without any configured, everyone is Redis' out-of-the-box default user
/// (no AUTH, every right), as a Redis without `requirepass`.
#[derive(Debug, Clone)]
pub struct Users {
    users: Vec<User>,
    by_name: HashMap<String, UserId>,
    /// The user a new client starts as: `default` when it exists, is on and has `nopass`;
    /// otherwise a client must AUTH first.
    initial: Option<UserId>,
}

impl Users {
    /// No users configured: no AUTH, every right.
    pub fn unrestricted(table: &CommandTable) -> Users {
        Users::from_users(vec![User::unrestricted(table)])
    }

    /// Compiles the users of `--user` and `--users` against the command table. With none,
    /// [`Users::unrestricted`].
    pub fn compile(specs: &[UserSpec], table: &CommandTable) -> Result<Users, UsersError> {
        if specs.is_empty() {
            return Ok(Users::unrestricted(table));
        }
        let mut users = Vec::new();
        for spec in specs {
            if users.iter().any(|u: &User| u.name == spec.name) {
                return Err(UsersError {
                    line: 0,
                    message: format!("user '{}' is defined twice", spec.name),
                });
            }
            let user = User::compile(&spec.name, &spec.rules, table).map_err(|e| UsersError {
                line: 0,
                message: format!("user '{}': {e}", spec.name),
            })?;
            users.push(user);
        }
        if users.len() > usize::from(UserId::MAX) {
            return Err(UsersError { line: 0, message: "too many users".to_string() });
        }
        Ok(Users::from_users(users))
    }

    fn from_users(users: Vec<User>) -> Users {
        let by_name =
            users.iter().enumerate().map(|(i, u)| (u.name.clone(), i as UserId)).collect();
        let mut out = Users { users, by_name, initial: None };
        out.initial = out.id_of("default").filter(|&id| {
            let user = out.get(id);
            user.enabled && user.nopass
        });
        out
    }

    pub fn id_of(&self, name: &str) -> Option<UserId> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, id: UserId) -> &User {
        &self.users[usize::from(id)]
    }

    /// The user a new client starts as, `None` when it must AUTH.
    pub fn initial(&self) -> Option<UserId> {
        self.initial
    }

    /// Whether clients must authenticate (some user needs a password).
    pub fn auth_required(&self) -> bool {
        self.initial.is_none()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|u| u.name.as_str())
    }
}

/// The names `ACL CAT` lists.
pub fn category_names() -> &'static [&'static str] {
    &CATEGORIES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CommandTable {
        CommandTable::builtin()
    }

    fn user(rules: &str) -> User {
        let rules: Vec<Rule> = rules.split_whitespace().map(|r| parse_rule(r).unwrap()).collect();
        User::compile("u", &rules, &table()).unwrap()
    }

    fn may(user: &User, command: &str) -> bool {
        let t = table();
        let args: Vec<&[u8]> = command.split(' ').map(str::as_bytes).collect();
        user.may_run(t.lookup(args.as_slice()).unwrap().id)
    }

    #[test]
    fn rules_apply_in_order() {
        let u = user("on nopass +@all -flushall");
        assert!(may(&u, "GET k") && !may(&u, "FLUSHALL"));
        let u = user("on nopass -flushall +@all");
        assert!(may(&u, "FLUSHALL"));
        let u = user("+@read -@all +get");
        assert!(may(&u, "GET k") && !may(&u, "MGET k"));
    }

    #[test]
    fn containers_and_subcommands() {
        let u = user("+config");
        assert!(may(&u, "CONFIG GET x") && may(&u, "CONFIG SET a b"));
        let u = user("+config -config|set");
        assert!(may(&u, "CONFIG GET x") && !may(&u, "CONFIG SET a b"));
        let u = user("+config|get");
        assert!(may(&u, "CONFIG GET x") && !may(&u, "CONFIG SET a b"));
    }

    #[test]
    fn categories_hold_their_commands() {
        let u = user("+@string");
        assert!(may(&u, "GET k") && may(&u, "SET k v") && !may(&u, "HGET h f"));
        assert!(!user("+@all -@dangerous").dangerous);
        assert!(user("+@all").dangerous);
        assert!(!user("+@read").dangerous);
    }

    #[test]
    fn bad_rules_are_named_with_redis_reasons() {
        let err = |r: &str| {
            let rules: Result<Vec<Rule>, _> = r.split(' ').map(parse_rule).collect();
            match rules {
                Err(e) => e.to_string(),
                Ok(rules) => User::compile("u", &rules, &table()).unwrap_err().to_string(),
            }
        };
        assert_eq!(err("bogus"), "Error in ACL SETUSER modifier 'bogus': Syntax error");
        assert_eq!(
            err("+nosuch"),
            "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
        );
        assert!(err("+config|nosuch").contains("Unknown command"));
        assert!(err("+@nosuch").contains("Unknown command or category"));
        assert!(err("#abc").contains("exactly 64 characters"));
        assert!(err("+select|0").contains("first-argument rules"));
        assert!(err("allkeys ~a*").contains("resetkeys"));
        assert!(err("%X~a").contains("Syntax error"));
        assert!(err("(~a +get)").contains("selectors"));
    }

    #[test]
    fn passwords_by_cleartext_or_hash() {
        let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"; // "password"
        let u = user(&format!("on #{hash}"));
        assert!(u.password_matches(b"password") && !u.password_matches(b"Password"));
        let u = user(">one >two <one");
        assert!(!u.password_matches(b"one") && u.password_matches(b"two"));
        assert!(user("nopass").password_matches(b"anything"));
        assert!(!user(">x resetpass").password_matches(b"x"));
    }

    #[test]
    fn key_and_channel_patterns() {
        let u = user("~a* %R~r* %W~w* %RW~b &news.*");
        assert_eq!(u.keys.len(), 4);
        assert_eq!(u.keys[1].access, Access { read: true, write: false });
        assert_eq!(u.keys[3].access, Access { read: true, write: true });
        assert!(!u.all_keys);
        assert_eq!(u.channels, vec![Box::from(&b"news.*"[..])]);
        assert!(user("~*").all_keys && user("allchannels").all_channels);
        assert!(!user("allkeys resetkeys").all_keys);
    }

    #[test]
    fn users_file_lines_and_errors() {
        let text = "# proxy users\n\nuser alice on >pw +@read ~a:*\nuser default on nopass +ping\n";
        let specs = parse_users_file(text).unwrap();
        assert_eq!(specs.len(), 2);
        let users = Users::compile(&specs, &table()).unwrap();
        assert_eq!(users.initial(), users.id_of("default"));
        let bad = parse_users_file("user a on\nuser b +nosuch\n");
        assert!(bad.is_ok(), "command names are checked when compiled");
        let e = Users::compile(&bad.unwrap(), &table()).unwrap_err();
        assert!(e.to_string().contains("user 'b'") && e.to_string().contains("+nosuch"), "{e}");
        let e = parse_users_file("user a on\nuser b bogus\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("line 2: user 'b': "), "{e}");
        assert_eq!(parse_users_file("usr a on").unwrap_err().line, 1);
        assert_eq!(parse_users_file("user a\nuser a").unwrap_err().line, 2);
    }

    #[test]
    fn clients_must_auth_unless_default_is_open() {
        let t = table();
        assert!(!Users::unrestricted(&t).auth_required());
        let users = Users::compile(&[parse_user_option("app:secret").unwrap()], &t).unwrap();
        assert!(users.auth_required());
        let app = users.get(users.id_of("app").unwrap());
        assert!(app.password_matches(b"secret") && app.dangerous && app.all_keys);
        assert!(parse_user_option("nopassword").is_err());
        assert!(parse_user_option(":pw").is_err());
        assert!(parse_user_option("a:").is_err());
        assert_eq!(
            parse_user_option("a:b:c").unwrap().rules[1],
            Rule::AddPassword(hash_password(b"b:c"))
        );
    }

    #[test]
    fn debug_output_carries_no_password_hash() {
        let u = user("on >secret");
        assert!(format!("{u:?}").contains("passwords: 1"));
        let spec = parse_user_option("app:secret").unwrap();
        let first_byte = hash_password(b"secret").0[0].to_string();
        let text = format!("{spec:?}");
        assert!(text.contains("PasswordHash(..)") && !text.contains(&format!("[{first_byte}, ")));
    }
}
