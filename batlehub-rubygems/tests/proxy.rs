//! Proxy and hybrid RubyGems sources driven through `oneshot` with a wiremock upstream:
//! the upstream's compact index passed through byte for byte, `.gem` files verified and
//! cached, push times from the upstream's version API feeding the release-age gate, a
//! hybrid `/versions` that lists local gems after the upstream's, and stale copies when the
//! upstream is down.

mod common;

use common::{TestApp, gem, md5_hex, mount_gem, push_request, sha256_hex};
use http::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn upstream_url(server: &MockServer) -> String {
    format!("{}/", server.uri())
}

#[tokio::test]
async fn passes_the_compact_index_through_and_verifies_gems() {
    let upstream = MockServer::start().await;
    let (theirs, their_versions) = mount_gem(&upstream, "", "rack", &["2.0.0", "3.0.0"]).await;
    let app = TestApp::proxy(&upstream_url(&upstream)).build().await;

    let info = app.fetch("/info/rack").await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.text(), theirs, "byte for byte");
    assert_eq!(
        info.header("etag"),
        format!("\"{}\"", md5_hex(theirs.as_bytes()))
    );
    assert_eq!(app.fetch("/versions").await.text(), their_versions);
    assert_eq!(app.fetch("/names").await.text(), "---\nrack\n");

    let first = app.fetch("/gems/rack-3.0.0.gem").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(sha256_hex(&first.body), sha256_hex(&gem("rack", "3.0.0")));
    let fetched = |reqs: &[wiremock::Request]| {
        reqs.iter()
            .filter(|r| r.url.path() == "/gems/rack-3.0.0.gem")
            .count()
    };
    let again = app.fetch("/gems/rack-3.0.0.gem").await;
    assert_eq!(again.body, first.body);
    let reqs = upstream.received_requests().await.unwrap_or_default();
    assert_eq!(fetched(&reqs), 1, "the second download came from the cache");

    let json = app.fetch("/api/v1/versions/rack.json").await.json();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(
        app.fetch("/info/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(push_request(gem("rack", "9.0.0"), Some("alice")))
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn young_upstream_versions_are_marked_and_refused() {
    let upstream = MockServer::start().await;
    mount_gem(&upstream, "", "young", &["1.0.0", "1.1.0"]).await;
    // 1.1.0 was pushed a minute before the test clock's now.
    let now = batlehub_test::start_time();
    let recent =
        (now - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Mock::given(method("GET"))
        .and(path("/api/v1/versions/young.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"number": "1.1.0", "platform": "ruby", "created_at": recent},
            {"number": "1.0.0", "platform": "ruby", "created_at": "2020-01-02T03:04:05.000Z"},
        ])))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::proxy(&upstream_url(&upstream))
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    let info = app.fetch("/info/young").await.text();
    let line = info
        .lines()
        .find(|l| l.starts_with("1.1.0 "))
        .expect("1.1.0");
    assert!(
        line.starts_with(
            "1.1.0 batlehub.refused-by.release_age_gate.until-2026-01-03T03.03Z:< 0|checksum:"
        ),
        "{info}"
    );
    assert!(info.contains("\n1.0.0 |checksum:"), "{info}");
    let got = app.fetch("/gems/young-1.1.0.gem").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(got.text().contains("younger than the release-age gate"));
    let reqs = upstream.received_requests().await.unwrap_or_default();
    assert!(
        reqs.iter().all(|r| r.url.path() != "/gems/young-1.1.0.gem"),
        "a refused gem is never fetched"
    );
    assert_eq!(
        app.fetch("/gems/young-1.0.0.gem").await.status,
        StatusCode::OK
    );
    let json = app.fetch("/api/v1/versions/young.json").await.json();
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
}

#[tokio::test]
async fn hybrid_lists_local_gems_after_the_upstreams() {
    let upstream = MockServer::start().await;
    mount_gem(&upstream, "", "rack", &["3.0.0"]).await;
    let app = TestApp::hybrid(&upstream_url(&upstream)).build().await;
    let got = app
        .call(push_request(gem("private-gem", "1.0.0"), Some("alice")))
        .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let versions = app.fetch("/versions").await.text();
    let info = app.fetch("/info/private-gem").await;
    assert!(
        versions.starts_with("created_at: 2026-01-01T00:00:00Z\n---\nrack 3.0.0 "),
        "{versions}"
    );
    assert!(
        versions.ends_with(&format!("private-gem 1.0.0 {}\n", md5_hex(&info.body))),
        "{versions}"
    );
    assert_eq!(app.fetch("/names").await.text(), "---\nprivate-gem\nrack\n");
    assert_eq!(
        app.fetch("/gems/rack-3.0.0.gem").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.fetch("/gems/private-gem-1.0.0.gem").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn stale_copies_when_the_upstream_is_down() {
    let upstream = MockServer::start().await;
    mount_gem(&upstream, "", "rack", &["3.0.0"]).await;
    let app = TestApp::proxy(&upstream_url(&upstream))
        .ttl(0)
        .build()
        .await;
    let info = app.fetch("/info/rack").await;
    let gem_bytes = app.fetch("/gems/rack-3.0.0.gem").await.body;
    upstream.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&upstream)
        .await;
    let stale = app.fetch("/info/rack").await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, info.body);
    assert_eq!(stale.header("x-batlehub-cache"), "stale");
    let cached = app.fetch("/gems/rack-3.0.0.gem").await;
    assert_eq!((cached.status, cached.body), (StatusCode::OK, gem_bytes));
}
