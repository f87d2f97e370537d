//! The proxy's command policy: what only an administrator should run through a shared front
//! door is refused by default, with an error naming the option that allows it. Redis'
//! hardening guide locks these down on the nodes; through a proxy they would reach every
//! node at once, from anyone who can reach the proxy.
//!
//! Each command's [`Guard`] is decided once, when the command table is built
//! ([`guard_of`]); a request is then checked by [`refused`] with no lookup of its own.

use crate::commands::{Args, CommandInfo};

/// What a refused command does, which is what the option to allow it is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// CONFIG SET: refused only for the parameters [`config_guard`] names.
    ConfigSet,
    /// MODULE: loads code into the nodes.
    Module,
    /// DEBUG: crashes, sleeps, rewrites the nodes.
    Debug,
    /// REPLICAOF, SLAVEOF, FAILOVER, SYNC, PSYNC: changes or copies replication.
    Replication,
    /// CLUSTER subcommands that change the cluster (MEET, FORGET, RESET, SETSLOT, ...).
    ClusterAdmin,
    /// SHUTDOWN.
    Shutdown,
    /// ACL subcommands other than WHOAMI and CAT: the nodes' users (ACL SETUSER is not
    /// propagated by Redis Cluster, so it would leave nodes with different users).
    AclAdmin,
    /// FLUSHALL, FLUSHDB, SCRIPT FLUSH, FUNCTION FLUSH: only for a user holding `@dangerous`.
    Flush,
}

/// What `--allow KIND` lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ConfigPaths,
    ConfigAuth,
    Module,
    Debug,
    Replication,
    ClusterAdmin,
    Shutdown,
    AclAdmin,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::ConfigPaths,
        Kind::ConfigAuth,
        Kind::Module,
        Kind::Debug,
        Kind::Replication,
        Kind::ClusterAdmin,
        Kind::Shutdown,
        Kind::AclAdmin,
    ];

    /// The word of `--allow`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConfigPaths => "config-paths",
            Kind::ConfigAuth => "config-auth",
            Kind::Module => "module",
            Kind::Debug => "debug",
            Kind::Replication => "replication",
            Kind::ClusterAdmin => "cluster-admin",
            Kind::Shutdown => "shutdown",
            Kind::AclAdmin => "acl-admin",
        }
    }

    pub fn parse(word: &str) -> Result<Kind, String> {
        Kind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(word)).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("--allow {word:?}: expected one of {}", names.join(", "))
        })
    }

    /// Why it is refused by default, for the error.
    fn why(self) -> &'static str {
        match self {
            Kind::ConfigPaths => "it makes the nodes write files where the client says",
            Kind::ConfigAuth => "it changes the nodes' passwords, addresses or protections",
            Kind::Module => "it loads code into the nodes",
            Kind::Debug => "it can crash, stall or rewrite the nodes",
            Kind::Replication => "it changes or copies the nodes' replication",
            Kind::ClusterAdmin => "it changes the cluster's membership or slots",
            Kind::Shutdown => "it stops the nodes",
            Kind::AclAdmin => {
                "it reads or changes the nodes' own users, which Redis Cluster \
                               does not propagate"
            }
        }
    }
}

/// The kinds `--allow` was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed(u16);

impl Allowed {
    pub fn none() -> Allowed {
        Allowed(0)
    }

    pub fn with(self, kind: Kind) -> Allowed {
        Allowed(self.0 | 1 << kind as u16)
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }
}

/// A refused request: [`Refusal::message`] is the error line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Allowed by `--allow KIND`; `what` names the command (and parameter).
    Option { what: String, kind: Kind },
    /// A flush by a user without `@dangerous`.
    NotDangerous { what: String },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Option { what, kind } => format!(
                "ERR {what} is refused by the proxy's command policy: {}; start the proxy with \
                 --allow {} to pass it",
                kind.why(),
                kind.name()
            ),
            Refusal::NotDangerous { what } => format!(
                "ERR {what} is refused by the proxy's command policy: it empties data on every \
                 master, and this user does not hold the @dangerous category (grant it +@dangerous)"
            ),
        }
    }
}

