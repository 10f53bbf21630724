//! RFC 9457 problem details: the one error type every handler returns.
//!
//! Internals never reach the caller: a store failure says "try again", not
//! what SQLite said (that goes to the log).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use deconflict_formats::{FormatError, FormatErrors};
use serde::Serialize;

/// One rejected field: an RFC 6901 pointer into the request and what is
/// wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    pub pointer: String,
    pub message: String,
}

/// An error answer: `application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

/// The error type of every handler.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {}: {}", .0.status, .0.title, .0.detail)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Problem {
            kind: format!("https://deconflict.invalid/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_s: None,
        }))
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.0.errors = errors;
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.0.retry_after_s = Some(seconds);
        self
    }

    /// A 400/422 naming each bad field.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldProblem>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail).with_errors(errors)
    }

    /// One bad field.
    pub fn field(pointer: &str, message: impl Into<String>) -> Self {
        Self::invalid(
            "the request has a bad field",
            vec![FieldProblem {
                pointer: pointer.to_owned(),
                message: message.into(),
            }],
        )
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid token as `Authorization: Bearer TOKEN`",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// The same answer whether the thing does not exist or the caller may
    /// not see it: no existence leak.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", format!("no such {what}"))
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// Something went wrong on our side; the caller may retry. The reason
    /// is logged, not sent.
    pub fn unavailable(reason: &dyn std::fmt::Display) -> Self {
        tracing::error!(%reason, "request failed on the server side");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service could not commit this request; nothing was changed, try again",
        )
        .with_retry_after(1)
    }

    /// A write the store did not commit: 503 with a `detail` that says
    /// what failed (full disk, I/O error) and that nothing was written, so
    /// an operator and a client both know what to do. SQLite's own words
    /// go to the log only.
    pub fn storage(error: &deconflict_store::StoreError) -> Self {
        use deconflict_store::StoreError;
        tracing::error!(%error, "a write was not committed");
        let (slug, detail) = match error {
            full if full.is_disk_full() => (
                "disk-full",
                "the server's disk is full: this request was not written and nothing was changed; \
                 reads still work; retry once the operator has freed space",
            ),
            StoreError::Overloaded { .. } => (
                "overloaded",
                "too many writes are waiting for the disk: nothing was changed; try again shortly",
            ),
            StoreError::Closed => ("unavailable", "the service is stopping: nothing was changed"),
            _ => (
                "storage-failed",
                "the server could not write this request to its disk (an I/O error, a failed sync, \
                 or a file size limit reached): nothing was changed; reads still work; try again",
            ),
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, slug, detail).with_retry_after(1)
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the body is larger than the limit of {limit} bytes (--max-body-bytes)"),
        )
    }
}

impl From<FormatErrors> for ApiError {
    fn from(FormatErrors(errors): FormatErrors) -> Self {
        ApiError::invalid(
            "the Feature is not a valid activity",
            errors
                .into_iter()
                .map(|FormatError { pointer, message }| FieldProblem { pointer, message })
                .collect(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = self.0.retry_after_s;
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
