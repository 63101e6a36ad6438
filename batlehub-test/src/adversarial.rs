//! Hostile clients and hostile upstreams, written once for every protocol.
//!
//! The checks reuse a protocol's [`Conformance`] description and run with
//! [`adversarial_suite!`](crate::adversarial_suite). Each one is a class of attack a review
//! found in one format; running it for every format keeps the class closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::time::Duration;

use batlehub_auth::{
    AuthFuture, AuthLayer, Authenticator, Credentials, FailedAuthLimit, IdentityFuture,
};
use std::convert::Infallible;

use batlehub_core::body::Body;
use batlehub_core::protocol::ResponseFuture;
use batlehub_core::{ClientAddr, Identity};
use http::{Request, Response, StatusCode, header};
use tower::Layer as _;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::conformance::{Conformance, Lie, Untouchable};
use crate::{BoxFuture, Got, TestApp, get, identity};
use futures::StreamExt as _;
use http_body_util::BodyExt as _;

/// Accepts `good-token` from its cache; every other token takes the slow path (counted)
/// and is refused, as an argon2 hash or a JWT signature check would.
#[derive(Debug, Default, Clone)]
struct CountingAuthenticator {
    slow: Arc<AtomicUsize>,
}

impl Authenticator for CountingAuthenticator {
    fn authenticate_cached(&self, credentials: &Credentials) -> Option<Identity> {
        (credentials.token == "good-token").then(|| identity("alice"))
    }

    fn authenticate(&self, _: Credentials) -> IdentityFuture {
        self.slow.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Identity::Invalid("unknown token".into()) })
    }
}

/// Sends `req` through `layer` in front of the app's service, from `peer`, with `token`.
fn through<C: Conformance>(
    app: &TestApp<C::Service>,
    layer: &AuthLayer,
    mut req: Request<Body>,
    peer: &str,
    token: &str,
) -> BoxFuture<'static, Got> {
    req.extensions_mut()
        .insert(ClientAddr(peer.parse::<SocketAddr>().unwrap()));
    req.extensions_mut().remove::<Identity>();
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    // Named concretely: the compiler cannot prove a generic service future `Send` through
    // the body's boxed error type. Protocol services are always ready.
    let mut service = layer.layer(app.service.clone());
    let fut: AuthFuture<ResponseFuture, Response<Body>, Infallible> =
        tower::Service::call(&mut service, req);
    Box::pin(async move {
        let resp = fut.await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = crate::collect(resp.into_body()).await.unwrap_or_default();
        Got {
            status,
            headers,
            reason: None,
            body,
        }
    })
}

/// A flood of wrong tokens from one address: after the failed-authentication limit the
/// expensive verification no longer runs, the client gets `429` with `Retry-After` in the
/// protocol's envelope (reads and publishes alike), nothing is stored, other addresses and
/// already-verified tokens are unaffected, and the next window verifies again.
pub async fn token_flood_throttled<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    let key = C::package_key();
    let before = app.state(&[&key]).await;
    let auth = CountingAuthenticator::default();
    let layer = AuthLayer::new(auth.clone()).failed_auth_limit(Some(
        FailedAuthLimit::new(5, Duration::from_secs(60)).clock(Arc::new(app.clock.clone())),
    ));
    let attacker = "203.0.113.7:40000";
    let metadata = C::metadata_path(C::package());
    for i in 0..5 {
        let got = through::<C>(
            &app,
            &layer,
            get(&metadata, None),
            attacker,
            &format!("bad-{i}"),
        )
        .await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    }
    assert_eq!(auth.slow.load(Ordering::SeqCst), 5);
    for i in 0..20 {
        let req = if i % 2 == 0 {
            get(&metadata, None)
        } else {
            C::publish_request(C::package(), "1.0.0", None)
        };
        let got = through::<C>(&app, &layer, req, attacker, &format!("flood-{i}")).await;
        assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.text());
        assert!(!got.header("retry-after").is_empty(), "Retry-After");
        assert!(!got.body.is_empty(), "explained in the body");
    }
    assert_eq!(
        auth.slow.load(Ordering::SeqCst),
        5,
        "no verification ran for a throttled address"
    );
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
    // A verified token from the same address still works; another address is not throttled.
    let got = through::<C>(&app, &layer, get(&metadata, None), attacker, "good-token").await;
    assert!(
        !matches!(
            got.status,
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
        ),
        "{} {}",
        got.status,
        got.text()
    );
    let got = through::<C>(
        &app,
        &layer,
        get(&metadata, None),
        "198.51.100.9:1",
        "bad-x",
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    // The next window verifies again.
    app.clock.advance(chrono::Duration::seconds(61));
    let got = through::<C>(&app, &layer, get(&metadata, None), attacker, "bad-y").await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    assert_eq!(auth.slow.load(Ordering::SeqCst), 7);
}

