//! `MavenService`: the terminal tower service of a maven registry instance.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use batlehub_core::body::{self, Body, BoxError};
use batlehub_core::{BaseUrl, Registry};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower_service::Service;

/// Serves one maven registry instance (local, proxy or hybrid).
#[derive(Clone, Debug)]
pub struct MavenService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    base: BaseUrl,
}

impl MavenService {
    /// Serves `registry`, building absolute URLs with `base`.
    #[must_use]
    pub fn new(registry: Registry, base: BaseUrl) -> Self {
        Self {
            inner: Arc::new(Inner { registry, base }),
        }
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
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let _ = &self.inner.base;
        Box::pin(async move {
            let mut resp = Response::new(body::full("not implemented yet\n"));
            *resp.status_mut() = StatusCode::NOT_IMPLEMENTED;
            Ok(resp)
        })
    }
}
