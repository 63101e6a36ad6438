//! `PypiService`: the terminal tower service of a PyPI registry instance.

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
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tower_service::Service;

use crate::handlers;
use crate::routes::{self, Route};

/// How versions refused by policy (age gate, blocks, version gates) appear on project pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeniedVersions {
    /// Removed from project pages (HTML and JSON), from `versions` and from the JSON API.
    /// A client pinning such a version exactly is told there is no matching distribution;
    /// a direct download of one of its files is refused with 403 and the rule's reason.
    #[default]
    Hide,
    /// Listed as yanked (PEP 592) with the rule's reason as the yank reason: resolvers skip
    /// them, and a client that pins one exactly selects it, prints the reason, and is then
    /// refused the download (403, with the reason). Use it when users should see why a
    /// pinned version is unavailable.
    Yanked,
}

/// Serves one PyPI registry instance (local, proxy or hybrid) at whatever path it is mounted.
///
/// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure becomes a
/// plain-text response whose HTTP/1 reason phrase carries the message (pip and twine print
/// the reason phrase). Mount it with axum's `Router::nest_service`, or call it from hyper's
/// `service_fn`. Authentication is read from the [`Identity`] request extension that
/// `batlehub_auth::AuthLayer` inserts; a request without one is anonymous.
///
/// Endpoints, relative to the mount point:
///
/// | Request | What |
/// |---|---|
/// | `GET /simple/` | project list (PEP 503 HTML / PEP 691 JSON by `Accept`) |
/// | `GET /simple/{project}/` | project page; non-normalized names redirect |
/// | `GET /packages/{project}/{file}` | a distribution file; `{file}.metadata` its core metadata (PEP 658) |
/// | `GET /pypi/{project}/json`, `GET /pypi/{project}/{version}/json` | JSON API |
/// | `POST /legacy/` | twine upload |
#[derive(Clone, Debug)]
pub struct PypiService {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    registry: Registry,
    base: BaseUrl,
    denied: DeniedVersions,
}

/// Everything a handler needs about one request.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) registry: Registry,
    pub(crate) identity: Identity,
    pub(crate) caller: Caller,
    pub(crate) base: String,
    pub(crate) parts: Parts,
    pub(crate) denied: DeniedVersions,
}

impl PypiService {
    /// Serves `registry`, building absolute URLs with `base`.
    #[must_use]
    pub fn new(registry: Registry, base: BaseUrl) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                base,
                denied: DeniedVersions::default(),
            }),
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

    /// A proxy of the Simple API root `upstream` (`http://host/simple/`) named `name`, mounted
    /// at `mount_path`.
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

    /// Sets how versions refused by policy appear on project pages (default
    /// [`DeniedVersions::Hide`]).
    #[must_use]
    pub fn denied_versions(self, denied: DeniedVersions) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.denied = denied;
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The registry instance served.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }
}

impl<B> Service<Request<B>> for PypiService
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
            denied: self.denied,
        };
        let admitted = self.registry.admit(&ctx.caller).await;
        let registry = self.registry.clone();
        respond(
            &registry,
            admitted,
            head,
            || async move { dispatch(&ctx, body).await },
            crate::error::to_response,
        )
        .await
    }
}

async fn dispatch<B>(ctx: &Ctx, body: B) -> Result<Response<Body>>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let route = routes::parse(ctx.parts.uri.path())?;
    let method = &ctx.parts.method;
    let read = method == Method::GET || method == Method::HEAD;
    match route {
        Route::Index { slash } if read => handlers::simple::index(ctx, slash).await,
        Route::Project { name, slash } if read => {
            handlers::simple::project(ctx, &name, slash).await
        }
        Route::File { project, filename } if read => {
            handlers::files::download(ctx, &project, &filename).await
        }
        Route::JsonProject { name } if read => handlers::json_api::project(ctx, &name).await,
        Route::JsonVersion { name, version } if read => {
            handlers::json_api::version(ctx, &name, &version).await
        }
        Route::Upload if method == Method::POST => {
            handlers::upload::upload(ctx, Box::pin(body)).await
        }
        Route::Upload if read && ctx.parts.uri.path().trim_matches('/').is_empty() => {
            Ok(redirect(&format!("{}/simple/", ctx.base)))
        }
        _ => Err(Error::MethodNotAllowed(format!(
            "{method} is not supported here"
        ))),
    }
}

/// A response with a body and content type.
pub(crate) fn typed(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &str,
) -> Response<Body> {
    let mut resp = Response::new(body::full(body));
    *resp.status_mut() = status;
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, ct);
    }
    resp
}

/// A JSON response.
pub(crate) fn json(
    status: StatusCode,
    value: &serde_json::Value,
    content_type: &str,
) -> Response<Body> {
    typed(
        status,
        serde_json::to_vec(value).unwrap_or_default(),
        content_type,
    )
}

/// A permanent redirect (PEP 503 asks for one to the normalized project URL).
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut resp = typed(
        StatusCode::MOVED_PERMANENTLY,
        format!("moved to {location}\n"),
        "text/plain; charset=utf-8",
    );
    if let Ok(loc) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(http::header::LOCATION, loc);
    }
    resp
}

/// Marks a response built from a stale upstream copy.
pub(crate) fn mark_stale(resp: &mut Response<Body>, stale: bool) {
    if stale {
        resp.headers_mut()
            .insert("x-batlehub-cache", HeaderValue::from_static("stale"));
        resp.headers_mut().insert(
            http::header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        );
    }
}
