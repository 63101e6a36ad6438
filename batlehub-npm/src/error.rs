//! npm's error envelope: `{"error": "..."}` with the status.

use batlehub_core::Error;
use batlehub_core::body::{self, Body};
use http::{HeaderValue, Response};

/// Renders an engine error the way the npm CLI displays it.
pub(crate) fn to_response(err: &Error, now: chrono::DateTime<chrono::Utc>) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::warn!(error = ?err, "npm request failed");
    }
    let body = serde_json::json!({ "error": err.client_message() });
    let mut resp = Response::new(body::full(body.to_string()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == http::StatusCode::UNAUTHORIZED {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"batlehub\""),
        );
    }
    if let Error::Denied(denial) = err
        && let Some(at) = denial.eligible_at
    {
        let secs = (at - now).num_seconds().max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            headers.insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}
