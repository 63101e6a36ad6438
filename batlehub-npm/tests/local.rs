//! A local npm registry driven through `oneshot`: publish, read, tags, deprecate, unpublish,
//! error envelopes, and bad input that must leave storage unchanged.

mod common;

use base64::Engine as _;
use common::{NpmApp, TestApp, delete, escape, get, get_corgi, publish_body, put_json, tgz};
use http::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn publish_then_read_everything() {
    let app = TestApp::local().build().await;
    assert_eq!(
        app.publish("@acme/widget", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        app.publish("@acme/widget", "1.1.0", "alice").await.0,
        StatusCode::OK
    );

    let (s, full) = app.json("/@acme%2fwidget").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        full["versions"]["1.1.0"]["dist"]["tarball"],
        "http://hub.test/npm/@acme/widget/-/widget-1.1.0.tgz"
    );
    insta::assert_json_snapshot!("local_packument_full", full, {
        "._rev" => "[rev]",
    });

    let (s, _, body) = app.send(get_corgi("/@acme/widget")).await;
    assert_eq!(s, StatusCode::OK);
    let corgi: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        corgi["versions"]["1.0.0"].get("readme").is_none(),
        "abbreviated drops readme"
    );
    assert_eq!(corgi["versions"]["1.0.0"]["hasInstallScript"], true);
    insta::assert_json_snapshot!("local_packument_abbreviated", corgi);

    let (s, manifest) = app.json("/@acme%2fwidget/latest").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(manifest["version"], "1.1.0");
    insta::assert_json_snapshot!("local_version_manifest", manifest);

    let (s, headers, bytes) = app.get("/@acme/widget/-/widget-1.0.0.tgz").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(
        bytes.as_ref(),
        tgz(&json!({"name": "@acme/widget", "version": "1.0.0"})).as_slice()
    );

    let (s, h, b) = app
        .send(
            http::Request::head("/@acme/widget/-/widget-1.0.0.tgz")
                .body(batlehub_core::body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.is_empty());
    assert_eq!(
        h["content-length"].to_str().expect("len"),
        bytes.len().to_string()
    );
}

#[tokio::test]
async fn identical_tarballs_are_stored_once() {
    let app = TestApp::local().build().await;
    let tarball = tgz(&json!({"name": "same", "version": "1.0.0"}));
    let body = publish_body("same", "1.0.0", &tarball);
    assert_eq!(
        app.send(put_json("/same", &body, Some("alice"))).await.0,
        StatusCode::OK
    );
    let before = app.storage.blobs.list("sha256/").await.expect("list");
    // A second registry entry pointing at the same bytes reuses the blob.
    let (s, _, _) = app.send(put_json("/same", &body, Some("alice"))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        app.storage.blobs.list("sha256/").await.expect("list"),
        before
    );
    assert_eq!(before.len(), 1);
}

