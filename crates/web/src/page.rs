//! `/stats`: one self-contained HTML page (inline CSS and JS, nothing fetched from elsewhere),
//! in the spirit of HAProxy's stats page but about a Redis Cluster behind the proxy.
//!
//! The tables are rendered here, on the server, so the page is complete without JS; the inline
//! script then fetches `api/v1/stats` every 2 s and renders the same markup again (`page.js`
//! mirrors the functions below), so the page never needs a reload.

use std::fmt::Write;

use proxy::snapshot::{CommandSnapshot, NodeSnapshot, Snapshot};

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The whole page for one snapshot; `now_ms` (Unix ms) dates the health checks ("3 s ago").
pub fn render(snap: &Snapshot, now_ms: u64) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let listen = escape(&snap.proxy.listen);
    let _ = write!(
        out,
        concat!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>redkeep proxy {listen}</title>\n<style>\n{css}</style>\n</head>\n<body>\n",
            "<header><h1>redkeep proxy</h1>",
            "<span class=\"sub\">version <b id=\"version\">{version}</b> · listening on ",
            "<b id=\"listen\">{listen}</b> · up <b id=\"uptime\">{uptime}</b></span>",
            "<span id=\"status\">rendered by the server · refreshes every 2 s</span></header>\n",
            "<main>\n<section id=\"summary\">{summary}</section>\n",
            "<h2>Nodes</h2>\n<div class=\"wrap\"><table id=\"nodes\"><thead><tr>",
            "<th>Address</th><th>State</th><th>Role</th><th>Master</th><th>Slots</th>",
            "<th class=\"num\" title=\"connections the proxy has open to the node\">Conns</th>",
            "<th class=\"num\" title=\"replies the proxy read from the node\">Replies</th>",
            "<th class=\"num\" title=\"error replies the proxy read from the node\">Errors</th>",
            "<th class=\"num\" title=\"from the proxy reading a request to the node's reply, median\">p50</th>",
            "<th class=\"num\" title=\"from the proxy reading a request to the node's reply, 99th percentile\">p99</th>",
            "<th class=\"num\" title=\"instantaneous_ops_per_sec from INFO\">ops/s</th>",
            "<th class=\"num\" title=\"used_memory_human from INFO\">Memory</th>",
            "<th class=\"num\">Last check</th><th>Check error</th>",
            "</tr></thead>\n<tbody id=\"nodes-body\">{nodes}</tbody></table></div>\n",
            "<h2>Commands</h2>\n<div class=\"wrap\"><table id=\"commands\"><thead><tr>",
            "<th>Command</th><th class=\"num\">Calls</th><th class=\"num\">Errors</th>",
            "<th class=\"num\">p50</th><th class=\"num\">p99</th>",
            "</tr></thead>\n<tbody id=\"commands-body\">{commands}</tbody></table></div>\n",
            "</main>\n<footer>Also as <a href=\"metrics\">Prometheus metrics</a> and JSON: ",
            "<a href=\"api/v1/stats\">api/v1/stats</a>, <a href=\"api/v1/nodes\">api/v1/nodes</a>.",
            "</footer>\n<script>\n{js}</script>\n</body>\n</html>\n"
        ),
        listen = listen,
        css = CSS,
        version = escape(snap.proxy.version),
        uptime = escape(&uptime(snap.proxy.uptime_secs)),
        summary = summary(snap),
        nodes = node_rows(&snap.nodes, now_ms),
        commands = command_rows(&snap.commands),
        js = JS,
    );
    out
}

/// The summary cards: proxy, clients, traffic, backends, cluster.
pub fn summary(snap: &Snapshot) -> String {
    let p = &snap.proxy;
    let c = &snap.cluster;
    let plain = |v: &dyn ToString| escape(&v.to_string());
    let flagged = |v: u64| {
        if v > 0 { format!("<span class=\"bad\">{v}</span>") } else { v.to_string() }
    };
    let cards: [(&str, Vec<(&str, String)>); 5] = [
        (
            "Proxy",
            vec![
                ("version", plain(&p.version)),
                ("listen", plain(&p.listen)),
                ("uptime", plain(&uptime(p.uptime_secs))),
                ("threads", plain(&p.threads)),
                ("reads from", plain(&p.read_from)),
                ("writes acked by", plain(&p.write_ack)),
            ],
        ),
        (
            "Clients",
            vec![
                ("connected", plain(&p.clients_connected)),
                ("accepted", plain(&p.clients_total)),
                ("rejected", flagged(p.clients_rejected)),
            ],
        ),
        (
            "Traffic",
            vec![
                ("commands", plain(&p.commands)),
                ("errors", flagged(p.errors)),
                ("MOVED followed", plain(&p.moved)),
                ("ASK followed", plain(&p.ask)),
                ("retries", plain(&p.retries)),
                ("outcome unknown", flagged(p.outcome_unknown)),
                ("replica acks", plain(&p.acks_confirmed)),
                ("replica acks missing", flagged(p.acks_missing)),
                ("protocol errors", flagged(p.protocol_errors)),
            ],
        ),
        (
            "Backends",
            vec![
                ("topology refreshes", plain(&p.topology_refreshes)),
                ("connects", plain(&p.backend_connects)),
                ("connect failures", flagged(p.backend_failures)),
            ],
        ),
        (
            "Cluster",
            vec![
                ("state", badge(c.state)),
                ("masters", plain(&c.masters)),
                ("uncovered slots", flagged(c.slots_uncovered as u64)),
            ],
        ),
    ];
    let mut out = String::new();
    for (title, items) in cards {
        let _ = write!(out, "<div class=\"card\"><h3>{}</h3><dl>", escape(title));
        for (label, value) in items {
            let _ = write!(out, "<dt>{}</dt><dd>{value}</dd>", escape(label));
        }
        out.push_str("</dl></div>");
    }
    out
}

