//! Proxy and hybrid cargo registries against a wiremock sparse index: pass-through lines,
//! `dl` templates, `cksum` verification, caching, revalidation, stale serving,
//! fall-through, origins, and upstream search.

mod common;

use common::{CargoApp, TestApp, crate_file, get, index_path, line, mount_index, parse_lines};
use http::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// An upstream sparse index holding `name` with `versions`, crates served under
/// `{uri}/files/{crate}-{version}.crate`.
async fn upstream(name: &str, versions: &[(&str, Option<&str>)]) -> MockServer {
    let server = MockServer::start().await;
    mount_index(&server, name, versions).await;
    server
}

fn requests_to(reqs: &[Request], p: &str) -> usize {
    reqs.iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn index_passes_through_and_crates_are_verified_then_cached() {
    let up = upstream(
        "up-crate",
        &[("1.0.0", Some("2025-01-01T00:00:00Z")), ("1.1.0", None)],
    )
    .await;
    let app = TestApp::proxy(&format!("sparse+{}/index/", up.uri()))
        .build()
        .await;

    let (s, config) = app.json("/registry/config.json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        config["dl"], "http://hub.test/cargo/api/v1/crates",
        "downloads come here"
    );

    let (s, _, raw) = app.get(&index_path("up-crate")).await;
    assert_eq!(s, StatusCode::OK);
    let expected = format!(
        "{}\n{}\n",
        line(
            "up-crate",
            "1.0.0",
            &crate_file("up-crate", "1.0.0"),
            Some("2025-01-01T00:00:00Z")
        ),
        line("up-crate", "1.1.0", &crate_file("up-crate", "1.1.0"), None)
    );
    assert_eq!(
        String::from_utf8_lossy(&raw),
        expected,
        "lines pass through untouched"
    );
    insta::assert_json_snapshot!("proxy_index_lines", parse_lines(&raw), {
        "[].cksum" => "[cksum]",
    });

    for _ in 0..2 {
        let (s, h, b) = app.get("/api/v1/crates/up-crate/1.0.0/download").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b.as_ref(), crate_file("up-crate", "1.0.0").as_slice());
        assert_eq!(h["content-type"], "application/octet-stream");
    }
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(
        requests_to(&reqs, "/files/up-crate-1.0.0.crate"),
        1,
        "second download cached"
    );
    assert_eq!(
        requests_to(&reqs, "/index/up/-c/up-crate"),
        1,
        "index fresh within the TTL"
    );
    assert_eq!(
        app.get("/api/v1/crates/up-crate/7.0.0/download").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&index_path("missing")).await.0,
        StatusCode::NOT_FOUND
    );

    // A proxy refuses publishing and yanking.
    let body = common::publish_body(&common::metadata("x", "1.0.0"), &crate_file("x", "1.0.0"));
    let (s, _, b) = app
        .send(common::put("/api/v1/crates/new", body, "alice"))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_proxy_publish", err);
    assert_eq!(
        app.send(common::delete(
            "/api/v1/crates/up-crate/1.0.0/yank",
            "alice"
        ))
        .await
        .0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn cksum_mismatch_is_not_cached_and_fails_the_transfer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config.json"))
        // No markers: cargo appends /{crate}/{version}/download.
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "dl": format!("{}/api/v1/crates", server.uri()) })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/ly/in/lying"))
        .respond_with(ResponseTemplate::new(200).set_body_string(line(
            "lying",
            "1.0.0",
            b"the published bytes",
            None,
        )))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/crates/lying/1.0.0/download"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"other bytes entirely".to_vec()))
        .mount(&server)
        .await;
    let app = TestApp::proxy(&server.uri()).build().await;
    let before = app.storage.blobs.list("sha256/").await.expect("list");
    for _ in 0..2 {
        let (status, body) = app
            .send_raw(get("/api/v1/crates/lying/1.0.0/download", None))
            .await;
        assert!(
            status == StatusCode::BAD_GATEWAY || body.is_err(),
            "{status} {body:?}"
        );
        if let Ok(b) = &body {
            assert_ne!(b.as_ref(), b"other bytes entirely");
        }
    }
    let after: Vec<String> = app.storage.blobs.list("sha256/").await.expect("list");
    let index_docs = after.len() - before.len();
    assert!(
        index_docs <= 2,
        "only the cached index documents were stored: {after:?}"
    );
    assert!(
        app.registry
            .cached_artifact("crate/lying/1.0.0")
            .await
            .expect("lookup")
            .is_none()
    );
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(requests_to(&reqs, "/api/v1/crates/lying/1.0.0/download"), 2);
}

#[tokio::test]
async fn index_files_revalidate_and_go_stale_when_the_upstream_fails() {
    let server = MockServer::start().await;
    let text = format!("{}\n", line("reval", "1.0.0", b"x", None));
    Mock::given(method("GET"))
        .and(path("/re/va/reval"))
        .and(header("if-none-match", "\"r1\""))
        .respond_with(ResponseTemplate::new(304))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/re/va/reval"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(text.clone())
                .insert_header("etag", "\"r1\""),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/re/va/reval"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(3)
        .mount(&server)
        .await;
    let app = TestApp::proxy(&server.uri()).ttl(0).build().await;
    for expect_stale in [false, false, true] {
        let (s, h, b) = app.get("/registry/re/va/reval").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(String::from_utf8_lossy(&b), text);
        assert_eq!(h.get("x-batlehub-cache").is_some(), expect_stale, "{h:?}");
    }
    let reqs = server.received_requests().await.expect("recorded");
    assert_eq!(
        reqs[1].headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(b"\"r1\"".as_ref()),
        "the cached copy is revalidated"
    );
}

