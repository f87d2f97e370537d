//! `INFO [section ...]` through the proxy: the sections Redis 7 has, made from the masters'
//! own INFO with each figure summed, maxed or taken from the first master as fits its meaning
//! (a user of one Redis reads the cluster as one server), the proxy's own figures where the
//! client's view is the proxy's (its clients, its uptime, its commands), and a `# Proxy`
//! section. Which rule each field follows is [`rule`]; the README lists them. Pure, but for
//! [`proxy_section`], which reads the proxy's counters.

use std::fmt::Write;

use crate::shared::Shared;
use crate::slotmap::SlotMap;

/// A section of INFO, in the order Redis prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Commandstats,
    Errorstats,
    Latencystats,
    Cluster,
    Keyspace,
    /// The proxy's own, answered without asking a node.
    Proxy,
}

use Section::*;

const DEFAULT: [Section; 12] = [
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Errorstats,
    Cluster,
    Keyspace,
    Proxy,
];

impl Section {
    /// The name in INFO's arguments and, capitalised, in its `# Header`.
    pub fn name(self) -> &'static str {
        match self {
            Server => "server",
            Clients => "clients",
            Memory => "memory",
            Persistence => "persistence",
            Stats => "stats",
            Replication => "replication",
            Cpu => "cpu",
            Modules => "modules",
            Commandstats => "commandstats",
            Errorstats => "errorstats",
            Latencystats => "latencystats",
            Cluster => "cluster",
            Keyspace => "keyspace",
            Proxy => "proxy",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Server => "# Server",
            Clients => "# Clients",
            Memory => "# Memory",
            Persistence => "# Persistence",
            Stats => "# Stats",
            Replication => "# Replication",
            Cpu => "# CPU",
            Modules => "# Modules",
            Commandstats => "# Commandstats",
            Errorstats => "# Errorstats",
            Latencystats => "# Latencystats",
            Cluster => "# Cluster",
            Keyspace => "# Keyspace",
            Proxy => "# Proxy",
        }
    }

    fn from_header(header: &str) -> Option<Section> {
        let name = header.strip_prefix("# ")?.trim().to_ascii_lowercase();
        ALL.iter().copied().find(|s| s.name() == name)
    }

    /// Asked of the masters (the proxy makes `cluster` and `proxy` itself).
    fn asked_of_nodes(self) -> bool {
        !matches!(self, Cluster | Proxy)
    }
}

const ALL: [Section; 14] = [
    Server,
    Clients,
    Memory,
    Persistence,
    Stats,
    Replication,
    Cpu,
    Modules,
    Commandstats,
    Errorstats,
    Latencystats,
    Cluster,
    Keyspace,
    Proxy,
];

/// The sections `INFO args...` asks for, as Redis 7 reads them: none is `default`; `all` is
/// every section but the modules' own; `everything` all of them; names in any case; unknown
/// names add nothing. In print order, each once.
pub fn requested(args: &[&[u8]]) -> Vec<Section> {
    let mut sections = Vec::new();
    if args.is_empty() {
        sections.extend(DEFAULT);
    }
    for arg in args {
        let name = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match name.as_str() {
            "default" => sections.extend(DEFAULT),
            // Modules' own sections are not shown (no module is loaded by redkeep).
            "all" | "everything" => sections.extend(ALL),
            other => sections.extend(ALL.iter().copied().filter(|s| s.name() == other)),
        }
    }
    sections.sort();
    sections.dedup();
    sections
}

/// The `INFO` to send the masters for `sections`; `None` when no section comes from them.
pub fn node_command(sections: &[Section]) -> Option<Vec<&'static str>> {
    let mut command = vec!["INFO"];
    command.extend(sections.iter().filter(|s| s.asked_of_nodes()).map(|s| s.name()));
    (command.len() > 1).then_some(command)
}

/// What the proxy itself knows for INFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// The cluster's Redis version (the lowest of the nodes').
    pub redis_version: String,
    pub tcp_port: u16,
    pub uptime_secs: u64,
    pub process_id: u32,
    /// 40 hex characters, new on every start (as Redis' run_id).
    pub run_id: String,
    pub connected_clients: u64,
    pub max_clients: u64,
    pub total_connections_received: u64,
    pub rejected_connections: u64,
    pub total_commands_processed: u64,
    pub total_error_replies: u64,
    /// The whole `# Proxy` section, from [`proxy_section`].
    pub proxy_section: String,
}

