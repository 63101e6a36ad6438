#![doc = include_str!("../README.md")]
#![expect(
    clippy::unwrap_used,
    reason = "test support: a failed expectation is a failed test"
)]

pub mod adversarial;
pub mod conformance;
pub mod fuzz;
pub mod sumdb;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use batlehub_core::body::Body;
use batlehub_core::protocol::{RegistryService, ResponseFuture};
use batlehub_core::{
    BaseUrl, BlobStore, FakeClock, Hub, Identity, Mode, Policy, Principal, Registry,
    RegistryConfig, Role, Storage, UpstreamAuth,
};
use bytes::Bytes;
use chrono::TimeZone as _;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;

/// The fake clock's start: 2026-01-02T03:04:05Z.
#[must_use]
pub fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap()
}

/// A protocol service `S` over in-memory storage and a fake clock.
#[derive(Debug)]
pub struct TestApp<S> {
    /// The hub the registry was built from.
    pub hub: Hub,
    /// The service under test.
    pub service: S,
    /// Its storage (blobs and index).
    pub storage: Storage,
    /// The clock every component reads; advance it to let time pass.
    pub clock: FakeClock,
    /// The registry instance served.
    pub registry: Registry,
}

/// A collected response.
#[derive(Debug)]
pub struct Got {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The HTTP/1 reason phrase, when the service set one.
    pub reason: Option<String>,
    /// The body (empty when the transfer failed).
    pub body: Bytes,
}

impl Got {
    /// The body as text.
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Null` when it is not JSON).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value as text (empty when absent).
    #[must_use]
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A protocol service the harness can drive: what `protocol_service!` declares.
pub trait TestService:
    RegistryService
    + tower::Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = ResponseFuture,
    >
{
}

impl<S> TestService for S where
    S: RegistryService
        + tower::Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future = ResponseFuture,
        >
{
}

impl<S: TestService> TestApp<S> {
    /// A local registry.
    #[must_use]
    pub fn local() -> Builder<S> {
        Builder::new(Mode::Local, Vec::new())
    }

    /// A proxy of `upstream`.
    #[must_use]
    pub fn proxy(upstream: &str) -> Builder<S> {
        Builder::new(Mode::Proxy, vec![upstream.to_owned()])
    }

    /// A hybrid registry in front of `upstream`.
    #[must_use]
    pub fn hybrid(upstream: &str) -> Builder<S> {
        Builder::new(Mode::Hybrid, vec![upstream.to_owned()])
    }

    /// The service's response future for `req`. Protocol services are always ready
    /// (`poll_ready` returns `Ready` at once), so the readiness check is immediate.
    fn respond(&self, req: Request<Body>) -> ResponseFuture {
        let mut service = self.service.clone();
        let waker = std::task::Waker::noop();
        let ready =
            tower::Service::poll_ready(&mut service, &mut std::task::Context::from_waker(waker));
        assert!(ready.is_ready(), "protocol services are always ready");
        tower::Service::call(&mut service, req)
    }

    /// Sends `req` and collects everything about the response.
    ///
    /// The future is boxed as `Send` explicitly: without it the compiler cannot prove the
    /// futures of generic callers `Send` through the service's body bounds.
    pub fn call(&self, req: Request<Body>) -> BoxFuture<'_, Got> {
        let fut = self.call_unsettled(req);
        Box::pin(async move {
            let got = fut.await;
            // What the request left running (storing what it fetched) is done before the
            // test looks at the cache or moves the clock.
            self.registry.settle().await;
            got
        })
    }

    /// Like [`call`](Self::call), without waiting for the work the request left running
    /// (see [`Storage::settle`](batlehub_core::Storage::settle)).
    pub fn call_unsettled(&self, req: Request<Body>) -> BoxFuture<'_, Got> {
        let fut = self.respond(req);
        Box::pin(async move {
            let resp = fut.await.unwrap();
            let status = resp.status();
            let headers = resp.headers().clone();
            let reason = resp
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
            let body = collect(resp.into_body()).await.unwrap_or_default();
            Got {
                status,
                headers,
                reason,
                body,
            }
        })
    }

    /// Sends `req`: status, headers and body.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let got = self.call(req).await;
        (got.status, got.headers, got.body)
    }

    /// Like [`send`](Self::send), but returns the body's transfer error instead of an
    /// empty body.
    pub fn send_raw(
        &self,
        req: Request<Body>,
    ) -> BoxFuture<'_, (StatusCode, Result<Bytes, String>)> {
        let fut = self.respond(req);
        Box::pin(async move {
            let resp = fut.await.unwrap();
            let status = resp.status();
            let body = collect(resp.into_body()).await;
            self.registry.settle().await;
            (status, body)
        })
    }

    /// An anonymous `GET`.
    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, Bytes) {
        self.send(get(path, None)).await
    }

    /// An anonymous `GET`, collected.
    pub async fn fetch(&self, path: &str) -> Got {
        self.call(get(path, None)).await
    }

    /// An anonymous `GET` of a JSON document (`Null` when the body is not JSON).
    pub async fn json(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.get(path).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// Every stored blob path (staging areas excluded) and the version count of each package
    /// key: compare before and after a refused request to show nothing changed.
    pub async fn state(&self, keys: &[&str]) -> (Vec<String>, Vec<Option<usize>>) {
        let blobs = self
            .storage
            .blobs
            .list("")
            .await
            .unwrap()
            .into_iter()
            .filter(|p| !p.starts_with("tmp/"))
            .collect();
        let mut pkgs = Vec::new();
        for k in keys {
            pkgs.push(
                self.storage
                    .index
                    .package(self.registry.name(), k)
                    .await
                    .unwrap()
                    .map(|p| p.versions.len()),
            );
        }
        (blobs, pkgs)
    }
}

/// A boxed `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Collects a response body. Boxed as `Send` explicitly: without it the compiler cannot
/// prove the futures of generic callers `Send` through the body's collect future.
pub fn collect(body: Body) -> BoxFuture<'static, Result<Bytes, String>> {
    Box::pin(async move {
        body.collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string())
    })
}

