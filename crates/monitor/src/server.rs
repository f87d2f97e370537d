//! The monitor's HTTP API (axum): `GET /api/v1/alarms`, `GET /api/v1/events`,
//! `GET /api/v1/model`, `GET /metrics`, and `POST /api/v1/alerts`, which takes Alertmanager
//! webhooks so that alerts Prometheus raises drive healing too.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Serialize;

use crate::alarms::Alarm;
use crate::model::Model;
use crate::notify::{Alert, Payload};

/// One line of the event timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub at_ms: u64,
    /// `alarm` (a transition), `heal` (a plan, its decision, its result) or `received` (an
    /// alert from Alertmanager).
    pub kind: String,
    pub text: String,
    pub detail: serde_json::Value,
}

/// An alert received from Alertmanager, as it last said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Received {
    pub at_ms: u64,
    pub receiver: String,
    pub alert: Alert,
}

/// What the loop publishes and the API serves.
#[derive(Debug, Default)]
pub struct Shared {
    pub model: Model,
    pub alarms: Vec<Alarm>,
    pub events: VecDeque<Event>,
    pub events_kept: usize,
    /// Firing alerts from Alertmanager, by fingerprint (resolved ones are removed).
    pub received: BTreeMap<String, Received>,
    /// Healing actions by result (`applied`, `verified`, `failed`, `dry_run`, `refused`).
    pub heal_counts: BTreeMap<String, u64>,
}

impl Shared {
    pub fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
        while self.events.len() > self.events_kept.max(1) {
            self.events.pop_front();
        }
    }
}

pub type SharedState = Arc<Mutex<Shared>>;

pub fn router(state: SharedState) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/alarms", get(alarms))
        .route("/api/v1/events", get(events))
        .route("/api/v1/model", get(model))
        .route("/api/v1/alerts", post(receive))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn alarms(State(state): State<SharedState>) -> impl IntoResponse {
    let shared = state.lock().expect("state lock");
    Json(serde_json::json!({
        "alarms": shared.alarms,
        "received": shared.received.values().collect::<Vec<_>>(),
    }))
}

async fn events(State(state): State<SharedState>) -> impl IntoResponse {
    let shared = state.lock().expect("state lock");
    Json(serde_json::json!({ "events": shared.events }))
}

async fn model(State(state): State<SharedState>) -> impl IntoResponse {
    Json(state.lock().expect("state lock").model.clone())
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let shared = state.lock().expect("state lock");
    let firing: Vec<&Alarm> =
        shared.alarms.iter().filter(|a| a.state == crate::alarms::State::Firing).collect();
    let counts: Vec<(String, u64)> =
        shared.heal_counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let text = crate::metrics::render(&shared.model, &firing, &counts);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text)
}

/// Alertmanager's webhook: every alert is recorded in the timeline; firing ones are kept for
/// the healer until a payload says they resolved.
async fn receive(
    State(state): State<SharedState>,
    Json(payload): Json<Payload>,
) -> impl IntoResponse {
    let at_ms = crate::poll::now_ms();
    let mut shared = state.lock().expect("state lock");
    for alert in &payload.alerts {
        let name = alert.labels.get("alertname").cloned().unwrap_or_default();
        let text = format!("received {} {name} from {}", alert.status, payload.receiver);
        tracing::info!("{text}: {:?}", alert.labels);
        let detail = serde_json::to_value(alert).unwrap_or_default();
        shared.push_event(Event { at_ms, kind: "received".into(), text, detail });
        let key = if alert.fingerprint.is_empty() {
            crate::alarms::fingerprint(&alert.labels)
        } else {
            alert.fingerprint.clone()
        };
        if alert.status == "firing" {
            let received =
                Received { at_ms, receiver: payload.receiver.clone(), alert: alert.clone() };
            shared.received.insert(key, received);
        } else {
            shared.received.remove(&key);
        }
    }
    Json(serde_json::json!({ "status": "success", "alerts": payload.alerts.len() }))
}
