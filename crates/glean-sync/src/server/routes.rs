//! The handlers of the HTTP API, one per route.

use super::{ApiError, AppState};
use crate::exporter::{SaveReceipt, StatsSnapshot};
use crate::graph::Graph;
use crate::ledger::{Export, ExportState, Selection, StoredGraph};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// The body of a request, or the JSON error for a body that is too large or unreadable.
fn body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(state.max_body_bytes),
        _ => ApiError::BadRequest { message: format!("cannot read the request body: {e}"), field: None },
    })
}

/// Only JSON bodies (parameters such as `charset` allowed).
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if is_json { Ok(()) } else { Err(ApiError::UnsupportedMediaType) }
}

/// `POST /knowledge-graph`: saves a graph; 202 with the export id, state and batch file.
pub(super) async fn post_graph(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SaveReceipt>), ApiError> {
    require_json(&headers)?;
    let bytes = body(&state, raw)?;
    let graph = match Graph::from_json(&bytes) {
        Ok(g) => g,
        Err(e) => {
            crate::metrics::save("rejected");
            return Err(e.into());
        }
    };
    let receipt = state.exporter.save(graph).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// `GET /exports/{id}`: one export's state, attempts and last error.
pub(super) async fn get_export(State(state): State<AppState>, id: Result<Path<i64>, PathRejection>) -> Result<Json<Export>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest { message: format!("export ids are numbers: {e}"), field: Some("id".into()) })?;
    state.exporter.ledger().get(id).await?.map(Json).ok_or(ApiError::NotFound(id))
}

/// `GET /graphs/{key}`: the graph last saved under a key (keys may contain `/`).
pub(super) async fn get_graph(State(state): State<AppState>, Path(key): Path<String>) -> Result<Json<StoredGraph>, ApiError> {
    state.exporter.ledger().graph(&key).await?.map(Json).ok_or(ApiError::NoGraph(key))
}

/// `GET /stats`: the statistics as JSON.
pub(super) async fn stats(State(state): State<AppState>) -> Result<Json<StatsSnapshot>, ApiError> {
    Ok(Json(state.exporter.stats().await?))
}

/// `GET /metrics`: Prometheus text, gauges refreshed from the stats.
pub(super) async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let handle = state.metrics.as_ref().ok_or_else(|| ApiError::Internal("no Prometheus recorder is installed".into()))?;
    crate::metrics::set_gauges(&state.exporter.stats().await?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response())
}

/// `GET /healthz`: the process is up.
pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the ledger answers, the export directory is writable, the sink is reachable.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let exporter = &state.exporter;
    let ledger = exporter.ledger().counts().await.map(|_| ()).map_err(|e| e.to_string());
    let dir = exporter.batch_dir().to_owned();
    let export_dir = tokio::task::spawn_blocking(move || tempfile::tempfile_in(&dir).map(|_| ()).map_err(|e| e.to_string()))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    let sink = exporter.check_sink().await.map_err(|e| e.to_string());
    let draining = if state.draining() { Err("shutting down".to_owned()) } else { Ok(()) };
    let checks = [("ledger", ledger), ("export_dir", export_dir), ("sink", sink), ("accepting", draining)];
    let ready = checks.iter().all(|(_, r)| r.is_ok());
    let detail: serde_json::Map<String, serde_json::Value> = checks
        .into_iter()
        .map(|(name, r)| (name.to_owned(), r.map_or_else(|e| json!({"ok": false, "error": e}), |()| json!({"ok": true}))))
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready, "checks": detail}))).into_response()
}

/// The body of `POST /exports/replay`; an empty body replays every failed and dead export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayRequest {
    #[serde(default)]
    dead: bool,
    #[serde(default)]
    failed: bool,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    since: Option<DateTime<Utc>>,
}

/// `POST /exports/replay`: requeues failed and dead exports, as `glean-sync replay`.
pub(super) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = body(&state, raw)?;
    let request = if bytes.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        require_json(&headers)?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest { message: format!("invalid replay request: {e}"), field: None })?
    };
    let states = match (request.dead, request.failed) {
        (true, false) => vec![ExportState::Dead],
        (false, true) => vec![ExportState::Failed],
        _ => vec![ExportState::Failed, ExportState::Dead],
    };
    let ids = state.exporter.ledger().replay(&Selection { states, id: request.id, since: request.since, limit: None }).await?;
    Ok(Json(json!({"requeued": ids})))
}

/// Unknown routes, in the same JSON shape.
pub(super) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": "no such route"}))).into_response()
}
