//! `/stats`: one self-contained HTML page (inline CSS and JS, nothing fetched from elsewhere),
//! in the spirit of HAProxy's stats page but about a Redis Cluster behind the proxy.
//!
//! Everything is rendered here, on the server, so the page is complete without JS; the inline
//! script then fetches the same parts as HTML from `stats/parts` every 2 s ([`parts`]) and
//! puts them in place, so the page never needs a reload and there is one renderer only.

use std::fmt::Write;

use proxy::snapshot::{CommandSnapshot, NodeSnapshot, Snapshot};

use crate::monitor::{MonitorAlarm, MonitorEvent, MonitorView};

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// What the page says about latency percentiles.
const ESTIMATE_NOTE: &str = "estimated from the latency histogram, whose buckets are powers \
    of two in µs: the true value is within a factor of two";

/// The whole page for one snapshot and what the monitor said (if one is known); `now_ms`
/// (Unix ms) dates the health checks ("3 s ago").
pub fn render(snap: &Snapshot, monitor: &MonitorView, now_ms: u64) -> String {
    let mut out = String::with_capacity(48 * 1024);
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
            "<main>\n<section id=\"alarms\">{alarms}</section>\n",
            "<section id=\"summary\">{summary}</section>\n",
            "<h2>Events</h2>\n<section id=\"events\">{events}</section>\n",
            "<h2>Nodes</h2>\n<div class=\"wrap\"><table id=\"nodes\"><thead><tr>{node_head}",
            "</tr></thead>\n<tbody id=\"nodes-body\">{nodes}</tbody></table></div>\n",
            "<h2>Commands</h2>\n<div class=\"wrap\"><table id=\"commands\"><thead><tr>",
            "<th>Command</th>",
            "<th class=\"num\" title=\"calls per second over the last seconds\">ops/s</th>",
            "<th class=\"num\">Calls</th>",
            "<th class=\"num\" title=\"error replies clients got, from nodes or from the proxy (refused commands included; redirects followed and retries are not errors)\">Errors</th>",
            "<th class=\"num\">errors/s</th>",
            "<th class=\"num est\" title=\"median, {note}\">p50 (est.)</th>",
            "<th class=\"num est\" title=\"99th percentile, {note}\">p99 (est.)</th>",
            "</tr></thead>\n<tbody id=\"commands-body\">{commands}</tbody></table></div>\n",
            "<p class=\"note\">Latencies marked (est.) are {note}. Rates are over the last ",
            "few seconds; the totals are since the proxy started.</p>\n",
            "</main>\n<footer>Also as <a href=\"metrics\">Prometheus metrics</a> and JSON: ",
            "<a href=\"api/v1/stats\">api/v1/stats</a>, <a href=\"api/v1/nodes\">api/v1/nodes</a>.",
            "</footer>\n<script>\n{js}</script>\n</body>\n</html>\n"
        ),
        listen = listen,
        css = CSS,
        version = escape(snap.proxy.version),
        uptime = escape(&uptime(snap.proxy.uptime_secs)),
        alarms = alarms_section(snap, monitor, now_ms),
        summary = summary(snap),
        events = events_section(monitor, now_ms),
        node_head = NODE_HEAD,
        nodes = node_rows(&snap.nodes, now_ms),
        commands = command_rows(&snap.commands),
        note = ESTIMATE_NOTE,
        js = JS,
    );
    out
}

/// The parts of the page the script replaces on each refresh, by element id.
pub fn parts(snap: &Snapshot, monitor: &MonitorView, now_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "title": format!("redkeep proxy {}", snap.proxy.listen),
        "version": escape(snap.proxy.version),
        "listen": escape(&snap.proxy.listen),
        "uptime": escape(&uptime(snap.proxy.uptime_secs)),
        "alarms": alarms_section(snap, monitor, now_ms),
        "summary": summary(snap),
        "events": events_section(monitor, now_ms),
        "nodes-body": node_rows(&snap.nodes, now_ms),
        "commands-body": command_rows(&snap.commands),
    })
}