/// One `<tr class="node" data-addr="…">` per node.
pub fn node_rows(nodes: &[NodeSnapshot], now_ms: u64) -> String {
    if nodes.is_empty() {
        return "<tr><td class=\"empty\" colspan=\"14\">no nodes in the slot map</td></tr>"
            .to_string();
    }
    let mut out = String::new();
    for n in nodes {
        let addr = escape(&n.addr);
        let live = n.health.as_ref().filter(|h| h.up);
        let slots = if n.slot_count == 0 {
            DASH.to_string()
        } else {
            format!("{} <span class=\"dim\">({})</span>", escape(&n.slots), n.slot_count)
        };
        let memory = live
            .map(|h| h.used_memory_human.as_str())
            .filter(|m| !m.is_empty())
            .map_or(DASH.to_string(), escape);
        let _ = write!(
            out,
            concat!(
                "<tr class=\"node\" data-addr=\"{addr}\" data-state=\"{state_attr}\">",
                "<td class=\"addr\">{addr}</td><td class=\"state\">{state}</td>",
                "<td>{role}</td><td class=\"addr\">{master}</td><td class=\"slots\">{slots}</td>",
                "<td class=\"num\">{connections}</td><td class=\"num\">{replies}</td>",
                "<td class=\"num\">{errors}</td><td class=\"num\">{p50}</td>",
                "<td class=\"num\">{p99}</td><td class=\"num\">{ops}</td>",
                "<td class=\"num\">{memory}</td><td class=\"num\">{checked}</td>",
                "<td class=\"err\">{error}</td></tr>"
            ),
            addr = addr,
            state_attr = escape(n.state),
            state = badge(n.state),
            role = escape(n.role),
            master = n.master.as_deref().map_or(DASH.to_string(), escape),
            slots = slots,
            connections = n.connections,
            replies = n.replies,
            errors = if n.errors > 0 {
                format!("<span class=\"bad\">{}</span>", n.errors)
            } else {
                "0".to_string()
            },
            p50 = ms(n.latency_p50_us),
            p99 = ms(n.latency_p99_us),
            ops = live.map_or(DASH.to_string(), |h| h.ops_per_sec.to_string()),
            memory = memory,
            checked = n.health.as_ref().map_or(DASH.to_string(), |h| ago(now_ms, h.checked_at_ms)),
            error =
                n.health.as_ref().and_then(|h| h.error.as_deref()).map_or(String::new(), escape),
        );
    }
    out
}

/// One row per command that was called, the busiest first.
pub fn command_rows(commands: &[CommandSnapshot]) -> String {
    if commands.is_empty() {
        return "<tr><td class=\"empty\" colspan=\"5\">no commands yet</td></tr>".to_string();
    }
    let mut sorted: Vec<&CommandSnapshot> = commands.iter().collect();
    sorted.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.name.cmp(&b.name)));
    let mut out = String::new();
    for c in sorted {
        let errors = if c.errors > 0 {
            format!("<span class=\"bad\">{}</span>", c.errors)
        } else {
            "0".to_string()
        };
        let _ = write!(
            out,
            concat!(
                "<tr class=\"command\"><td class=\"addr\">{name}</td><td class=\"num\">{calls}</td>",
                "<td class=\"num\">{errors}</td><td class=\"num\">{p50}</td>",
                "<td class=\"num\">{p99}</td></tr>"
            ),
            name = escape(&c.name),
            calls = c.calls,
            errors = errors,
            p50 = ms(c.latency.percentile_us(0.5)),
            p99 = ms(c.latency.percentile_us(0.99)),
        );
    }
    out
}

const DASH: &str = "–";

/// A coloured state: `up`/`ok` green, `down`/`degraded` red, anything else grey.
fn badge(state: &str) -> String {
    let class = match state {
        "up" | "ok" | "down" | "degraded" => state,
        _ => "unknown",
    };
    format!("<span class=\"badge s-{class}\">{}</span>", escape(state))
}

