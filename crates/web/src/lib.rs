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
//! With a monitor ([`WebOptions::monitor`], `redkeep proxy --monitor-url`), the page's alarms
//! panel shows the monitor's alarms and an event timeline, fetched by this server ([`monitor`]
//! says why here and not in the browser); without one, or when it does not answer, the page
//! shows its own alarms, derived from the snapshot, and says so.
//!
//! Safety: the server only answers reads (other methods get 405); with a token
//! ([`WebOptions::token`]) every path wants `Authorization: Bearer TOKEN` and answers 401
//! without it; request headers are bounded ([`WebOptions::max_header_bytes`], then 431) and
//! must arrive within [`HEADER_READ_TIMEOUT`]; at most [`WebOptions::max_connections`]
//! connections are served at once, one more gets a 503 and is closed.
//!
//! Every request takes one [`proxy::Shared::snapshot`]; the rendering ([`page`], [`prom`]) is
//! pure functions of it. The server runs on the caller's tokio runtime, off the proxy's worker
//! threads, and stops when the proxy shuts down.

pub mod monitor;
pub mod page;
pub mod prom;
#[cfg(test)]
mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use proxy::snapshot::Snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

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
    monitor: Option<monitor::MonitorUrl>,
}

impl AppState {
    fn snapshot(&self) -> Snapshot {
        self.shared.snapshot(&self.proxy_listen)
    }

    async fn monitor_view(&self) -> monitor::MonitorView {
        match &self.monitor {
            Some(url) => monitor::fetch(url).await,
            None => monitor::MonitorView::NotConfigured,
        }
    }
}

/// How the stats server guards itself.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// When set, every request must carry `Authorization: Bearer <token>` (else 401).
    pub token: Option<String>,
    /// Connections served at once; one more is answered 503 and closed, so a flood of idle
    /// connections cannot pile up tasks and buffers.
    pub max_connections: usize,
    /// Bound on a request's start line and headers together (hyper answers 431 beyond it).
    pub max_header_bytes: usize,
    /// The monitor whose alarms and events the stats page shows.
    pub monitor: Option<monitor::MonitorUrl>,
}

impl Default for WebOptions {
    fn default() -> Self {
        // A stats page has a handful of readers (browsers, Prometheus); 8 KiB of headers is
        // what common servers (nginx, Apache) accept by default.
        WebOptions { token: None, max_connections: 64, max_header_bytes: 8 * 1024, monitor: None }
    }
}

/// A client must send its whole request head within this time, or its connection is closed
/// (a slow client cannot hold one of the few connections forever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a refused connection's close waits for the client (see [`refuse_busy`]).
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Refused connections whose close waits at once; more are closed at once.
const REFUSALS_LINGERING: usize = 64;

/// Listens on `addr` and serves the stats of the proxy behind `shared` (listening on
/// `proxy_listen`) on the current tokio runtime, until `shared.shutdown` is cancelled, with
/// the default [`WebOptions`].
pub async fn serve(
    shared: Arc<proxy::Shared>,
    proxy_listen: String,
    addr: SocketAddr,
) -> Result<StatsServer, WebError> {
    serve_with(shared, proxy_listen, addr, WebOptions::default()).await
}

/// [`serve`] with the given [`WebOptions`].
pub async fn serve_with(
    shared: Arc<proxy::Shared>,
    proxy_listen: String,
    addr: SocketAddr,
    options: WebOptions,
) -> Result<StatsServer, WebError> {
    let listener = TcpListener::bind(addr).await.map_err(|error| WebError::Bind { addr, error })?;
    let local_addr = listener.local_addr().map_err(|error| WebError::Bind { addr, error })?;
    let shutdown = shared.shutdown.clone();
    let state = AppState { shared, proxy_listen, monitor: options.monitor.clone() };
    let app = router(Arc::new(state), options.token.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = accept_loop(listener, app, &options, &shutdown) => {}
            () = shutdown.cancelled() => {}
        }
    });
    tracing::info!(%local_addr, "stats page on http://{local_addr}/stats");
    Ok(StatsServer { local_addr })
}

