//! PyPI's error envelope: plain text with the status, and the message as the HTTP/1 reason
//! phrase, because pip (`403 Client Error: <reason> for url`) and twine (`HTTPError: 400 Bad
//! Request ... <reason>`) print the reason phrase, not the body.

use batlehub_core::Error;
use batlehub_core::body::{self, Body};
use http::{HeaderValue, Response};

/// The longest reason phrase sent.
const MAX_REASON: usize = 512;

/// Renders an engine error as pip and twine display it, with the headers every protocol
/// sends for it (challenge, `Retry-After`, rate-limit state).
pub(crate) fn to_response(err: &Error, now: chrono::DateTime<chrono::Utc>) -> Response<Body> {
    let status = err.status();
    if status.is_server_error() {
        tracing::warn!(error = ?err, "pypi request failed");
    }
    let message = err.client_message();
    let mut resp = Response::new(body::full(format!("{message}\n")));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.extend(err.headers(now));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(reason) = reason_phrase(&message) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

/// The message as a reason phrase: printable ASCII only, one line, bounded.
fn reason_phrase(message: &str) -> Option<hyper::ext::ReasonPhrase> {
    let mut text: String = message
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_ascii() && !c.is_ascii_control() => c,
            _ => '?',
        })
        .collect();
    if text.len() > MAX_REASON {
        text.truncate(MAX_REASON - 3);
        text.push_str("...");
    }
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    hyper::ext::ReasonPhrase::try_from(text.to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_one_printable_line() {
        let r = reason_phrase("a\nb \u{e9}").expect("reason");
        assert_eq!(r.as_bytes(), b"a b ?");
        let long = reason_phrase(&"x".repeat(2000)).expect("reason");
        assert_eq!(long.as_bytes().len(), MAX_REASON);
        assert!(reason_phrase(" \n").is_none());
    }
}