/// How one field is made from the masters' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Added up.
    Sum,
    /// The largest (the worst node, for ratios and flags).
    Max,
    /// The smallest (the oldest, for times).
    Min,
    /// The first master's (in address order).
    First,
    /// `ok` only when every master says ok.
    Worst,
    /// The proxy's own figure.
    Proxy,
    /// `k=v,...` lists (keyspace, commandstats, errorstats): each number summed; `avg_ttl`
    /// weighted by the keys with an expiry, `usec_per_call` recomputed.
    SumEach,
    /// `k=v,...` lists of percentiles (latencystats): each the largest.
    MaxEach,
    /// `*_human`: remade from the merged field it shows.
    Human,
    /// Left out: it belongs to one node (its replication ID, its config file, ...).
    Drop,
}

/// The rule for `field` of `section`.
pub fn rule(section: Section, field: &str, value: &str) -> Rule {
    let number = value.parse::<f64>().is_ok();
    let integer = value.parse::<i64>().is_ok();
    match section {
        Server => match field {
            "redis_version" | "redis_mode" | "tcp_port" | "uptime_in_seconds"
            | "uptime_in_days" | "process_id" | "run_id" => Rule::Proxy,
            "executable" | "config_file" | "process_supervised" => Rule::Drop,
            _ => Rule::First,
        },
        Clients => match field {
            "connected_clients" | "maxclients" => Rule::Proxy,
            "cluster_connections" => Rule::Drop,
            f if f.starts_with("client_recent_max") => Rule::Max,
            _ if number => Rule::Sum,
            _ => Rule::First,
        },
        Memory => match field {
            f if f.ends_with("_human") => Rule::Human,
            "total_system_memory" => Rule::Max,
            "number_of_cached_scripts" | "number_of_functions" | "number_of_libraries" => Rule::Max,
            f if f.ends_with("_perc") => Rule::Max,
            _ if integer => Rule::Sum,
            _ if number => Rule::Max,
            _ => Rule::First,
        },
        Persistence => match field {
            f if f.ends_with("_status") => Rule::Worst,
            "rdb_last_save_time" => Rule::Min,
            "rdb_changes_since_last_save"
            | "rdb_saves"
            | "aof_rewrites"
            | "current_cow_size"
            | "current_save_keys_processed"
            | "current_save_keys_total"
            | "rdb_last_load_keys_expired"
            | "rdb_last_load_keys_loaded" => Rule::Sum,
            _ if number => Rule::Max,
            _ => Rule::First,
        },
        Stats => match field {
            "total_connections_received"
            | "rejected_connections"
            | "total_commands_processed"
            | "total_error_replies" => Rule::Proxy,
            "latest_fork_usec" => Rule::Max,
            f if f.ends_with("_perc") => Rule::Max,
            _ if number => Rule::Sum,
            _ => Rule::First,
        },
        Replication => match field {
            "role" => Rule::Proxy,
            "master_replid"
            | "master_replid2"
            | "second_repl_offset"
            | "repl_backlog_first_byte_offset" => Rule::Drop,
            "repl_backlog_active" => Rule::Max,
            _ if number => Rule::Sum,
            // slaveN lines are renumbered by [`render`].
            _ => Rule::First,
        },
        Cpu => Rule::Sum,
        Keyspace | Commandstats | Errorstats => Rule::SumEach,
        Latencystats => Rule::MaxEach,
        Modules | Cluster | Proxy => Rule::First,
    }
}

/// One node's INFO: its sections and their fields, in order.
type Parsed = Vec<(Section, Vec<(String, String)>)>;

fn parse(text: &str) -> Parsed {
    let mut sections: Parsed = Vec::new();
    for line in text.lines().map(str::trim_end) {
        if line.starts_with('#') {
            if let Some(section) = Section::from_header(line) {
                sections.push((section, Vec::new()));
            }
        } else if let Some((key, value)) = line.split_once(':')
            && let Some((_, fields)) = sections.last_mut()
        {
            fields.push((key.to_string(), value.to_string()));
        }
    }
    sections
}

