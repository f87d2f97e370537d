//! The monitor's loop: poll, evaluate the rules, step the alarms, log and notify every
//! transition, plan and (within the guardrails) apply healing, publish for the HTTP API.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::alarms::{AlarmBook, State, Transition};
use crate::config::Config;
use crate::heal::{self, Decision, Guard, Mode, Plan, Supervisor};
use crate::model::Model;
use crate::poll::Poller;
use crate::rules::{self, Condition};
use crate::server::{Event, Shared, SharedState};

/// Where printed lines go.
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// What `redkeep monitor` (or `redkeep up`, or a test) starts the monitor with.
pub struct Options {
    pub seeds: Vec<String>,
    pub config: Config,
    pub heal: Mode,
    /// Where the HTTP API listens; `None`: no API.
    pub listen: Option<SocketAddr>,
    pub supervisor: Arc<dyn Supervisor>,
    /// Printed lines (plans, transitions) go here too, e.g. to stdout for the CLI.
    pub print: Option<Printer>,
}

/// A running monitor; dropping it stops the loop and the server.
pub struct Monitor {
    /// Where the HTTP API listens, when it does.
    pub addr: Option<SocketAddr>,
    pub state: SharedState,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Stops the loop and the server and waits for the loop to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }

    /// The events so far (a copy).
    pub fn events(&self) -> Vec<Event> {
        self.state.lock().expect("state lock").events.iter().cloned().collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds the API (if asked), then runs the loop in the background.
pub async fn start(options: Options) -> anyhow::Result<Monitor> {
    if options.seeds.is_empty() {
        anyhow::bail!("the monitor needs at least one seed node (--seed HOST:PORT)");
    }
    let state: SharedState = Arc::new(Mutex::new(Shared {
        events_kept: options.config.events_kept,
        ..Shared::default()
    }));
    let (stop, stopped) = watch::channel(false);
    let mut addr = None;
    if let Some(listen) = options.listen {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {listen}: {e} (choose another --listen)")
        })?;
        addr = Some(listener.local_addr()?);
        let app = crate::server::router(state.clone());
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(until).await;
        });
    }
    let external_url = addr.map_or_else(|| "http://monitor".to_string(), |a| format!("http://{a}"));
    let task = tokio::spawn(run_loop(options, state.clone(), stopped, external_url));
    Ok(Monitor { addr, state, stop, task })
}

/// The outcome of a healing action, reported back to the loop.
struct HealResult {
    plan: Plan,
    outcome: Result<String, String>,
}

struct Loop {
    config: Config,
    state: SharedState,
    print: Option<Printer>,
    external_url: String,
    guard: Guard,
    /// Plan/decision lines said once (dry-run and refusals are re-decided every poll).
    said: BTreeSet<String>,
    /// `healing_failed` conditions to raise at the next step.
    failed: Vec<Condition>,
    /// Alarms whose action failed after its retries: not tried again until they resolve (a
    /// human is on it, alerted by `healing_failed`).
    gave_up: BTreeSet<String>,
}

async fn run_loop(
    options: Options,
    state: SharedState,
    mut stopped: watch::Receiver<bool>,
    external_url: String,
) {
    let Options { seeds, config, heal: mode, supervisor, print, .. } = options;
    let guard = Guard::new(mode, config.heal.max_actions, config.heal.window);
    let mut this = Loop {
        config,
        state,
        print,
        external_url,
        guard,
        said: BTreeSet::new(),
        failed: Vec::new(),
        gave_up: BTreeSet::new(),
    };
    let mut poller = Poller::new(seeds, &this.config);
    let mut book = AlarmBook::default();
    let mut prev: Option<Model> = None;
    let (models, _) = watch::channel(Arc::new(Model::default()));
    let (results_tx, mut results) = mpsc::unbounded_channel::<HealResult>();
    let mut ticks = tokio::time::interval(this.config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    this.say(&format!(
        "monitor: healing {mode}, polling every {}",
        humantime::format_duration(this.config.interval)
    ));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        let model = poller.poll().await;
        while let Ok(result) = results.try_recv() {
            this.heal_finished(result, model.at_ms);
        }
        let mut conditions = rules::evaluate(&this.config, prev.as_ref(), &model);
        conditions.append(&mut this.failed);
        let transitions = book.step(&this.config, model.at_ms, &conditions);
        this.report(&transitions, model.at_ms);
        this.notify(&transitions);
        models.send_replace(Arc::new(model.clone()));
        this.heal(&book, &model, &supervisor, &models, &results_tx);
        {
            let mut shared = this.state.lock().expect("state lock");
            shared.alarms = book.active().cloned().collect();
            shared.model = model.clone();
        }
        prev = Some(model);
    }
}