/// Dependency confusion: in a hybrid registry the first publish of a name the upstream has
/// is refused with the rule and a reason (nothing stored, the upstream's package still
/// served); a new name the upstream does not have is published; a name the upstream
/// cannot be asked about is refused (fail closed); a claimed name may be published, and a
/// claimed name is never read from the upstream, even before its first publish.
pub async fn hybrid_shadowing_refused<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["7.7.7"]).await;
    let key = C::package_key();
    let app = TestApp::<C::Service>::hybrid(&C::upstream_url(&upstream))
        .build()
        .await;
    let before = app.state(&[&key]).await;
    let got = app
        .call(C::publish_request(C::package(), "2.0.0", Some("alice")))
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(
        got.text().contains("exists on the upstream"),
        "{}",
        got.text()
    );
    assert_eq!(got.header("x-batlehub-rule"), "hybrid_shadowing");
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
    let got = app
        .call(get(&C::metadata_path(C::package()), Some("bob")))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(
        C::lists_version(&got.body, "7.7.7"),
        "the upstream's package is still served: {}",
        got.text()
    );
    assert!(!C::lists_version(&got.body, "2.0.0"));

    // A name the upstream does not have (wiremock answers 404) is a new local package.
    let status = C::publish(&app, "fresh-local-name", "1.0.0", "alice").await;
    assert!(status.is_success(), "publish of a new name: {status}");

    // An upstream that cannot answer: refused, nothing stored.
    let broken = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&broken)
        .await;
    let app = TestApp::<C::Service>::hybrid(&C::upstream_url(&broken))
        .build()
        .await;
    let before = app.state(&[&key]).await;
    let got = app
        .call(C::publish_request(C::package(), "2.0.0", Some("alice")))
        .await;
    assert!(
        got.status.is_server_error(),
        "{} {}",
        got.status,
        got.text()
    );
    assert!(got.text().contains("cannot tell"), "{}", got.text());
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");

    // Claimed: never read from the upstream, publishable, and only local versions listed.
    let app = TestApp::<C::Service>::hybrid(&C::upstream_url(&upstream))
        .claims(&[&key])
        .build()
        .await;
    let got = app
        .call(get(&C::metadata_path(C::package()), Some("bob")))
        .await;
    assert_eq!(
        got.status,
        StatusCode::NOT_FOUND,
        "a claimed name is not read from the upstream: {}",
        got.text()
    );
    let status = C::publish(&app, C::package(), "2.0.0", "alice").await;
    assert!(status.is_success(), "publish of a claimed name: {status}");
    let got = app
        .call(get(&C::metadata_path(C::package()), Some("bob")))
        .await;
    assert!(C::lists_version(&got.body, "2.0.0"), "{}", got.text());
    assert!(!C::lists_version(&got.body, "7.7.7"), "{}", got.text());

    // A namespace (admin API) claims its prefix too.
    let app = TestApp::<C::Service>::hybrid(&C::upstream_url(&upstream))
        .build()
        .await;
    app.storage
        .index
        .add_namespace(&batlehub_core::model::Namespace {
            registry: app.registry.name().to_owned(),
            prefix: key.clone(),
            group: "team".into(),
        })
        .await
        .unwrap();
    let status = C::publish(&app, C::package(), "2.0.0", "alice@team").await;
    assert!(status.is_success(), "publish under a namespace: {status}");
}

/// The sha256 content-addressed blobs stored.
async fn content_blobs(storage: &batlehub_core::Storage) -> Vec<String> {
    storage.blobs.list("sha256/").await.unwrap()
}