type ServiceMap<S> = Box<dyn FnOnce(S) -> S + Send>;

/// Builds a [`TestApp`].
pub struct Builder<S> {
    mode: Mode,
    upstreams: Vec<String>,
    base: Option<BaseUrl>,
    ttl_secs: u64,
    allowed_origins: Vec<String>,
    auth: Option<UpstreamAuth>,
    max_upload: Option<u64>,
    max_document: Option<u64>,
    policy: Option<Arc<dyn Policy>>,
    claims: Vec<String>,
    allow_unverified: bool,
    map: Vec<ServiceMap<S>>,
    blobs: Option<BlobMap>,
    memory_cache: Option<usize>,
}

type BlobMap = Box<dyn FnOnce(Arc<dyn BlobStore>) -> Arc<dyn BlobStore> + Send>;

impl<S> std::fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("mode", &self.mode)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl<S: RegistryService> Builder<S> {
    fn new(mode: Mode, upstreams: Vec<String>) -> Self {
        Self {
            mode,
            upstreams,
            base: None,
            ttl_secs: 300,
            allowed_origins: Vec::new(),
            auth: None,
            max_upload: None,
            max_document: None,
            policy: None,
            claims: Vec::new(),
            allow_unverified: false,
            map: Vec::new(),
            blobs: None,
            memory_cache: None,
        }
    }

    /// The base URL (default: fixed `http://hub.test/{protocol}`).
    #[must_use]
    pub fn base(mut self, base: BaseUrl) -> Self {
        self.base = Some(base);
        self
    }

    /// Replaces the upstreams.
    #[must_use]
    pub fn upstreams(mut self, urls: &[String]) -> Self {
        self.upstreams = urls.to_vec();
        self
    }

    /// The metadata TTL (default 300 s).
    #[must_use]
    pub fn ttl(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }

    /// Origins artifacts may be fetched from besides the upstreams.
    #[must_use]
    pub fn allowed_origins(mut self, origins: &[String]) -> Self {
        self.allowed_origins = origins.to_vec();
        self
    }

    /// Credentials sent to the upstreams.
    #[must_use]
    pub fn upstream_auth(mut self, auth: UpstreamAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The upload limit.
    #[must_use]
    pub fn max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = Some(bytes);
        self
    }

    /// The largest upstream metadata document read.
    #[must_use]
    pub fn max_document(mut self, bytes: u64) -> Self {
        self.max_document = Some(bytes);
        self
    }

    /// The budget of the storage's memory cache (`0`: nothing is kept in memory).
    #[must_use]
    pub fn memory_cache(mut self, bytes: usize) -> Self {
        self.memory_cache = Some(bytes);
        self
    }

