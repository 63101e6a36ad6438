//! The checks every protocol must pass, written once.
//!
//! A protocol crate implements [`Conformance`] in its `tests/` (how to publish, where its
//! documents and artifacts live, what its upstream serves) and runs every check with
//! [`conformance_suite!`](crate::conformance_suite).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use batlehub_core::BaseUrl;
use batlehub_core::body::Body;
use batlehub_core::protocol::RegistryService;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{TestApp, TestService, get, head, identity};

/// What the shared checks need to know about one protocol.
pub trait Conformance: Send + Sync + 'static {
    /// The protocol's service.
    type Service: TestService;

    /// A valid package name in this protocol (the checks publish and read it).
    fn package() -> &'static str;

    /// The key `package()` is stored under.
    fn package_key() -> String {
        Self::Service::package_key(Self::package()).unwrap()
    }

    /// The request that publishes `name@version` (the first request of a multi-request
    /// publish), as `who` or anonymously.
    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body>;

    /// Publishes `name@version` as `who` completely; returns the last status.
    fn publish(
        app: &TestApp<Self::Service>,
        name: &str,
        version: &str,
        who: &str,
    ) -> impl Future<Output = StatusCode> + Send;

    /// The path of the document listing `name`'s versions.
    fn metadata_path(name: &str) -> String;

    /// The path of the (main) artifact of `name@version`.
    fn artifact_path(name: &str, version: &str) -> String;

    /// Whether a metadata document lists `version`.
    fn lists_version(body: &[u8], version: &str) -> bool {
        String::from_utf8_lossy(body).contains(version)
    }

    /// Paths that try to leave the namespace the protocol serves; each must be refused with a
    /// client error. The default puts hostile names where a package name goes.
    fn traversal_paths() -> Vec<String> {
        let mut paths = Vec::new();
        for evil in [
            "%2e%2e",
            "..%2f..%2fetc%2fpasswd",
            "%2e%2e%5c%2e%2e%5cetc",
            "a%00b",
            "%2e",
        ] {
            paths.push(Self::metadata_path(evil));
            paths.push(Self::artifact_path(evil, "1.0.0"));
        }
        paths
    }

    /// Serves `name` with `versions` (and their artifacts) the way an upstream of this
    /// protocol does, on `server`.
    fn mount_upstream(
        server: &MockServer,
        name: &str,
        versions: &[&str],
    ) -> impl Future<Output = ()> + Send;

    /// Serves `name@version` (metadata and artifact) the way a lying upstream does, as
    /// `lie` says (mount the honest upstream, then override with
    /// `with_priority(1)` mocks). Returns `false`
    /// when this protocol's upstream format cannot express the lie (its metadata always
    /// carries a digest).
    fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> impl Future<Output = bool> + Send;

    /// Where [`Conformance::mount_upstream`] serves the artifact of `name@version`, as a
    /// path on the mock server.
    fn upstream_artifact_path(name: &str, version: &str) -> String;

    /// Where [`Conformance::mount_upstream`] serves the metadata document a request for
    /// [`Conformance::metadata_path`] reads, as a path on the mock server.
    fn upstream_metadata_path(name: &str) -> String;

    /// A publish of `name@version` by `who` whose upload is a bomb for this format's reader:
    /// an archive member that unpacks far beyond the format's limits (npm, cargo, PyPI), or
    /// a manifest that expands (Maven's POM). `None` when the format reads nothing inside
    /// its uploads.
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>>;

    /// The upstream URL a proxy of `server` is configured with.
    fn upstream_url(server: &MockServer) -> String {
        server.uri()
    }
}

/// How a lying upstream lies about an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lie {
    /// The artifact's bytes are not the ones whose digest the metadata publishes.
    WrongDigest,
    /// The metadata publishes no digest for the artifact.
    NoDigest,
}

fn assert_nosniff(what: &str, headers: &http::HeaderMap) {
    assert_eq!(
        headers
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what}: X-Content-Type-Options"
    );
}

/// Hostile paths get a client error, and a proxy never forwards them upstream.
pub async fn traversal_refused<C: Conformance>() {
    let upstream = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&upstream)
        .await;
    let local = TestApp::<C::Service>::local().build().await;
    let proxy = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    for path in C::traversal_paths() {
        for (mode, app) in [("local", &local), ("proxy", &proxy)] {
            let got = app.call(get(&path, Some("alice"))).await;
            assert!(
                got.status == StatusCode::BAD_REQUEST || got.status == StatusCode::NOT_FOUND,
                "{mode} GET {path}: {} {}",
                got.status,
                got.text()
            );
            assert_nosniff(&path, &got.headers);
        }
    }
    let (blobs, _) = local.state(&[]).await;
    assert!(blobs.is_empty(), "nothing stored: {blobs:?}");
}