/// An upstream whose artifact bytes do not match the digest its metadata publishes: the
/// client never receives a complete, successful transfer of those bytes, nothing is
/// cached, and the next request fails the same way (it is not served from a cache).
pub async fn lying_upstream_wrong_digest<C: Conformance>() {
    let upstream = MockServer::start().await;
    assert!(C::mount_lying_upstream(&upstream, C::package(), "1.0.0", Lie::WrongDigest).await);
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    let path = C::artifact_path(C::package(), "1.0.0");
    let mut blobs = Vec::new();
    for attempt in 0..2 {
        let (status, body) = app.send_raw(get(&path, None)).await;
        assert!(
            !status.is_success() || body.is_err(),
            "attempt {attempt}: a lying upstream's bytes were served as a success ({status})"
        );
        // The download task finishes after the client's transfer fails.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let now = app.storage.blobs.list("").await.unwrap();
        assert!(
            now.iter().all(|p| !p.starts_with("tmp/")),
            "attempt {attempt}: nothing left behind: {now:?}"
        );
        if attempt == 1 {
            // The metadata is cached by now: a second attempt stores nothing at all.
            assert_eq!(now, blobs, "nothing cached from the lying upstream");
        }
        blobs = now;
    }
}

/// An upstream that publishes no digest: fail closed by default (`502` with the reason, in
/// the protocol's envelope, nothing cached); with `allow_unverified` the bytes are served
/// uncached, marked `X-Batlehub-Unverified` and `Cache-Control: no-store`.
pub async fn lying_upstream_missing_digest<C: Conformance>() {
    let upstream = MockServer::start().await;
    if !C::mount_lying_upstream(&upstream, C::package(), "1.0.0", Lie::NoDigest).await {
        return; // the format always carries a digest
    }
    let path = C::artifact_path(C::package(), "1.0.0");
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    let got = app.call(get(&path, None)).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert!(got.text().contains("no digest"), "{}", got.text());

    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .allow_unverified()
        .build()
        .await;
    let got = app.call(get(&path, None)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(!got.header("x-batlehub-unverified").is_empty());
    assert_eq!(got.header("cache-control"), "no-store");
    let before = content_blobs(&app.storage).await;
    let again = app.call(get(&path, None)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, got.body);
    assert_eq!(
        content_blobs(&app.storage).await,
        before,
        "unverified bytes are never cached"
    );
}

/// Slow uploads cannot pile up: a caller with `max_concurrent_uploads` uploads in progress
/// (bodies that never finish) gets `429` with `Retry-After` for the next one, before its
/// body is read; other callers are unaffected; a slot is free again once an upload ends.
pub async fn concurrent_uploads_bounded<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    let stalled = |who: &str| {
        let mut req = C::publish_request(C::package(), "1.0.0", Some(who));
        let touched = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let req = req_map(&mut req, touched.clone());
        (req, touched)
    };
    let mut held = Vec::new();
    for _ in 0..app.registry.config().max_concurrent_uploads {
        let (req, _) = stalled("alice");
        let mut service = app.service.clone();
        let fut: ResponseFuture = tower::Service::call(&mut service, req);
        held.push(tokio::spawn(fut));
    }
    // Let them reach their bodies.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        held.iter().all(|h| !h.is_finished()),
        "stalled uploads wait"
    );
    let (req, touched) = stalled("alice");
    let got = tokio::time::timeout(Duration::from_secs(10), app.call(req))
        .await
        .expect("refused at once");
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.text());
    assert!(!got.header("retry-after").is_empty());
    assert!(!touched.load(Ordering::SeqCst), "its body was not read");
    // Another caller uploads.
    let status = C::publish(&app, C::package(), "1.0.0", "bob").await;
    assert!(status.is_success(), "bob: {status}");
    // One upload ends: alice has a slot again.
    let first = held.remove(0);
    first.abort();
    let _ = first.await;
    let status = C::publish(&app, &format!("{}-more", C::package()), "1.0.0", "alice").await;
    assert!(status.is_success(), "alice, with a free slot: {status}");
    for h in held {
        h.abort();
    }
}