/// The text of INFO for `sections`, from the masters' replies to [`node_command`] (their
/// texts, in address order) and the proxy's own figures.
pub fn render(sections: &[Section], local: &Local, nodes: &[String]) -> String {
    let parsed: Vec<Parsed> = nodes.iter().map(|t| parse(t)).collect();
    let mut out = String::new();
    for &section in sections {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        if section == Proxy {
            out.push_str(local.proxy_section.trim_end());
            out.push_str("\r\n");
            continue;
        }
        out.push_str(section.header());
        out.push_str("\r\n");
        if section == Cluster {
            out.push_str("cluster_enabled:1\r\n");
            continue;
        }
        let per_node: Vec<&[(String, String)]> = parsed
            .iter()
            .filter_map(|p| p.iter().find(|(s, _)| *s == section).map(|(_, f)| f.as_slice()))
            .collect();
        for (key, value) in merge_section(section, &per_node, local) {
            let _ = write!(out, "{key}:{value}\r\n");
        }
    }
    out
}

/// The merged fields of one section, in the order the fields first appear.
fn merge_section(
    section: Section,
    nodes: &[&[(String, String)]],
    local: &Local,
) -> Vec<(String, String)> {
    let mut keys: Vec<&str> = Vec::new();
    for fields in nodes {
        for (key, _) in fields.iter() {
            if !keys.contains(&key.as_str()) && !is_replica_line(section, key) {
                keys.push(key);
            }
        }
    }
    let mut merged: Vec<(String, String)> = Vec::new();
    for key in keys {
        let values: Vec<&str> = nodes
            .iter()
            .filter_map(|f| f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()))
            .collect();
        let first = values.first().copied().unwrap_or("");
        let value = match rule(section, key, first) {
            Rule::Drop => continue,
            Rule::Proxy => proxy_value(key, local).unwrap_or_else(|| first.to_string()),
            Rule::First => first.to_string(),
            Rule::Sum => fold(&values, |a, b| a + b),
            Rule::Max => fold(&values, f64::max),
            Rule::Min => fold(&values, f64::min),
            Rule::Worst => match values.iter().find(|v| **v != "ok") {
                Some(bad) => bad.to_string(),
                None => first.to_string(),
            },
            Rule::SumEach => sum_each(&values),
            Rule::MaxEach => max_each(&values),
            // Filled in below, once the field it shows is merged.
            Rule::Human => String::new(),
        };
        merged.push((key.to_string(), value));
    }
    if section == Memory {
        remake_human(&mut merged);
    }
    if section == Replication {
        merged.extend(replica_lines(nodes));
    }
    merged
}

/// The proxy's own value of a field with [`Rule::Proxy`].
fn proxy_value(key: &str, local: &Local) -> Option<String> {
    Some(match key {
        "redis_version" => local.redis_version.clone(),
        "redis_mode" => "cluster".into(),
        "tcp_port" => local.tcp_port.to_string(),
        "uptime_in_seconds" => local.uptime_secs.to_string(),
        "uptime_in_days" => (local.uptime_secs / 86_400).to_string(),
        "process_id" => local.process_id.to_string(),
        "run_id" => local.run_id.clone(),
        "connected_clients" => local.connected_clients.to_string(),
        "maxclients" => local.max_clients.to_string(),
        "total_connections_received" => local.total_connections_received.to_string(),
        "rejected_connections" => local.rejected_connections.to_string(),
        "total_commands_processed" => local.total_commands_processed.to_string(),
        "total_error_replies" => local.total_error_replies.to_string(),
        "role" => "master".into(),
        _ => return None,
    })
}

