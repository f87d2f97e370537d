//! The alarm book: conditions in, alarms out. An alarm is pending while its condition holds for
//! less than the rule's "for" duration, firing after, resolved when the condition went (and
//! `keep_firing_for` passed). Pure: time is the model's timestamp, passed in.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::rules::Condition;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

/// One alarm: a rule's condition for one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    pub rule: String,
    /// Alertmanager's labels: `alertname`, `severity` and the condition's own.
    pub labels: BTreeMap<String, String>,
    /// `summary` and `description`.
    pub annotations: BTreeMap<String, String>,
    pub state: State,
    /// When the condition was first seen (ms since the epoch).
    pub active_since_ms: u64,
    pub firing_since_ms: Option<u64>,
    /// When it resolved.
    pub ended_ms: Option<u64>,
    /// When the condition last held.
    pub last_seen_ms: u64,
    pub value: f64,
    /// Alertmanager's fingerprint of the labels (16 hex digits).
    pub fingerprint: String,
}

/// A change of an alarm's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub at_ms: u64,
    /// `inactive` for a new alarm.
    pub from: String,
    pub to: State,
    pub alarm: Alarm,
}

/// The alarms that are pending or firing, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct AlarmBook {
    active: BTreeMap<String, Alarm>,
}

impl AlarmBook {
    pub fn active(&self) -> impl Iterator<Item = &Alarm> {
        self.active.values()
    }

    pub fn firing(&self) -> impl Iterator<Item = &Alarm> {
        self.active.values().filter(|a| a.state == State::Firing)
    }

    /// Takes the conditions that hold at `at_ms` and returns what changed.
    pub fn step(
        &mut self,
        config: &Config,
        at_ms: u64,
        conditions: &[Condition],
    ) -> Vec<Transition> {
        let mut transitions = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for cond in conditions {
            let settings = config.rule(cond.rule);
            let labels = alarm_labels(cond, &settings.severity);
            let fingerprint = fingerprint(&labels);
            seen.insert(fingerprint.clone());
            let alarm = self.active.entry(fingerprint.clone()).or_insert_with(|| {
                let alarm = Alarm {
                    rule: cond.rule.to_string(),
                    labels,
                    annotations: annotations(cond),
                    state: State::Pending,
                    active_since_ms: at_ms,
                    firing_since_ms: None,
                    ended_ms: None,
                    last_seen_ms: at_ms,
                    value: cond.value,
                    fingerprint,
                };
                transitions.push(Transition {
                    at_ms,
                    from: "inactive".into(),
                    to: State::Pending,
                    alarm: alarm.clone(),
                });
                alarm
            });
            alarm.last_seen_ms = at_ms;
            alarm.value = cond.value;
            alarm.annotations = annotations(cond);
            let held_ms = at_ms.saturating_sub(alarm.active_since_ms);
            if alarm.state == State::Pending && u128::from(held_ms) >= settings.for_.as_millis() {
                alarm.state = State::Firing;
                alarm.firing_since_ms = Some(at_ms);
                transitions.push(Transition {
                    at_ms,
                    from: "pending".into(),
                    to: State::Firing,
                    alarm: alarm.clone(),
                });
            }
        }
        let gone: Vec<String> =
            self.active.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            let alarm = &self.active[&key];
            let keep = config.rule(&alarm.rule).keep_firing_for;
            let since_seen = at_ms.saturating_sub(alarm.last_seen_ms);
            if alarm.state == State::Firing && u128::from(since_seen) < keep.as_millis() {
                continue;
            }
            let mut alarm = self.active.remove(&key).expect("listed");
            let from = if alarm.state == State::Firing { "firing" } else { "pending" };
            alarm.state = State::Resolved;
            alarm.ended_ms = Some(at_ms);
            transitions.push(Transition { at_ms, from: from.into(), to: State::Resolved, alarm });
        }
        transitions
    }
}

fn alarm_labels(cond: &Condition, severity: &str) -> BTreeMap<String, String> {
    let rule = crate::rules::rule(cond.rule).expect("conditions come from known rules");
    let mut labels = cond.labels.clone();
    labels.insert("alertname".into(), rule.alertname.into());
    labels.insert("severity".into(), severity.into());
    labels
}

fn annotations(cond: &Condition) -> BTreeMap<String, String> {
    let rule = crate::rules::rule(cond.rule).expect("conditions come from known rules");
    BTreeMap::from([
        ("summary".to_string(), cond.summary.clone()),
        ("description".to_string(), rule.description.to_string()),
    ])
}

/// Prometheus' label-set fingerprint (FNV-1a 64 over sorted `name 0xff value 0xff`), as
/// Alertmanager puts in its webhooks, so a receiver that dedupes by it keeps working.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down(addr: &str) -> Condition {
        Condition {
            rule: "node_down",
            labels: BTreeMap::from([("addr".to_string(), addr.to_string())]),
            summary: format!("{addr} is down"),
            value: 1.0,
        }
    }

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let config = Config::default(); // node_down: for 1s
        let mut book = AlarmBook::default();
        let t = book.step(&config, 1000, &[down("a:1")]);
        assert_eq!((t.len(), t[0].to), (1, State::Pending));
        assert!(book.step(&config, 1500, &[down("a:1")]).is_empty(), "still within for");
        let t = book.step(&config, 2000, &[down("a:1")]);
        assert_eq!((t.len(), t[0].to, t[0].alarm.firing_since_ms), (1, State::Firing, Some(2000)));
        assert!(book.step(&config, 3000, &[down("a:1")]).is_empty());
        let t = book.step(&config, 4000, &[]);
        assert_eq!((t.len(), t[0].to, t[0].from.as_str()), (1, State::Resolved, "firing"));
        assert_eq!(t[0].alarm.ended_ms, Some(4000));
        assert_eq!(book.active().count(), 0);
    }

    #[test]
    fn a_condition_shorter_than_for_never_fires() {
        let config = Config::default();
        let mut book = AlarmBook::default();
        book.step(&config, 1000, &[down("a:1")]);
        let t = book.step(&config, 1500, &[]);
        assert_eq!((t.len(), t[0].to, t[0].from.as_str()), (1, State::Resolved, "pending"));
        assert_eq!(book.firing().count(), 0);
    }

    #[test]
    fn keep_firing_for_holds_one_shot_alarms() {
        let config = Config::default(); // evictions: for 0, keep 60s
        let mut book = AlarmBook::default();
        let evicted = Condition { rule: "evictions", ..down("a:1") };
        let t = book.step(&config, 1000, std::slice::from_ref(&evicted));
        assert_eq!(t.iter().map(|t| t.to).collect::<Vec<_>>(), [State::Pending, State::Firing]);
        assert!(book.step(&config, 30_000, &[]).is_empty());
        assert_eq!(book.step(&config, 61_000, &[])[0].to, State::Resolved);
    }

    #[test]
    fn labels_carry_alertname_and_severity_and_the_fingerprint_is_prometheus() {
        let config = Config::default();
        let mut book = AlarmBook::default();
        let t = book.step(&config, 0, &[down("a:1")]);
        let labels = &t[0].alarm.labels;
        assert_eq!(labels["alertname"], "RedisNodeDown");
        assert_eq!(labels["severity"], "critical");
        // The empty label set hashes to FNV-1a's offset basis, as in Prometheus.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        assert_ne!(t[0].alarm.fingerprint, fingerprint(&BTreeMap::new()));
    }
}