/// The guard of a command by its lower-case name (`container|sub`), decided when the table is
/// built.
pub fn guard_of(name: &str) -> Option<Guard> {
    let guard = match name {
        "config|set" => Guard::ConfigSet,
        "module" => Guard::Module,
        _ if name.starts_with("module|") => Guard::Module,
        "debug" => Guard::Debug,
        "replicaof" | "slaveof" | "failover" | "sync" | "psync" => Guard::Replication,
        "shutdown" => Guard::Shutdown,
        "flushall" | "flushdb" | "script|flush" | "function|flush" => Guard::Flush,
        "acl" => Guard::AclAdmin,
        _ if name.starts_with("acl|") && !matches!(name, "acl|whoami" | "acl|cat") => {
            Guard::AclAdmin
        }
        _ => match name.strip_prefix("cluster|") {
            Some(sub) if CLUSTER_CHANGES.contains(&sub) => Guard::ClusterAdmin,
            _ => return None,
        },
    };
    Some(guard)
}

/// CLUSTER subcommands that change a node or the cluster.
const CLUSTER_CHANGES: &[&str] = &[
    "addslots",
    "addslotsrange",
    "bumpepoch",
    "delslots",
    "delslotsrange",
    "failover",
    "flushslots",
    "forget",
    "meet",
    "replicate",
    "reset",
    "saveconfig",
    "set-config-epoch",
    "setslot",
];

/// The kind a CONFIG SET parameter needs, if any: paths (where a node writes or reads files)
/// and what guards the nodes (passwords, addresses, protections).
pub fn config_guard(parameter: &[u8]) -> Option<Kind> {
    let p = String::from_utf8_lossy(parameter).to_ascii_lowercase();
    let path = matches!(
        p.as_str(),
        "dir"
            | "dbfilename"
            | "logfile"
            | "pidfile"
            | "aclfile"
            | "appendfilename"
            | "appenddirname"
            | "unixsocket"
            | "unixsocketperm"
    ) || p.ends_with("-file")
        || p.ends_with("-dir")
        || p.ends_with("filename");
    let auth = matches!(
        p.as_str(),
        "requirepass"
            | "masterauth"
            | "masteruser"
            | "bind"
            | "port"
            | "tls-port"
            | "protected-mode"
            | "enable-protected-configs"
            | "enable-debug-command"
            | "enable-module-command"
            | "rename-command"
            | "cluster-announce-ip"
            | "cluster-port"
            | "replica-announce-ip"
    ) || p.starts_with("tls-");
    if path {
        Some(Kind::ConfigPaths)
    } else if auth {
        Some(Kind::ConfigAuth)
    } else {
        None
    }
}

