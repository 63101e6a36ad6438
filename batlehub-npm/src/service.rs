//! `NpmService`: the terminal tower service of an npm registry instance.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use batlehub_core::body::{self, Body, BoxError};
use batlehub_core::serve::{Incoming, respond};
use batlehub_core::{BaseUrl, Caller, Error, Hub, Mode, Registry, RegistryConfig, Result};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower_service::Service;

use crate::handlers;
use crate::routes::{self, Route};

/// Serves one npm registry instance (local, proxy or hybrid) at whatever path it is mounted.
///
/// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure becomes
/// an npm-style `{"error": "..."}` response. Mount it with axum's `Router::nest_service`, or
/// call it from hyper's `service_fn`. Authentication is read from the
/// [`Identity`](batlehub_core::Identity) request extension that `batlehub_auth::AuthLayer` inserts; a request without
/// one is anonymous.
#[derive(Clone, Debug)]
pub struct NpmService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    base: BaseUrl,
}

/// Everything a handler needs about one request.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) caller: Caller,
    pub(crate) base: String,
    pub(crate) parts: Parts,
}

impl NpmService {
    /// Serves `registry`, building absolute URLs with `base`.
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

    /// A proxy of `upstream` named `name`, mounted at `mount_path`.
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

impl<B> Service<Request<B>> for NpmService
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
            caller: incoming.caller,
            base: incoming.base,
            parts,
        };
        let admitted = self.registry.admit(&ctx.caller).await;
        respond(
            &self.registry,
            admitted,
            head,
            || self.dispatch(ctx, body),
            crate::error::to_response,
        )
        .await
    }

    async fn dispatch<B>(&self, ctx: Ctx, body: B) -> Result<Response<Body>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let route = routes::parse(
            &ctx.parts.method,
            ctx.parts.uri.path(),
            ctx.parts.uri.query(),
        )?;
        let method = ctx.parts.method.clone();
        let read = method == Method::GET || method == Method::HEAD;
        match (route, read) {
            (Route::Ping, true) => Ok(json(StatusCode::OK, &serde_json::json!({}))),
            (Route::Whoami, true) => handlers::misc::whoami(&ctx),
            (Route::Search { text, size, from }, true) => {
                handlers::misc::search(&ctx, &text, size, from).await
            }
            (Route::DistTags { name }, true) => handlers::tags::list(&ctx, &name).await,
            (Route::DistTag { name, tag }, false)
                if method == Method::PUT || method == Method::POST =>
            {
                let body = read_body(&ctx, body, 64 * 1024).await?;
                handlers::tags::add(&ctx, &name, &tag, &body).await
            }
            (Route::DistTag { name, tag }, false) if method == Method::DELETE => {
                handlers::tags::remove(&ctx, &name, &tag).await
            }
            (Route::Package { name }, true) => handlers::read::packument(&ctx, &name).await,
            (Route::Package { name }, false) if method == Method::PUT => {
                let limit = publish_body_limit(&ctx.registry);
                let body = read_body(&ctx, body, limit).await?;
                handlers::publish::put_package(&ctx, &name, &body).await
            }
            (Route::Revision { name }, false) if method == Method::PUT => {
                let limit = publish_body_limit(&ctx.registry);
                let body = read_body(&ctx, body, limit).await?;
                handlers::publish::put_revision(&ctx, &name, &body).await
            }
            (Route::Revision { name }, false) if method == Method::DELETE => {
                handlers::publish::unpublish_package(&ctx, &name).await
            }
            (Route::TarballRevision { name, file }, false) if method == Method::DELETE => {
                handlers::publish::delete_tarball(&ctx, &name, &file).await
            }
            (Route::Version { name, version }, true) => {
                handlers::read::version(&ctx, &name, &version).await
            }
            (Route::Tarball { name, file }, true) => {
                handlers::read::tarball(&ctx, &name, &file).await
            }
            _ => Err(Error::MethodNotAllowed(format!(
                "{method} is not supported here"
            ))),
        }
    }
}

/// Base64 inflates a tarball by 4/3; leave room for the JSON around it.
fn publish_body_limit(registry: &Registry) -> usize {
    let raw = registry.config().max_upload_bytes;
    usize::try_from(raw.saturating_mul(4) / 3 + 1024 * 1024).unwrap_or(usize::MAX)
}

/// Reads a request body, refusing more than `limit` bytes.
async fn read_body<B>(ctx: &Ctx, body: B, limit: usize) -> Result<Bytes>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if let Some(len) = ctx
        .parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(Error::PayloadTooLarge(format!(
            "request body exceeds the limit of {limit} bytes"
        )));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::PayloadTooLarge(
            format!("request body exceeds the limit of {limit} bytes"),
        )),
        Err(e) => Err(Error::BadRequest(format!(
            "request body could not be read: {e}"
        ))),
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &Value) -> Response<Body> {
    json_typed(status, value, "application/json")
}

/// A JSON response with a specific content type.
pub(crate) fn json_typed(
    status: StatusCode,
    value: &Value,
    content_type: &'static str,
) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(body::full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp
}
