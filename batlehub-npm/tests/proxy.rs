//! Proxy and hybrid npm registries against a wiremock upstream: URL rewriting, integrity,
//! single-flight, revalidation, stale serving, fall-through, credentials and origins.

mod common;

use std::time::Duration;

use common::{NpmApp, TestApp, get, get_corgi, upstream_packument};
use http::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TARBALL: &[u8] = b"pretend this is a tarball: the proxy never unpacks upstream bytes";

async fn upstream_with(name: &str, bytes: &[u8]) -> MockServer {
    let server = MockServer::start().await;
    let doc = upstream_packument(name, &server.uri(), &[("1.0.0", bytes)]);
    let escaped = name.replace('/', "%2f");
    Mock::given(method("GET"))
        .and(path(format!("/{escaped}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(doc)
                .insert_header("etag", "\"v1\""),
        )
        .mount(&server)
        .await;
    server
}

fn requests_to(reqs: &[Request], p: &str) -> usize {
    reqs.iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn packument_rewritten_and_tarball_verified_then_cached() {
    let up = upstream_with("@up/lib", TARBALL).await;
    Mock::given(method("GET"))
        .and(path("/@up/lib/-/lib-1.0.0.tgz"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri())).build().await;

    let (s, doc) = app.json("/@up%2flib").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["tarball"],
        "http://hub.test/npm/@up/lib/-/lib-1.0.0.tgz"
    );
    let (s, _, b) = app.send(get_corgi("/@up/lib")).await;
    assert_eq!(s, StatusCode::OK);
    let mut corgi: Value = serde_json::from_slice(&b).expect("json");
    corgi["versions"]["1.0.0"]["dist"]["integrity"] = json!("[integrity]");
    corgi["versions"]["1.0.0"]["dist"]["shasum"] = json!("[shasum]");
    insta::assert_json_snapshot!("proxy_packument_abbreviated", corgi);

    let (s, _, bytes) = app.get("/@up/lib/-/lib-1.0.0.tgz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bytes.as_ref(), TARBALL);
    let (s, _, bytes) = app.get("/@up/lib/-/lib-1.0.0.tgz").await;
    assert_eq!((s, bytes.as_ref()), (StatusCode::OK, TARBALL));
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(
        requests_to(&reqs, "/@up/lib/-/lib-1.0.0.tgz"),
        1,
        "second download served from cache"
    );
    assert_eq!(
        requests_to(&reqs, "/@up%2flib"),
        1,
        "packument fresh within TTL"
    );
}

#[tokio::test]
async fn integrity_mismatch_is_not_cached_and_fails_the_transfer() {
    let up = upstream_with("lying", TARBALL).await;
    Mock::given(method("GET"))
        .and(path("/lying/-/lying-1.0.0.tgz"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(b"these are not the bytes you published".to_vec()),
        )
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri())).build().await;
    app.json("/lying").await;
    let before = app.storage.blobs.list("").await.expect("list");
    let (status, body) = app.send_raw(get("/lying/-/lying-1.0.0.tgz", None)).await;
    // The first chunk may already be on its way; the transfer must not complete cleanly.
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "{status} {body:?}"
    );
    if let Ok(b) = &body {
        assert_ne!(b.as_ref(), b"these are not the bytes you published");
    }
    assert_eq!(
        app.storage.blobs.list("").await.expect("list"),
        before,
        "nothing cached"
    );
    assert!(
        app.registry
            .cached_artifact("tarball/lying/1.0.0")
            .await
            .expect("lookup")
            .is_none()
    );
    // A second attempt goes upstream again (still refused).
    let (status, body) = app.send_raw(get("/lying/-/lying-1.0.0.tgz", None)).await;
    assert!(status == StatusCode::BAD_GATEWAY || body.is_err());
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(requests_to(&reqs, "/lying/-/lying-1.0.0.tgz"), 2);
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_request() {
    let up = upstream_with("popular", TARBALL).await;
    Mock::given(method("GET"))
        .and(path("/popular/-/popular-1.0.0.tgz"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(TARBALL)
                .set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri())).build().await;
    app.json("/popular").await;
    let (a, b, c) = tokio::join!(
        app.get("/popular/-/popular-1.0.0.tgz"),
        app.get("/popular/-/popular-1.0.0.tgz"),
        app.get("/popular/-/popular-1.0.0.tgz"),
    );
    for (s, _, bytes) in [a, b, c] {
        assert_eq!((s, bytes.as_ref()), (StatusCode::OK, TARBALL));
    }
    up.verify().await;
}

#[tokio::test]
async fn revalidates_with_etag_and_serves_stale_when_upstream_fails() {
    let up = MockServer::start().await;
    let doc = upstream_packument("reval", &up.uri(), &[("1.0.0", TARBALL)]);
    Mock::given(method("GET"))
        .and(path("/reval"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/reval"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(doc)
                .insert_header("etag", "\"v1\""),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/reval"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(3)
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri()))
        .ttl(60)
        .build()
        .await;
    assert_eq!(app.json("/reval").await.0, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(61));
    let (s, h, _) = app.get("/reval").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!h.contains_key("x-batlehub-cache"));
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(
        reqs[1]
            .headers
            .get("if-none-match")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("\"v1\"")
    );
    // Within the TTL again: no upstream request.
    app.get("/reval").await;
    assert_eq!(up.received_requests().await.expect("recorded").len(), 2);
    // Past the TTL with the upstream failing: stale copy, marked.
    app.clock.advance(chrono::Duration::seconds(61));
    let (s, h, b) = app.get("/reval").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-batlehub-cache"], "stale");
    assert!(h.contains_key("warning"));
    assert_eq!(
        serde_json::from_slice::<Value>(&b).expect("json")["name"],
        "reval"
    );
}

#[tokio::test]
async fn nothing_cached_and_upstream_down_is_502() {
    let app = TestApp::proxy("http://127.0.0.1:9/").build().await;
    let (s, _, b) = app.get("/anything").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    insta::assert_snapshot!("error_upstream_down", String::from_utf8_lossy(&b));
}

#[tokio::test]
async fn ordered_upstreams_fall_through_on_404_and_5xx() {
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    let third = upstream_with("deep", TARBALL).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&first)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&second)
        .await;
    Mock::given(method("GET"))
        .and(path("/deep/-/deep-1.0.0.tgz"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&third)
        .await;
    let ups = [
        format!("{}/", first.uri()),
        format!("{}/", second.uri()),
        format!("{}/", third.uri()),
    ];
    let app = TestApp::proxy("unused").upstreams(&ups).build().await;
    let (s, doc) = app.json("/deep").await;
    assert_eq!(s, StatusCode::OK, "{doc}");
    let (s, _, b) = app.get("/deep/-/deep-1.0.0.tgz").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, TARBALL));
    // An upstream failing while the others say 404: unknown, so 502, not a false 404.
    assert_eq!(app.get("/nowhere").await.0, StatusCode::BAD_GATEWAY);
    // Every upstream says 404: a plain 404.
    let ups = [format!("{}/", first.uri()), format!("{}/", third.uri())];
    let app = TestApp::proxy("unused").upstreams(&ups).build().await;
    assert_eq!(app.get("/nowhere").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn hybrid_never_falls_through_for_local_names() {
    let up = upstream_with("mine", b"upstream impostor").await;
    // The upstream has the name: only a claimed name is published locally.
    let app = TestApp::hybrid(&format!("{}/", up.uri()))
        .claims(&["mine"])
        .build()
        .await;
    app.publish("mine", "2.0.0", "alice").await;
    let (s, doc) = app.json("/mine").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        doc["versions"].get("1.0.0").is_none(),
        "upstream versions never mixed in: {doc}"
    );
    assert_eq!(
        app.get("/mine/-/mine-1.0.0.tgz").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        up.received_requests().await.expect("recorded").is_empty(),
        "upstream never asked"
    );
    // A name with no local package does go upstream.
    let other = upstream_packument("theirs", &up.uri(), &[("1.0.0", TARBALL)]);
    Mock::given(method("GET"))
        .and(path("/theirs"))
        .respond_with(ResponseTemplate::new(200).set_body_json(other))
        .mount(&up)
        .await;
    assert_eq!(app.json("/theirs").await.0, StatusCode::OK);
}