fn router(state: Arc<AppState>, token: Option<String>) -> Router {
    let routes = Router::new()
        .route("/", get(|| async { Redirect::to("/stats") }))
        .route("/stats", get(stats_page))
        .route("/stats/parts", get(stats_parts))
        .route("/metrics", get(metrics))
        .route("/api/v1/stats", get(api_stats))
        .route("/api/v1/nodes", get(api_nodes))
        .with_state(state);
    match token {
        None => routes,
        // Outermost, so that unknown paths and wrong methods also get 401 first and tell a
        // stranger nothing about what is served.
        Some(token) => routes
            .layer(axum::middleware::from_fn_with_state(Arc::<str>::from(token), require_token)),
    }
}

async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    if carries_token(request.headers(), &token) {
        return next.run(request).await;
    }
    let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"redkeep stats\"")];
    (
        StatusCode::UNAUTHORIZED,
        challenge,
        "a bearer token is required (Authorization: Bearer ...)\n",
    )
        .into_response()
}

/// True when `headers` hold `Authorization: Bearer <token>` with exactly `token`.
pub fn carries_token(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return false };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else { return false };
    same_secret(given, token.as_bytes())
}

/// Compares in time that depends on the lengths only, not on where the bytes first differ,
/// so the token cannot be guessed byte by byte from response times.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Accepts connections and serves each on its own task while a permit is free.
async fn accept_loop(
    listener: TcpListener,
    app: Router,
    options: &WebOptions,
    shutdown: &tokio_util::sync::CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let lingering = Arc::new(Semaphore::new(REFUSALS_LINGERING));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(options.max_header_bytes);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "the stats server could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse_busy(stream, &lingering);
            continue;
        };
        let connection = http.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(app.clone()),
        );
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = shutdown.cancelled() => {
                    // Lets a request being answered finish, then closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Answers a connection over the limit with a 503 in one non-blocking write and closes it
/// without serving its request. Closed at once, a socket with the request still unread
/// sends a reset, which can destroy the 503 before the client reads it ("connection reset"
/// instead of "retry after 1 s"): so the close lingers, up to [`REFUSAL_LINGER`], reading and
/// dropping what the client sends until it closes. A flood is still cheap: at most
/// [`REFUSALS_LINGERING`] refusals linger at once (a small buffer each), more are closed at once.
fn refuse_busy(stream: TcpStream, lingering: &Arc<Semaphore>) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
        content-length: 41\r\nconnection: close\r\nretry-after: 1\r\n\r\n\
        too many connections to the stats server\n";
    let _ = stream.try_write(BUSY);
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        // The 503 is all there is: the client sees its end at once.
        let _ = stream.shutdown().await;
        let mut dropped = [0u8; 1024];
        let drain = async { while matches!(stream.read(&mut dropped).await, Ok(n) if n > 0) {} };
        let _ = tokio::time::timeout(REFUSAL_LINGER, drain).await;
    });
}

async fn stats_page(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let monitor = state.monitor_view().await;
    let html = page::render(&state.snapshot(), &monitor, now_ms());
    ([(header::CACHE_CONTROL, "no-store")], Html(html))
}

async fn stats_parts(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let monitor = state.monitor_view().await;
    let parts = page::parts(&state.snapshot(), &monitor, now_ms());
    ([(header::CACHE_CONTROL, "no-store")], Json(parts))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert!(carries_token(&with("Bearer s3cret"), "s3cret"));
        for refused in
            ["Bearer s3cre", "Bearer s3cret2", "Bearer S3cret", "bearer s3cret", "s3cret"]
        {
            assert!(!carries_token(&with(refused), "s3cret"), "{refused}");
        }
        assert!(!carries_token(&HeaderMap::new(), "s3cret"));
    }
}