    /// Names claimed for local use (package keys, or prefixes ending in `*`).
    #[must_use]
    pub fn claims(mut self, claims: &[&str]) -> Self {
        self.claims = claims.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Serves upstream artifacts without a published digest (uncached, marked).
    #[must_use]
    pub fn allow_unverified(mut self) -> Self {
        self.allow_unverified = true;
        self
    }

    /// A `RegistryPolicy` from TOML (the reference server's `[[registries]]` policy keys).
    ///
    /// # Panics
    /// On invalid TOML or policy.
    #[must_use]
    pub fn rules(self, toml_text: &str) -> Self {
        let config: batlehub_rules::PolicyConfig = toml::from_str(toml_text).unwrap();
        self.policy(batlehub_rules::RegistryPolicy::from_config(&config, "test").unwrap())
    }

    /// The registry's policy (default: RBAC only, ownership checked).
    #[must_use]
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Changes the service once built (protocol settings such as PyPI's denied versions).
    #[must_use]
    pub fn map_service(mut self, f: impl FnOnce(S) -> S + Send + 'static) -> Self {
        self.map.push(Box::new(f));
        self
    }

    /// Puts a blob store of the test's own in front of the in-memory blobs (a failing or
    /// counting wrapper); [`TestApp::storage`] holds the wrapper.
    #[must_use]
    pub fn wrap_blobs(
        mut self,
        f: impl FnOnce(Arc<dyn BlobStore>) -> Arc<dyn BlobStore> + Send + 'static,
    ) -> Self {
        self.blobs = Some(Box::new(f));
        self
    }

    /// Builds the app over fresh in-memory storage; the registry is named after the
    /// protocol.
    ///
    /// # Panics
    /// When storage, hub or registry cannot be built.
    pub async fn build(self) -> TestApp<S> {
        let mut storage = batlehub_storage::memory().await.unwrap();
        if let Some(wrap) = self.blobs {
            storage = storage.with_blobs(wrap(storage.blobs.clone()));
        }
        if let Some(bytes) = self.memory_cache {
            storage.memo = Arc::new(batlehub_core::MemoCache::new(bytes));
        }
        let clock = FakeClock::new(start_time());
        let hub = Hub::builder()
            .storage(storage.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        let upstreams = self.upstreams.iter().map(|u| S::upstream_url(u));
        let mut config = RegistryConfig::new(S::PROTOCOL, self.mode).upstreams(upstreams);
        config.metadata_ttl = std::time::Duration::from_secs(self.ttl_secs);
        config.upstream.allowed_origins = self.allowed_origins;
        config.upstream.auth = self.auth;
        if let Some(m) = self.max_upload {
            config.max_upload_bytes = m;
        }
        if let Some(m) = self.max_document {
            config.max_document_bytes = m;
        }
        config.claims = self.claims;
        config.allow_unverified = self.allow_unverified;
        let policy = self.policy.unwrap_or_else(|| {
            Arc::new(batlehub_rules::RegistryPolicy::rbac_only(
                batlehub_rules::Rbac::default(),
            ))
        });
        let registry = hub.registry_with_policy(config, policy).unwrap();
        let base = self
            .base
            .unwrap_or_else(|| BaseUrl::fixed(&format!("http://hub.test/{}", S::PROTOCOL)));
        let mut service = S::from_registry(registry.clone(), base);
        for f in self.map {
            service = f(service);
        }
        TestApp {
            hub,
            service,
            storage,
            clock,
            registry,
        }
    }
}

/// An identity from a short spec: `alice` (a user), `alice@g1+g2` (in groups `static:g1`
/// and `static:g2`), `admin` (an administrator), `anonymous` or `""` (nobody), `invalid`
/// (a credential that was refused).
#[must_use]
pub fn identity(who: &str) -> Identity {
    match who {
        "" | "anonymous" => Identity::Anonymous,
        "invalid" => Identity::Invalid("invalid token".into()),
        spec => {
            let (name, groups) = spec.split_once('@').unwrap_or((spec, ""));
            Identity::User(Principal {
                id: name.into(),
                role: if name == "admin" {
                    Role::Admin
                } else {
                    Role::User
                },
                groups: groups
                    .split('+')
                    .filter(|g| !g.is_empty())
                    .map(|g| format!("static:{g}"))
                    .collect(),
                provider: "static".into(),
            })
        }
    }
}

/// A request with `body`, as `who` ([`identity`]) when given.
///
/// # Panics
/// On an invalid path.
#[must_use]
pub fn request(
    method: Method,
    path: &str,
    body: impl Into<Bytes>,
    who: Option<&str>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .body(batlehub_core::body::full(body.into()))
        .unwrap();
    if let Some(w) = who {
        req.extensions_mut().insert(identity(w));
    }
    req
}

/// A `GET`, as `who` when given.
#[must_use]
pub fn get(path: &str, who: Option<&str>) -> Request<Body> {
    request(Method::GET, path, Bytes::new(), who)
}

/// A `HEAD`, as `who` when given.
#[must_use]
pub fn head(path: &str, who: Option<&str>) -> Request<Body> {
    request(Method::HEAD, path, Bytes::new(), who)
}

/// A `PUT` of `body` as `who`.
#[must_use]
pub fn put(path: &str, body: impl Into<Bytes>, who: &str) -> Request<Body> {
    request(Method::PUT, path, body, Some(who))
}

/// A `DELETE` as `who`.
#[must_use]
pub fn delete(path: &str, who: &str) -> Request<Body> {
    request(Method::DELETE, path, Bytes::new(), Some(who))
}

/// The lowercase hex sha256 of `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    batlehub_core::digest::Digests::of(bytes).sha256_hex()
}