#[tokio::test]
async fn credentials_only_to_upstream_origin_and_foreign_origins_refused() {
    let up = MockServer::start().await;
    let cdn = MockServer::start().await;
    let evil = MockServer::start().await;
    let doc = json!({
        "name": "split", "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {"name": "split", "version": "1.0.0", "dist": {
                "integrity": batlehub_core::digest::Digests::of(TARBALL).sha512_sri(),
                "tarball": format!("{}/files/split-1.0.0.tgz", cdn.uri())}},
            "2.0.0": {"name": "split", "version": "2.0.0", "dist": {
                "tarball": format!("{}/files/split-2.0.0.tgz", evil.uri())}},
            "3.0.0": {"name": "split", "version": "3.0.0", "dist": {
                "tarball": "http://169.254.169.254/latest/meta-data"}}
        }
    });
    Mock::given(method("GET"))
        .and(path("/split"))
        .and(header("authorization", "Bearer upstream-secret"))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&cdn)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&evil)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri()))
        .upstream_auth(batlehub_core::UpstreamAuth::Bearer {
            token: "upstream-secret".into(),
        })
        .allowed_origins(&[cdn.uri()])
        .build()
        .await;
    assert_eq!(app.json("/split").await.0, StatusCode::OK);
    let (s, _, b) = app.get("/split/-/split-1.0.0.tgz").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, TARBALL));
    let cdn_reqs = cdn.received_requests().await.expect("recorded");
    assert_eq!(cdn_reqs.len(), 1);
    assert!(
        cdn_reqs[0].headers.get("authorization").is_none(),
        "credentials never leave the upstream origin"
    );
    assert_eq!(
        app.get("/split/-/split-2.0.0.tgz").await.0,
        StatusCode::BAD_GATEWAY
    );
    assert!(evil.received_requests().await.expect("recorded").is_empty());
    assert_eq!(
        app.get("/split/-/split-3.0.0.tgz").await.0,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn redirects_followed_only_within_allowed_origins() {
    let up = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let doc = upstream_packument(
        "redir",
        &up.uri(),
        &[("1.0.0", TARBALL), ("2.0.0", TARBALL)],
    );
    Mock::given(method("GET"))
        .and(path("/redir"))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/redir/-/redir-1.0.0.tgz"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/blobs/one"))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/blobs/one"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/redir/-/redir-2.0.0.tgz"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/x", elsewhere.uri())),
        )
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(header_exists("host"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&elsewhere)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri())).build().await;
    let (s, _, b) = app.get("/redir/-/redir-1.0.0.tgz").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, TARBALL));
    assert_eq!(
        app.get("/redir/-/redir-2.0.0.tgz").await.0,
        StatusCode::BAD_GATEWAY
    );
    assert!(
        elsewhere
            .received_requests()
            .await
            .expect("recorded")
            .is_empty()
    );
}

