//! Proxy and hybrid PyPI registries against a wiremock upstream: JSON and HTML upstream
//! pages, URL rewriting, sha256 verification, `.metadata` passthrough, caching, stale
//! serving, origins, and the dependency-confusion guard.

mod common;

use common::{
    JSON, PIP_ACCEPT, PypiApp, TestApp, get, json_page, serve_files, serve_page, sha256, wheel,
};
use http::StatusCode;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn requests_to(reqs: &[Request], p: &str) -> usize {
    reqs.iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn json_upstream_rewritten_verified_and_cached() {
    let up = MockServer::start().await;
    let w1 = wheel("up-lib", "1.0", &[]);
    let w2 = wheel("up-lib", "1.1", &["idna"]);
    serve_page(
        &up,
        "up-lib",
        json_page(
            "up-lib",
            &up.uri(),
            &[
                (&w1, "2025-01-01T00:00:00.000000Z"),
                (&w2, "2025-02-01T00:00:00.000000Z"),
            ],
        ),
    )
    .await;
    serve_files(&up, &[&w1, &w2]).await;
    let app = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .build()
        .await;

    let page = app
        .call(get("/simple/up-lib/", Some(PIP_ACCEPT), None))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let doc = page.json();
    assert_eq!(
        doc["files"][0]["url"],
        "http://hub.test/pypi/packages/up-lib/up_lib-1.0-py3-none-any.whl"
    );
    assert_eq!(doc["versions"], json!(["1.0", "1.1"]));
    insta::assert_json_snapshot!("proxy_project_page_json", doc);
    let html = app.fetch("/simple/up-lib/").await.text();
    insta::assert_snapshot!("proxy_project_page_html", html);
    let reqs = up.received_requests().await.expect("recorded");
    let accept = reqs[0]
        .headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        accept.starts_with("application/vnd.pypi.simple.v1+json"),
        "JSON preferred: {accept}"
    );

    let meta = app
        .fetch("/packages/up-lib/up_lib-1.1-py3-none-any.whl.metadata")
        .await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.body.as_ref(), w2.metadata.as_slice());
    for _ in 0..2 {
        let got = app
            .fetch("/packages/up-lib/up_lib-1.1-py3-none-any.whl")
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body.as_ref(), w2.bytes.as_slice());
    }
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(
        requests_to(&reqs, "/files/up_lib-1.1-py3-none-any.whl"),
        1,
        "second download from cache"
    );
    assert_eq!(
        requests_to(&reqs, "/simple/up-lib/"),
        1,
        "page fresh within TTL"
    );

    let api = app.fetch("/pypi/up-lib/json").await;
    assert_eq!(api.status, StatusCode::OK);
    let api = api.json();
    assert_eq!(api["info"]["version"], "1.1");
    assert_eq!(api["info"]["requires_python"], ">=3.8");
    insta::assert_json_snapshot!("proxy_json_api", api);

    // Publishing to a proxy is refused.
    let got = app.publish_wheel("up-lib", "2.0", "alice").await;
    assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn html_upstream_with_relative_urls() {
    let up = MockServer::start().await;
    let w = wheel("plain", "2.0", &[]);
    let sd = common::sdist("plain", "2.0");
    let html = format!(
        "<!DOCTYPE html><html><body>\n\
         <a href=\"../../files/{w}#sha256={wh}\" data-requires-python=\"&gt;=3.8\" data-dist-info-metadata=\"sha256={mh}\">{w}</a><br/>\n\
         <a href=\"/files/{s}#sha256={sh}\" data-yanked=\"\">{s}</a>\n\
         <a href=\"/files/README\">README</a></body></html>",
        w = w.filename,
        wh = sha256(&w.bytes),
        mh = sha256(&w.metadata),
        s = sd.filename,
        sh = sha256(&sd.bytes),
    );
    Mock::given(method("GET"))
        .and(path("/simple/plain/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(html, "text/html"))
        .mount(&up)
        .await;
    serve_files(&up, &[&w, &sd]).await;
    let app = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .build()
        .await;
    let doc = app.get_json("/simple/plain/").await.json();
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(doc["files"][1]["yanked"], true);
    assert_eq!(
        doc["files"][0]["core-metadata"]["sha256"],
        sha256(&w.metadata)
    );
    let got = app.fetch(&format!("/packages/plain/{}", w.filename)).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, w.bytes.as_slice())
    );
    let got = app.fetch(&format!("/packages/plain/{}", sd.filename)).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, sd.bytes.as_slice())
    );
    let got = app
        .fetch(&format!("/packages/plain/{}.metadata", w.filename))
        .await;
    assert_eq!(got.body.as_ref(), w.metadata.as_slice());
}

