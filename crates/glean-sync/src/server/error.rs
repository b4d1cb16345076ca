//! The one error type of the HTTP API and its one JSON shape.
//!
//! Every failure a route can have maps to a status here, in one `match`, and
//! is answered as `{"error": "...", "field": "..."}` (`field` only when one
//! element is at fault). Internal details are logged, never returned.

use crate::exporter::SaveError;
use crate::graph::GraphError;
use crate::ledger::LedgerError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not a valid graph (malformed JSON included).
    #[error("{0}")]
    BadGraph(#[from] GraphError),
    /// A request parameter or body is malformed.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The parameter at fault.
        field: Option<String>,
    },
    /// The body exceeds the limit.
    #[error("request body larger than {0} bytes (GLEAN_SYNC_MAX_BODY_BYTES)")]
    TooLarge(usize),
    /// The body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// The bearer token is missing or wrong.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// No such export.
    #[error("no export {0}")]
    NotFound(i64),
    /// No graph saved under this key.
    #[error("no graph saved under key {0:?}")]
    NoGraph(String),
    /// The service cannot take this now (shutting down, disk full, ledger failing).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged, answered vaguely.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadGraph(_) | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::NoGraph(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadGraph(e) => Some(e.field()).filter(|f| *f != "."),
            ApiError::BadRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

impl From<SaveError> for ApiError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::ShuttingDown => ApiError::Unavailable(e.to_string()),
            SaveError::File(e) => {
                tracing::warn!(error = %e, "a save failed: cannot write its batch file");
                ApiError::Unavailable("the graph cannot be stored now (batch file write failed); retry later".into())
            }
            SaveError::Ledger(e) => e.into(),
            SaveError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        tracing::warn!(error = %e, "the ledger failed a request");
        ApiError::Unavailable("the ledger cannot take this now; retry later".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error answering a request");
        }
        let body = Body { error: self.to_string(), field: self.field() };
        (self.status(), Json(body)).into_response()
    }
}