/// An anonymous publish is refused with `401`, the protocol's challenge and its error
/// envelope, before anything is stored.
pub async fn anonymous_publish_challenged<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    let key = C::package_key();
    let before = app.state(&[&key]).await;
    let got = app
        .call(C::publish_request(C::package(), "1.0.0", None))
        .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    assert!(
        !got.header("www-authenticate").is_empty(),
        "a 401 carries the protocol's challenge"
    );
    assert!(!got.body.is_empty(), "the error is explained in the body");
    assert_nosniff("401", &got.headers);
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
    // The same request with credentials that were refused is refused too.
    let mut req = C::publish_request(C::package(), "1.0.0", None);
    req.extensions_mut().insert(identity("invalid"));
    let got = app.call(req).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.text());
    assert_eq!(app.state(&[&key]).await, before, "nothing stored");
}

/// A body that never ends and records whether anyone read from it.
pub(crate) struct Untouchable(pub(crate) Arc<AtomicBool>);

impl http_body::Body for Untouchable {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0.store(true, Ordering::SeqCst);
        Poll::Pending
    }
}

/// An upload from a caller who may not publish is refused from the request head: the
/// answer comes at once, and not one byte of the body is read (an anonymous client cannot
/// make the server hold its upload in memory or wait on it). Anonymous and refused
/// credentials are challenged; a proxy refuses uploads from anyone the same way.
pub async fn upload_refused_before_body<C: Conformance>() {
    let local = TestApp::<C::Service>::local().build().await;
    let upstream = MockServer::start().await;
    let proxy = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    for (app, who, expected) in [
        (&local, None, StatusCode::UNAUTHORIZED),
        (&local, Some("invalid"), StatusCode::UNAUTHORIZED),
        (&proxy, Some("alice"), StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let touched = Arc::new(AtomicBool::new(false));
        let mut req = C::publish_request(C::package(), "1.0.0", None);
        if let Some(who) = who {
            req.extensions_mut().insert(identity(who));
        }
        let req = req.map(|_| {
            Untouchable(touched.clone())
                .map_err(batlehub_core::body::BoxError::from)
                .boxed_unsync()
        });
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), app.call(req))
            .await
            .unwrap_or_else(|_| panic!("{who:?}: the server waited for the body"));
        assert_eq!(got.status, expected, "{who:?}: {}", got.text());
        assert!(
            !touched.load(Ordering::SeqCst),
            "{who:?}: the body was read"
        );
    }
}

/// The library's default policy (what `Hub::builder()` installs when none is given) checks
/// ownership: the first publisher owns a package, and another user may not publish over
/// it; an admin may.
pub async fn default_policy_checks_ownership<C: Conformance>() {
    let app = TestApp::<C::Service>::local()
        .policy(batlehub_core::DefaultPolicy)
        .build()
        .await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "alice's first publish: {status}");
    let status = C::publish(&app, C::package(), "1.1.0", "bob").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "bob may not publish alice's package"
    );
    let status = C::publish(&app, C::package(), "1.1.0", "alice").await;
    assert!(status.is_success(), "the owner publishes: {status}");
    let status = C::publish(&app, C::package(), "1.2.0", "admin").await;
    assert!(status.is_success(), "an admin publishes: {status}");
}

/// Principals are keyed by their identity provider: an OIDC subject named like a static
/// token's user does not own that user's package (nor does the user own the subject's).
pub async fn ownership_is_per_identity_provider<C: Conformance>() {
    let app = TestApp::<C::Service>::local()
        .policy(batlehub_core::DefaultPolicy)
        .build()
        .await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "static alice publishes: {status}");
    let mut req = C::publish_request(C::package(), "2.0.0", None);
    req.extensions_mut()
        .insert(batlehub_core::Identity::User(batlehub_core::Principal {
            id: "alice".into(),
            role: batlehub_core::Role::User,
            groups: Vec::new(),
            provider: "oidc".into(),
        }));
    let got = app.call(req).await;
    assert_eq!(
        got.status,
        StatusCode::FORBIDDEN,
        "an OIDC `alice` is not the static `alice`: {}",
        got.text()
    );
    let owners = app
        .registry
        .local()
        .owners(&C::package_key())
        .await
        .unwrap();
    assert_eq!(
        owners,
        [batlehub_core::model::Owner::User("alice".into())],
        "the static user owns it under its bare id"
    );
}