/// Microseconds as milliseconds with about three significant digits (`128` → `0.128 ms`).
pub fn ms(us: Option<u64>) -> String {
    let Some(us) = us else { return DASH.to_string() };
    let ms = us as f64 / 1000.0;
    match us {
        0..1_000 => format!("{ms:.3} ms"),
        1_000..10_000 => format!("{ms:.2} ms"),
        10_000..100_000 => format!("{ms:.1} ms"),
        _ => format!("{ms:.0} ms"),
    }
}

/// `3d 4h 5m 6s`, without leading zero units.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// How long ago a Unix-ms time was: `N s ago`.
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    format!("{} s ago", now_ms.saturating_sub(then_ms) / 1000)
}

/// Text for HTML content and quoted attribute values: the bench report's escaper, one for
/// every page redkeep writes.
pub use bench::report::escape;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NOW_MS, snapshot};

    #[test]
    fn one_node_row_per_node_with_its_address() {
        let snap = snapshot();
        let html = render(&snap, NOW_MS);
        assert_eq!(html.matches("class=\"node\"").count(), snap.nodes.len());
        assert!(html.contains(r#"<tr class="node" data-addr="10.0.0.1:7000" data-state="up">"#));
        assert!(html.contains(r#"<tr class="node" data-addr="10.0.0.2:7001" data-state="down">"#));
        assert!(html.contains(r#"<span class="badge s-up">up</span>"#));
        assert!(html.contains(r#"<span class="badge s-down">down</span>"#));
        // The replica names its master; the master's check was 3 s ago.
        assert!(html.contains(r#"<td>replica</td><td class="addr">10.0.0.1:7000</td>"#));
        assert!(html.contains("3 s ago"));
        assert!(html.contains("1.50M"));
        assert!(html.contains("1234"));
    }

    #[test]
    fn text_from_nodes_is_escaped() {
        let html = render(&snapshot(), NOW_MS);
        assert!(
            html.contains("connection refused &lt;script&gt;alert(1)&lt;/script&gt; &amp; more")
        );
        assert!(!html.contains("<script>alert(1)"));
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let mut snap = snapshot();
        snap.nodes[0].addr = "\"><b>".into();
        let html = render(&snap, NOW_MS);
        assert!(html.contains(r#"data-addr="&quot;&gt;&lt;b&gt;""#));
    }

    #[test]
    fn page_is_self_contained() {
        let html = render(&snapshot(), NOW_MS);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<script>").count(), 1);
        assert!(html.contains("<style>"));
        for external in ["src=", "<link", "http://", "https://", "@import"] {
            assert!(!html.contains(external), "{external} in the page");
        }
        assert!(html.contains("setInterval(refresh, 2000)"));
        // The inline script cannot end the script element early.
        assert!(!JS.contains("</script"));
        // Nor does it hold the row marker, which counts node rows in the whole document.
        assert!(!JS.contains("class=\"node\""));
    }

    #[test]
    fn summary_and_commands() {
        let html = render(&snapshot(), NOW_MS);
        assert!(html.contains("<dt>commands</dt><dd>42</dd>"));
        assert!(html.contains("<dt>MOVED followed</dt><dd>2</dd>"));
        assert!(html.contains("<dt>state</dt><dd><span class=\"badge s-ok\">ok</span></dd>"));
        assert!(html.contains("<b id=\"uptime\">3d 4h 5m 6s</b>"));
        // Busiest command first, with its percentiles.
        let get = html.find("<td class=\"addr\">get</td>").unwrap();
        let set = html.find("<td class=\"addr\">set</td>").unwrap();
        assert!(get < set);
        assert!(html.contains(
            "<td class=\"addr\">get</td><td class=\"num\">40</td><td class=\"num\">0</td><td class=\"num\">0.128 ms</td><td class=\"num\">4.10 ms</td>"
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(ms(None), "–");
        assert_eq!(ms(Some(128)), "0.128 ms");
        assert_eq!(ms(Some(4096)), "4.10 ms");
        assert_eq!(ms(Some(65_536)), "65.5 ms");
        assert_eq!(ms(Some(1 << 20)), "1049 ms");
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(65), "1m 5s");
        assert_eq!(uptime(3600), "1h 0m 0s");
        assert_eq!(ago(10_500, 2_000), "8 s ago");
        assert_eq!(ago(1_000, 2_000), "0 s ago");
    }

    #[test]
    fn empty_tables_say_so() {
        let mut snap = snapshot();
        snap.nodes.clear();
        snap.commands.clear();
        let html = render(&snap, NOW_MS);
        assert!(html.contains("no nodes in the slot map"));
        assert!(html.contains("no commands yet"));
        assert_eq!(html.matches("class=\"node\"").count(), 0);
    }
}
