//! `CargoService`: the terminal tower service of a cargo registry instance.

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
use serde_json::Value;
use tower_service::Service;

use crate::handlers;
use crate::routes::{self, Route};

/// Serves one cargo registry instance (local, proxy or hybrid) at whatever path it is
/// mounted: the sparse index under `registry/`, the web API under `api/v1/`.
///
/// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure becomes
/// a cargo-style `{"errors":[{"detail":"..."}]}` response. Mount it with axum's
/// `Router::nest_service`, or call it from hyper's `service_fn`. Authentication is read from
/// the [`Identity`] request extension that `batlehub_auth::AuthLayer` inserts (cargo sends
/// the raw token in `Authorization`); a request without one is anonymous.
#[derive(Clone, Debug)]
pub struct CargoService {
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
    pub(crate) base: String,
    pub(crate) parts: Parts,
}

impl CargoService {
    /// Serves `registry`, building absolute URLs (`dl`, `api`) with `base`.
    #[must_use]
    pub fn new(registry: Registry, base: BaseUrl) -> Self {
        Self {
            inner: Arc::new(Inner { registry, base }),
        }
    }

    /// A local registry named `name`, mounted at `mount_path` (base URL derived per request).
    ///
    /// # Errors
    /// When the registry cannot be built (bad name).
    pub fn local(hub: &Hub, name: &str, mount_path: &str) -> std::result::Result<Self, String> {
        let registry = hub.registry(RegistryConfig::new(name, Mode::Local))?;
        Ok(Self::new(registry, BaseUrl::derived(mount_path)))
    }

    /// A proxy of the sparse index at `upstream` (the folder holding its `config.json`,
    /// with or without `sparse+`), named `name`, mounted at `mount_path`.
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

impl<B> Service<Request<B>> for CargoService
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
            base: incoming.base,
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
    let route = routes::parse(ctx.parts.uri.path(), ctx.parts.uri.query())?;
    let method = ctx.parts.method.clone();
    let read = method == Method::GET || method == Method::HEAD;
    match (route, read) {
        (Route::Config, true) => handlers::index::config(&ctx),
        (Route::IndexFile { name }, true) => handlers::index::index_file(&ctx, &name).await,
        (Route::Download { name, version }, true) => {
            handlers::download::download(&ctx, &name, &version).await
        }
        (Route::Publish, false) if method == Method::PUT => {
            handlers::publish::publish(&ctx, body).await
        }
        (Route::Yank { name, version }, false) if method == Method::DELETE => {
            handlers::manage::set_yanked(&ctx, &name, &version, true).await
        }
        (Route::Unyank { name, version }, false) if method == Method::PUT => {
            handlers::manage::set_yanked(&ctx, &name, &version, false).await
        }
        (Route::Owners { name }, true) => handlers::manage::list_owners(&ctx, &name).await,
        (Route::Owners { name }, false) if method == Method::PUT => {
            let body = read_small(&ctx, body).await?;
            handlers::manage::add_owners(&ctx, &name, &body).await
        }
        (Route::Owners { name }, false) if method == Method::DELETE => {
            let body = read_small(&ctx, body).await?;
            handlers::manage::remove_owners(&ctx, &name, &body).await
        }
        (Route::Search { q, per_page }, true) => handlers::search::search(&ctx, &q, per_page).await,
        (Route::Me, true) => Ok(text(
            StatusCode::OK,
            "batlehub: ask your registry administrator for a token, then run `cargo login --registry NAME`.\n",
        )),
        _ => Err(Error::MethodNotAllowed(format!(
            "{method} is not supported here"
        ))),
    }
}

/// The largest owners request body read.
const SMALL_BODY: usize = 64 * 1024;

/// Reads a small request body (owners changes), refusing more than 64 KiB.
async fn read_small(ctx: &Ctx, mut body: BodyStream) -> Result<Bytes> {
    if content_length(&ctx.parts).is_some_and(|l| l > SMALL_BODY as u64) {
        return Err(Error::PayloadTooLarge(format!(
            "request body exceeds the limit of {SMALL_BODY} bytes"
        )));
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| Error::BadRequest(format!("request body could not be read: {e}")))?;
        if buf.len() + chunk.len() > SMALL_BODY {
            return Err(Error::PayloadTooLarge(format!(
                "request body exceeds the limit of {SMALL_BODY} bytes"
            )));
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

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, value: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(value));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
