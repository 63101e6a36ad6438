//! `MavenService`: the terminal tower service of a maven registry instance.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use batlehub_core::body::{self, Body, BoxError};
use batlehub_core::serve::{Incoming, respond};
use batlehub_core::{
    BaseUrl, Caller, Error, Hub, Identity, Mode, Registry, RegistryConfig, Result,
};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower_service::Service;

use crate::handlers;
use crate::routes::{self, Route};

/// Serves one maven registry instance (local, proxy or hybrid) at whatever path it is
/// mounted; the repository root (what `settings.xml` and `distributionManagement` name)
/// is `maven2/` below the mount point.
///
/// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure becomes
/// a plain-text response with the right status. Authentication is read from the
/// [`Identity`] request extension that `batlehub_auth::AuthLayer` inserts (Maven sends
/// HTTP Basic with the token as password, and only after a `401` challenge, which this
/// service sends whenever credentials are needed); a request without one is anonymous.
#[derive(Clone, Debug)]
pub struct MavenService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    base: BaseUrl,
}

/// A request body as a stream of chunks.
pub(crate) type BodyStream = BoxStream<'static, std::result::Result<Bytes, BoxError>>;

/// Everything a handler needs about one request.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) identity: Identity,
    pub(crate) caller: Caller,
    pub(crate) parts: Parts,
}

impl MavenService {
    /// Serves `registry`, building absolute URLs with `base`.
    #[must_use]
    pub fn new(registry: Registry, base: BaseUrl) -> Self {
        Self {
            inner: Arc::new(Inner { registry, base }),
        }
    }

    /// A local registry named `name`, mounted at `mount_path`.
    ///
    /// # Errors
    /// When the registry cannot be built (bad name).
    pub fn local(hub: &Hub, name: &str, mount_path: &str) -> std::result::Result<Self, String> {
        let registry = hub.registry(RegistryConfig::new(name, Mode::Local))?;
        Ok(Self::new(registry, BaseUrl::derived(mount_path)))
    }

    /// A proxy of the Maven repository whose root (the folder holding the group paths) is
    /// `upstream`, named `name`, mounted at `mount_path`.
    ///
    /// # Errors
    /// When the registry cannot be built (bad name or upstream URL).
    pub fn proxy(
        hub: &Hub,
        name: &str,
        upstream: &str,
        mount_path: &str,
    ) -> std::result::Result<Self, String> {
        let registry =
            hub.registry(RegistryConfig::new(name, Mode::Proxy).upstreams([upstream]))?;
        Ok(Self::new(registry, BaseUrl::derived(mount_path)))
    }

    /// The registry instance served.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
}

impl<B> Service<Request<B>> for MavenService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.handle(req).await) })
    }
}

impl Inner {
    async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let (mut parts, body) = req.into_parts();
        let incoming = Incoming::take(&mut parts, &self.base);
        let head = incoming.head;
        let ctx = Ctx {
            registry: self.registry.clone(),
            identity: incoming.caller.identity.clone(),
            caller: incoming.caller,
            parts,
        };
        let body: BodyStream = body
            .into_data_stream()
            .map(|r| r.map_err(Into::into))
            .boxed();
        let admitted = self.registry.admit(&ctx.caller).await;
        let registry = self.registry.clone();
        respond(
            &registry,
            admitted,
            head,
            || async move { dispatch(ctx, body).await },
            crate::error::to_response,
        )
        .await
    }
}

async fn dispatch(ctx: Ctx, body: BodyStream) -> Result<Response<Body>> {
    let route = routes::parse(ctx.parts.uri.path())?;
    let method = ctx.parts.method.clone();
    if method == Method::GET || method == Method::HEAD {
        return match route {
            Route::Metadata {
                coords,
                version,
                checksum,
            } => handlers::read::metadata(&ctx, &coords, version.as_deref(), checksum).await,
            Route::File {
                coords,
                version,
                file,
                checksum,
            } => handlers::read::file(&ctx, &coords, &version, &file, checksum).await,
        };
    }
    if method == Method::PUT {
        return handlers::deploy::put(&ctx, route, body).await;
    }
    Err(Error::MethodNotAllowed(format!(
        "{method} is not supported here; Maven repositories take GET, HEAD and PUT"
    )))
}

/// Reads a small request body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(ctx: &Ctx, mut body: BodyStream, limit: usize) -> Result<Bytes> {
    let too_large =
        || Error::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"));
    if content_length(&ctx.parts).is_some_and(|l| l > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| Error::BadRequest(format!("request body could not be read: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The declared `Content-Length`, when there is a valid one.
pub(crate) fn content_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A response with a body and content type.
pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    bytes: impl Into<Bytes>,
) -> Response<Body> {
    let bytes: Bytes = bytes.into();
    let len = bytes.len();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}
