//! `redkeep call`: one command on every node of a cluster, replies labelled by node.

use std::process::ExitCode;

use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use resp::Value;

/// Run one command on every node of the cluster that HOST:PORT belongs to (like
/// `redis-cli --cluster call`), and print each node's reply under its address (a reply of
/// several lines is indented below it).
///
/// redkeep's own options may come anywhere, also after the command
/// (`redkeep call 127.0.0.1:7001 DBSIZE --masters-only`). Arguments after `--` all go to Redis,
/// for a command with an argument that starts with `-` (`-- ZRANGEBYSCORE k -inf +inf`);
/// negative numbers need no `--`.
///
/// Example: `redkeep call 127.0.0.1:7001 CONFIG SET maxmemory-policy allkeys-lru`
#[derive(clap::Args)]
pub struct CallArgs {
    /// Any node of the cluster, HOST:PORT.
    #[arg(value_parser = super::host_port)]
    node: String,
    /// The command and its arguments.
    #[arg(required = true, num_args = 1.., allow_negative_numbers = true)]
    command: Vec<String>,
    /// Only the masters.
    #[arg(long)]
    masters_only: bool,
}

pub fn run(args: CallArgs) -> anyhow::Result<ExitCode> {
    super::block_on(call(args))
}

async fn call(args: CallArgs) -> anyhow::Result<ExitCode> {
    super::refuse_proxy(&args.node, "call").await?;
    let mut topology = cluster::ops::topology_of(&args.node).await?;
    // A stable order, so that two runs can be compared line by line.
    topology.nodes.sort_by(|a, b| (&a.ip, a.port).cmp(&(&b.ip, b.port)));
    let mut failed = 0;
    for node in topology.nodes.iter().filter(|n| !args.masters_only || n.is_master()) {
        let addr = node.addr();
        let reply = match AdminConn::connect(&addr, DEFAULT_TIMEOUT).await {
            Ok(mut conn) => conn.raw(&args.command).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(value) => {
                failed += usize::from(matches!(value, Value::Error(_)));
                print!("{}", labelled(&addr, &render(&value, 0)));
            }
            Err(e) => {
                failed += 1;
                println!("{addr}: (failed) {e}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A node's reply under its address: on the same line when it is one line, else indented
/// below it, so that every node's part starts at the left margin.
pub fn labelled(addr: &str, reply: &str) -> String {
    let reply = reply.trim_end();
    if !reply.contains('\n') {
        return format!("{addr}: {reply}\n");
    }
    let mut out = format!("{addr}:\n");
    for line in reply.lines() {
        out.push_str("   ");
        out.push_str(line.trim_end_matches('\r'));
        out.push('\n');
    }
    out
}

/// A reply the way `redis-cli` prints it: `OK`, `(integer) 1`, `"text"`, `(nil)`, numbered
/// lists for aggregates.
pub fn render(value: &Value, indent: usize) -> String {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match value {
        Value::Simple(s) => text(s),
        Value::Error(e) => format!("(error) {}", text(e)),
        Value::Integer(n) => format!("(integer) {n}"),
        Value::Bulk(b) if b.contains(&b'\n') => text(b),
        Value::Bulk(b) => format!("{:?}", text(b)),
        Value::Verbatim(_, b) => text(b),
        Value::Null => "(nil)".into(),
        Value::Boolean(b) => format!("({b})"),
        Value::Double(d) => format!("(double) {d}"),
        Value::BigNumber(n) => format!("(big number) {}", text(n)),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => {
            render_list(items.iter(), indent)
        }
        Value::Map(pairs) | Value::Attribute(pairs, _) => {
            let flat: Vec<&Value> = pairs.iter().flat_map(|(k, v)| [k, v]).collect();
            render_list(flat.into_iter(), indent)
        }
    }
}

fn render_list<'a>(items: impl ExactSizeIterator<Item = &'a Value>, indent: usize) -> String {
    if items.len() == 0 {
        return "(empty array)".into();
    }
    let width = items.len().to_string().len();
    let mut out = String::new();
    for (i, item) in items.enumerate() {
        let prefix = format!("{:>width$}) ", i + 1);
        let pad = if i == 0 { String::new() } else { " ".repeat(indent) };
        out.push_str(&format!("{pad}{prefix}{}\n", render(item, indent + prefix.len()).trim_end()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis_cli() {
        assert_eq!(render(&Value::Simple(b"OK".to_vec()), 0), "OK");
        assert_eq!(render(&Value::Integer(3), 0), "(integer) 3");
        assert_eq!(render(&Value::Null, 0), "(nil)");
        let list =
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Array(vec![Value::Integer(1)])]);
        assert_eq!(render(&list, 0), "1) \"a\"\n2) 1) (integer) 1\n");
    }

    #[test]
    fn a_reply_of_several_lines_is_indented_under_its_address() {
        assert_eq!(labelled("h:1", "OK"), "h:1: OK\n");
        assert_eq!(labelled("h:1", "1) \"a\"\n2) \"b\"\n"), "h:1:\n   1) \"a\"\n   2) \"b\"\n");
        // INFO text comes with \r\n line ends.
        assert_eq!(
            labelled("h:1", "# Server\r\nredis_version:7.0\r\n"),
            "h:1:\n   # Server\n   redis_version:7.0\n"
        );
    }
}
