//! Compact index responses (`/versions`, `/info/{gem}`, `/names`): the body with the
//! headers bundler checks (an `ETag` that is the quoted MD5 of the whole document, which
//! bundler 2.3 compares with its own file; `Repr-Digest`/`Digest` of the whole document,
//! which bundler 2.5+ checks), `If-None-Match` (`304`) and `Range: bytes=N-` (`206`, only
//! when the client's copy is still a prefix of this document).

use base64::Engine as _;
use batlehub_core::body::{self, Body};
use std::sync::Arc;

use batlehub_core::MemoCache;
use batlehub_core::protocol;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};
use md5::Digest as _;

/// Content type of compact index documents.
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// Lowercase hex MD5 of `bytes`.
pub(crate) fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// A compact index document with its digests, computed once.
#[derive(Debug, Clone)]
pub(crate) struct CompactDoc {
    pub(crate) body: Bytes,
    /// Lowercase hex MD5 of `body` (the `ETag`, and the `/versions` column).
    pub(crate) md5: String,
    /// Base64 SHA-256 of `body`.
    sha256: String,
}

impl CompactDoc {
    pub(crate) fn new(body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self {
            md5: md5_hex(&body),
            sha256: base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body)),
            body,
        }
    }

    pub(crate) fn weight(&self) -> usize {
        self.body.len() + 128
    }

    /// The response to `parts`. Every document served is remembered in `memo` by its MD5
    /// (what a client that kept it sends as `If-None-Match`) with its length, so a range
    /// request is checked against the client's copy without hashing for tags this source
    /// never served.
    pub(crate) fn respond(&self, parts: &Parts, memo: &MemoCache) -> Response<Body> {
        let etag = format!("\"{}\"", self.md5);
        let len = self.body.len();
        let mut resp = if protocol::if_none_match(parts, &etag) {
            status(StatusCode::NOT_MODIFIED, body::empty())
        } else {
            match range_start(parts) {
                Some(start) if start >= len => {
                    let mut r = status(
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        body::full(Bytes::from_static(b"range not satisfiable\n")),
                    );
                    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    r
                }
                Some(start) if self.client_holds_prefix(parts, start, memo) => {
                    let mut r = status(
                        StatusCode::PARTIAL_CONTENT,
                        body::full(self.body.slice(start..)),
                    );
                    if let Ok(v) =
                        HeaderValue::from_str(&format!("bytes {start}-{}/{len}", len - 1))
                    {
                        r.headers_mut().insert(header::CONTENT_RANGE, v);
                    }
                    r
                }
                _ => status(StatusCode::OK, body::full(self.body.clone())),
            }
        };
        memo.insert(served_key(&self.md5), Arc::new(len), 96);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("sha-256=:{}:", self.sha256)) {
            h.insert("repr-digest", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("sha-256={}", self.sha256)) {
            h.insert("digest", v);
        }
        resp
    }

    /// Whether the client asking for `bytes=start-` holds a prefix of this document: its
    /// `If-None-Match` is the MD5 of its copy, a document this source served, whose length
    /// is `start` (or, as bundler asks, one byte more: it sends its size minus one so the
    /// range is never empty), and whose bytes are the first bytes of this one (checked once
    /// per pair of documents). Without an `If-None-Match` the client checks the result
    /// itself (`Repr-Digest`).
    fn client_holds_prefix(&self, parts: &Parts, start: usize, memo: &MemoCache) -> bool {
        let tags: Vec<&str> = parts
            .headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
            .filter(|t| !t.is_empty())
            .collect();
        if tags.is_empty() {
            return true;
        }
        tags.into_iter().take(4).any(|tag| {
            let Some(held) = memo.get::<usize>(&served_key(tag)).map(|l| *l) else {
                return false;
            };
            if !(held == start || held == start + 1) || held > self.body.len() {
                return false;
            }
            let key = format!("gem-prefix:{}:{tag}", self.md5);
            if let Some(known) = memo.get::<bool>(&key) {
                return *known;
            }
            let holds = md5_hex(&self.body[..held]) == tag;
            memo.insert(key, Arc::new(holds), 96);
            holds
        })
    }
}

fn served_key(md5: &str) -> String {
    format!("gem-served:{md5}")
}

fn status(code: StatusCode, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = code;
    r
}

/// The start of a `Range: bytes=N-` request; `None` without one or for any other form
/// (answered with the whole document).
fn range_start(parts: &Parts) -> Option<usize> {
    let v = parts.headers.get(header::RANGE)?.to_str().ok()?;
    let spec = v.trim().strip_prefix("bytes=")?;
    let start = spec.strip_suffix('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/versions");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn ranges_and_etags() {
        let memo = MemoCache::new(1 << 20);
        let old = CompactDoc::new("---\nrack 1.0.0 abc\n");
        assert_eq!(old.respond(&parts(&[]), &memo).status(), StatusCode::OK);
        let doc = CompactDoc::new("---\nrack 1.0.0 abc\nrake 2.0.0 def\n");
        let full = doc.respond(&parts(&[]), &memo);
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(
            full.headers()["etag"],
            format!("\"{}\"", md5_hex(&doc.body)).as_str()
        );
        assert!(
            full.headers()["repr-digest"]
                .to_str()
                .expect("h")
                .starts_with("sha-256=:")
        );
        let etag = format!("\"{}\"", doc.md5);
        let same = doc.respond(&parts(&[("if-none-match", &etag)]), &memo);
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        // bundler: holds the old document, asks from its last byte with its MD5.
        let held = format!("\"{}\"", old.md5);
        let start = old.body.len() - 1;
        let range = format!("bytes={start}-");
        let part = doc.respond(
            &parts(&[("range", &range), ("if-none-match", &held)]),
            &memo,
        );
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {start}-{}/{}", doc.body.len() - 1, doc.body.len()).as_str()
        );
        // A copy that is not a prefix of ours (served, but since changed), or one this
        // source never served: the whole document.
        let other = CompactDoc::new("---\nrack 0.9.0 abc\n");
        other.respond(&parts(&[]), &memo);
        for tag in [other.md5.clone(), md5_hex(b"never served")] {
            let tag = format!("\"{tag}\"");
            let whole = doc.respond(&parts(&[("range", &range), ("if-none-match", &tag)]), &memo);
            assert_eq!(whole.status(), StatusCode::OK);
        }
        let past = doc.respond(&parts(&[("range", "bytes=999-")]), &memo);
        assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        let odd = doc.respond(&parts(&[("range", "bytes=0-3")]), &memo);
        assert_eq!(odd.status(), StatusCode::OK);
    }
}