const NODE_HEAD: &str = concat!(
    "<th>Address</th><th>State</th><th>Role</th><th>Master</th><th>Slots</th>",
    "<th class=\"num\" title=\"keys in the node's databases (INFO keyspace)\">Keys</th>",
    "<th title=\"used_memory of maxmemory (of the host's memory when there is no maxmemory)\">Memory</th>",
    "<th class=\"num\" title=\"evicted_keys since the node started\">Evicted</th>",
    "<th title=\"a replica: bytes of its master's replication stream not yet acknowledged, and seconds since its last acknowledgement\">Repl. lag</th>",
    "<th class=\"num\" title=\"replies per second the proxy read from the node\">ops/s</th>",
    "<th class=\"num\" title=\"instantaneous_ops_per_sec from the node's INFO: all its clients, not only the proxy\">node ops/s</th>",
    "<th class=\"num\" title=\"instantaneous_input_kbps / instantaneous_output_kbps from the node's INFO: all its traffic, replication included\">node net in / out</th>",
    "<th class=\"num\" title=\"connected_clients from the node's INFO\">Clients</th>",
    "<th class=\"num\" title=\"connections the proxy has open to the node\">Conns</th>",
    "<th class=\"num\" title=\"replies the proxy read from the node\">Replies</th>",
    "<th class=\"num\" title=\"error replies the proxy read from the node (redirects included)\">Errors</th>",
    "<th class=\"num est\" title=\"median from the proxy reading a request to the node's reply, estimated from the histogram\">p50 (est.)</th>",
    "<th class=\"num est\" title=\"99th percentile from the proxy reading a request to the node's reply, estimated from the histogram\">p99 (est.)</th>",
    "<th class=\"num\">Last check</th>",
    "<th title=\"when the proxy last saw the node healthy, and how long it has been down\">Down since</th>",
    "<th>Check error</th>",
);

/// Columns of the nodes table.
const NODE_COLUMNS: usize = 21;

/// Something an operator should look at now.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    /// `bad` (service is hurt) or `warn` (it may soon be).
    pub level: &'static str,
    pub text: String,
}

/// A share of a limit (a node's `maxmemory`, `--max-clients`) from which its use is an alarm.
const NEAR_LIMIT: f64 = 0.9;
/// Seconds without a replica's acknowledgement from which its lag is an alarm.
const LAG_ALARM_SECS: u64 = 10;

/// The alarms of a snapshot: the cluster not serving every slot, nodes down, nodes near their
/// memory limit, replicas far behind or cut off, clients near the limit.
pub fn alarms(snap: &Snapshot, now_ms: u64) -> Vec<Alarm> {
    let mut out = Vec::new();
    let bad = |text: String| Alarm { level: "bad", text };
    let warn = |text: String| Alarm { level: "warn", text };
    if snap.cluster.state != "ok" {
        out.push(bad(format!(
            "cluster {}: {} slots have no serving master",
            snap.cluster.state, snap.cluster.slots_uncovered
        )));
    }
    for n in &snap.nodes {
        let Some(h) = &n.health else { continue };
        if !h.up {
            let since =
                h.down_since_ms.map_or(String::new(), |t| format!(" for {}", how_long(now_ms, t)));
            let why = h.error.as_deref().map_or(String::new(), |e| format!(": {e}"));
            out.push(bad(format!("{} ({}) is down{since}{why}", n.addr, n.role)));
            continue;
        }
        let f = &h.figures;
        if f.maxmemory > 0 && f.used_memory as f64 >= NEAR_LIMIT * f.maxmemory as f64 {
            out.push(warn(format!(
                "{} uses {} of its maxmemory {}",
                n.addr,
                bytes(f.used_memory),
                bytes(f.maxmemory)
            )));
        }
        if f.master_link_up == Some(false) {
            out.push(warn(format!("{}: its link to its master is down", n.addr)));
        }
        if let Some(r) = n.replication.as_ref().filter(|r| lagging(r)) {
            out.push(warn(format!(
                "{} lags its master {}: {} behind, state {}",
                n.addr,
                r.master,
                lag(Some(r)),
                r.state
            )));
        }
    }
    let p = &snap.proxy;
    if p.clients_max > 0 && p.clients_connected as f64 >= NEAR_LIMIT * p.clients_max as f64 {
        out.push(warn(format!(
            "{} clients connected, the limit is {}",
            p.clients_connected, p.clients_max
        )));
    }
    out
}