/// The request with its body replaced by one that never ends.
fn req_map(req: &mut Request<Body>, touched: Arc<std::sync::atomic::AtomicBool>) -> Request<Body> {
    use http_body_util::BodyExt as _;
    let mut out = Request::new(
        crate::conformance::Untouchable(touched)
            .map_err(batlehub_core::body::BoxError::from)
            .boxed_unsync(),
    );
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.headers_mut() = req.headers().clone();
    *out.extensions_mut() = std::mem::take(req.extensions_mut());
    out
}

/// Settles the download tasks a failed transfer leaves behind.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// An upstream that redirects an artifact to a host that is neither an upstream nor an
/// allowed origin: the redirect is not followed (that host sees no request), the client
/// gets no successful transfer, and nothing is cached.
pub async fn redirect_to_forbidden_host_refused<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let elsewhere = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"not from the upstream".to_vec()))
        .expect(0)
        .mount(&elsewhere)
        .await;
    Mock::given(method("GET"))
        .and(path(C::upstream_artifact_path(C::package(), "1.0.0")))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/elsewhere.bin", elsewhere.uri())),
        )
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    let artifact = C::artifact_path(C::package(), "1.0.0");
    let (status, body) = app.send_raw(get(&artifact, None)).await;
    assert!(
        !status.is_success() || body.is_err(),
        "a redirect to a forbidden host was followed ({status})"
    );
    settle().await;
    let got = app.call(get(&artifact, None)).await;
    assert!(
        !got.status.is_success(),
        "nothing was cached: {}",
        got.status
    );
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the forbidden host was asked"
    );
}

/// An upstream transfer that breaks off before its declared length: never a successful
/// transfer, nothing cached, no staging left behind; once the upstream is whole again, the
/// retry is served the upstream's bytes.
pub async fn truncated_transfer_not_cached<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let artifact = C::artifact_path(C::package(), "1.0.0");
    // What the whole upstream serves, through a second proxy.
    let honest = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await
        .call(get(&artifact, None))
        .await;
    assert_eq!(honest.status, StatusCode::OK, "{}", honest.text());

    upstream.reset().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let cut = honest.body.len() / 2;
    Mock::given(method("GET"))
        .and(path(C::upstream_artifact_path(C::package(), "1.0.0")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(honest.body[..cut].to_vec())
                .insert_header("content-length", honest.body.len().to_string()),
        )
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    let (status, body) = app.send_raw(get(&artifact, None)).await;
    assert!(
        !status.is_success() || body.is_err(),
        "a truncated transfer was served as a success ({status})"
    );
    settle().await;
    let blobs = app.storage.blobs.list("").await.unwrap();
    assert!(
        blobs.iter().all(|p| !p.starts_with("tmp/")),
        "staging left behind: {blobs:?}"
    );

    upstream.reset().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let retry = app.call(get(&artifact, None)).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert!(
        retry.body == honest.body,
        "the retry got the upstream's bytes"
    );
}

/// An upstream metadata document larger than `max_document_bytes`: refused with `502`
/// (never read whole into memory), nothing cached.
pub async fn huge_upstream_document_refused<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let limit = 64 * 1024;
    Mock::given(method("GET"))
        .and(path(C::upstream_metadata_path(C::package())))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b' '; 4 * 1024 * 1024]))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .max_document(limit)
        .build()
        .await;
    let got = app.call(get(&C::metadata_path(C::package()), None)).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{}", got.text());
    assert!(got.body.len() < 4096, "an error, not the document");
    assert!(
        content_blobs(&app.storage).await.is_empty(),
        "nothing cached"
    );
}

