//! The monitor's alarms and event timeline for the stats page (`redkeep proxy --monitor-url`).
//!
//! The stats server fetches them itself, on each page render and refresh, from the monitor's
//! `GET /api/v1/alarms` and `GET /api/v1/events`, rather than the page's script fetching them:
//! the browser then needs no route to the monitor (which often listens on the proxy host's
//! loopback only) and no CORS, the stats token guards this data too, the page is complete
//! without JS, and there stays one renderer ([`crate::page`]). Each fetch has a short
//! deadline ([`FETCH_TIMEOUT`]), so a monitor that hangs never makes the page hang: it is then
//! shown as unreachable and the page falls back to its own snapshot-derived alarms.
//!
//! Parsing ([`parse_alarms`], [`parse_events`]) is pure; [`fetch`] is the I/O.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one page render waits for the monitor (both requests, made at once).
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(800);
/// Events shown on the timeline, newest first.
pub const EVENTS_SHOWN: usize = 20;
/// The most a monitor answer may hold; beyond it the answer is refused (the page must not
/// buffer whatever a wrong URL sends).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Where the monitor's API is: `http://HOST:PORT`, checked once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorUrl {
    /// `HOST:PORT`, what the page shows (never credentials: URLs with them are refused).
    pub authority: String,
}

impl MonitorUrl {
    /// Accepts `http://HOST:PORT` with an optional trailing `/`.
    pub fn parse(text: &str) -> Result<MonitorUrl, String> {
        let bad = |why: &str| {
            format!(
                "monitor URL `{text}`: {why} (expected http://HOST:PORT, e.g. http://127.0.0.1:7030)"
            )
        };
        let rest = text.strip_prefix("http://").ok_or_else(|| bad("it must start with http://"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if authority.contains('/') {
            return Err(bad("no path: the monitor's API is at its root"));
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("a port is needed"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad("HOST:PORT is not valid"));
        }
        Ok(MonitorUrl { authority: authority.to_string() })
    }
}

/// One pending or firing alarm, as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorAlarm {
    pub name: String,
    /// `firing` or `pending` (or `firing` for an alert Alertmanager sent).
    pub state: String,
    pub severity: String,
    /// Unix ms: since it fired (pending: since its condition was first seen).
    pub since_ms: u64,
    pub summary: String,
    /// `monitor` (its own rules) or `alertmanager` (received on `POST /api/v1/alerts`).
    pub source: &'static str,
}

/// One line of the monitor's event timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorEvent {
    pub at_ms: u64,
    /// `alarm` (a transition), `heal` (a healing plan or result) or `received`.
    pub kind: String,
    pub text: String,
}

/// What the page knows of the monitor at one render.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorView {
    /// No `--monitor-url`: the page's own alarms, no timeline.
    NotConfigured,
    Reachable {
        url: MonitorUrl,
        alarms: Vec<MonitorAlarm>,
        events: Vec<MonitorEvent>,
    },
    /// The monitor did not answer well in time: the page's own alarms, and why.
    Unreachable {
        url: MonitorUrl,
        error: String,
    },
}

fn text(value: &serde_json::Value, key: &str) -> String {
    value.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_string()
}

fn number(value: &serde_json::Value, key: &str) -> Option<u64> {
    value.get(key).and_then(|v| v.as_u64())
}

/// The alarms of `GET /api/v1/alarms`: the monitor's own (firing first, then pending, each
/// newest first) and the firing alerts Alertmanager sent it.
pub fn parse_alarms(json: &serde_json::Value) -> Result<Vec<MonitorAlarm>, String> {
    let own = json
        .get("alarms")
        .and_then(|a| a.as_array())
        .ok_or("the monitor's /api/v1/alarms answer has no `alarms` list")?;
    let mut out: Vec<MonitorAlarm> = own
        .iter()
        .map(|a| {
            let labels = a.get("labels").cloned().unwrap_or_default();
            let annotations = a.get("annotations").cloned().unwrap_or_default();
            let since_ms = number(a, "firing_since_ms").or(number(a, "active_since_ms"));
            MonitorAlarm {
                name: text(&labels, "alertname"),
                state: text(a, "state"),
                severity: text(&labels, "severity"),
                since_ms: since_ms.unwrap_or(0),
                summary: text(&annotations, "summary"),
                source: "monitor",
            }
        })
        .collect();
    let received = json.get("received").and_then(|r| r.as_array()).cloned().unwrap_or_default();
    out.extend(received.iter().map(|r| {
        let alert = r.get("alert").cloned().unwrap_or_default();
        let labels = alert.get("labels").cloned().unwrap_or_default();
        let annotations = alert.get("annotations").cloned().unwrap_or_default();
        MonitorAlarm {
            name: text(&labels, "alertname"),
            state: "firing".into(),
            severity: text(&labels, "severity"),
            since_ms: number(r, "at_ms").unwrap_or(0),
            summary: text(&annotations, "summary"),
            source: "alertmanager",
        }
    }));
    out.sort_by(|a, b| (a.state != "firing", b.since_ms).cmp(&(b.state != "firing", a.since_ms)));
    Ok(out)
}

/// The last [`EVENTS_SHOWN`] events of `GET /api/v1/events` (kept oldest first), newest first.
pub fn parse_events(json: &serde_json::Value) -> Result<Vec<MonitorEvent>, String> {
    let events = json
        .get("events")
        .and_then(|e| e.as_array())
        .ok_or("the monitor's /api/v1/events answer has no `events` list")?;
    Ok(events
        .iter()
        .rev()
        .take(EVENTS_SHOWN)
        .map(|e| MonitorEvent {
            at_ms: number(e, "at_ms").unwrap_or(0),
            kind: text(e, "kind"),
            text: text(e, "text"),
        })
        .collect())
}

