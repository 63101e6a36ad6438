//! The response body every batlehub service returns.

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http_body_util::{BodyExt as _, Full, StreamBody};

/// The error type of a response body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, streaming response body.
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
#[must_use]
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
#[must_use]
pub fn empty() -> Body {
    full(Bytes::new())
}

/// A body streaming the items of `stream`; an error item aborts the transfer.
pub fn from_stream<S, E>(stream: S) -> Body
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    StreamBody::new(stream.map(|r| r.map(http_body::Frame::data).map_err(Into::into)))
        .boxed_unsync()
}

/// Reads a whole body of at most `limit` bytes (a stored metadata file, never an artifact
/// to serve); `None` when it is larger or its transfer fails.
pub async fn read_small(body: Body, limit: usize) -> Option<Bytes> {
    // Boxed as `Send` explicitly: without it the compiler cannot prove the futures of
    // services calling this `Send` ("not general enough") through the collect future.
    let collected: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
        Box::pin(http_body_util::Limited::new(body, limit).collect());
    collected.await.ok().map(|c| c.to_bytes())
}
