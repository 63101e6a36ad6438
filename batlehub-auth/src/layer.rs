//! The tower layer that resolves credentials into an [`Identity`] request extension.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use batlehub_core::Identity;
use http::{HeaderName, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::credentials::{Credentials, extract_credentials};
use crate::throttle::FailedAuthLimit;

/// A boxed future resolving to an identity, returned by slow authenticators.
pub type IdentityFuture = Pin<Box<dyn Future<Output = Identity> + Send + 'static>>;

/// Verifies credentials. Providers implement it; the layer calls it.
///
/// `authenticate_cached` is the hot path: it answers without I/O when it can (plain tokens,
/// cached argon2 results). `authenticate` does the slow work and should cache its answer.
pub trait Authenticator: Send + Sync + Debug + 'static {
    /// The identity for `credentials` when it can be decided without I/O.
    fn authenticate_cached(&self, credentials: &Credentials) -> Option<Identity>;
    /// The identity for `credentials`, doing whatever verification it takes.
    fn authenticate(&self, credentials: Credentials) -> IdentityFuture;
}

/// Puts an [`Identity`] into every request's extensions.
///
/// Requests without credentials get [`Identity::Anonymous`]; malformed or wrong
/// credentials get [`Identity::Invalid`], which every protocol service answers with 401.
///
/// Failed authentications are counted per client address ([`FailedAuthLimit`], 30 per
/// minute by default): a client over its limit gets no further expensive verification
/// until its window ends, only `429` (cached, already verified credentials still pass).
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer {
    authenticator: Arc<dyn Authenticator>,
    api_key_headers: Arc<[HeaderName]>,
    limit: Option<FailedAuthLimit>,
}

impl AuthLayer {
    /// A layer using `authenticator`.
    pub fn new(authenticator: impl Authenticator) -> Self {
        Self::from_arc(Arc::new(authenticator))
    }

    /// A layer sharing an authenticator.
    pub fn from_arc(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            authenticator,
            api_key_headers: Arc::from([]),
            limit: Some(FailedAuthLimit::default()),
        }
    }

    /// Replaces the failed-authentication limit (`None` turns it off, for a layer behind
    /// a limiter of its own).
    pub fn failed_auth_limit(mut self, limit: Option<FailedAuthLimit>) -> Self {
        self.limit = limit;
        self
    }

    /// Also reads a token from header `name` when a request has no `Authorization` header,
    /// for clients that send their key in a header of their own.
    pub fn api_key_header(mut self, name: HeaderName) -> Self {
        let mut names = self.api_key_headers.to_vec();
        names.push(name);
        self.api_key_headers = Arc::from(names);
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
            api_key_headers: self.api_key_headers.clone(),
            limit: self.limit.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Arc<dyn Authenticator>,
    api_key_headers: Arc<[HeaderName]>,
    limit: Option<FailedAuthLimit>,
}

type Slow<R, E> = Pin<Box<dyn Future<Output = Result<R, E>> + Send>>;

pin_project_lite::pin_project! {
    /// The future of [`AuthService`]: the inner service's future directly when the identity
    /// was known at once, a boxed future only when slow verification was needed.
    pub struct AuthFuture<F, R, E> {
        #[pin]
        kind: Kind<F, R, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, R, E> {
        Ready { #[pin] fut: F },
        Slow { fut: Slow<R, E> },
    }
}

impl<F, R, E> AuthFuture<F, R, E> {
    fn ready(fut: F) -> Self {
        Self {
            kind: Kind::Ready { fut },
        }
    }

    fn slow(fut: Slow<R, E>) -> Self {
        Self {
            kind: Kind::Slow { fut },
        }
    }
}

impl<F, R, E> std::fmt::Debug for AuthFuture<F, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for AuthFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready { fut } => fut.poll(cx),
            KindProj::Slow { fut } => fut.as_mut().poll(cx),
        }
    }
}

impl<S, B> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AuthFuture<S::Future, S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The client address is worked out only when a credential failed or needs real
        // verification: anonymous and cached requests (the hot path) never pay for it.
        let identity = match extract_credentials(req.headers(), &self.api_key_headers) {
            Ok(None) => Identity::Anonymous,
            Err(reason) => Identity::Invalid(reason),
            Ok(Some(creds)) => match self.authenticator.authenticate_cached(&creds) {
                Some(identity) => identity,
                None => {
                    let limited = self
                        .limit
                        .clone()
                        .and_then(|l| l.key(req.headers(), req.extensions()).map(|k| (l, k)));
                    if let Some(throttled) = limited.as_ref().and_then(|(l, key)| l.throttled(*key))
                    {
                        req.extensions_mut().insert(throttled);
                        req.extensions_mut().insert(Identity::Invalid(
                            "too many failed authentications from this address".into(),
                        ));
                        return AuthFuture::ready(self.inner.call(req));
                    }
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    let verify = self.authenticator.authenticate(creds);
                    return AuthFuture::slow(Box::pin(async move {
                        let identity = verify.await;
                        if let (Some((limit, key)), Identity::Invalid(_)) = (&limited, &identity) {
                            limit.failed(*key);
                        }
                        req.extensions_mut().insert(identity);
                        inner.call(req).await
                    }));
                }
            },
        };
        if let (Some(limit), Identity::Invalid(_)) = (&self.limit, &identity)
            && let Some(key) = limit.key(req.headers(), req.extensions())
        {
            limit.failed(key);
        }
        req.extensions_mut().insert(identity);
        AuthFuture::ready(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StaticTokens, TokenConfig, TokenSecret};
    use batlehub_core::Role;
    use tower::ServiceExt as _;

    async fn who(layer: &AuthLayer, auth: Option<&str>) -> Identity {
        let svc = layer.layer(tower::service_fn(|req: Request<()>| async move {
            Ok::<_, std::convert::Infallible>(req.extensions().get::<Identity>().cloned())
        }));
        let mut req = Request::builder().uri("/");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        svc.oneshot(req.body(()).expect("req"))
            .await
            .expect("infallible")
            .expect("identity set")
    }

    #[tokio::test]
    async fn resolves_all_forms_to_one_principal() {
        let hash = crate::hash_token("hashed-secret-2").expect("hash");
        let layer = AuthLayer::new(
            StaticTokens::new(vec![
                TokenConfig {
                    name: "ci".into(),
                    secret: TokenSecret::Plain("plain-secret-1".into()),
                    role: Role::User,
                    groups: vec![],
                    id: None,
                },
                TokenConfig {
                    name: "ops".into(),
                    secret: TokenSecret::Argon2(hash),
                    role: Role::Admin,
                    groups: vec![],
                    id: None,
                },
            ])
            .expect("tokens"),
        );
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("__token__:plain-secret-1");
        for a in [
            "Bearer plain-secret-1",
            "plain-secret-1",
            &format!("Basic {basic}"),
        ] {
            assert_eq!(who(&layer, Some(a)).await.name(), "ci", "{a}");
        }
        assert_eq!(
            who(&layer, Some("Bearer hashed-secret-2")).await.role(),
            Role::Admin
        );
        assert_eq!(who(&layer, None).await, Identity::Anonymous);
        assert!(matches!(
            who(&layer, Some("Bearer nope-nope")).await,
            Identity::Invalid(_)
        ));
    }
}
