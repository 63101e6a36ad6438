//! Maven's error form: a plain-text body with the status (Maven prints the status line
//! and, for some transports, the body).

use batlehub_core::Error;
use batlehub_core::body::{self, Body};
use http::{HeaderValue, Response};

/// Renders an engine error as plain text, with the headers every protocol sends for it
/// (`WWW-Authenticate: Basic` challenge, `Retry-After`, rate-limit state).
pub(crate) fn to_response(err: &Error, now: chrono::DateTime<chrono::Utc>) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::warn!(error = ?err, "maven request failed");
    }
    let mut resp = Response::new(body::full(format!("{}\n", err.client_message())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.extend(err.headers(now));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
