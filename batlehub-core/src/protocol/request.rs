//! Reading requests: the bounded body reader, `Content-Length`, query parameters and path
//! segments, decoded with one strict rule for every protocol.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use http::request::Parts;
use http_body::Frame;
use http_body_util::BodyExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use percent_encoding::percent_decode_str;

use crate::body::BoxError;
use crate::coords::check_segment;
use crate::error::{Error, Result};

/// A request body as a stream of chunks ([`RequestBody::into_stream`]).
pub type BodyStream = BoxStream<'static, std::result::Result<Bytes, BoxError>>;

/// A request body, whatever body type the host server handed in.
///
/// It is an [`http_body::Body`] (for parsers that want frames) and turns into a stream of
/// chunks with [`RequestBody::into_stream`]. Small bodies are read with
/// [`RequestBody::read_to_bytes`], which refuses anything above a limit before and while
/// reading.
pub struct RequestBody(UnsyncBoxBody<Bytes, BoxError>);

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl RequestBody {
    /// Boxes `body`.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // A body that is already boxed the way this one is (batlehub's own `Body`, as
        // embedders and tests send) is taken as it is, not boxed a second time.
        let mut slot = Some(body);
        if let Some(boxed) = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<UnsyncBoxBody<Bytes, BoxError>>>()
            && let Some(boxed) = boxed.take()
        {
            return Self(boxed);
        }
        match slot {
            Some(body) => Self(body.map_err(Into::into).boxed_unsync()),
            None => Self::empty(),
        }
    }

    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self(
            http_body_util::Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }

    /// The body as a stream of chunks.
    #[must_use]
    pub fn into_stream(self) -> BodyStream {
        self.0.into_data_stream().boxed()
    }

    /// Reads the whole body, refusing more than `limit` bytes: at once when the declared
    /// `Content-Length` (from `parts`) is larger, otherwise as soon as the bytes read pass it.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] above the limit, [`Error::BadRequest`] when the transfer
    /// fails.
    pub async fn read_to_bytes(self, parts: &Parts, limit: usize) -> Result<Bytes> {
        let too_large =
            || Error::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"));
        if content_length(parts).is_some_and(|l| l > limit as u64) {
            return Err(too_large());
        }
        let mut stream = self.into_stream();
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| Error::BadRequest(format!("request body could not be read: {e}")))?
        {
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The declared `Content-Length`, when there is one valid value.
#[must_use]
pub fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The first value of query parameter `key` (form-decoded: `+` is a space), if present.
#[must_use]
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The raw (still percent-encoded) segments of a path relative to the mount point, without
/// the leading and trailing `/`; empty for `/` or `""`.
#[must_use]
pub fn segments(path: &str) -> Vec<&str> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

/// Percent-decodes one path segment and checks it as a coordinate: valid UTF-8, not empty,
/// not `.`/`..`, no `/`, `\`, NUL or control characters (an encoded `%2F` is refused too).
///
/// # Errors
/// [`Error::BadRequest`] naming `what` and the problem.
pub fn decode_segment(what: &str, raw: &str) -> Result<String> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::BadRequest(format!("{what} is not valid UTF-8")))?;
    check_segment(what, &decoded)?;
    Ok(decoded.into_owned())
}

/// Percent-decodes a segment that may carry an encoded `/` (npm's `@scope%2fname`): each
/// `/`-separated part must pass [`decode_segment`]'s checks.
///
/// # Errors
/// [`Error::BadRequest`] naming `what` and the problem.
pub fn decode_path(what: &str, raw: &str) -> Result<String> {
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| Error::BadRequest(format!("{what} is not valid UTF-8")))?;
    for part in decoded.split('/') {
        check_segment(what, part)?;
    }
    Ok(decoded.into_owned())
}

/// Runs CPU-bound request work (parsing large bodies, decoding, hashing, bounded
/// decompression) on the blocking thread pool, so it never holds an async worker.
///
/// # Errors
/// Whatever `f` returns; [`Error::Internal`](crate::Error::Internal) when the task panicked.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::internal(format!("request task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_decoding() {
        assert_eq!(segments("/a/b/"), vec!["a", "b"]);
        assert!(segments("/").is_empty());
        assert!(segments("").is_empty());
        assert_eq!(decode_segment("name", "a%20b").expect("ok"), "a b");
        for bad in [
            "", ".", "..", "%2e%2e", "a%2fb", "a%5cb", "a%00b", "%ff", "a%0ab",
        ] {
            assert!(decode_segment("name", bad).is_err(), "{bad}");
        }
        assert_eq!(decode_path("name", "@s%2fn").expect("ok"), "@s/n");
        for bad in ["@s%2f..", "%2fn", "a%2f", "a%2f%2fb", "..", "a%5cb"] {
            assert!(decode_path("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_parameters() {
        let q = Some("text=a+b%21&size=5&flag");
        assert_eq!(query_param(q, "text").as_deref(), Some("a b!"));
        assert_eq!(query_param(q, "size").as_deref(), Some("5"));
        assert_eq!(query_param(q, "flag").as_deref(), Some(""));
        assert_eq!(query_param(q, "missing"), None);
        assert_eq!(query_param(None, "text"), None);
    }

    #[tokio::test]
    async fn bodies_are_bounded() {
        let parts = |len: Option<&str>| {
            let mut b = http::Request::builder();
            if let Some(len) = len {
                b = b.header(http::header::CONTENT_LENGTH, len);
            }
            b.body(()).expect("request").into_parts().0
        };
        let body = || RequestBody::new(http_body_util::Full::new(Bytes::from_static(b"12345")));
        assert_eq!(
            body().read_to_bytes(&parts(None), 5).await.expect("fits"),
            "12345"
        );
        // Refused while reading, and at once when the declared length is too large.
        assert!(matches!(
            body().read_to_bytes(&parts(None), 4).await,
            Err(Error::PayloadTooLarge(_))
        ));
        assert!(matches!(
            RequestBody::empty()
                .read_to_bytes(&parts(Some("99")), 4)
                .await,
            Err(Error::PayloadTooLarge(_))
        ));
    }
}