/// Uploads over `max_upload_bytes` from a caller who may publish: a declared length over
/// the limit is refused from the head (`413`, the body never read); an undeclared endless
/// body is cut off soon after the limit with a client error. Nothing is stored.
pub async fn oversized_uploads_refused<C: Conformance>() {
    let limit: u64 = 64 * 1024;
    let app = TestApp::<C::Service>::local()
        .max_upload(limit)
        .build()
        .await;
    let key = C::package_key();
    let before = app.state(&[&key]).await;

    let touched = Arc::new(AtomicBool::new(false));
    let mut req = C::publish_request(C::package(), "1.0.0", Some("alice"));
    req.headers_mut()
        .insert(header::CONTENT_LENGTH, (limit * 4096).into());
    let req = req.map(|_| {
        Untouchable(touched.clone())
            .map_err(batlehub_core::body::BoxError::from)
            .boxed_unsync()
    });
    let got = tokio::time::timeout(Duration::from_secs(10), app.call(req))
        .await
        .expect("a declared oversized upload was not refused from its head");
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert!(!touched.load(Ordering::SeqCst), "the body was read");

    // No declared length: the upload's first half, then zeros without end.
    let pulled = Arc::new(AtomicUsize::new(0));
    let req = C::publish_request(C::package(), "1.0.0", Some("alice"));
    let (mut parts, body) = req.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let original = crate::collect(body).await.unwrap();
    let head = original.slice(..original.len() / 2);
    let counter = pulled.clone();
    let chunks = futures::stream::once(async move { Ok::<_, std::io::Error>(head) }).chain(
        futures::stream::repeat_with(|| Ok(bytes::Bytes::from(vec![0u8; 16 * 1024]))),
    );
    let stream = chunks.map(move |c| {
        if let Ok(c) = &c {
            counter.fetch_add(c.len(), Ordering::SeqCst);
        }
        c.map(http_body::Frame::data)
    });
    let body = http_body_util::StreamBody::new(stream)
        .map_err(batlehub_core::body::BoxError::from)
        .boxed_unsync();
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        app.call(Request::from_parts(parts, body)),
    )
    .await
    .expect("an endless upload was read without end");
    assert!(
        got.status.is_client_error(),
        "{}: {}",
        got.status,
        got.text()
    );
    let read = pulled.load(Ordering::SeqCst) as u64;
    assert!(
        read <= 2 * limit + 1024 * 1024,
        "{read} bytes read for a limit of {limit}"
    );
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
}

/// Decompression bombs and expanding manifests in uploads: refused with a client error in
/// bounded time, nothing stored.
pub async fn upload_bombs_refused<C: Conformance>() {
    let Some(req) = C::bomb_publish_request(C::package(), "1.0.0", "alice") else {
        return;
    };
    let app = TestApp::<C::Service>::local().build().await;
    let key = C::package_key();
    let before = app.state(&[&key]).await;
    let got = tokio::time::timeout(Duration::from_secs(60), app.call(req))
        .await
        .expect("a bomb kept the server busy");
    assert!(
        got.status.is_client_error(),
        "{}: {}",
        got.status,
        got.text()
    );
    assert!(got.body.len() < 4096, "a short error: {}", got.text());
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
}

/// Runs every adversarial check for a [`Conformance`] implementation, one `#[tokio::test]`
/// each:
///
/// ```ignore
/// batlehub_test::adversarial_suite!(NpmConformance);
/// ```
#[macro_export]
macro_rules! adversarial_suite {
    ($c:ty) => {
        $crate::adversarial_suite!(@tests $c;
            token_flood_throttled,
            hybrid_shadowing_refused,
            lying_upstream_wrong_digest,
            lying_upstream_missing_digest,
            concurrent_uploads_bounded,
            redirect_to_forbidden_host_refused,
            truncated_transfer_not_cached,
            huge_upstream_document_refused,
            oversized_uploads_refused,
            upload_bombs_refused,
            storage_outage_unavailable,
        );
    };
    (@tests $c:ty; $($check:ident),* $(,)?) => {
        mod adversarial_suite {
            use super::*;
            $(
                #[::tokio::test]
                async fn $check() {
                    $crate::adversarial::$check::<$c>().await;
                }
            )*
        }
    };
}

/// A blob store in front of another that fails every operation with
/// [`Error::Unavailable`](batlehub_core::Error::Unavailable) while `down` is set, as an
/// object store does during an outage.
#[derive(Debug)]
struct Outage {
    inner: Arc<dyn batlehub_core::BlobStore>,
    down: Arc<AtomicBool>,
}

impl Outage {
    fn check(&self) -> batlehub_core::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(batlehub_core::Error::unavailable("test outage"))
        } else {
            Ok(())
        }
    }
}