impl Loop {
    fn say(&self, line: &str) {
        tracing::info!("{line}");
        if let Some(print) = &self.print {
            print(line);
        }
    }

    fn event(&self, at_ms: u64, kind: &str, text: String, detail: serde_json::Value) {
        self.say(&text);
        self.state.lock().expect("state lock").push_event(Event {
            at_ms,
            kind: kind.into(),
            text,
            detail,
        });
    }

    fn count(&self, result: &str) {
        *self.state.lock().expect("state lock").heal_counts.entry(result.into()).or_default() += 1;
    }

    fn report(&mut self, transitions: &[Transition], at_ms: u64) {
        for t in transitions {
            let summary = t.alarm.annotations.get("summary").cloned().unwrap_or_default();
            let text = format!(
                "alarm {} {}: {} -> {:?}: {summary}",
                t.alarm.labels["alertname"], t.alarm.fingerprint, t.from, t.to
            );
            self.event(at_ms, "alarm", text, serde_json::to_value(t).unwrap_or_default());
            if t.to == State::Resolved {
                // A later alarm of the same subject is new: say its plan again.
                self.said.retain(|k| !k.starts_with(&t.alarm.fingerprint));
                self.gave_up.remove(&t.alarm.fingerprint);
            }
        }
    }

    fn notify(&self, transitions: &[Transition]) {
        let changed: Vec<&crate::alarms::Alarm> =
            transitions.iter().filter(|t| t.to != State::Pending).map(|t| &t.alarm).collect();
        if changed.is_empty() || self.config.webhooks.is_empty() {
            return;
        }
        for payload in crate::notify::payload("redkeep", &self.external_url, &changed) {
            for url in self.config.webhooks.clone() {
                let (payload, timeout) =
                    (payload.clone(), self.config.timeout.max(Duration::from_secs(2)));
                tokio::spawn(async move {
                    if let Err(e) = crate::notify::send(&url, &payload, timeout).await {
                        tracing::warn!("webhook {url}: {e}");
                    }
                });
            }
        }
    }

    /// Firing alarms, the monitor's own and those Alertmanager sent, as (rule, fingerprint,
    /// labels).
    fn firing(&self, book: &AlarmBook) -> Vec<(String, String, BTreeMap<String, String>)> {
        let mut out: Vec<_> = book
            .firing()
            .map(|a| (a.rule.clone(), a.fingerprint.clone(), a.labels.clone()))
            .collect();
        let shared = self.state.lock().expect("state lock");
        for (fingerprint, received) in &shared.received {
            let name =
                received.alert.labels.get("alertname").map(String::as_str).unwrap_or_default();
            if let Some(rule) = rules::rule_by_alertname(name) {
                out.push((
                    rule.name.to_string(),
                    fingerprint.clone(),
                    received.alert.labels.clone(),
                ));
            }
        }
        out
    }

