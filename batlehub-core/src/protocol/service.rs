//! [`ProtocolService`]: the one request path every protocol is served through.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tower_service::Service;

use super::{Cx, Protocol, RequestBody};
use crate::baseurl::BaseUrl;
use crate::body::{self, Body, BoxError};
use crate::error::Error;
use crate::model::{AuthThrottled, Identity, Permission};
use crate::policy::Caller;
use crate::registry::Registry;

/// The future of a protocol service's response.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send + 'static>>;

/// Serves one registry instance in protocol `P`, at whatever path it is mounted.
///
/// `Service<Request<B>>` for any body `B`, with `Error = Infallible`: every failure becomes
/// a response in the protocol's envelope. The caller's identity is read from the
/// [`Identity`] request extension the auth layer inserts (anonymous without one).
pub struct ProtocolService<P> {
    inner: Arc<Inner<P>>,
}

struct Inner<P> {
    protocol: P,
    registry: Registry,
    base: BaseUrl,
}

impl<P> Clone for ProtocolService<P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<P: std::fmt::Debug> std::fmt::Debug for ProtocolService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolService")
            .field("protocol", &self.inner.protocol)
            .field("registry", &self.inner.registry.name())
            .field("base", &self.inner.base)
            .finish()
    }
}

impl<P: Protocol> ProtocolService<P> {
    /// Serves `registry` in `protocol`, building absolute URLs with `base`.
    #[must_use]
    pub fn new(protocol: P, registry: Registry, base: BaseUrl) -> Self {
        Self {
            inner: Arc::new(Inner {
                protocol,
                registry,
                base,
            }),
        }
    }

    /// The registry instance served.
    #[must_use]
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The protocol's settings.
    #[must_use]
    pub fn protocol(&self) -> &P {
        &self.inner.protocol
    }

    /// The same service with the protocol's settings changed by `f`.
    #[must_use]
    pub fn map_protocol(self, f: impl FnOnce(&mut P)) -> Self
    where
        P: Clone,
    {
        let mut protocol = self.inner.protocol.clone();
        f(&mut protocol);
        Self::new(
            protocol,
            self.inner.registry.clone(),
            self.inner.base.clone(),
        )
    }
}

impl<P: Protocol> Inner<P> {
    async fn serve(&self, req: Request<RequestBody>) -> Response<Body> {
        let (mut parts, body) = req.into_parts();
        let identity = parts.extensions.remove::<Identity>().unwrap_or_default();
        let caller = Caller {
            identity,
            client_ip: self.base.client_ip(&parts),
        };
        let base = self.base.resolve(&parts);
        let head = parts.method == Method::HEAD;
        let admitted = match parts.extensions.get::<AuthThrottled>() {
            Some(t) => Err(Error::TooManyRequests {
                reason: "too many failed authentications from this address; try again later".into(),
                retry_after: t.retry_after,
                limit: t.limit,
            }),
            None => self.registry.admit(&caller).await,
        };
        let mut resp = match admitted {
            Ok(outcome) => {
                let mut resp = match self.protocol.route(&parts) {
                    Ok(route) => match self.check_head(&caller, &route, &parts) {
                        Ok(slot) => {
                            let cx = Cx::new(self.registry.clone(), caller, base, parts)
                                .for_protocol::<P>();
                            let resp = match self.protocol.handle(cx, route, body).await {
                                Ok(resp) => resp,
                                Err(e) => self.error(&e),
                            };
                            drop(slot);
                            resp
                        }
                        Err(e) => self.error(&e),
                    },
                    Err(e) => self.error(&e),
                };
                resp.headers_mut().extend(outcome.headers);
                resp
            }
            Err(e) => self.error(&e),
        };
        resp.headers_mut().insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if head {
            *resp.body_mut() = body::empty();
        }
        resp
    }

    /// Authorizes from the request head ([`Protocol::head_permission`]), before the body;
    /// a write also takes one of the caller's upload slots, held while it is handled.
    fn check_head(
        &self,
        caller: &Caller,
        route: &P::Route,
        parts: &Parts,
    ) -> Result<Option<crate::registry::UploadSlot>, Error> {
        let Some(permission) = self.protocol.head_permission(route, parts) else {
            return Ok(None);
        };
        if permission == Permission::Publish {
            self.registry.ensure_publishable()?;
        }
        self.registry
            .authorize(&caller.identity, permission, None)?;
        if permission == Permission::Publish {
            let limit = self.protocol.body_limit(route, self.registry.config());
            if let Some(declared) = super::content_length(parts)
                && declared > limit
            {
                return Err(Error::PayloadTooLarge(format!(
                    "the request body is {declared} bytes; this registry accepts at most {limit}"
                )));
            }
            return self.registry.upload_slot(caller).map(Some);
        }
        Ok(None)
    }

    fn error(&self, err: &Error) -> Response<Body> {
        if err.status().is_server_error() {
            tracing::warn!(protocol = P::NAME, registry = self.registry.name(), error = ?err, "request failed");
        }
        let mut resp = self.protocol.error_response(err);
        let headers = resp.headers_mut();
        headers.extend(err.headers(self.registry.now()));
        if err.status() == StatusCode::UNAUTHORIZED
            && let Some(challenge) = self.protocol.challenge()
        {
            headers.insert(http::header::WWW_AUTHENTICATE, challenge);
        }
        resp
    }
}

impl<P, B> Service<Request<B>> for ProtocolService<P>
where
    P: Protocol,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let req = req.map(RequestBody::new);
        Box::pin(async move { Ok(inner.serve(req).await) })
    }
}