#[tokio::test]
async fn download_origins_are_checked() {
    let files = MockServer::start().await;
    let bytes = crate_file("far", "1.0.0");
    Mock::given(method("GET"))
        .and(path("/far-1.0.0.crate"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
        .mount(&files)
        .await;
    let index = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "dl": format!("{}/{{crate}}-{{version}}.crate", files.uri()) }),
            ),
        )
        .mount(&index)
        .await;
    Mock::given(method("GET"))
        .and(path("/3/f/far"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(line("far", "1.0.0", &bytes, None)),
        )
        .mount(&index)
        .await;

    let app = TestApp::proxy(&index.uri()).build().await;
    let (s, _, b) = app.get("/api/v1/crates/far/1.0.0/download").await;
    assert_eq!(
        s,
        StatusCode::BAD_GATEWAY,
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert!(String::from_utf8_lossy(&b).contains("allowed_origins"));

    let app = TestApp::proxy(&index.uri())
        .allowed_origins(&[files.uri()])
        .build()
        .await;
    let (s, _, b) = app.get("/api/v1/crates/far/1.0.0/download").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, bytes.as_slice()));
}

#[tokio::test]
async fn hybrid_local_names_never_fall_through() {
    let up = upstream("shared", &[("9.0.0", None)]).await;
    // The upstream has the name: only a claimed name may be published locally.
    let app = TestApp::hybrid(&format!("{}/index/", up.uri()))
        .claims(&["shared"])
        .build()
        .await;
    assert_eq!(
        app.publish("Shared", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    let (s, lines) = app.lines("shared").await;
    assert_eq!(s, StatusCode::OK);
    let versions: Vec<&str> = lines
        .iter()
        .map(|l| l["vers"].as_str().expect("vers"))
        .collect();
    assert_eq!(versions, ["1.0.0"], "local crate shadows the upstream one");
    assert_eq!(
        app.get("/api/v1/crates/shared/9.0.0/download").await.0,
        StatusCode::NOT_FOUND
    );
    let reqs = up.received_requests().await.expect("recorded");
    assert_eq!(
        requests_to(&reqs, "/index/sh/ar/shared"),
        0,
        "upstream never asked"
    );

    // Other names come from the upstream, and may not be yanked or owned here.
    let other = upstream("elsewhere", &[("2.0.0", None)]).await;
    let app = TestApp::hybrid(&format!("{}/index/", other.uri()))
        .build()
        .await;
    let (s, lines) = app.lines("elsewhere").await;
    assert_eq!((s, lines.len()), (StatusCode::OK, 1));
    assert_eq!(
        app.get("/api/v1/crates/elsewhere/2.0.0/download").await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(common::delete(
            "/api/v1/crates/elsewhere/2.0.0/yank",
            "alice"
        ))
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn search_includes_the_upstream_api() {
    let up = upstream("findable", &[("1.0.0", None)]).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/crates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "crates": [
                { "name": "findable", "max_version": "1.0.0", "description": "from upstream" },
                { "name": "local-one", "max_version": "5.0.0", "description": "shadowed" }
            ],
            "meta": { "total": 2 }
        })))
        .mount(&up)
        .await;
    let app = TestApp::hybrid(&format!("{}/index/", up.uri()))
        .build()
        .await;
    app.publish("local_one", "0.1.0", "alice").await;
    let (s, found) = app.json("/api/v1/crates?q=e").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        found["crates"],
        json!([
            { "name": "local_one", "max_version": "0.1.0", "description": "the local_one test crate" },
            { "name": "findable", "max_version": "1.0.0", "description": "from upstream" }
        ])
    );
}

#[tokio::test]
async fn later_upstreams_use_their_own_config() {
    // The first upstream lacks the crate; the second has it, with its own `dl`.
    let first = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "dl": format!("{}/wrong", first.uri()) })),
        )
        .mount(&first)
        .await;
    let second = MockServer::start().await;
    let bytes = crate_file("second", "1.0.0");
    Mock::given(method("GET"))
        .and(path("/config.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "dl": format!("{}/right/{{crate}}/{{version}}", second.uri()) }),
        ))
        .mount(&second)
        .await;
    Mock::given(method("GET"))
        .and(path("/se/co/second"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(line("second", "1.0.0", &bytes, None)),
        )
        .mount(&second)
        .await;
    Mock::given(method("GET"))
        .and(path("/right/second/1.0.0"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
        .mount(&second)
        .await;
    let app = TestApp::proxy(&first.uri())
        .upstreams(&[first.uri(), second.uri()])
        .build()
        .await;
    assert_eq!(app.lines("second").await.0, StatusCode::OK);
    let (s, _, b) = app.get("/api/v1/crates/second/1.0.0/download").await;
    assert_eq!((s, b.as_ref()), (StatusCode::OK, bytes.as_slice()));
}