/// Ownership outlives the package and may precede it: after a full unpublish the name is
/// still its owners' (nobody else republishes it), and owners assigned before the first
/// publish reserve the name. Run with the default policy and with the rules crate's.
pub async fn ownership_outlives_the_package<C: Conformance>() {
    for rules in [false, true] {
        let builder = TestApp::<C::Service>::local();
        let app = if rules {
            builder.rules("").build().await
        } else {
            builder.policy(batlehub_core::DefaultPolicy).build().await
        };
        let key = C::package_key();
        let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
        assert!(status.is_success(), "alice's first publish: {status}");
        assert!(app.registry.local().delete_package(&key).await.unwrap());
        let status = C::publish(&app, C::package(), "2.0.0", "bob").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "bob may not take an unpublished name (rules: {rules})"
        );
        let status = C::publish(&app, C::package(), "2.0.0", "alice").await;
        assert!(status.is_success(), "alice republishes her name: {status}");

        // Reserved: an owner assigned ahead of the first publish.
        let reserved = &format!("{}-reserved", C::package());
        let reserved_key = C::Service::package_key(reserved).unwrap();
        app.registry
            .local()
            .add_owner(
                &reserved_key,
                &batlehub_core::model::Owner::User("carol".into()),
            )
            .await
            .unwrap();
        let status = C::publish(&app, reserved, "1.0.0", "bob").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a reserved name (rules: {rules})"
        );
        let status = C::publish(&app, reserved, "1.0.0", "carol").await;
        assert!(status.is_success(), "its owner publishes it: {status}");
    }
}

/// `HEAD` answers with the headers of `GET` and no body.
pub async fn head_has_no_body<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "publish: {status}");
    for path in [
        C::metadata_path(C::package()),
        C::artifact_path(C::package(), "1.0.0"),
    ] {
        let full = app.call(get(&path, Some("alice"))).await;
        assert_eq!(full.status, StatusCode::OK, "GET {path}: {}", full.text());
        let got = app.call(head(&path, Some("alice"))).await;
        assert_eq!(got.status, StatusCode::OK, "HEAD {path}");
        assert!(got.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(
            got.header("content-type"),
            full.header("content-type"),
            "HEAD {path}: same Content-Type as GET"
        );
        let len = got.header("content-length");
        if !len.is_empty() {
            assert_eq!(
                len,
                full.body.len().to_string(),
                "HEAD {path}: Content-Length"
            );
        }
        assert_nosniff(&path, &got.headers);
    }
}

/// Every kind of answer carries `X-Content-Type-Options: nosniff`.
pub async fn nosniff_everywhere<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    C::publish(&app, C::package(), "1.0.0", "alice").await;
    for (path, expected) in [
        (C::metadata_path(C::package()), StatusCode::OK),
        (C::artifact_path(C::package(), "1.0.0"), StatusCode::OK),
        (C::metadata_path("no-such-package"), StatusCode::NOT_FOUND),
    ] {
        let got = app.call(get(&path, Some("alice"))).await;
        assert_eq!(got.status, expected, "GET {path}: {}", got.text());
        assert_nosniff(&path, &got.headers);
    }
    let got = app
        .call(
            Request::builder()
                .method(Method::PATCH)
                .uri(C::metadata_path(C::package()))
                .body(batlehub_core::body::empty())
                .unwrap(),
        )
        .await;
    assert!(got.status.is_client_error(), "PATCH: {}", got.status);
    assert_nosniff("PATCH", &got.headers);
}

/// Artifacts are served as attachments with `nosniff`: a browser following a link to
/// uploaded bytes downloads them instead of rendering them in the registry's origin.
pub async fn artifacts_are_attachments<C: Conformance>() {
    let app = TestApp::<C::Service>::local().build().await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "publish: {status}");
    let got = app
        .call(get(&C::artifact_path(C::package(), "1.0.0"), Some("alice")))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(
        got.header("content-disposition").starts_with("attachment"),
        "Content-Disposition: {:?}",
        got.header("content-disposition")
    );
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    let ct = got.header("content-type");
    assert!(!ct.contains("html"), "Content-Type: {ct}");
}

/// Past the rate limit a caller gets `429` with `Retry-After` and the limit, in the
/// protocol's envelope.
pub async fn rate_limited_with_retry_after<C: Conformance>() {
    let app = TestApp::<C::Service>::local()
        .rules("[rate_limit]\nrequests_per_window = 2\nwindow_secs = 60\n")
        .build()
        .await;
    let path = C::metadata_path("no-such-package");
    for _ in 0..2 {
        let got = app.call(get(&path, None)).await;
        assert_ne!(got.status, StatusCode::TOO_MANY_REQUESTS);
    }
    let got = app.call(get(&path, None)).await;
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.text());
    assert!(!got.header("retry-after").is_empty(), "Retry-After");
    assert_eq!(got.header("x-ratelimit-limit"), "2");
    assert!(!got.body.is_empty(), "explained in the body");
    assert_nosniff("429", &got.headers);
    app.clock.advance(chrono::Duration::seconds(61));
    let got = app.call(get(&path, None)).await;
    assert_ne!(got.status, StatusCode::TOO_MANY_REQUESTS, "a new window");
}