/// The alarms panel: the monitor's alarms when it answered; else the page's own, with a line
/// saying which source it is (and why the monitor's are missing).
fn alarms_section(snap: &Snapshot, monitor: &MonitorView, now_ms: u64) -> String {
    let own = || alarms_html(&alarms(snap, now_ms));
    match monitor {
        MonitorView::Reachable { url, alarms, .. } => format!(
            "<p class=\"source\">Alarms from the monitor at {}.</p>{}",
            escape(&url.authority),
            monitor_alarms_html(alarms, now_ms)
        ),
        MonitorView::Unreachable { url, error } => format!(
            "<p class=\"source unreachable\">The monitor at {} could not be reached ({}): \
             these alarms are the proxy's own, from its health checks.</p>{}",
            escape(&url.authority),
            escape(error),
            own()
        ),
        MonitorView::NotConfigured => format!(
            "<p class=\"source\">Alarms from the proxy's own health checks (no monitor \
             configured: <code>--monitor-url</code>).</p>{}",
            own()
        ),
    }
}

fn monitor_alarms_html(alarms: &[MonitorAlarm], now_ms: u64) -> String {
    if alarms.is_empty() {
        return "<p class=\"no-alarms\">No alarms.</p>".to_string();
    }
    let mut out = String::from("<ul class=\"alarms\">");
    for a in alarms {
        // Critical and firing: service is hurt; the rest may soon be.
        let level = if a.state == "firing" && a.severity == "critical" { "bad" } else { "warn" };
        let from = if a.source == "alertmanager" { " · from Alertmanager" } else { "" };
        let _ = write!(
            out,
            "<li class=\"alarm {level}\" data-alarm=\"{name}\"><span class=\"sev\">{sev}</span> \
             <b>{name}</b> {summary} <span class=\"dim\">{state} for {since}{from}</span></li>",
            name = escape(&a.name),
            sev = escape(&a.severity),
            summary = escape(&a.summary),
            state = escape(&a.state),
            since = how_long(now_ms, a.since_ms),
        );
    }
    out.push_str("</ul>");
    out
}

/// The monitor's event timeline, newest first.
fn events_section(monitor: &MonitorView, now_ms: u64) -> String {
    let events = match monitor {
        MonitorView::Reachable { events, .. } => events,
        MonitorView::Unreachable { url, .. } => {
            return format!(
                "<p class=\"dim\">The monitor at {} could not be reached: no events.</p>",
                escape(&url.authority)
            );
        }
        MonitorView::NotConfigured => {
            return "<p class=\"dim\">The event timeline (alarm transitions, healing actions) \
                    comes from the monitor: give the proxy <code>--monitor-url</code>.</p>"
                .to_string();
        }
    };
    if events.is_empty() {
        return "<p class=\"dim\">No events yet.</p>".to_string();
    }
    let mut out = String::from("<ol class=\"events\">");
    for MonitorEvent { at_ms, kind, text } in events {
        let _ = write!(
            out,
            "<li class=\"event {kind}\"><span class=\"dim\">{ago}</span> \
             <span class=\"kind\">{kind}</span> {text}</li>",
            kind = escape(kind),
            ago = ago(now_ms, *at_ms),
            text = escape(text),
        );
    }
    out.push_str("</ol>");
    out
}

fn alarms_html(alarms: &[Alarm]) -> String {
    if alarms.is_empty() {
        return "<p class=\"no-alarms\">No alarms.</p>".to_string();
    }
    let mut out = String::from("<ul class=\"alarms\">");
    for a in alarms {
        let _ = write!(out, "<li class=\"alarm {}\">{}</li>", a.level, escape(&a.text));
    }
    out.push_str("</ul>");
    out
}

