//! What `redkeep controller --monitor` tells the monitor, as the monitor's own alarms (sent in
//! Alertmanager's webhook format by `monitor::notify`):
//! - `RedkeepControllerAction` (info; warning when it failed): one per action applied, fired
//!   and resolved right after, since it is a record for the timeline, not a standing condition;
//! - `RedkeepControllerStuck` (warning): a node the controller could not reach, or a reason it
//!   waits (known nodes it cannot match to any address), for `stuck_after` passes in a row;
//!   firing until a pass no longer finds it.
//!
//! Pure: [`Reporter::step`] turns a pass into the alarms to send, in order.

use std::collections::BTreeMap;

use deploy::controller::{Action, PassReport};
use monitor::alarms::{Alarm, State, fingerprint};
use monitor::rules::{CONTROLLER_ACTION, CONTROLLER_STUCK};

/// Remembers, across passes, what has been stuck and for how long.
pub struct Reporter {
    stuck_after: u32,
    stuck: BTreeMap<String, Stuck>,
}

/// A subject stuck in the last pass: for how many passes in a row, and its alarm once firing.
struct Stuck {
    passes: u32,
    since_ms: u64,
    firing: Option<Alarm>,
}

impl Reporter {
    pub fn new(stuck_after: u32) -> Reporter {
        Reporter { stuck_after: stuck_after.max(1), stuck: BTreeMap::new() }
    }

    /// The alarms one pass gives, in batches to send one after the other: first what fired
    /// or resolved (actions and stuck subjects), then the actions resolved.
    pub fn step(&mut self, report: &PassReport, at_ms: u64) -> Vec<Vec<Alarm>> {
        let fired: Vec<Alarm> =
            report.applied.iter().map(|(a, e)| action_alarm(a, e.as_deref(), at_ms)).collect();
        let resolved: Vec<Alarm> = fired.iter().map(|a| resolve(a.clone(), at_ms)).collect();
        let mut first = fired;
        first.extend(self.stuck_changes(report, at_ms));
        [first, resolved].into_iter().filter(|batch| !batch.is_empty()).collect()
    }

    /// Stuck subjects that reached `stuck_after` passes (firing) or cleared (resolved).
    fn stuck_changes(&mut self, report: &PassReport, at_ms: u64) -> Vec<Alarm> {
        let now = stuck_subjects(report);
        let mut changes = Vec::new();
        let cleared: Vec<String> =
            self.stuck.keys().filter(|k| !now.contains_key(*k)).cloned().collect();
        for key in cleared {
            if let Some(alarm) = self.stuck.remove(&key).and_then(|s| s.firing) {
                changes.push(resolve(alarm, at_ms));
            }
        }
        for (key, (labels, summary)) in now {
            let entry =
                self.stuck.entry(key).or_insert(Stuck { passes: 0, since_ms: at_ms, firing: None });
            entry.passes += 1;
            if entry.passes >= self.stuck_after && entry.firing.is_none() {
                let description = format!(
                    "the controller could not reach or match this for {} pass(es) in a row",
                    entry.passes
                );
                let alarm =
                    alarm("controller_stuck", labels, summary, description, entry.since_ms, at_ms);
                changes.push(alarm.clone());
                entry.firing = Some(alarm);
            }
        }
        changes
    }
}

/// This pass's stuck subjects by key: their labels and summary. An address that did not
/// answer is one subject (`addr`); each reason the controller waits is another (`waiting`).
fn stuck_subjects(report: &PassReport) -> BTreeMap<String, (BTreeMap<String, String>, String)> {
    let mut out = BTreeMap::new();
    for (addr, why) in &report.unreachable {
        let labels = BTreeMap::from([
            ("alertname".to_string(), CONTROLLER_STUCK.to_string()),
            ("severity".to_string(), "warning".to_string()),
            ("addr".to_string(), addr.clone()),
        ]);
        out.insert(format!("addr {addr}"), (labels, format!("{addr}: {why}")));
    }
    for line in &report.decision.waiting {
        let labels = BTreeMap::from([
            ("alertname".to_string(), CONTROLLER_STUCK.to_string()),
            ("severity".to_string(), "warning".to_string()),
            ("waiting".to_string(), line.clone()),
        ]);
        out.insert(format!("waiting {line}"), (labels, format!("waiting: {line}")));
    }
    out
}