/// A version younger than the release-age gate is refused for download with `403`, the
/// rule's name and its reason; once old enough it is served.
pub async fn age_gated_version_refused_with_reason<C: Conformance>() {
    let app = TestApp::<C::Service>::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "publish: {status}");
    let path = C::artifact_path(C::package(), "1.0.0");
    let got = app.call(get(&path, Some("bob"))).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert_eq!(got.header("x-batlehub-rule"), "release_age_gate");
    assert!(!got.header("retry-after").is_empty(), "Retry-After");
    assert!(
        got.text().contains("release-age gate"),
        "the reason reaches the client: {}",
        got.text()
    );
    app.clock.advance(chrono::Duration::days(2));
    let got = app.call(get(&path, Some("bob"))).await;
    assert_eq!(got.status, StatusCode::OK, "eligible now: {}", got.text());
}

/// When every upstream fails, the last copy of a document is served, marked stale.
pub async fn stale_when_upstream_down<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .ttl(60)
        .build()
        .await;
    let path = C::metadata_path(C::package());
    let fresh = app.fetch(&path).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text());
    assert!(C::lists_version(&fresh.body, "1.0.0"));
    assert!(fresh.header("x-batlehub-cache") != "stale");
    upstream.reset().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstream)
        .await;
    app.clock.advance(chrono::Duration::seconds(61));
    let stale = app.fetch(&path).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.text());
    assert_eq!(stale.header("x-batlehub-cache"), "stale");
    assert!(C::lists_version(&stale.body, "1.0.0"));
}

/// A proxy miss is answered as soon as its bytes are read and verified; storing them goes on
/// after the response, and a request meanwhile is served the same bytes without asking the
/// upstream again. Once settled, the artifact is stored under its digest.
pub async fn misses_answered_before_stored<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .build()
        .await;
    let path = C::artifact_path(C::package(), "1.0.0");
    let first = app.call_unsettled(get(&path, Some("alice"))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert!(!first.body.is_empty());
    let second = app.call_unsettled(get(&path, Some("alice"))).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(second.body, first.body, "the same bytes");
    app.registry.settle().await;
    assert_eq!(app.storage.background.running(), 0);
    let artifact = C::upstream_artifact_path(C::package(), "1.0.0");
    let asked = upstream
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == artifact)
        .count();
    assert_eq!(asked, 1, "one download of {artifact}");
    let sha = batlehub_core::digest::Digests::of(&first.body).sha256_hex();
    let (blobs, _) = app.state(&[]).await;
    assert!(
        blobs.contains(&batlehub_core::store::blob_path(&sha)),
        "stored under its digest: {blobs:?}"
    );
    let third = app.call(get(&path, Some("alice"))).await;
    assert_eq!(third.body, first.body, "served from the cache");
}

/// With no memory cache (`memory_cache_mib = 0`), a proxy miss is still answered from the
/// bytes just fetched, before they are stored: metadata, then the artifact.
pub async fn misses_served_without_memory_cache<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .memory_cache(0)
        .build()
        .await;
    let doc = app
        .call_unsettled(get(&C::metadata_path(C::package()), Some("alice")))
        .await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text());
    assert!(C::lists_version(&doc.body, "1.0.0"));
    let path = C::artifact_path(C::package(), "1.0.0");
    let first = app.call_unsettled(get(&path, Some("alice"))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    app.registry.settle().await;
    let again = app.call(get(&path, Some("alice"))).await;
    assert_eq!(again.body, first.body, "served from the store");
}

/// A name no upstream has costs the upstream one request per period, not one per client
/// request: its `404` is remembered (for the metadata TTL, at most a minute), then asked
/// again.
pub async fn upstream_not_found_is_remembered<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let app = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .ttl(300)
        .build()
        .await;
    let path = C::metadata_path("no-such-package");
    let asked = || async { upstream.received_requests().await.map_or(0, |r| r.len()) };
    let first = app.call(get(&path, Some("alice"))).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND, "{}", first.text());
    let after_first = asked().await;
    assert!(after_first > 0, "the upstream was asked");
    for _ in 0..5 {
        let again = app.call(get(&path, Some("alice"))).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    }
    assert_eq!(asked().await, after_first, "the 404 was remembered");
    app.clock.advance(chrono::Duration::seconds(61));
    let later = app.call(get(&path, Some("alice"))).await;
    assert_eq!(later.status, StatusCode::NOT_FOUND, "{}", later.text());
    assert!(asked().await > after_first, "asked again after a minute");
}