impl batlehub_core::BlobStore for Outage {
    fn writer(
        &self,
        path: &str,
    ) -> BoxFuture<'_, batlehub_core::Result<Box<dyn batlehub_core::store::BlobWriter>>> {
        match self.check() {
            Ok(()) => self.inner.writer(path),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn reader(
        &self,
        path: &str,
    ) -> BoxFuture<'_, batlehub_core::Result<Option<batlehub_core::store::BlobReader>>> {
        match self.check() {
            Ok(()) => self.inner.reader(path),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn reader_from(
        &self,
        path: &str,
        offset: u64,
    ) -> BoxFuture<'_, batlehub_core::Result<Option<batlehub_core::store::BlobReader>>> {
        match self.check() {
            Ok(()) => self.inner.reader_from(path, offset),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn read_all(&self, path: &str) -> BoxFuture<'_, batlehub_core::Result<Option<bytes::Bytes>>> {
        match self.check() {
            Ok(()) => self.inner.read_all(path),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn stat(&self, path: &str) -> BoxFuture<'_, batlehub_core::Result<Option<u64>>> {
        match self.check() {
            Ok(()) => self.inner.stat(path),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, batlehub_core::Result<()>> {
        match self.check() {
            Ok(()) => self.inner.rename(from, to),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn delete(&self, path: &str) -> BoxFuture<'_, batlehub_core::Result<()>> {
        match self.check() {
            Ok(()) => self.inner.delete(path),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
    fn list(&self, prefix: &str) -> BoxFuture<'_, batlehub_core::Result<Vec<String>>> {
        match self.check() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => Box::pin(async { Err(e) }),
        }
    }
}

/// A blob-store outage (an S3 endpoint down or throttling): reads answer the stored bytes
/// from memory or `503` with `Retry-After` in the protocol's envelope, publishes `503`; a
/// publish during the outage leaves no version behind, and once the store is
/// back the same publish succeeds and every stored artifact is intact.
pub async fn storage_outage_unavailable<C: Conformance>() {
    let down = Arc::new(AtomicBool::new(false));
    let switch = down.clone();
    let app = TestApp::<C::Service>::local()
        .wrap_blobs(move |inner| {
            Arc::new(Outage {
                inner,
                down: switch,
            })
        })
        .build()
        .await;
    let name = C::package();
    assert!(C::publish(&app, name, "1.0.0", "alice").await.is_success());
    let artifact = C::artifact_path(name, "1.0.0");
    let good = app.fetch(&artifact).await;
    assert!(good.status.is_success(), "{}", good.text());
    // A second artifact never read, so that no memory cache holds it.
    assert!(C::publish(&app, name, "1.1.0", "alice").await.is_success());
    let key = C::package_key();
    let before = app.state(&[&key]).await;

    down.store(true, Ordering::SeqCst);
    let second = C::artifact_path(name, "1.1.0");
    let during = [app.fetch(&artifact).await, app.fetch(&second).await];
    for got in &during {
        // Served from memory, or refused with a retry hint; the bytes are checked below.
        if !got.status.is_success() {
            assert_eq!(
                got.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{}",
                got.text()
            );
            assert!(
                got.header("retry-after")
                    .parse::<u64>()
                    .is_ok_and(|s| s > 0),
                "no Retry-After"
            );
            assert!(!got.text().contains("test outage"), "detail leaked");
        }
    }
    let status = C::publish(&app, name, "2.0.0", "alice").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "publish during the outage"
    );

    down.store(false, Ordering::SeqCst);
    assert_eq!(
        app.state(&[&key]).await,
        before,
        "nothing changed by the outage"
    );
    let (_, _, meta) = app.get(&C::metadata_path(name)).await;
    assert!(
        !C::lists_version(&meta, "2.0.0"),
        "a version without its blob"
    );
    let again = app.fetch(&artifact).await;
    assert_eq!(
        again.body, good.body,
        "stored artifact intact after the outage"
    );
    let second_after = app.fetch(&second).await;
    assert!(second_after.status.is_success(), "{}", second_after.text());
    for (got, after) in during.iter().zip([&again, &second_after]) {
        if got.status.is_success() {
            assert_eq!(got.body, after.body, "wrong bytes served during the outage");
        }
    }
    assert!(
        C::publish(&app, name, "2.0.0", "alice").await.is_success(),
        "the publish refused during the outage succeeds afterwards"
    );
}