/// The summary cards: proxy, clients, traffic, backends, cluster.
pub fn summary(snap: &Snapshot) -> String {
    let p = &snap.proxy;
    let c = &snap.cluster;
    let r = p.rates.as_ref();
    let plain = |v: &dyn ToString| escape(&v.to_string());
    let flagged = |v: u64| {
        if v > 0 { format!("<span class=\"bad\">{v}</span>") } else { v.to_string() }
    };
    let up = snap.nodes.iter().filter(|n| n.state == "up").count();
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
                ("peak", plain(&p.clients_peak)),
                ("max", plain(&p.clients_max)),
                ("accepted", plain(&p.clients_total)),
                ("rejected", flagged(p.clients_rejected)),
                ("in", rate_span(r.map(|r| r.bytes_in_per_sec), bytes_per_sec)),
                ("out", rate_span(r.map(|r| r.bytes_out_per_sec), bytes_per_sec)),
                ("received", bytes(p.bytes_in)),
                ("sent", bytes(p.bytes_out)),
            ],
        ),
        (
            "Traffic",
            vec![
                ("ops/s", rate_span(r.map(|r| r.ops_per_sec), per_sec)),
                ("errors/s", rate_span(r.map(|r| r.errors_per_sec), per_sec)),
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
                ("nodes up", format!("{up} of {}", snap.nodes.len())),
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
        return format!(
            "<tr><td class=\"empty\" colspan=\"{NODE_COLUMNS}\">no nodes in the slot map</td></tr>"
        );
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
        let figure =
            |f: &dyn Fn(&proxy::health::NodeHealth) -> String| live.map_or(DASH.to_string(), f);
        let _ = write!(
            out,
            concat!(
                "<tr class=\"node\" data-addr=\"{addr}\" data-state=\"{state_attr}\">",
                "<td class=\"addr\">{addr}</td><td class=\"state\">{state}</td>",
                "<td>{role}</td><td class=\"addr\">{master}</td><td class=\"slots\">{slots}</td>",
                "<td class=\"num keys\">{keys}</td><td class=\"mem\">{memory}</td>",
                "<td class=\"num\">{evicted}</td><td class=\"lag\">{lag}</td>",
                "<td class=\"num rate\">{ops}</td><td class=\"num\">{node_ops}</td>",
                "<td class=\"num net\">{net}</td><td class=\"num\">{clients}</td>",
                "<td class=\"num\">{connections}</td><td class=\"num\">{replies}</td>",
                "<td class=\"num\">{errors}</td><td class=\"num est\">{p50}</td>",
                "<td class=\"num est\">{p99}</td><td class=\"num\">{checked}</td>",
                "<td class=\"down-since\">{down}</td><td class=\"err\">{error}</td></tr>"
            ),
            addr = addr,
            state_attr = escape(n.state),
            state = badge(n.state),
            role = escape(n.role),
            master = n.master.as_deref().map_or(DASH.to_string(), escape),
            slots = slots,
            keys = figure(&|h| h.figures.keys().to_string()),
            memory = live.map_or(DASH.to_string(), memory_bar),
            evicted = figure(&|h| h.figures.evicted_keys.to_string()),
            lag = n.replication.as_ref().map_or(DASH.to_string(), |r| {
                let class = if lagging(r) { " class=\"warn\"" } else { "" };
                format!("<span{class} title=\"state {}\">{}</span>", escape(&r.state), lag(Some(r)))
            }),
            ops = rate_text(n.ops_per_sec, per_sec),
            node_ops = figure(&|h| h.ops_per_sec.to_string()),
            net = figure(&|h| format!(
                "{} / {}",
                bytes_per_sec(h.figures.input_kbps * 1024.0),
                bytes_per_sec(h.figures.output_kbps * 1024.0)
            )),
            clients = figure(&|h| h.connected_clients.to_string()),
            connections = n.connections,
            replies = n.replies,
            errors = if n.errors > 0 {
                format!("<span class=\"bad\">{}</span>", n.errors)
            } else {
                "0".to_string()
            },
            p50 = ms(n.latency_p50_us),
            p99 = ms(n.latency_p99_us),
            checked = n.health.as_ref().map_or(DASH.to_string(), |h| ago(now_ms, h.checked_at_ms)),
            down = down_since(n, now_ms),
            error =
                n.health.as_ref().and_then(|h| h.error.as_deref()).map_or(String::new(), escape),
        );
    }
    out
}