fn action_alarm(action: &Action, error: Option<&str>, at_ms: u64) -> Alarm {
    let (kind, addr) = match action {
        Action::Form(formation) => {
            ("form", formation.masters.first().map(|(a, _)| a.clone()).unwrap_or_default())
        }
        Action::Meet { on, .. } => ("meet", on.clone()),
        Action::Join { node, .. } => ("join", node.clone()),
    };
    let severity = if error.is_some() { "warning" } else { "info" };
    let labels = BTreeMap::from([
        ("alertname".to_string(), CONTROLLER_ACTION.to_string()),
        ("severity".to_string(), severity.to_string()),
        ("action".to_string(), kind.to_string()),
        ("addr".to_string(), addr),
        ("result".to_string(), if error.is_some() { "failed" } else { "done" }.to_string()),
    ]);
    let summary = match error {
        None => format!("done: {action}"),
        Some(e) => format!("failed: {action}: {e}"),
    };
    let description = "an action of redkeep controller (a record: resolved right after)";
    alarm("controller_action", labels, summary, description.into(), at_ms, at_ms)
}

fn alarm(
    rule: &str,
    labels: BTreeMap<String, String>,
    summary: String,
    description: String,
    since_ms: u64,
    at_ms: u64,
) -> Alarm {
    Alarm {
        rule: rule.into(),
        fingerprint: fingerprint(&labels),
        labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
        ]),
        state: State::Firing,
        active_since_ms: since_ms,
        firing_since_ms: Some(at_ms),
        ended_ms: None,
        last_seen_ms: at_ms,
        value: 1.0,
    }
}

fn resolve(mut alarm: Alarm, at_ms: u64) -> Alarm {
    alarm.state = State::Resolved;
    alarm.ended_ms = Some(at_ms);
    alarm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meet() -> Action {
        Action::Meet {
            on: "10.0.0.1:6379".into(),
            peer_id: "abcdef0123456789".into(),
            peer_addr: "10.0.0.9:6379".into(),
            was: "10.0.0.2:6379".into(),
        }
    }

    fn names_and_states(batch: &[Alarm]) -> Vec<(String, State)> {
        batch.iter().map(|a| (a.labels["alertname"].clone(), a.state)).collect()
    }

    #[test]
    fn an_action_fires_then_resolves_and_a_failure_is_a_warning() {
        let mut reporter = Reporter::new(3);
        let report = PassReport {
            applied: vec![(meet(), None), (meet(), Some("connection refused".into()))],
            ..PassReport::default()
        };
        let batches = reporter.step(&report, 1_000);
        assert_eq!(batches.len(), 2);
        let action = CONTROLLER_ACTION.to_string();
        let firing = (action.clone(), State::Firing);
        assert_eq!(names_and_states(&batches[0]), [firing.clone(), firing]);
        let resolved = (action, State::Resolved);
        assert_eq!(names_and_states(&batches[1]), [resolved.clone(), resolved]);
        let (done, failed) = (&batches[0][0], &batches[0][1]);
        assert_eq!(
            (done.labels["severity"].as_str(), done.labels["action"].as_str()),
            ("info", "meet")
        );
        assert_eq!(done.labels["addr"], "10.0.0.1:6379");
        assert!(done.annotations["summary"].starts_with("done: 10.0.0.1:6379: CLUSTER MEET"));
        assert_eq!(failed.labels["severity"], "warning");
        assert!(failed.annotations["summary"].ends_with("connection refused"));
        assert_eq!(batches[1][0].ended_ms, Some(1_000));
    }

    #[test]
    fn a_node_stuck_for_n_passes_fires_once_and_resolves_when_it_answers() {
        let mut reporter = Reporter::new(2);
        let stuck = PassReport {
            unreachable: vec![("10.0.0.3:6379".into(), "connection refused".into())],
            ..PassReport::default()
        };
        assert!(reporter.step(&stuck, 1_000).is_empty(), "one pass is not stuck yet");
        let batches = reporter.step(&stuck, 2_000);
        assert_eq!(names_and_states(&batches[0]), [(CONTROLLER_STUCK.to_string(), State::Firing)]);
        let alarm = &batches[0][0];
        assert_eq!(
            (alarm.labels["addr"].as_str(), alarm.active_since_ms),
            ("10.0.0.3:6379", 1_000)
        );
        assert!(reporter.step(&stuck, 3_000).is_empty(), "firing is said once");
        let batches = reporter.step(&PassReport::default(), 4_000);
        assert_eq!(batches[0][0].state, State::Resolved);
        assert_eq!(batches[0][0].fingerprint, alarm.fingerprint);
        assert!(reporter.step(&PassReport::default(), 5_000).is_empty());
    }

    #[test]
    fn a_subject_that_clears_before_n_passes_says_nothing_and_counts_again() {
        let mut reporter = Reporter::new(2);
        let mut waiting = PassReport::default();
        waiting.decision.waiting = vec!["1 known node(s) did not answer".into()];
        assert!(reporter.step(&waiting, 1_000).is_empty());
        assert!(reporter.step(&PassReport::default(), 2_000).is_empty());
        assert!(reporter.step(&waiting, 3_000).is_empty(), "the count started again");
        let batches = reporter.step(&waiting, 4_000);
        assert_eq!(batches[0][0].labels["waiting"], "1 known node(s) did not answer");
    }
}
