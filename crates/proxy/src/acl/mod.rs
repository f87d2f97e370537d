//! Who may do what through the proxy: ACL users (`--user`, `--users FILE`) with Redis 7's
//! rule grammar, the rights check of a request, the AUTH state of a client, a limiter of
//! failed AUTH per client address, and the proxy's command policy (what only an administrator
//! should run through a shared front door).
//!
//! Everything here is pure. The per-command facts the check needs ([`CommandAcl`]: ACL
//! categories, key specs, channel arguments, policy guard) are read once from the `COMMAND`
//! table, and a user's command rights are compiled into one bit per table entry, so checking
//! a request is a lookup in what the classification already found, with no allocation.

pub mod auth;
pub mod check;
pub mod glob;
pub mod keys;
pub mod policy;
pub mod replies;
pub mod user;

use resp::Value;

pub use auth::{AuthError, AuthLimiter};
pub use check::{Denied, check};
pub use policy::{Allowed, Guard, Refusal};
pub use user::{RuleError, User, UserId, Users, UsersError};

/// Redis 7.0's ACL categories, in the order `ACL CAT` lists them.
pub const CATEGORIES: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// A set of categories, one bit per entry of [`CATEGORIES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Categories(pub u32);

impl Categories {
    /// The bit of a category name (any case, without the `@`).
    pub fn bit(name: &[u8]) -> Option<u32> {
        CATEGORIES.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(name)).map(|i| 1 << i)
    }

    pub fn contains(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// `COMMAND`'s 7th field: `@read`, `@string`, ... (unknown names are ignored: a newer
    /// Redis may add categories).
    fn parse(field: Option<&Value>) -> Categories {
        let mut bits = 0;
        for cat in field.and_then(Value::as_list).unwrap_or(&[]) {
            let name = cat.as_bytes().unwrap_or(b"");
            bits |= Categories::bit(name.strip_prefix(b"@").unwrap_or(name)).unwrap_or(0);
        }
        Categories(bits)
    }
}

/// Arguments that name Pub/Sub channels, as Redis' `getChannelsFromCommand` finds those the
/// ACL checks (unsubscribing and PUBSUB introspection are not checked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Channels {
    #[default]
    None,
    /// PUBLISH, SPUBLISH: the first argument.
    First,
    /// SUBSCRIBE, SSUBSCRIBE: every argument.
    All,
    /// PSUBSCRIBE: every argument is a pattern, allowed only if the user has that very pattern.
    AllPatterns,
}

/// Commands whose keys' access depends on their arguments (key spec flag `variable_flags` or
/// `incomplete`): Redis asks the command itself, and so does the check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Variable {
    #[default]
    None,
    /// SET writes; SET ... GET also reads.
    Set,
    /// BITFIELD with only GET reads; with SET/INCRBY it also writes.
    Bitfield,
    /// SORT reads its key and writes its STORE destination.
    Sort,
}

/// What the ACL check and the command policy need to know about one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandAcl {
    pub categories: Categories,
    pub key_specs: Box<[keys::KeySpec]>,
    pub channels: Channels,
    pub variable: Variable,
    /// Why the proxy refuses it by default, if it does.
    pub guard: Option<Guard>,
}

impl CommandAcl {
    /// From one `COMMAND` entry (its fields) and its lower-case `name` (`container|sub`).
    pub fn from_entry(fields: &[Value], name: &str) -> CommandAcl {
        CommandAcl {
            categories: Categories::parse(fields.get(6)),
            key_specs: keys::parse_specs(fields.get(8)),
            channels: match name {
                "publish" | "spublish" => Channels::First,
                "subscribe" | "ssubscribe" => Channels::All,
                "psubscribe" => Channels::AllPatterns,
                _ => Channels::None,
            },
            variable: match name {
                "set" => Variable::Set,
                "bitfield" => Variable::Bitfield,
                "sort" => Variable::Sort,
                _ => Variable::None,
            },
            guard: policy::guard_of(name),
        }
    }
}
