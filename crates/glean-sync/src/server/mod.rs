//! The HTTP API (`glean-sync serve`): producers in any language hand graphs over here.
//!
//! `POST /knowledge-graph` saves a graph (the exporter takes it from there and
//! never makes the request wait on Glean); `GET /exports/{id}`, `/stats`,
//! `/metrics`, `/healthz`, `/readyz` show the state, `GET /graphs/{key}` the
//! graph last saved under a key; `POST /exports/replay`
//! requeues failed and dead exports. Write routes need the bearer token when
//! `GLEAN_SYNC_TOKEN` is set. At shutdown the server answers 503 to new
//! writes while the exporter drains, then stops. It owns no state of its own
//! beyond the draining flag; it never installs signal handlers (its caller
//! passes a cancellation token).

mod error;
mod routes;

pub use error::ApiError;

use crate::exporter::Exporter;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// What the HTTP layer is configured with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (`GLEAN_SYNC_LISTEN`).
    pub listen: SocketAddr,
    /// Bearer token required by write routes (`GLEAN_SYNC_TOKEN`).
    pub token: Option<String>,
    /// Largest accepted request body (`GLEAN_SYNC_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Takes the saves.
    pub exporter: Exporter,
    /// Renders `/metrics`; `None` when another metrics recorder owns the process.
    pub metrics: Option<PrometheusHandle>,
    /// Write routes require `Authorization: Bearer <token>` when set.
    token: Option<Arc<str>>,
    /// Set at shutdown: writes are refused with 503 while the exporter drains.
    draining: Arc<AtomicBool>,
    /// The body limit, for the 413 message.
    max_body_bytes: usize,
}

impl AppState {
    /// State for a router over `exporter`.
    pub fn new(exporter: Exporter, config: &ServerConfig) -> AppState {
        AppState {
            exporter,
            metrics: crate::metrics::install(),
            token: config.token.as_deref().map(Arc::from),
            draining: Arc::new(AtomicBool::new(false)),
            max_body_bytes: config.max_body_bytes,
        }
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The routes, with the body limit, auth, draining and request metrics.
pub fn router(state: AppState) -> Router {
    let writes = Router::new()
        .route("/knowledge-graph", post(routes::post_graph))
        .route("/exports/replay", post(routes::replay))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard_writes));
    Router::new()
        .merge(writes)
        .route("/exports/{id}", get(routes::get_export))
        .route("/graphs/{*key}", get(routes::get_graph))
        .route("/stats", get(routes::stats))
        .route("/metrics", get(routes::metrics))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn(count_requests))
        .with_state(state)
}

/// Write routes: refused while draining, and only with the right token when one is set.
async fn guard_writes(State(state): State<AppState>, headers: HeaderMap, request: Request, next: Next) -> Response {
    if state.draining() {
        return ApiError::Unavailable("glean-sync is shutting down; retry on another instance or later".into()).into_response();
    }
    if let Some(token) = &state.token
        && !authorized(&headers, token)
    {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// Compares the bearer token in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or_default();
    constant_time_eq::constant_time_eq(given.as_bytes(), token.as_bytes())
}

/// Counts every request by route template (never the raw path) and status.
async fn count_requests(request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/knowledge-graph") => "/knowledge-graph",
        Some("/exports/replay") => "/exports/replay",
        Some("/exports/{id}") => "/exports/{id}",
        Some("/graphs/{*key}") => "/graphs/{key}",
        Some("/stats") => "/stats",
        Some("/metrics") => "/metrics",
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        _ if request.method() == Method::OPTIONS => "options",
        _ => "other",
    };
    let response = next.run(request).await;
    crate::metrics::http_request(route, response.status().as_u16());
    response
}

/// Serves until `stop` is cancelled; then refuses writes, drains the exporter, and returns.
pub async fn serve(state: AppState, listener: TcpListener, stop: CancellationToken) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    info!(%address, "listening: POST /knowledge-graph, GET /stats /metrics /healthz /readyz /exports/{{id}}");
    let draining = state.draining.clone();
    let exporter = state.exporter.clone();
    let shutdown = async move {
        stop.cancelled().await;
        draining.store(true, Ordering::SeqCst);
        exporter.shutdown().await;
    };
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests;