/// Whether the policy refuses this request. `dangerous`: the user holds `@dangerous`.
/// Cheap for the commands without a guard (one field read).
pub fn refused(
    info: &CommandInfo,
    args: &(impl Args + ?Sized),
    allowed: Allowed,
    dangerous: bool,
) -> Result<(), Refusal> {
    let Some(guard) = info.acl.guard else { return Ok(()) };
    let what = || info.name.replace('|', " ").to_ascii_uppercase();
    let by_option = |kind: Kind, what: String| {
        if allowed.contains(kind) { Ok(()) } else { Err(Refusal::Option { what, kind }) }
    };
    match guard {
        Guard::Flush if dangerous => Ok(()),
        Guard::Flush => Err(Refusal::NotDangerous { what: what() }),
        Guard::ConfigSet => {
            // CONFIG SET name value [name value ...]
            for i in (2..args.count()).step_by(2) {
                if let Some(kind) = config_guard(args.arg(i)) {
                    let name = String::from_utf8_lossy(args.arg(i)).to_ascii_lowercase();
                    by_option(kind, format!("CONFIG SET {name}"))?;
                }
            }
            Ok(())
        }
        Guard::Module => by_option(Kind::Module, what()),
        Guard::Debug => by_option(Kind::Debug, what()),
        Guard::Replication => by_option(Kind::Replication, what()),
        Guard::ClusterAdmin => by_option(Kind::ClusterAdmin, what()),
        Guard::Shutdown => by_option(Kind::Shutdown, what()),
        Guard::AclAdmin => by_option(Kind::AclAdmin, what()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::CommandTable;

    fn check(line: &str, allowed: Allowed, dangerous: bool) -> Result<(), String> {
        let table = CommandTable::builtin();
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        let info = table.lookup(args.as_slice()).unwrap();
        refused(info, args.as_slice(), allowed, dangerous).map_err(|r| r.message())
    }

    #[test]
    fn each_refused_command_names_the_option_that_allows_it() {
        let cases = [
            ("CONFIG SET dir /tmp", Kind::ConfigPaths),
            ("CONFIG SET maxmemory 1 dbfilename x.rdb", Kind::ConfigPaths),
            ("CONFIG SET cluster-config-file n.conf", Kind::ConfigPaths),
            ("CONFIG SET tls-cert-file c", Kind::ConfigPaths),
            ("CONFIG SET requirepass x", Kind::ConfigAuth),
            ("CONFIG SET protected-mode no", Kind::ConfigAuth),
            ("MODULE LOAD /x.so", Kind::Module),
            ("DEBUG SLEEP 1", Kind::Debug),
            ("REPLICAOF h 1", Kind::Replication),
            ("SLAVEOF NO ONE", Kind::Replication),
            ("FAILOVER", Kind::Replication),
            ("CLUSTER FORGET id", Kind::ClusterAdmin),
            ("CLUSTER RESET", Kind::ClusterAdmin),
            ("CLUSTER FAILOVER", Kind::ClusterAdmin),
            ("CLUSTER SETSLOT 1 STABLE", Kind::ClusterAdmin),
            ("CLUSTER ADDSLOTS 1", Kind::ClusterAdmin),
            ("CLUSTER MEET h 1", Kind::ClusterAdmin),
            ("SHUTDOWN", Kind::Shutdown),
            ("ACL SETUSER u on", Kind::AclAdmin),
            ("ACL LIST", Kind::AclAdmin),
        ];
        for (line, kind) in cases {
            let err = check(line, Allowed::none(), true).unwrap_err();
            assert!(err.starts_with("ERR "), "{line}: {err}");
            assert!(err.contains(&format!("--allow {}", kind.name())), "{line}: {err}");
            assert_eq!(check(line, Allowed::none().with(kind), true), Ok(()), "{line}");
            let other = Kind::ALL.into_iter().find(|&k| k != kind).unwrap();
            assert!(check(line, Allowed::none().with(other), true).is_err(), "{line}");
        }
        assert!(check("CONFIG SET dir /tmp", Allowed::none(), true).unwrap_err().contains(
            "ERR CONFIG SET dir is refused by the proxy's command policy: it makes the nodes \
             write files"
        ));
    }

    #[test]
    fn harmless_commands_pass() {
        for line in [
            "GET k",
            "CONFIG SET maxmemory 100mb",
            "CONFIG GET dir",
            "CLUSTER INFO",
            "CLUSTER SLOTS",
            "CLUSTER KEYSLOT k",
            "ACL WHOAMI",
            "ACL CAT",
            "SCRIPT LOAD x",
        ] {
            assert_eq!(check(line, Allowed::none(), false), Ok(()), "{line}");
        }
    }

    #[test]
    fn flushes_need_the_dangerous_category() {
        for line in ["FLUSHALL", "FLUSHDB", "SCRIPT FLUSH", "FUNCTION FLUSH"] {
            let err = check(line, Allowed::none(), false).unwrap_err();
            assert!(err.contains("@dangerous"), "{line}: {err}");
            assert_eq!(check(line, Allowed::none(), true), Ok(()), "{line}");
        }
    }

    #[test]
    fn allow_words_parse() {
        assert_eq!(Kind::parse("cluster-admin"), Ok(Kind::ClusterAdmin));
        assert!(Kind::parse("everything").unwrap_err().contains("config-paths"));
    }
}