/// A bar of `used_memory` against `maxmemory`, or against the host's memory when the node has
/// no limit (then the bar is grey: nothing evicts at its end).
fn memory_bar(h: &proxy::health::NodeHealth) -> String {
    let f = &h.figures;
    let (limit, class, of) = match (f.maxmemory, f.total_system_memory) {
        (0, 0) => return format!("<span class=\"mem-text\">{}</span>", bytes(f.used_memory)),
        (0, host) => (host, "mem-bar no-limit", "of the host's memory (no maxmemory)".to_string()),
        (max, _) => (max, "mem-bar", format!("of maxmemory {}", bytes(max))),
    };
    let share = (f.used_memory as f64 / limit as f64).clamp(0.0, 1.0);
    let level = if f.maxmemory > 0 && share >= NEAR_LIMIT { " full" } else { "" };
    format!(
        concat!(
            "<div class=\"{class}{level}\" title=\"{pct:.1}% {of}\"><span style=\"width:{pct:.1}%\">",
            "</span></div><span class=\"mem-text\">{used}{max}</span>"
        ),
        class = class,
        level = level,
        pct = share * 100.0,
        of = escape(&of),
        used = bytes(f.used_memory),
        max = if f.maxmemory > 0 { format!(" / {}", bytes(f.maxmemory)) } else { String::new() },
    )
}

/// A replica too far behind (no acknowledgement for a while) or not streaming.
fn lagging(r: &proxy::snapshot::Replication) -> bool {
    r.lag_secs.is_some_and(|s| s >= LAG_ALARM_SECS)
        || !matches!(r.state.as_str(), "online" | "unlisted")
}

/// A replica's lag: bytes behind, and seconds since its last acknowledgement when known.
fn lag(r: Option<&proxy::snapshot::Replication>) -> String {
    let Some(r) = r else { return DASH.to_string() };
    match r.lag_secs {
        Some(secs) => format!("{}, {secs} s", bytes(r.behind_bytes)),
        None => bytes(r.behind_bytes),
    }
}

/// For a node that is down: how long, and when it was last seen healthy.
fn down_since(n: &NodeSnapshot, now_ms: u64) -> String {
    let Some(h) = n.health.as_ref().filter(|h| !h.up) else { return DASH.to_string() };
    let since =
        h.down_since_ms.map_or(String::new(), |t| format!("down for {}", how_long(now_ms, t)));
    let last_up = match h.last_up_ms {
        Some(t) => format!("last up {}", ago(now_ms, t)),
        None => "never seen up".to_string(),
    };
    format!("<span class=\"bad\">{since}</span> <span class=\"dim\">({last_up})</span>")
}

/// One row per command that was called, the busiest first.
pub fn command_rows(commands: &[CommandSnapshot]) -> String {
    if commands.is_empty() {
        return "<tr><td class=\"empty\" colspan=\"7\">no commands yet</td></tr>".to_string();
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
                "<tr class=\"command\"><td class=\"addr\">{name}</td>",
                "<td class=\"num rate\">{ops}</td><td class=\"num\">{calls}</td>",
                "<td class=\"num\">{errors}</td><td class=\"num\">{errors_rate}</td>",
                "<td class=\"num est\">{p50}</td><td class=\"num est\">{p99}</td></tr>"
            ),
            name = escape(&c.name),
            ops = rate_text(c.ops_per_sec, per_sec),
            calls = c.calls,
            errors = errors,
            errors_rate = rate_text(c.errors_per_sec, per_sec),
            p50 = ms(c.latency_p50_us),
            p99 = ms(c.latency_p99_us),
        );
    }
    out
}