/// Numbers folded with `op`, written as integers when they all were; values that are not
/// numbers (`-`, `99.5%`: the `%` is kept) are read without their suffix.
fn fold(values: &[&str], op: impl Fn(f64, f64) -> f64) -> String {
    let percent = values.first().is_some_and(|v| v.ends_with('%'));
    let numbers: Vec<f64> =
        values.iter().filter_map(|v| v.trim_end_matches('%').parse::<f64>().ok()).collect();
    let Some(&start) = numbers.first() else {
        return values.first().copied().unwrap_or("").to_string();
    };
    let result = numbers[1..].iter().fold(start, |a, &b| op(a, b));
    let integers = values.iter().all(|v| v.parse::<i64>().is_ok());
    let text = if integers { format!("{}", result as i64) } else { format!("{result:.2}") };
    if percent { format!("{text}%") } else { text }
}

/// `keys=3,expires=1,avg_ttl=10` summed per name over the nodes.
fn sum_each(values: &[&str]) -> String {
    let lists: Vec<Vec<(&str, f64)>> = values.iter().map(|v| sub_fields(v)).collect();
    let names = sub_names(&lists);
    let total = |name: &str| -> f64 {
        lists.iter().flat_map(|l| l.iter().filter(|(n, _)| *n == name)).map(|(_, v)| v).sum()
    };
    let mut out = Vec::new();
    for name in names {
        let value = match name {
            "avg_ttl" => {
                // Weighted by the keys that have an expiry on each node.
                let mut weighted = 0.0;
                for list in &lists {
                    let get = |n: &str| list.iter().find(|(k, _)| *k == n).map_or(0.0, |f| f.1);
                    weighted += get("avg_ttl") * get("expires");
                }
                let expires = total("expires");
                if expires > 0.0 { (weighted / expires).round() } else { 0.0 }
            }
            "usec_per_call" => {
                let calls = total("calls");
                if calls > 0.0 { total("usec") / calls } else { 0.0 }
            }
            other => total(other),
        };
        out.push(format!("{name}={}", number_text(name, value)));
    }
    out.join(",")
}

/// `p50=1.0,p99=2.0` with each the largest over the nodes.
fn max_each(values: &[&str]) -> String {
    let lists: Vec<Vec<(&str, f64)>> = values.iter().map(|v| sub_fields(v)).collect();
    let names = sub_names(&lists);
    let mut out = Vec::new();
    for name in names {
        let max = lists
            .iter()
            .flat_map(|l| l.iter().filter(|(n, _)| *n == name))
            .map(|(_, v)| *v)
            .fold(f64::MIN, f64::max);
        out.push(format!("{name}={max:.3}"));
    }
    out.join(",")
}

fn sub_fields(value: &str) -> Vec<(&str, f64)> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse::<f64>().ok().map(|v| (k, v)))
        .collect()
}

fn sub_names<'a>(lists: &[Vec<(&'a str, f64)>]) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (name, _) in lists.iter().flatten() {
        if !names.contains(name) {
            names.push(*name);
        }
    }
    names
}

fn number_text(name: &str, value: f64) -> String {
    if name == "usec_per_call" { format!("{value:.2}") } else { format!("{}", value as i64) }
}

/// `used_memory_human` and friends, from the merged byte counts they show.
fn remake_human(fields: &mut [(String, String)]) {
    let bytes: Vec<(String, u64)> =
        fields.iter().filter_map(|(k, v)| v.parse::<u64>().ok().map(|n| (k.clone(), n))).collect();
    for (key, value) in fields.iter_mut() {
        if let Some(base) = key.strip_suffix("_human") {
            // `used_memory_peak_human` shows `used_memory_peak`; `maxmemory_human`, `maxmemory`.
            if let Some((_, n)) = bytes.iter().find(|(k, _)| k == base) {
                *value = human_bytes(*n);
            }
        }
    }
}

/// Bytes as Redis writes them in `*_human` fields (`1.50M`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, f64); 5] = [
        ("P", 1024f64 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("T", 1024f64 * 1024.0 * 1024.0 * 1024.0),
        ("G", 1024f64 * 1024.0 * 1024.0),
        ("M", 1024f64 * 1024.0),
        ("K", 1024f64),
    ];
    let n_f = n as f64;
    for (unit, size) in UNITS {
        if n_f >= size {
            return format!("{:.2}{unit}", n_f / size);
        }
    }
    format!("{n}B")
}