/// Asks the monitor for its alarms and events, both at once, within [`FETCH_TIMEOUT`].
pub async fn fetch(url: &MonitorUrl) -> MonitorView {
    let both = async {
        let (alarms, events) =
            tokio::join!(get_json(url, "/api/v1/alarms"), get_json(url, "/api/v1/events"));
        Ok::<_, String>((parse_alarms(&alarms?)?, parse_events(&events?)?))
    };
    let answer = tokio::time::timeout(FETCH_TIMEOUT, both)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", FETCH_TIMEOUT.as_millis())));
    match answer {
        Ok((alarms, events)) => MonitorView::Reachable { url: url.clone(), alarms, events },
        Err(error) => MonitorView::Unreachable { url: url.clone(), error },
    }
}

/// `GET path` over HTTP/1.1 (`Connection: close`), the body parsed as JSON.
async fn get_json(url: &MonitorUrl, path: &str) -> Result<serde_json::Value, String> {
    let authority = &url.authority;
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n\
         Connection: close\r\nUser-Agent: redkeep-stats\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("{authority}: {e}"))?;
    let mut raw = Vec::new();
    let mut limited = stream.take(MAX_ANSWER_BYTES as u64 + 1);
    limited.read_to_end(&mut raw).await.map_err(|e| format!("{authority}: {e}"))?;
    if raw.len() > MAX_ANSWER_BYTES {
        return Err(format!("{authority}{path} answered more than {MAX_ANSWER_BYTES} bytes"));
    }
    let body = http_body(&raw).map_err(|e| format!("{authority}{path}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{authority}{path}: not JSON: {e}"))
}

/// The body of a whole HTTP/1.1 answer, when its status is 200 (chunked or not).
fn http_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("an incomplete answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered `{status_line}`"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked { dechunk(body) } else { Ok(body.to_vec()) }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let end = body.windows(2).position(|w| w == b"\r\n").ok_or("a cut chunked body")?;
        let size = std::str::from_utf8(&body[..end]).unwrap_or_default();
        let size = size.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| "a bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let data = body.get(end + 2..end + 2 + size).ok_or("a cut chunk")?;
        out.extend_from_slice(data);
        body = body.get(end + 4 + size..).ok_or("a cut chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_http_host_port_without_credentials_or_path() {
        let ok = MonitorUrl::parse("http://127.0.0.1:7030/").unwrap();
        assert_eq!(ok.authority, "127.0.0.1:7030");
        assert_eq!(MonitorUrl::parse("http://mon:7030").unwrap().authority, "mon:7030");
        for bad in [
            "127.0.0.1:7030",
            "https://m:7030",
            "http://u:pw@m:7030",
            "http://m:7030/api",
            "http://m",
            "http://:7030",
            "http://m:99999",
        ] {
            let err = MonitorUrl::parse(bad).unwrap_err();
            assert!(err.contains("http://HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn alarms_firing_first_then_pending_newest_first_with_received_ones() {
        let alarm = |name: &str, state: &str, active: u64, firing: Option<u64>| {
            json!({
                "rule": name, "state": state,
                "labels": {"alertname": name, "severity": "critical", "addr": "n:1"},
                "annotations": {"summary": format!("{name} on n:1")},
                "active_since_ms": active, "firing_since_ms": firing,
            })
        };
        let answer = json!({
            "alarms": [
                alarm("slot_open", "pending", 500, None),
                alarm("node_down", "firing", 100, Some(1000)),
                alarm("memory_high", "firing", 100, Some(2000)),
            ],
            "received": [{
                "at_ms": 1500, "receiver": "redkeep",
                "alert": {"labels": {"alertname": "RedisDown", "severity": "page"},
                          "annotations": {"summary": "from prometheus"}},
            }],
        });
        let alarms = parse_alarms(&answer).unwrap();
        let order: Vec<(&str, u64)> =
            alarms.iter().map(|a| (a.name.as_str(), a.since_ms)).collect();
        assert_eq!(
            order,
            [("memory_high", 2000), ("RedisDown", 1500), ("node_down", 1000), ("slot_open", 500)]
        );
        assert_eq!(alarms[2].severity, "critical");
        assert_eq!(alarms[2].summary, "node_down on n:1");
        assert_eq!(alarms[1].source, "alertmanager");
        assert!(parse_alarms(&json!({"nope": 1})).is_err());
    }

    #[test]
    fn events_newest_first_and_at_most_the_last_few() {
        let events: Vec<_> = (0..EVENTS_SHOWN as u64 + 5)
            .map(|i| json!({"at_ms": i, "kind": "alarm", "text": format!("e{i}"), "detail": {}}))
            .collect();
        let shown = parse_events(&json!({ "events": events })).unwrap();
        assert_eq!(shown.len(), EVENTS_SHOWN);
        assert_eq!(shown[0].text, format!("e{}", EVENTS_SHOWN + 4));
        assert_eq!(shown.last().unwrap().at_ms, 5);
    }

    #[test]
    fn http_bodies_plain_chunked_and_errors() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(http_body(plain).unwrap(), b"{}");
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(http_body(chunked).unwrap(), b"{\"a\":1}");
        let err = http_body(b"HTTP/1.1 404 Not Found\r\n\r\nno").unwrap_err();
        assert!(err.contains("404"), "{err}");
        assert!(http_body(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
