//! Access and supply-chain rules through the PyPI service: what disappears from project
//! pages and the JSON API, and what a refused download tells pip.

mod common;

use batlehub_core::model::{Block, Visibility};
use batlehub_pypi::DeniedVersions;
use common::{PypiApp, PypiBuilder, TestApp, sha256, wheel};
use http::StatusCode;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DAY: i64 = 86_400;
const GATE: &str = "[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n";

fn block(id: &str, package: &str, versions: Option<&str>, reason: &str) -> Block {
    Block {
        id: id.into(),
        registry: "pypi".into(),
        package: package.into(),
        versions: versions.map(str::to_owned),
        reason: reason.into(),
        created_by: "admin".into(),
        created_at: common::start_time(),
    }
}

#[tokio::test]
async fn age_gate_hides_young_versions_everywhere_and_refuses_their_files() {
    let app = TestApp::local().rules(GATE).build().await;
    app.publish_wheel("gated", "1.0", "alice").await;
    app.clock.advance(chrono::Duration::seconds(2 * DAY));
    app.publish_wheel("gated", "1.1", "alice").await;
    app.clock.advance(chrono::Duration::minutes(1));

    let doc = app.get_json("/simple/gated/").await.json();
    assert_eq!(doc["versions"], json!(["1.0"]));
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(1));
    let html = app.fetch("/simple/gated/").await.text();
    assert!(!html.contains("gated-1.1"), "{html}");
    let api = app.fetch("/pypi/gated/json").await.json();
    assert_eq!(api["info"]["version"], "1.0");
    assert!(api["releases"].get("1.1").is_none());

    let got = app
        .fetch("/packages/gated/gated-1.1-py3-none-any.whl")
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.header("x-batlehub-rule"), "release_age_gate");
    let retry: i64 = got.header("retry-after").parse().expect("secs");
    assert!((DAY - 120..=DAY).contains(&retry), "retry-after {retry}");
    let reason = got.reason.clone().expect("reason phrase");
    assert!(reason.contains("release-age gate"), "{reason}");
    insta::assert_snapshot!("age_gate_download_refused", got.text());
    let got = app
        .fetch("/packages/gated/gated-1.1-py3-none-any.whl.metadata")
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    let got = app.fetch("/pypi/gated/1.1/json").await;
    assert_eq!(
        got.status,
        StatusCode::FORBIDDEN,
        "a hidden release explains itself"
    );

    // Admins bypass by default; a day later everyone sees it.
    let got = app
        .get_as("/packages/gated/gated-1.1-py3-none-any.whl", None, "admin")
        .await;
    assert_eq!(got.status, StatusCode::OK);
    app.clock.advance(chrono::Duration::seconds(DAY));
    let doc = app.get_json("/simple/gated/").await.json();
    assert_eq!(doc["versions"], json!(["1.0", "1.1"]));
}

#[tokio::test]
async fn denied_versions_can_be_shown_as_yanked() {
    let app = TestApp::local()
        .rules(GATE)
        .denied(DeniedVersions::Yanked)
        .build()
        .await;
    app.publish_wheel("shown", "1.0", "alice").await;
    app.clock.advance(chrono::Duration::seconds(2 * DAY));
    app.publish_wheel("shown", "1.1", "alice").await;
    let doc = app.get_json("/simple/shown/").await.json();
    assert_eq!(doc["versions"], json!(["1.0", "1.1"]));
    assert_eq!(doc["files"][0]["yanked"], false);
    let reason = doc["files"][1]["yanked"].as_str().expect("yank reason");
    assert!(reason.contains("release-age gate"), "{reason}");
    assert!(
        app.fetch("/simple/shown/")
            .await
            .text()
            .contains("data-yanked=\"shown@1.1 was published")
    );
    assert_eq!(
        app.fetch("/packages/shown/shown-1.1-py3-none-any.whl")
            .await
            .status,
        StatusCode::FORBIDDEN,
        "still refused on download"
    );
    let api = app.fetch("/pypi/shown/json").await.json();
    assert_eq!(api["info"]["version"], "1.0");
}

#[tokio::test]
async fn proxied_upload_time_feeds_the_age_gate() {
    let up = MockServer::start().await;
    let old = wheel("fresh", "1.0", &[]);
    let young = wheel("fresh", "1.1", &[]);
    let now = common::start_time();
    let page = json!({
        "meta": { "api-version": "1.1" },
        "name": "fresh",
        "files": [
            { "filename": old.filename, "url": format!("{}/f/{}", up.uri(), old.filename),
              "hashes": { "sha256": sha256(&old.bytes) }, "size": old.bytes.len(),
              "upload-time": (now - chrono::Duration::days(30)).to_rfc3339() },
            { "filename": young.filename, "url": format!("{}/f/{}", up.uri(), young.filename),
              "hashes": { "sha256": sha256(&young.bytes) }, "size": young.bytes.len(),
              "upload-time": (now - chrono::Duration::hours(1)).to_rfc3339() },
        ],
        "versions": ["1.0", "1.1"],
    });
    Mock::given(method("GET"))
        .and(path("/simple/fresh/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .mount(&up)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(young.bytes.clone()))
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .rules(GATE)
        .build()
        .await;
    let doc = app.get_json("/simple/fresh/").await.json();
    assert_eq!(doc["versions"], json!(["1.0"]));
    assert!(
        !app.fetch("/simple/fresh/")
            .await
            .text()
            .contains("fresh-1.1")
    );
    let got = app
        .fetch(&format!("/packages/fresh/{}", young.filename))
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(
        got.reason
            .as_deref()
            .unwrap_or_default()
            .contains("fresh@1.1"),
        "{:?}",
        got.reason
    );
    assert_eq!(
        up.received_requests()
            .await
            .expect("recorded")
            .iter()
            .filter(|r| r.url.path().starts_with("/f/"))
            .count(),
        0,
        "a refused file is never fetched"
    );
}

#[tokio::test]
async fn blocks_and_visibility() {
    let app = TestApp::local().build().await;
    app.publish_wheel("blk", "1.0", "alice").await;
    app.publish_wheel("blk", "1.2", "alice").await;
    app.publish_wheel("secret", "1.0", "alice").await;
    let index = app.storage.index.clone();
    index
        .add_block(&block("b1", "blk", Some("1.2"), "CVE-2026-0001"))
        .await
        .expect("block");
    let doc = app.get_json("/simple/blk/").await.json();
    assert_eq!(doc["versions"], json!(["1.0"]));
    let got = app.fetch("/packages/blk/blk-1.2-py3-none-any.whl").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(
        got.text().contains("blocked: CVE-2026-0001"),
        "{}",
        got.text()
    );

    index
        .add_block(&block("b2", "blk", None, "malware"))
        .await
        .expect("block");
    let got = app.fetch("/simple/blk/").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(got.text().contains("malware"), "{}", got.text());

    index
        .set_visibility("pypi", "secret", Visibility::Internal)
        .await
        .expect("visibility");
    assert_eq!(
        app.fetch("/simple/secret/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/simple/secret/", None, "bob").await.status,
        StatusCode::OK
    );
    let list = app.get_json("/simple/").await.json();
    assert_eq!(list["projects"], json!([]), "{list}");
    let list = app
        .get_as("/simple/", Some(common::JSON), "bob")
        .await
        .json();
    assert_eq!(list["projects"], json!([{ "name": "secret" }]), "{list}");
}