#[tokio::test]
async fn dist_tags_deprecate_unpublish() {
    let app = TestApp::local().build().await;
    app.publish("pkg", "1.0.0", "alice").await;
    app.publish("pkg", "2.0.0-beta.1", "alice").await;
    let put_tag = |tag: &str, v: &str| {
        put_json(
            &format!("/-/package/pkg/dist-tags/{tag}"),
            &json!(v),
            Some("alice"),
        )
    };
    assert_eq!(
        app.send(put_tag("beta", "2.0.0-beta.1")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(put_tag("nope", "9.9.9")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(put_tag("1.x", "1.0.0")).await.0,
        StatusCode::BAD_REQUEST,
        "semver-range tags refused"
    );
    let (_, tags) = app.json("/-/package/pkg/dist-tags").await;
    assert_eq!(
        tags,
        json!({"beta": "2.0.0-beta.1", "latest": "2.0.0-beta.1"})
    );
    assert_eq!(
        app.send(delete("/-/package/pkg/dist-tags/beta", "alice"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(delete("/-/package/pkg/dist-tags/latest", "alice"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // npm deprecate: PUT of the document with `deprecated` set.
    let (_, mut doc) = app.json("/pkg").await;
    doc["versions"]["1.0.0"]["deprecated"] = json!("use 2");
    assert_eq!(
        app.send(put_json("/pkg", &doc, Some("alice"))).await.0,
        StatusCode::OK
    );
    let (_, m) = app.json("/pkg/1.0.0").await;
    assert_eq!(m["deprecated"], "use 2");

    // npm unpublish pkg@1.0.0: PUT -rev without that version, then DELETE the tarball.
    let (_, mut doc) = app.json("/pkg").await;
    doc["versions"]
        .as_object_mut()
        .expect("versions")
        .remove("1.0.0");
    let rev = doc["_rev"].as_str().expect("rev").to_owned();
    assert_eq!(
        app.send(put_json(&format!("/pkg/-rev/{rev}"), &doc, Some("alice")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(delete(&format!("/pkg/-/pkg-1.0.0.tgz/-rev/{rev}"), "alice"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.get("/pkg/1.0.0").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/pkg/-/pkg-1.0.0.tgz").await.0,
        StatusCode::NOT_FOUND
    );
    // Whole package.
    assert_eq!(
        app.send(delete("/pkg/-rev/1-x", "alice")).await.0,
        StatusCode::OK
    );
    assert_eq!(app.get("/pkg").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn whoami_ping_search() {
    let app = TestApp::local().build().await;
    app.publish("search-me", "1.0.0", "alice").await;
    app.publish("other", "1.0.0", "alice").await;
    // A newer prerelease under `beta`: search still reports the `latest` version.
    app.clock.advance(chrono::Duration::minutes(5));
    let mut beta = publish_body(
        "search-me",
        "2.0.0-beta.1",
        &tgz(&json!({"name": "search-me", "version": "2.0.0-beta.1"})),
    );
    beta["dist-tags"] = json!({"beta": "2.0.0-beta.1"});
    assert_eq!(
        app.send(put_json("/search-me", &beta, Some("alice")))
            .await
            .0,
        StatusCode::OK
    );
    let (s, _, b) = app.send(get("/-/whoami", Some("alice"))).await;
    assert_eq!(
        (s, serde_json::from_slice::<Value>(&b).expect("json")),
        (StatusCode::OK, json!({"username": "alice"}))
    );
    let (s, h, _) = app.send(get("/-/whoami", None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Basic realm=\"batlehub\"");
    assert_eq!(app.get("/-/ping").await.0, StatusCode::OK);
    let (s, found) = app.json("/-/v1/search?text=search&size=5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(found["objects"].as_array().expect("objects").len(), 1);
    let p = &found["objects"][0]["package"];
    assert_eq!(p["name"], "search-me");
    assert_eq!(p["version"], "1.0.0");
    assert_eq!(p["maintainers"][0]["username"], "alice");
}

#[tokio::test]
async fn error_envelopes() {
    let app = TestApp::local().build().await;
    let (s, _, b) = app.get("/missing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    insta::assert_snapshot!("error_not_found", String::from_utf8_lossy(&b));
    let (s, h, b) = app.send(put_json("/x", &json!({}), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key("www-authenticate"));
    insta::assert_snapshot!("error_anonymous_publish", String::from_utf8_lossy(&b));
    let (s, _, b) = app.send(put_json("/x", &json!({}), Some("invalid"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    insta::assert_snapshot!("error_invalid_token", String::from_utf8_lossy(&b));
    app.publish("dup", "1.0.0", "alice").await;
    let (s, body) = app.publish("dup", "1.0.0", "alice").await;
    assert_eq!(s, StatusCode::CONFLICT);
    insta::assert_json_snapshot!("error_republish", body);
    let (s, _, b) = app.get("/%2e%2e").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    insta::assert_snapshot!("error_traversal", String::from_utf8_lossy(&b));
}

#[tokio::test]
async fn traversal_in_names_and_versions_is_refused() {
    let app = TestApp::local().build().await;
    app.publish("safe", "1.0.0", "alice").await;
    let before = app.state(&["safe"]).await;
    for path in [
        "/..",
        "/%2e%2e",
        "/%2E%2E/etc",
        "/safe/..",
        "/safe/%2e%2e",
        "/safe/-/..%2f..%2fx.tgz",
        "/a%5cb",
        "/a%00b",
        "/safe/1.0.0%00",
        "/@x%2f..",
        "/safe/-/safe-..%2f1.tgz",
    ] {
        let (s, _, b) = app.get(path).await;
        assert!(
            s == StatusCode::BAD_REQUEST || s == StatusCode::NOT_FOUND,
            "{path}: {s}"
        );
        let v: Value = serde_json::from_slice(&b).expect("npm envelope");
        assert!(v["error"].is_string(), "{path}: {v}");
        let (s, _, _) = app
            .send(put_json(path, &json!({"versions": {}}), Some("alice")))
            .await;
        assert!(s.is_client_error(), "PUT {path}: {s}");
    }
    // A version with traversal inside a publish body.
    let mut body = publish_body(
        "safe",
        "1.0.1",
        &tgz(&json!({"name": "safe", "version": "1.0.1"})),
    );
    let manifest = body["versions"]["1.0.1"].take();
    body["versions"] = json!({ "../../1.0.1": manifest });
    assert_eq!(
        app.send(put_json("/safe", &body, Some("alice"))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.state(&["safe"]).await, before, "storage unchanged");
}

#[tokio::test]
async fn bad_publishes_change_nothing() {
    let app = TestApp::local().build().await;
    app.publish("good", "1.0.0", "alice").await;
    let names = ["good", "liar", "trunc"];
    let before = app.state(&names).await;

    // package.json inside the tarball disagrees with the URL.
    let lie = publish_body(
        "liar",
        "1.0.0",
        &tgz(&json!({"name": "someone-else", "version": "1.0.0"})),
    );
    let (s, _, b) = app.send(put_json("/liar", &lie, Some("alice"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&b).contains("someone-else@1.0.0"),
        "{}",
        String::from_utf8_lossy(&b)
    );

    // Wrong version inside the tarball.
    let lie = publish_body(
        "liar",
        "1.0.0",
        &tgz(&json!({"name": "liar", "version": "6.6.6"})),
    );
    assert_eq!(
        app.send(put_json("/liar", &lie, Some("alice"))).await.0,
        StatusCode::BAD_REQUEST
    );

    // Truncated base64 attachment.
    let tarball = tgz(&json!({"name": "trunc", "version": "1.0.0"}));
    let mut body = publish_body("trunc", "1.0.0", &tarball);
    let data = body["_attachments"]["trunc-1.0.0.tgz"]["data"]
        .as_str()
        .expect("data")
        .to_owned();
    body["_attachments"]["trunc-1.0.0.tgz"]["data"] = json!(&data[..data.len() - 7]);
    let (s, _, b) = app.send(put_json("/trunc", &body, Some("alice"))).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&b)
    );
    // Truncated on a 4-char boundary: decodes, but length and integrity disagree.
    body["_attachments"]["trunc-1.0.0.tgz"]["data"] = json!(&data[..(data.len() / 2) & !3]);
    assert_eq!(
        app.send(put_json("/trunc", &body, Some("alice"))).await.0,
        StatusCode::BAD_REQUEST
    );
    body["_attachments"]["trunc-1.0.0.tgz"]
        .as_object_mut()
        .expect("obj")
        .remove("length");
    let (s, _, b) = app.send(put_json("/trunc", &body, Some("alice"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&b).contains("integrity"),
        "{}",
        String::from_utf8_lossy(&b)
    );

    // Not a tarball at all, with matching integrity.
    let garbage = b"this is not gzip".to_vec();
    let body = publish_body("trunc", "1.0.0", &garbage);
    let (s, _, b) = app.send(put_json("/trunc", &body, Some("alice"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&b).contains("tgz"),
        "{}",
        String::from_utf8_lossy(&b)
    );

    // Not JSON; wrong name in body; uppercase new package.
    let req = http::Request::put("/trunc")
        .body(batlehub_core::body::full("{not json"))
        .map(|mut r| {
            r.extensions_mut().insert(common::identity("alice"));
            r
        })
        .expect("req");
    assert_eq!(app.send(req).await.0, StatusCode::BAD_REQUEST);
    let upper = publish_body(
        "Upper",
        "1.0.0",
        &tgz(&json!({"name": "Upper", "version": "1.0.0"})),
    );
    assert_eq!(
        app.send(put_json("/Upper", &upper, Some("alice"))).await.0,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(app.state(&names).await, before, "index and blobs unchanged");
    assert!(
        app.storage
            .blobs
            .list("tmp/")
            .await
            .expect("list")
            .is_empty(),
        "no temp blobs left"
    );
}

#[tokio::test]
async fn upload_limit() {
    let app = TestApp::local().max_upload(1024).build().await;
    let big: Vec<u8> = (0..4096u32).flat_map(|i| i.to_le_bytes()).collect();
    let body = json!({"name": "big", "versions": {"1.0.0": {"name": "big", "version": "1.0.0"}},
        "_attachments": {"big-1.0.0.tgz": {"data": base64::engine::general_purpose::STANDARD.encode(&big)}}});
    let (s, _, _) = app.send(put_json("/big", &body, Some("alice"))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn mounted_under_prefix_behind_trusted_proxy() {
    let base = batlehub_core::BaseUrl::derived("/registries/npm")
        .trusted_proxies(vec!["10.0.0.0/8".parse().expect("net")]);
    let app = TestApp::local().base(base).build().await;
    app.publish("p", "1.0.0", "alice").await;
    let mut req = get("/p", None);
    req.headers_mut()
        .insert("host", "internal:8080".parse().expect("h"));
    req.headers_mut()
        .insert("x-forwarded-proto", "https".parse().expect("h"));
    req.headers_mut()
        .insert("x-forwarded-host", "hub.example.com".parse().expect("h"));
    req.extensions_mut().insert(batlehub_core::ClientAddr(
        "10.0.0.7:4000".parse().expect("addr"),
    ));
    let (_, _, b) = app.send(req).await;
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        v["versions"]["1.0.0"]["dist"]["tarball"],
        "https://hub.example.com/registries/npm/p/-/p-1.0.0.tgz"
    );

    // Same headers from an untrusted peer are ignored.
    let mut req = get("/p", None);
    req.headers_mut()
        .insert("host", "internal:8080".parse().expect("h"));
    req.headers_mut()
        .insert("x-forwarded-host", "evil.example.com".parse().expect("h"));
    req.extensions_mut().insert(batlehub_core::ClientAddr(
        "192.0.2.9:4000".parse().expect("addr"),
    ));
    let (_, _, b) = app.send(req).await;
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        v["versions"]["1.0.0"]["dist"]["tarball"],
        "http://internal:8080/registries/npm/p/-/p-1.0.0.tgz"
    );
}

#[tokio::test]
async fn proxy_mode_refuses_publish() {
    let app = TestApp::proxy("http://127.0.0.1:9/").build().await;
    let (s, body) = app.publish("x", "1.0.0", "alice").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    let _ = escape("x");
}

#[tokio::test]
async fn rbac_401_for_anonymous_403_for_known_users() {
    let cfg = batlehub_rules::RbacConfig {
        anonymous: Some(vec![]),
        user: Some(vec!["releases:read".into()]),
        ..Default::default()
    };
    let rbac = batlehub_rules::Rbac::from_config(&cfg, "rbac").expect("rbac");
    let app = TestApp::local().policy(rbac).build().await;
    let (s, body) = app.publish("p", "1.0.0", "alice").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    insta::assert_json_snapshot!("error_forbidden_publish", body);
    let (s, h, _) = app.get("/p").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "anonymous read refused with a challenge"
    );
    assert_eq!(h["www-authenticate"], "Basic realm=\"batlehub\"");
    assert_eq!(
        app.send(get("/p", Some("alice"))).await.0,
        StatusCode::NOT_FOUND,
        "users read"
    );
    assert_eq!(
        app.publish("p", "1.0.0", "admin").await.0,
        StatusCode::OK,
        "admins publish"
    );
    assert_eq!(
        app.send(get("/p/-/p-1.0.0.tgz", Some("alice"))).await.0,
        StatusCode::FORBIDDEN,
        "no source:read"
    );
}