    fn heal(
        &mut self,
        book: &AlarmBook,
        model: &Model,
        supervisor: &Arc<dyn Supervisor>,
        models: &watch::Sender<Arc<Model>>,
        results: &mpsc::UnboundedSender<HealResult>,
    ) {
        let holds_vip = self.holds_vip(model);
        let owns = |addr: &str| supervisor.owns(addr);
        let place = |avoid: &[String]| supervisor.place_new_node(avoid);
        let ctx =
            heal::Context { owns: &owns, spares: &self.config.heal.spares, place_new_node: &place };
        for (rule, fingerprint, labels) in self.firing(book) {
            if self.gave_up.contains(&fingerprint) {
                continue;
            }
            let Some(plan) = heal::plan(&rule, &fingerprint, &labels, model, &ctx) else {
                continue;
            };
            let decision = self.guard.decide(&plan, model, model.at_ms, holds_vip);
            let key = format!("{fingerprint}|{}|{decision:?}", plan.action);
            let detail = serde_json::json!({ "plan": plan, "decision": decision });
            match decision {
                Decision::Apply => {
                    self.count("applied");
                    self.event(
                        model.at_ms,
                        "heal",
                        format!("heal: {} ({}): {}", plan.action, plan.alertname, plan.why),
                        detail,
                    );
                    let task = HealTask {
                        plan,
                        model: model.clone(),
                        supervisor: supervisor.clone(),
                        models: models.subscribe(),
                        verify_timeout: self.config.heal.verify_timeout,
                        retries: self.config.heal.retries,
                    };
                    let results = results.clone();
                    tokio::spawn(async move {
                        let _ = results.send(task.run().await);
                    });
                }
                Decision::DryRun if self.said.insert(key.clone()) => {
                    self.count("dry_run");
                    self.event(
                        model.at_ms,
                        "heal",
                        format!(
                            "heal (dry-run, not applied): {} ({}): {}",
                            plan.action, plan.alertname, plan.why
                        ),
                        detail,
                    );
                }
                Decision::Refuse(reason) if self.said.insert(key) => {
                    self.count("refused");
                    self.event(
                        model.at_ms,
                        "heal",
                        format!("heal refused: {}: {reason}", plan.action),
                        detail,
                    );
                }
                _ => {}
            }
        }
    }

    /// `Some(false)` when the config names this monitor's LB and another one holds the VIP.
    fn holds_vip(&self, model: &Model) -> Option<bool> {
        let local = self.config.vip.as_ref()?.local_lb.as_ref()?;
        Some(model.vip.as_ref().is_some_and(|v| v.holders.contains(local)))
    }

    fn heal_finished(&mut self, result: HealResult, at_ms: u64) {
        self.guard.done(&result.plan.shard);
        let detail =
            serde_json::json!({ "plan": result.plan, "outcome": format!("{:?}", result.outcome) });
        match &result.outcome {
            Ok(how) => {
                self.count("verified");
                self.event(
                    at_ms,
                    "heal",
                    format!("healed: {} ({how})", result.plan.action),
                    detail,
                );
            }
            Err(why) => {
                self.count("failed");
                self.event(
                    at_ms,
                    "heal",
                    format!("healing failed: {}: {why}", result.plan.action),
                    detail,
                );
                let labels = BTreeMap::from([
                    ("shard".to_string(), result.plan.shard.clone()),
                    ("cause".to_string(), result.plan.alertname.clone()),
                ]);
                let summary = format!("{} did not heal: {why}", result.plan.action);
                self.failed.push(Condition { rule: "healing_failed", labels, summary, value: 1.0 });
                self.gave_up.insert(result.plan.alarm.clone());
            }
        }
        self.said.retain(|k| !k.starts_with(&result.plan.alarm));
    }
}

/// One action, applied then verified against the models the loop polls next, retried.
struct HealTask {
    plan: Plan,
    model: Model,
    supervisor: Arc<dyn Supervisor>,
    models: watch::Receiver<Arc<Model>>,
    verify_timeout: Duration,
    retries: u32,
}

impl HealTask {
    async fn run(mut self) -> HealResult {
        let mut last_error = String::new();
        for attempt in 0..=self.retries {
            let started = tokio::time::Instant::now();
            match heal::apply(&self.plan.action, &self.model, &self.supervisor).await {
                Ok(()) => match self.wait_verified().await {
                    Ok(()) => {
                        let how = format!(
                            "verified after {:.1} s, attempt {}",
                            started.elapsed().as_secs_f64(),
                            attempt + 1
                        );
                        return HealResult { plan: self.plan, outcome: Ok(how) };
                    }
                    Err(e) => last_error = e,
                },
                Err(e) => last_error = e,
            }
            tracing::warn!("heal attempt {} of {}: {last_error}", attempt + 1, self.plan.action);
            // The next attempt plans on what the cluster looks like now.
            self.model = (**self.models.borrow()).clone();
        }
        HealResult { plan: self.plan, outcome: Err(last_error) }
    }

    async fn wait_verified(&mut self) -> Result<(), String> {
        let action = self.plan.action.clone();
        let waiting = self.models.wait_for(|m| heal::verified(&action, m));
        match tokio::time::timeout(self.verify_timeout, waiting).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err("the monitor stopped".into()),
            Err(_) => Err(format!(
                "not verified within {}",
                humantime::format_duration(self.verify_timeout)
            )),
        }
    }
}