#[tokio::test]
async fn integrity_mismatch_is_not_cached_and_fails_the_transfer() {
    let up = MockServer::start().await;
    let w = wheel("lying", "1.0", &[]);
    serve_page(
        &up,
        "lying",
        json_page("lying", &up.uri(), &[(&w, "2025-01-01T00:00:00Z")]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path(format!("/files/{}", w.filename)))
        .respond_with(
            ResponseTemplate::new(200).set_body_bytes(b"not the published bytes".to_vec()),
        )
        .mount(&up)
        .await;
    let app = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .build()
        .await;
    app.fetch("/simple/lying/").await;
    let before = app.storage.blobs.list("").await.expect("list");
    let (status, body) = app
        .send_raw(get(&format!("/packages/lying/{}", w.filename), None, None))
        .await;
    assert!(
        status == StatusCode::BAD_GATEWAY || body.is_err(),
        "{status} {body:?}"
    );
    assert_eq!(app.storage.blobs.list("").await.expect("list"), before);
    assert!(
        app.registry
            .cached_artifact(&format!("file/lying/{}", w.filename))
            .await
            .expect("lookup")
            .is_none()
    );
}

#[tokio::test]
async fn foreign_origins_need_allowed_origins() {
    let up = MockServer::start().await;
    let cdn = MockServer::start().await;
    let w = wheel("split", "1.0", &[]);
    serve_page(
        &up,
        "split",
        json_page("split", &cdn.uri(), &[(&w, "2025-01-01T00:00:00Z")]),
    )
    .await;
    serve_files(&cdn, &[&w]).await;
    let file = format!("/packages/split/{}", w.filename);
    let strict = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .build()
        .await;
    let got = strict.fetch(&file).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(got.text().contains("allowed_origins"), "{}", got.text());
    assert!(cdn.received_requests().await.expect("recorded").is_empty());
    let open = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .allowed_origins(&[cdn.uri()])
        .build()
        .await;
    let got = open.fetch(&file).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, w.bytes.as_slice())
    );
}

#[tokio::test]
async fn stale_page_and_cached_files_survive_an_upstream_outage() {
    let up = MockServer::start().await;
    let w = wheel("sturdy", "1.0", &[]);
    serve_page(
        &up,
        "sturdy",
        json_page("sturdy", &up.uri(), &[(&w, "2025-01-01T00:00:00Z")]),
    )
    .await;
    serve_files(&up, &[&w]).await;
    let app = TestApp::proxy(&format!("{}/simple/", up.uri()))
        .ttl(60)
        .build()
        .await;
    let file = format!("/packages/sturdy/{}", w.filename);
    assert_eq!(app.fetch(&file).await.status, StatusCode::OK);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&up)
        .await;
    app.clock.advance(chrono::Duration::seconds(120));
    let page = app.get_json("/simple/sturdy/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("x-batlehub-cache"), "stale");
    let got = app.fetch(&file).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (StatusCode::OK, w.bytes.as_slice())
    );
    // Nothing cached for this one: 502, not a false 404.
    assert_eq!(
        app.fetch("/simple/never-seen/").await.status,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn hybrid_never_falls_through_for_local_names() {
    let up = MockServer::start().await;
    let impostor = wheel("mine", "9.0", &[]);
    serve_page(
        &up,
        "mine",
        json_page("mine", &up.uri(), &[(&impostor, "2025-01-01T00:00:00Z")]),
    )
    .await;
    let theirs = wheel("theirs", "1.0", &[]);
    serve_page(
        &up,
        "theirs",
        json_page("theirs", &up.uri(), &[(&theirs, "2025-01-01T00:00:00Z")]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/simple/"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"meta":{"api-version":"1.0"},"projects":[{"name":"Theirs"},{"name":"mine"}]}"#,
            JSON,
        ))
        .mount(&up)
        .await;
    // The upstream has `mine`: only a claimed name is published locally.
    let app = TestApp::hybrid(&format!("{}/simple/", up.uri()))
        .claims(&["mine"])
        .build()
        .await;
    assert_eq!(
        app.publish_wheel("mine", "1.0", "alice").await.status,
        StatusCode::OK
    );
    let doc = app.get_json("/simple/mine/").await.json();
    assert_eq!(doc["versions"], json!(["1.0"]), "upstream never mixed in");
    assert_eq!(
        app.fetch(&format!("/packages/mine/{}", impostor.filename))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(up.received_requests().await.expect("recorded").is_empty());
    assert_eq!(
        app.get_json("/simple/theirs/").await.json()["versions"],
        json!(["1.0"])
    );
    let list = app.get_json("/simple/").await.json();
    assert_eq!(
        list["projects"],
        json!([{ "name": "mine" }, { "name": "Theirs" }])
    );
    assert_eq!(
        app.get_json("/simple/nowhere/").await.status,
        StatusCode::NOT_FOUND
    );
}