/// Clients choose the `Host` header (the base URL of a registry without a fixed one):
/// rotating it never grows the in-memory cache (every request shares one preparation of a
/// document, local or upstream) and never mixes up links (no response names another
/// request's host, nor the placeholder shared renderings carry).
pub async fn host_rotation_keeps_one_rendering<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["1.0.0"]).await;
    let local = TestApp::<C::Service>::local()
        .base(BaseUrl::derived("/registry"))
        .build()
        .await;
    let status = C::publish(&local, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "publish: {status}");
    let proxy = TestApp::<C::Service>::proxy(&C::upstream_url(&upstream))
        .base(BaseUrl::derived("/registry"))
        .build()
        .await;
    let path = C::metadata_path(C::package());
    for app in [&local, &proxy] {
        let mut entries = None;
        for i in 0..40 {
            let mut req = get(&path, Some("alice"));
            let host = if i < 2 {
                "h0.test:8080".to_owned()
            } else {
                format!("h{i}.test:8080")
            };
            req.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_str(&host).expect("host"),
            );
            let got = app.call(req).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.text());
            assert!(C::lists_version(&got.body, "1.0.0"), "{}", got.text());
            let text = got.text();
            assert!(
                !text.contains("batlehub.invalid"),
                "placeholder leaked: {text}"
            );
            if i >= 2 {
                assert!(
                    !text.contains("h0.test"),
                    "h{i} was sent h0's links: {text}"
                );
            }
            // Two warm-up requests (a first read may cache what a second one derives).
            let now = app.registry.memo().len();
            if i >= 2 {
                assert!(
                    now <= *entries.get_or_insert(now),
                    "the memo grew with Host h{i}: {now} entries"
                );
            }
        }
    }
}

/// In a hybrid registry, a name claimed for local use and published never falls through to
/// the upstream: the upstream's versions are neither listed nor downloaded.
pub async fn hybrid_local_never_falls_through<C: Conformance>() {
    let upstream = MockServer::start().await;
    C::mount_upstream(&upstream, C::package(), &["9.9.9"]).await;
    let key = C::package_key();
    let app = TestApp::<C::Service>::hybrid(&C::upstream_url(&upstream))
        .claims(&[&key])
        .build()
        .await;
    let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
    assert!(status.is_success(), "publish: {status}");
    let got = app
        .call(get(&C::metadata_path(C::package()), Some("bob")))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(C::lists_version(&got.body, "1.0.0"));
    assert!(!C::lists_version(&got.body, "9.9.9"), "{}", got.text());
    let got = app
        .call(get(&C::artifact_path(C::package(), "9.9.9"), Some("bob")))
        .await;
    assert!(
        got.status.is_client_error(),
        "the upstream's version is not served: {}",
        got.status
    );
    let requests = upstream.received_requests().await.unwrap_or_default();
    assert!(
        requests.iter().all(|r| !r.url.path().contains("9.9.9")),
        "the upstream's artifact was never fetched: {:?}",
        requests
            .iter()
            .map(|r| r.url.path().to_owned())
            .collect::<Vec<_>>()
    );
}

/// Runs every conformance check for a [`Conformance`] implementation, one `#[tokio::test]`
/// each:
///
/// ```ignore
/// batlehub_test::conformance_suite!(NpmConformance);
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($c:ty) => {
        $crate::conformance_suite!(@tests $c;
            traversal_refused,
            anonymous_publish_challenged,
            upload_refused_before_body,
            default_policy_checks_ownership,
            ownership_outlives_the_package,
            ownership_is_per_identity_provider,
            head_has_no_body,
            nosniff_everywhere,
            artifacts_are_attachments,
            rate_limited_with_retry_after,
            age_gated_version_refused_with_reason,
            stale_when_upstream_down,
            hybrid_local_never_falls_through,
            host_rotation_keeps_one_rendering,
            upstream_not_found_is_remembered,
            misses_answered_before_stored,
            misses_served_without_memory_cache,
        );
    };
    (@tests $c:ty; $($check:ident),* $(,)?) => {
        mod conformance_suite {
            use super::*;
            $(
                #[::tokio::test]
                async fn $check() {
                    $crate::conformance::$check::<$c>().await;
                }
            )*
        }
    };
}