fn is_replica_line(section: Section, key: &str) -> bool {
    section == Replication
        && key.strip_prefix("slave").is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

/// Every master's `slaveN:` lines, numbered anew in order.
fn replica_lines(nodes: &[&[(String, String)]]) -> Vec<(String, String)> {
    nodes
        .iter()
        .flat_map(|fields| fields.iter())
        .filter(|(k, _)| is_replica_line(Replication, k))
        .enumerate()
        .map(|(i, (_, v))| (format!("slave{i}"), v.clone()))
        .collect()
}

/// The text of one node's INFO reply frame (a bulk in RESP2, a verbatim string in RESP3).
pub fn frame_text(frame: &[u8]) -> String {
    let body = match frame.iter().position(|&b| b == b'\n') {
        Some(end) if matches!(frame.first(), Some(b'$' | b'=')) => &frame[end + 1..],
        _ => frame,
    };
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    let body = if frame.first() == Some(&b'=') { body.get(4..).unwrap_or(b"") } else { body };
    String::from_utf8_lossy(body).into_owned()
}

/// What INFO needs of the proxy, read now.
pub fn local(shared: &Shared, map: &SlotMap, tcp_port: u16) -> Local {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &shared.stats;
    Local {
        redis_version: shared.redis_version().to_string(),
        tcp_port,
        uptime_secs: shared.started.elapsed().as_secs(),
        process_id: std::process::id(),
        run_id: shared.run_id.clone(),
        connected_clients: stats.clients_connected.load(Relaxed) as u64,
        max_clients: shared.config.max_clients as u64,
        total_connections_received: stats.clients_total.load(Relaxed),
        rejected_connections: stats.clients_rejected.load(Relaxed),
        total_commands_processed: stats.commands.load(Relaxed),
        total_error_replies: stats.errors.load(Relaxed),
        proxy_section: proxy_section(shared, map),
    }
}

/// The `# Proxy` section: the proxy's counters, its view of the cluster, and how fresh that
/// view is. Answered from the proxy alone, so a health check never waits on a node.
pub fn proxy_section(shared: &Shared, map: &SlotMap) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &shared.stats;
    let fields = [
        ("uptime_in_seconds", shared.started.elapsed().as_secs()),
        ("connected_clients", stats.clients_connected.load(Relaxed) as u64),
        ("total_connections_received", stats.clients_total.load(Relaxed)),
        ("total_commands_processed", stats.commands.load(Relaxed)),
        ("error_replies", stats.errors.load(Relaxed)),
        ("moved_followed", stats.moved.load(Relaxed)),
        ("ask_followed", stats.ask.load(Relaxed)),
        ("retries", stats.retries.load(Relaxed)),
        ("outcome_unknown", stats.outcome_unknown.load(Relaxed)),
        ("write_acks_confirmed", stats.acks_confirmed.load(Relaxed)),
        ("write_acks_missing", stats.acks_missing.load(Relaxed)),
        ("topology_refreshes", stats.topology_refreshes.load(Relaxed)),
        ("forced_failovers", stats.forced_failovers.load(Relaxed)),
        ("cluster_masters", map.serving_masters().len() as u64),
        ("cluster_slots_uncovered", map.uncovered() as u64),
    ];
    let mut text = format!("# Proxy\r\nredkeep_version:{}\r\n", env!("CARGO_PKG_VERSION"));
    for (name, value) in fields {
        let _ = write!(text, "{name}:{value}\r\n");
    }
    let stale_after = crate::topology_stale_after(&shared.config);
    text.push_str(&shared.freshness().report(std::time::Instant::now(), stale_after).info_lines());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split_whitespace().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn requested_of(line: &str) -> Vec<Section> {
        let owned = args(line);
        let refs: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        requested(&refs)
    }

    fn local() -> Local {
        Local {
            redis_version: "7.0.15".into(),
            tcp_port: 7010,
            uptime_secs: 90_000,
            process_id: 42,
            run_id: "r".repeat(40),
            connected_clients: 5,
            max_clients: 10_000,
            total_connections_received: 9,
            rejected_connections: 1,
            total_commands_processed: 1234,
            total_error_replies: 3,
            proxy_section: "# Proxy\r\nredkeep_version:0.1.0\r\n".into(),
        }
    }

    fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
    }

    #[test]
    fn sections_are_read_as_redis_7_reads_them() {
        assert_eq!(requested_of(""), DEFAULT.to_vec());
        assert_eq!(requested_of("default"), DEFAULT.to_vec());
        assert_eq!(requested_of("MEMORY"), [Memory]);
        assert_eq!(requested_of("keyspace server"), [Server, Keyspace], "in print order");
        assert_eq!(requested_of("server server"), [Server]);
        assert_eq!(requested_of("nosuch"), []);
        let all = requested_of("all");
        assert!(all.contains(&Commandstats) && all.contains(&Latencystats) && all.contains(&Proxy));
        assert_eq!(requested_of("everything"), ALL.to_vec());
        assert_eq!(node_command(&requested_of("proxy")), None, "answered by the proxy alone");
        assert_eq!(node_command(&requested_of("cluster proxy")), None);
        assert_eq!(node_command(&requested_of("memory proxy")), Some(vec!["INFO", "memory"]));
    }

    #[test]
    fn server_is_the_first_masters_with_the_proxys_identity_and_the_clusters_version() {
        let node = |pid: u32, version: &str| {
            format!(
                "# Server\r\nredis_version:{version}\r\nredis_mode:cluster\r\nos:Linux\r\n\
                 arch_bits:64\r\nprocess_id:{pid}\r\ntcp_port:7001\r\nuptime_in_seconds:5\r\n\
                 uptime_in_days:0\r\nexecutable:/usr/bin/redis-server\r\nconfig_file:/x.conf\r\n"
            )
        };
        let text = render(&[Server], &local(), &[node(100, "7.0.15"), node(200, "7.0.16")]);
        assert!(text.starts_with("# Server\r\n"), "{text}");
        assert_eq!(field(&text, "redis_version"), Some("7.0.15"));
        assert_eq!(field(&text, "redis_mode"), Some("cluster"));
        assert_eq!(field(&text, "os"), Some("Linux"));
        assert_eq!(field(&text, "process_id"), Some("42"));
        assert_eq!(field(&text, "tcp_port"), Some("7010"));
        assert_eq!(field(&text, "uptime_in_days"), Some("1"));
        assert_eq!(field(&text, "executable"), None, "a node's own");
    }

    #[test]
    fn memory_sums_bytes_remakes_human_fields_and_keeps_the_worst_ratio() {
        let node = |used: u64, ratio: &str, max: u64| {
            format!(
                "# Memory\r\nused_memory:{used}\r\nused_memory_human:x\r\n\
                 mem_fragmentation_ratio:{ratio}\r\nmaxmemory:{max}\r\nmaxmemory_human:y\r\n\
                 maxmemory_policy:noeviction\r\nused_memory_peak_perc:{ratio}%\r\n"
            )
        };
        let nodes = [node(1024 * 1024, "1.50", 1 << 30), node(2 * 1024 * 1024, "3.25", 1 << 30)];
        let text = render(&[Memory], &local(), &nodes);
        assert_eq!(field(&text, "used_memory"), Some("3145728"));
        assert_eq!(field(&text, "used_memory_human"), Some("3.00M"));
        assert_eq!(field(&text, "mem_fragmentation_ratio"), Some("3.25"));
        assert_eq!(field(&text, "maxmemory"), Some("2147483648"));
        assert_eq!(field(&text, "maxmemory_human"), Some("2.00G"));
        assert_eq!(field(&text, "maxmemory_policy"), Some("noeviction"));
        assert_eq!(field(&text, "used_memory_peak_perc"), Some("3.25%"));
    }

    #[test]
    fn clients_stats_and_persistence_take_the_proxys_or_the_masters_figures() {
        let node = |save: u64, status: &str| {
            format!(
                "# Clients\r\nconnected_clients:3\r\nblocked_clients:1\r\nmaxclients:10000\r\n\
                 client_recent_max_input_buffer:{save}\r\n\
                 # Persistence\r\nrdb_last_save_time:{save}\r\nrdb_changes_since_last_save:2\r\n\
                 rdb_last_bgsave_status:{status}\r\nloading:0\r\n\
                 # Stats\r\ntotal_commands_processed:999\r\nkeyspace_hits:4\r\n\
                 instantaneous_input_kbps:0.50\r\n"
            )
        };
        let nodes = [node(1000, "ok"), node(900, "err")];
        let text = render(&[Clients, Persistence, Stats], &local(), &nodes);
        assert_eq!(field(&text, "connected_clients"), Some("5"), "the proxy's clients");
        assert_eq!(field(&text, "blocked_clients"), Some("2"));
        assert_eq!(field(&text, "client_recent_max_input_buffer"), Some("1000"));
        assert_eq!(field(&text, "rdb_last_save_time"), Some("900"), "the oldest save");
        assert_eq!(field(&text, "rdb_changes_since_last_save"), Some("4"));
        assert_eq!(field(&text, "rdb_last_bgsave_status"), Some("err"));
        assert_eq!(field(&text, "total_commands_processed"), Some("1234"));
        assert_eq!(field(&text, "keyspace_hits"), Some("8"));
        assert_eq!(field(&text, "instantaneous_input_kbps"), Some("1.00"));
        assert!(text.contains("\r\n\r\n# Persistence\r\n"), "sections apart: {text}");
    }

    #[test]
    fn replication_is_a_master_with_every_masters_replicas() {
        let node = |port: u16| {
            format!(
                "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
                 slave0:ip=127.0.0.1,port={port},state=online,offset=10,lag=0\r\n\
                 master_replid:abc\r\nmaster_repl_offset:10\r\n"
            )
        };
        let text = render(&[Replication], &local(), &[node(7004), node(7005)]);
        assert_eq!(field(&text, "role"), Some("master"));
        assert_eq!(field(&text, "connected_slaves"), Some("2"));
        assert!(field(&text, "slave0").unwrap().contains("port=7004"));
        assert!(field(&text, "slave1").unwrap().contains("port=7005"));
        assert_eq!(field(&text, "master_replid"), None);
        assert_eq!(field(&text, "master_repl_offset"), Some("20"));
    }

    #[test]
    fn keyspace_commandstats_and_latencystats_merge_per_subfield() {
        let node = |keys: u64, expires: u64, ttl: u64, calls: u64, usec: u64, p99: &str| {
            format!(
                "# Keyspace\r\ndb0:keys={keys},expires={expires},avg_ttl={ttl}\r\n\
                 # Commandstats\r\ncmdstat_get:calls={calls},usec={usec},usec_per_call=0.00,\
                 rejected_calls=0,failed_calls=1\r\n\
                 # Errorstats\r\nerrorstat_ERR:count={calls}\r\n\
                 # Latencystats\r\nlatency_percentiles_usec_get:p50=1.001,p99={p99}\r\n"
            )
        };
        let nodes = [node(10, 2, 100, 4, 40, "3.000"), node(20, 6, 300, 6, 20, "9.000")];
        let sections = [Commandstats, Errorstats, Latencystats, Keyspace];
        let text = render(&sections, &local(), &nodes);
        assert_eq!(field(&text, "db0"), Some("keys=30,expires=8,avg_ttl=250"));
        assert_eq!(
            field(&text, "cmdstat_get"),
            Some("calls=10,usec=60,usec_per_call=6.00,rejected_calls=0,failed_calls=2")
        );
        assert_eq!(field(&text, "errorstat_ERR"), Some("count=10"));
        assert_eq!(field(&text, "latency_percentiles_usec_get"), Some("p50=1.001,p99=9.000"));
    }

    #[test]
    fn cluster_and_proxy_sections_are_the_proxys() {
        let text = render(&[Cluster, Keyspace, Proxy], &local(), &[]);
        assert_eq!(
            text,
            "# Cluster\r\ncluster_enabled:1\r\n\r\n# Keyspace\r\n\r\n# Proxy\r\nredkeep_version:0.1.0\r\n"
        );
    }

    #[test]
    fn node_frames_are_read_in_either_protocol() {
        assert_eq!(frame_text(b"$9\r\n# Server\r\n\r\n"), "# Server\r\n");
        assert_eq!(frame_text(b"=13\r\ntxt:# Server\r\n\r\n"), "# Server\r\n");
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.50K");
    }
}