/// A rate in a summary card, marked so that the page's structure can be checked.
fn rate_span(rate: Option<f64>, format: fn(f64) -> String) -> String {
    format!("<span class=\"rate\">{}</span>", rate_text(rate, format))
}

fn rate_text(rate: Option<f64>, format: fn(f64) -> String) -> String {
    rate.map_or(DASH.to_string(), format)
}

/// `12/s`, `1.5k/s`, `2.3M/s`: whole numbers up to a thousand.
pub fn per_sec(rate: f64) -> String {
    match rate {
        r if r < 10.0 && r.fract() != 0.0 => format!("{r:.1}/s"),
        r if r < 1_000.0 => format!("{r:.0}/s"),
        r if r < 1_000_000.0 => format!("{:.1}k/s", r / 1_000.0),
        r => format!("{:.1}M/s", r / 1_000_000.0),
    }
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `2.0 MiB`, `3.1 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn bytes_per_sec(rate: f64) -> String {
    format!("{}/s", bytes(rate.round() as u64))
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
    format!("{} ago", how_long(now_ms, then_ms))
}

/// The time since a Unix-ms time: `8 s`, `3m 5s`, `2h 0m 10s`.
pub fn how_long(now_ms: u64, then_ms: u64) -> String {
    let secs = now_ms.saturating_sub(then_ms) / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        _ => uptime(secs),
    }
}

/// Text for HTML content and quoted attribute values: the bench report's escaper, one for
/// every page redkeep writes.
pub use bench::report::escape;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::MonitorUrl;
    use crate::test_support::{NOW_MS, snapshot};

    const NONE: MonitorView = MonitorView::NotConfigured;

    fn url() -> MonitorUrl {
        MonitorUrl::parse("http://127.0.0.1:7030").unwrap()
    }

    #[test]
    fn the_monitors_alarms_replace_the_pages_own_and_its_events_show_newest_first() {
        let snap = snapshot();
        let alarm = MonitorAlarm {
            name: "node_down".into(),
            state: "firing".into(),
            severity: "critical".into(),
            since_ms: NOW_MS - 5_000,
            summary: "node 10.0.0.2:7001 <down>".into(),
            source: "monitor",
        };
        let event = |at_ms, kind: &str, text: &str| MonitorEvent {
            at_ms,
            kind: kind.into(),
            text: text.into(),
        };
        let events = vec![
            event(NOW_MS - 1_000, "heal", "plan: restart 10.0.0.2:7001"),
            event(NOW_MS - 5_000, "alarm", "node_down firing"),
        ];
        let view = MonitorView::Reachable { url: url(), alarms: vec![alarm], events };
        let html = render(&snap, &view, NOW_MS);
        assert!(html.contains("Alarms from the monitor at 127.0.0.1:7030."), "{html}");
        assert!(html.contains(concat!(
            "<li class=\"alarm bad\" data-alarm=\"node_down\"><span class=\"sev\">critical</span> ",
            "<b>node_down</b> node 10.0.0.2:7001 &lt;down&gt; <span class=\"dim\">firing for 5 s</span></li>"
        )));
        // Not the page's own alarm for the same node: one source at a time.
        assert!(!html.contains("is down for"));
        let heal = html.find("plan: restart 10.0.0.2:7001").unwrap();
        assert!(heal < html.find("node_down firing").unwrap());
        assert!(
            html.contains("<span class=\"dim\">1 s ago</span> <span class=\"kind\">heal</span>")
        );
        let parts = parts(&snap, &view, NOW_MS);
        assert!(html.contains(parts["events"].as_str().unwrap()));
    }

    #[test]
    fn an_unreachable_or_absent_monitor_leaves_the_pages_own_alarms_and_says_so() {
        let snap = snapshot();
        let down = MonitorView::Unreachable {
            url: url(),
            error: "cannot connect to 127.0.0.1:7030: Connection refused".into(),
        };
        let html = render(&snap, &down, NOW_MS);
        assert!(
            html.contains("The monitor at 127.0.0.1:7030 could not be reached (cannot connect")
        );
        assert!(html.contains("these alarms are the proxy's own"));
        assert!(html.contains("10.0.0.2:7001 (replica) is down for 8 s"));
        assert!(html.contains("could not be reached: no events."));
        let html = render(&snap, &NONE, NOW_MS);
        assert!(html.contains("Alarms from the proxy's own health checks (no monitor configured"));
        assert!(html.contains("10.0.0.2:7001 (replica) is down for 8 s"));
        assert!(html.contains("give the proxy <code>--monitor-url</code>"));
    }

    #[test]
    fn one_node_row_per_node_with_its_address() {
        let snap = snapshot();
        let html = render(&snap, &NONE, NOW_MS);
        assert_eq!(html.matches("class=\"node\"").count(), snap.nodes.len());
        assert!(html.contains(r#"<tr class="node" data-addr="10.0.0.1:7000" data-state="up">"#));
        assert!(html.contains(r#"<tr class="node" data-addr="10.0.0.2:7001" data-state="down">"#));
        assert!(html.contains(r#"<span class="badge s-up">up</span>"#));
        assert!(html.contains(r#"<span class="badge s-down">down</span>"#));
        // The replica names its master; the master's check was 3 s ago.
        assert!(html.contains(r#"<td>replica</td><td class="addr">10.0.0.1:7000</td>"#));
        assert!(html.contains("3 s ago"));
        assert!(html.contains("1234"));
    }

    #[test]
    fn node_figures_memory_bar_keys_lag_and_down_since() {
        let html = node_rows(&snapshot().nodes, NOW_MS);
        // 1.5 MiB of 100 MiB: a bar 1.5% wide.
        assert!(html.contains(r#"<div class="mem-bar" title="1.5% of maxmemory 100.0 MiB"><span style="width:1.5%"></span></div><span class="mem-text">1.5 MiB / 100.0 MiB</span>"#), "{html}");
        assert!(html.contains(r#"<td class="num keys">13</td>"#));
        assert!(html.contains(r#"<td class="num">5</td>"#), "evictions");
        assert!(
            html.contains(r#"<td class="lag"><span title="state online">300 B, 1 s</span></td>"#)
        );
        assert!(html.contains(r#"<td class="num rate">250/s</td>"#));
        assert!(html.contains(r#"<td class="num net">1.5 KiB/s / 512 B/s</td>"#), "{html}");
        assert!(html.contains("down for 8 s"));
        assert!(html.contains("last up 9 s ago"));
        // Only the node that is up has a bar.
        assert_eq!(html.matches("class=\"mem-bar").count(), 1);
        let mut nodes = snapshot().nodes;
        nodes[0].health.as_mut().unwrap().figures.maxmemory = 0;
        let html = node_rows(&nodes, NOW_MS);
        assert!(html.contains(r#"<div class="mem-bar no-limit" title="0.0% of the host&#39;s memory (no maxmemory)">"#), "{html}");
    }

    #[test]
    fn alarms_for_down_nodes_degraded_cluster_memory_and_lag() {
        let mut snap = snapshot();
        let found = alarms(&snap, NOW_MS);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].level, "bad");
        assert!(
            found[0]
                .text
                .starts_with("10.0.0.2:7001 (replica) is down for 8 s: connection refused")
        );
        snap.nodes.remove(1);
        assert!(alarms(&snap, NOW_MS).is_empty());
        assert!(render(&snap, &NONE, NOW_MS).contains("<p class=\"no-alarms\">No alarms.</p>"));
        let figures = &mut snap.nodes[0].health.as_mut().unwrap().figures;
        figures.used_memory = figures.maxmemory - 1;
        snap.cluster.state = "degraded";
        snap.cluster.slots_uncovered = 100;
        let texts: Vec<String> = alarms(&snap, NOW_MS).into_iter().map(|a| a.text).collect();
        assert_eq!(
            texts,
            [
                "cluster degraded: 100 slots have no serving master",
                "10.0.0.1:7000 uses 100.0 MiB of its maxmemory 100.0 MiB"
            ]
        );
        let html = render(&snap, &NONE, NOW_MS);
        assert_eq!(html.matches("<li class=\"alarm ").count(), 2);
        assert!(!html.contains("<p class=\"no-alarms\""));
    }

    #[test]
    fn text_from_nodes_is_escaped() {
        let html = render(&snapshot(), &NONE, NOW_MS);
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
        let html = render(&snap, &NONE, NOW_MS);
        assert!(html.contains(r#"data-addr="&quot;&gt;&lt;b&gt;""#));
    }

    #[test]
    fn page_is_self_contained() {
        let html = render(&snapshot(), &NONE, NOW_MS);
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
    fn parts_are_the_pages_own_markup() {
        let snap = snapshot();
        let html = render(&snap, &NONE, NOW_MS);
        let parts = parts(&snap, &NONE, NOW_MS);
        for id in [
            "version",
            "listen",
            "uptime",
            "alarms",
            "summary",
            "events",
            "nodes-body",
            "commands-body",
        ] {
            let part = parts[id].as_str().unwrap_or_else(|| panic!("no part {id}"));
            assert!(html.contains(&format!("id=\"{id}\">{part}<")), "{id}: {part}");
            // The script fills exactly these ids.
            assert!(JS.contains(&format!("\"{id}\"")), "{id} not in page.js");
        }
        assert_eq!(parts["title"], "redkeep proxy 127.0.0.1:7777");
    }

    #[test]
    fn summary_and_commands() {
        let html = render(&snapshot(), &NONE, NOW_MS);
        assert!(html.contains("<dt>commands</dt><dd>42</dd>"));
        assert!(html.contains("<dt>MOVED followed</dt><dd>2</dd>"));
        assert!(html.contains("<dt>state</dt><dd><span class=\"badge s-ok\">ok</span></dd>"));
        assert!(html.contains("<dt>ops/s</dt><dd><span class=\"rate\">1.2k/s</span></dd>"));
        assert!(html.contains("<dt>out</dt><dd><span class=\"rate\">1.5 MiB/s</span></dd>"));
        assert!(html.contains("<dt>peak</dt><dd>5</dd><dt>max</dt><dd>10000</dd>"));
        assert!(html.contains("<dt>nodes up</dt><dd>1 of 2</dd>"));
        assert!(html.contains("<b id=\"uptime\">3d 4h 5m 6s</b>"));
        // Busiest command first, with its rates and estimated percentiles.
        let get = html.find("<td class=\"addr\">get</td>").unwrap();
        let set = html.find("<td class=\"addr\">set</td>").unwrap();
        assert!(get < set);
        assert!(html.contains(concat!(
            "<td class=\"addr\">get</td><td class=\"num rate\">1.2k/s</td><td class=\"num\">40</td>",
            "<td class=\"num\">0</td><td class=\"num\">0/s</td>",
            "<td class=\"num est\">0.107 ms</td><td class=\"num est\">4.01 ms</td>"
        )), "{html}");
        assert!(html.contains("p50 (est.)") && html.contains("p99 (est.)"));
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
        assert_eq!(how_long(200_000, 10_000), "3m 10s");
        assert_eq!(per_sec(0.0), "0/s");
        assert_eq!(per_sec(0.4), "0.4/s");
        assert_eq!(per_sec(12.0), "12/s");
        assert_eq!(per_sec(45_600.0), "45.6k/s");
        assert_eq!(per_sec(2_340_000.0), "2.3M/s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn empty_tables_say_so() {
        let mut snap = snapshot();
        snap.nodes.clear();
        snap.commands.clear();
        let html = render(&snap, &NONE, NOW_MS);
        assert!(html.contains("no nodes in the slot map"));
        assert!(html.contains("no commands yet"));
        assert_eq!(html.matches("class=\"node\"").count(), 0);
    }
}