/// A packument above a MiB is kept lean (facts and renderings, not its tree): every way of
/// reading it still works, with policy applied and URLs under this registry.
#[tokio::test]
async fn big_packuments_are_served_whole_from_a_lean_preparation() {
    let up = MockServer::start().await;
    let versions: Vec<String> = (0..200).map(|i| format!("1.0.{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = versions.iter().map(|v| (v.as_str(), TARBALL)).collect();
    let mut doc = upstream_packument("big", &up.uri(), &pairs);
    doc["readme"] = json!("r".repeat(1_200_000));
    Mock::given(method("GET"))
        .and(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&doc))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .and(path("/big/-/big-1.0.7.tgz"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(TARBALL))
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/", up.uri()))
        .rules("[[rules]]\nkind = \"version_gate\"\npackage = \"big\"\nblock = [\"1.0.3\"]\n")
        .build()
        .await;

    for _ in 0..2 {
        let (s, full) = app.json("/big").await;
        assert_eq!(s, StatusCode::OK);
        let listed = full["versions"].as_object().expect("versions");
        assert_eq!(listed.len(), 199, "the blocked version is hidden");
        assert!(full["policyRestrictions"]["versions"]["1.0.3"].is_object());
        assert_eq!(
            full["versions"]["1.0.7"]["dist"]["tarball"],
            "http://hub.test/npm/big/-/big-1.0.7.tgz"
        );
        assert_eq!(full["readme"].as_str().map(str::len), Some(1_200_000));
        let (s, _, b) = app.send(get_corgi("/big")).await;
        assert_eq!(s, StatusCode::OK);
        let corgi: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(corgi["versions"].as_object().map(|v| v.len()), Some(199));
        assert!(corgi.get("readme").is_none());
        assert_eq!(
            corgi["versions"]["1.0.199"]["dist"]["tarball"],
            "http://hub.test/npm/big/-/big-1.0.199.tgz"
        );
    }
    // A version manifest and a tarball, through the lean preparation.
    let (s, manifest) = app.json("/big/1.0.7").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        manifest["dist"]["tarball"],
        "http://hub.test/npm/big/-/big-1.0.7.tgz"
    );
    let (s, _, bytes) = app.get("/big/-/big-1.0.7.tgz").await;
    assert_eq!((s, bytes.as_ref()), (StatusCode::OK, TARBALL));
    let (s, _) = app.json("/big/1.0.3").await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the blocked version stays blocked"
    );
}
