//! Notifications in Alertmanager's webhook format (version 4), so receivers written for
//! Alertmanager (chat bridges, incident tools, redkeep's own `POST /api/v1/alerts`) take them
//! as they are. [`payload`] is pure; [`send`] posts it over plain HTTP.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::alarms::{Alarm, State};

/// Alertmanager's webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

/// Alertmanager's "not ended" time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// One payload per alert name, as Alertmanager groups by `alertname` by default; `alarms` are
/// the ones that just fired or resolved.
pub fn payload(receiver: &str, external_url: &str, alarms: &[&Alarm]) -> Vec<Payload> {
    let mut groups: BTreeMap<&str, Vec<&Alarm>> = BTreeMap::new();
    for alarm in alarms.iter().filter(|a| a.state != State::Pending) {
        groups.entry(alarm.labels["alertname"].as_str()).or_default().push(alarm);
    }
    groups
        .into_iter()
        .map(|(alertname, alarms)| {
            let firing = alarms.iter().any(|a| a.state == State::Firing);
            let group_labels = BTreeMap::from([("alertname".to_string(), alertname.to_string())]);
            Payload {
                version: "4".into(),
                group_key: format!("{{}}:{{alertname=\"{alertname}\"}}"),
                truncated_alerts: 0,
                status: if firing { "firing" } else { "resolved" }.into(),
                receiver: receiver.into(),
                common_labels: common(alarms.iter().map(|a| &a.labels)),
                common_annotations: common(alarms.iter().map(|a| &a.annotations)),
                group_labels,
                external_url: external_url.into(),
                alerts: alarms.iter().map(|a| alert(a, external_url)).collect(),
            }
        })
        .collect()
}

fn alert(alarm: &Alarm, external_url: &str) -> Alert {
    let resolved = alarm.state == State::Resolved;
    Alert {
        status: if resolved { "resolved" } else { "firing" }.into(),
        labels: alarm.labels.clone(),
        annotations: alarm.annotations.clone(),
        starts_at: rfc3339(alarm.firing_since_ms.unwrap_or(alarm.active_since_ms)),
        ends_at: alarm.ended_ms.map_or_else(|| ZERO_TIME.to_string(), rfc3339),
        generator_url: format!("{external_url}/api/v1/alarms"),
        fingerprint: alarm.fingerprint.clone(),
    }
}

/// The pairs every map has, with the same value.
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else { return BTreeMap::new() };
    let mut out = first.clone();
    for map in maps {
        out.retain(|k, v| map.get(k) == Some(v));
    }
    out
}

/// Posts `body` as JSON to an `http://host:port/path` URL; Ok when the receiver answers 2xx.
pub async fn send(url: &str, body: &Payload, timeout: Duration) -> Result<(), String> {
    let json = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, post(url, &json))
        .await
        .unwrap_or_else(|_| Err(format!("{url} did not answer within {timeout:?}")))
}

async fn post(url: &str, body: &[u8]) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("webhook URL {url} must start with http:// (https is not supported)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\nUser-Agent: redkeep-monitor\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.map_err(|e| e.to_string())?;
    let status_line =
        String::from_utf8_lossy(&reply).lines().next().unwrap_or_default().to_string();
    match status_line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') => Ok(()),
        _ => Err(format!("{url} answered `{status_line}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(addr: &str, state: State) -> Alarm {
        let labels = BTreeMap::from([
            ("alertname".to_string(), "RedisNodeDown".to_string()),
            ("severity".to_string(), "critical".to_string()),
            ("addr".to_string(), addr.to_string()),
        ]);
        Alarm {
            rule: "node_down".into(),
            fingerprint: crate::alarms::fingerprint(&labels),
            labels,
            annotations: BTreeMap::from([("summary".to_string(), format!("{addr} down"))]),
            state,
            active_since_ms: 1_000,
            firing_since_ms: Some(2_000),
            ended_ms: (state == State::Resolved).then_some(9_000),
            last_seen_ms: 2_000,
            value: 1.0,
        }
    }

    #[test]
    fn payload_has_alertmanagers_fields() {
        let (a, b) = (alarm("n:1", State::Firing), alarm("n:2", State::Resolved));
        let payloads = payload("redkeep", "http://m:7030", &[&a, &b]);
        assert_eq!(payloads.len(), 1);
        let json = serde_json::to_value(&payloads[0]).unwrap();
        assert_eq!(json["version"], "4");
        assert_eq!(json["status"], "firing");
        assert_eq!(json["groupLabels"]["alertname"], "RedisNodeDown");
        assert_eq!(json["commonLabels"]["severity"], "critical");
        assert!(json["commonLabels"].get("addr").is_none(), "addr differs");
        assert_eq!(json["externalURL"], "http://m:7030");
        let alerts = json["alerts"].as_array().unwrap();
        assert_eq!(alerts[0]["startsAt"], "1970-01-01T00:00:02.000Z");
        assert_eq!(alerts[0]["endsAt"], ZERO_TIME);
        assert_eq!(alerts[1]["status"], "resolved");
        assert_eq!(alerts[1]["endsAt"], "1970-01-01T00:00:09.000Z");
        assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);
        // And it reads back, as redkeep's receiver parses Alertmanager's.
        let back: Payload = serde_json::from_value(json).unwrap();
        assert_eq!(back, payloads[0]);
    }

    #[test]
    fn pending_alarms_are_not_sent() {
        let a = alarm("n:1", State::Pending);
        assert!(payload("r", "u", &[&a]).is_empty());
    }
}
