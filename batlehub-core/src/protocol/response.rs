//! Building responses: documents, text, redirects, artifacts, conditional GET and stale
//! marking, the same way for every protocol.

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use sha2::Digest as _;

use crate::body::{self, Body};
use crate::registry::Artifact;

/// `Content-Type` of JSON documents.
pub const JSON: &str = "application/json";
/// `Content-Type` of plain text.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of artifacts whose format has no registered media type.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A response holding `bytes` with `Content-Type` and `Content-Length` (kept for `HEAD`,
/// whose body is dropped later).
pub fn typed(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response<Body> {
    let bytes: Bytes = bytes.into();
    let len = bytes.len();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// A JSON document (`application/json`).
pub fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    json_typed(status, JSON, value)
}

/// A JSON document with a vendor content type (`application/vnd.pypi.simple.v1+json`, ...).
pub fn json_typed<T: serde::Serialize + ?Sized>(
    status: StatusCode,
    content_type: &'static str,
    value: &T,
) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => typed(status, content_type, bytes),
        Err(e) => {
            tracing::error!(error = %e, "a response document could not be serialized");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

/// A plain-text response (`text/plain; charset=utf-8`).
pub fn text(status: StatusCode, value: impl Into<Bytes>) -> Response<Body> {
    typed(status, TEXT, value)
}

/// A permanent redirect to `location` (a short text body says where).
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = text(
        StatusCode::MOVED_PERMANENTLY,
        format!("moved to {location}\n"),
    );
    if let Ok(loc) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

/// Who may keep a copy of an artifact response.
///
/// Artifacts are immutable, so every cache may keep them for a year; but a response to a
/// request that carried credentials may depend on them (a private package), so only the
/// client's own cache may keep it. Anonymous responses are `public`, so a CDN or shared
/// proxy in front of the registry may serve them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Anyone could have read it: `Cache-Control: public, max-age=31536000, immutable`.
    Public,
    /// Read with credentials: `Cache-Control: private, max-age=31536000, immutable`.
    Private,
}

/// An artifact download: streamed body, `Content-Length` when known, the sha256 as a strong
/// `ETag`, the [`Audience`]'s `Cache-Control`, and `Content-Disposition: attachment`:
/// uploaded bytes are never rendered by a browser that follows a link to them (a POM or an
/// HTML file uploaded as a classifier would otherwise run in the registry's origin, with the
/// Basic credentials the browser caches for it).
pub fn artifact(
    artifact: Artifact,
    content_type: &'static str,
    audience: Audience,
) -> Response<Body> {
    let mut resp = Response::new(artifact.body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment"),
    );
    if let Some(size) = artifact.size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(etag) = artifact
        .sha256
        .as_deref()
        .and_then(|s| HeaderValue::from_str(&format!("\"{s}\"")).ok())
    {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(match (artifact.unverified, audience) {
            (true, _) => "no-store",
            (false, Audience::Public) => "public, max-age=31536000, immutable",
            (false, Audience::Private) => "private, max-age=31536000, immutable",
        }),
    );
    if artifact.unverified {
        h.insert(
            "x-batlehub-unverified",
            HeaderValue::from_static("the upstream published no digest for these bytes"),
        );
    }
    resp
}

/// A strong entity tag for `bytes`: the full sha256, quoted.
#[must_use]
pub fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Whether the request's `If-None-Match` matches `etag` (weak comparison, as RFC 9110
/// prescribes for `If-None-Match`; `*` matches any current representation).
#[must_use]
pub fn if_none_match(parts: &Parts, etag: &str) -> bool {
    let etag = etag.trim_start_matches("W/");
    parts
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// A document answered conditionally: `304 Not Modified` (no body) when the request's
/// `If-None-Match` matches `etag` (computed from the bytes when `None`), else `200` with the
/// bytes. Both carry the `ETag`.
pub fn conditional(
    parts: &Parts,
    content_type: &'static str,
    bytes: Bytes,
    etag: Option<String>,
) -> Response<Body> {
    let etag = etag.unwrap_or_else(|| etag_of(&bytes));
    let mut resp = if if_none_match(parts, &etag) {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        typed(StatusCode::OK, content_type, bytes)
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Marks a response built from a stale upstream copy (every upstream failed):
/// `X-Batlehub-Cache: stale` and `Warning: 110`.
pub fn mark_stale(resp: &mut Response<Body>, stale: bool) {
    if stale {
        let h = resp.headers_mut();
        h.insert("x-batlehub-cache", HeaderValue::from_static("stale"));
        h.insert(
            header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(inm: &[&str]) -> Parts {
        let mut b = http::Request::builder();
        for v in inm {
            b = b.header(header::IF_NONE_MATCH, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn conditional_get() {
        let bytes = Bytes::from_static(b"doc");
        let tag = etag_of(&bytes);
        assert_eq!(tag.len(), 66, "the whole digest, quoted");
        let status = |inm: &[&str]| {
            conditional(&parts(inm), JSON, bytes.clone(), None)
                .status()
                .as_u16()
        };
        assert_eq!(status(&[]), 200);
        assert_eq!(status(&[&tag]), 304);
        assert_eq!(status(&[&format!("W/{tag}")]), 304);
        assert_eq!(status(&["*"]), 304);
        assert_eq!(status(&[&format!("\"x\", {tag}")]), 304);
        assert_eq!(status(&["\"x\"", &tag]), 304, "every header line counts");
        assert_eq!(status(&["\"x\""]), 200);
        let ok = conditional(&parts(&[]), JSON, bytes, None);
        assert_eq!(ok.headers()[header::ETAG], tag.as_str());
        assert_eq!(ok.headers()[header::CONTENT_LENGTH], "3");
    }

    #[test]
    fn artifacts_say_who_may_cache_them() {
        let a = |aud| {
            artifact(
                Artifact {
                    size: Some(3),
                    sha256: Some("ab".into()),
                    body: body::full("abc"),
                    unverified: false,
                },
                OCTET_STREAM,
                aud,
            )
        };
        let public = a(Audience::Public);
        assert!(
            public.headers()[header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .starts_with("public")
        );
        assert_eq!(public.headers()[header::ETAG], "\"ab\"");
        assert!(
            a(Audience::Private).headers()[header::CACHE_CONTROL]
                .to_str()
                .expect("ascii")
                .starts_with("private")
        );
    }
}

/// The longest reason phrase [`with_reason`] sends.
pub const MAX_REASON: usize = 512;

/// Sets `message` as the HTTP/1 reason phrase of `resp` (printable ASCII, one line,
/// bounded): clients that print the status line but not the body (pip, twine, `gem`'s
/// "bad response ... 403") then show why.
pub fn with_reason(resp: &mut Response<Body>, message: &str) {
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
        return;
    }
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(text.to_owned()) {
        resp.extensions_mut().insert(reason);
    }
}

#[cfg(test)]
mod reason_tests {
    use super::*;

    fn reason(message: &str) -> Option<Vec<u8>> {
        let mut resp = text(StatusCode::FORBIDDEN, "x");
        with_reason(&mut resp, message);
        resp.extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| r.as_bytes().to_vec())
    }

    #[test]
    fn reason_is_one_printable_line() {
        assert_eq!(reason("a\nb \u{e9}").as_deref(), Some(&b"a b ?"[..]));
        assert_eq!(reason(&"x".repeat(2000)).map(|r| r.len()), Some(MAX_REASON));
        assert!(reason(" \n").is_none());
    }
}
