//! The proxy's stats over HTTP, so an operator can see at a glance whether the cluster behind
//! the proxy is healthy and what the proxy is doing, and so monitoring can scrape it:
//!
//! - `GET /stats`: an HTML page in the spirit of HAProxy's stats page (alarms, proxy summary
//!   with rates, one row per Redis node with its memory, keys and replication, one per
//!   command), rendered on the server and refreshed in place every 2 s from `GET /stats/parts`
//!   (the same parts rendered again, as JSON of HTML strings);
//! - `GET /metrics`: the Prometheus text format;
//! - `GET /api/v1/stats` (the whole [`Snapshot`]) and `GET /api/v1/nodes` (its nodes) as JSON;
//! - `GET /` redirects to `/stats`.
//!
//! Every request takes one [`proxy::Shared::snapshot`]; the rendering ([`page`], [`prom`]) is
//! pure functions of it. The server runs on the caller's tokio runtime, off the proxy's worker
//! threads, and stops when the proxy shuts down.

pub mod page;
pub mod prom;
#[cfg(test)]
mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json, Redirect};
use axum::routing::get;
use proxy::snapshot::Snapshot;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot serve the stats page on {addr}: {error} (if the address is in use, stop whatever listens there or pick another address for the stats page)"
    )]
    Bind { addr: SocketAddr, error: std::io::Error },
}

/// A running stats server; it stops by itself when the proxy shuts down.
#[derive(Debug, Clone)]
pub struct StatsServer {
    /// Where it listens (the real port when asked for port 0).
    pub local_addr: SocketAddr,
}

struct AppState {
    shared: Arc<proxy::Shared>,
    /// The proxy's listen address, as the page shows it.
    proxy_listen: String,
}

impl AppState {
    fn snapshot(&self) -> Snapshot {
        self.shared.snapshot(&self.proxy_listen)
    }
}

/// Listens on `addr` and serves the stats of the proxy behind `shared` (listening on
/// `proxy_listen`) on the current tokio runtime, until `shared.shutdown` is cancelled.
pub async fn serve(
    shared: Arc<proxy::Shared>,
    proxy_listen: String,
    addr: SocketAddr,
) -> Result<StatsServer, WebError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| WebError::Bind { addr, error })?;
    let local_addr = listener.local_addr().map_err(|error| WebError::Bind { addr, error })?;
    let shutdown = shared.shutdown.clone().cancelled_owned();
    let app = router(Arc::new(AppState { shared, proxy_listen }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "the stats server failed");
        }
    });
    tracing::info!(%local_addr, "stats page on http://{local_addr}/stats");
    Ok(StatsServer { local_addr })
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/stats") }))
        .route("/stats", get(stats_page))
        .route("/stats/parts", get(stats_parts))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(api_stats))
        .route("/api/v1/nodes", get(api_nodes))
        .with_state(state)
}

async fn stats_page(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let html = page::render(&state.snapshot(), now_ms());
    ([(header::CACHE_CONTROL, "no-store")], Html(html))
}

async fn stats_parts(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(page::parts(&state.snapshot(), now_ms())))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let text = prom::render(&state.snapshot());
    ([(header::CONTENT_TYPE, prom::CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], text)
}

async fn api_stats(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(state.snapshot()))
}

async fn api_nodes(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(state.snapshot().nodes))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
