//! cargo's error envelope: `{"errors":[{"detail":"..."}]}` with the status.

use batlehub_core::Error;
use batlehub_core::body::{self, Body};
use http::{HeaderValue, Response};

/// Renders an engine error the way cargo displays it (cargo prints each `detail`), with the
/// headers every protocol sends for it (challenge, `Retry-After`, rate-limit state).
pub(crate) fn to_response(err: &Error, now: chrono::DateTime<chrono::Utc>) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::warn!(error = ?err, "cargo request failed");
    }
    let body = serde_json::json!({ "errors": [{ "detail": err.client_message() }] });
    let mut resp = Response::new(body::full(body.to_string()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.extend(err.headers(now));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
