//! A local cargo registry driven through `oneshot`: publish, the sparse index, downloads,
//! yank, owners, search, auth-required, error envelopes, and bad input that must leave
//! storage unchanged.

mod common;

use common::{
    CargoApp, TestApp, crate_file, crate_named, delete, framed, get, index_path, metadata,
    parse_lines, publish_body, put, sha256_hex, with_body,
};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// A crate with every index-line feature: a renamed dependency, dev and target-specific
/// dependencies, `dep:` and `?/` features, `links` and `rust_version`.
fn rich_metadata() -> Value {
    let mut m = metadata("Top_Crate", "0.1.0");
    m["deps"] = json!([
        {
            "name": "bh-base", "version_req": "^1.0", "features": ["extra"],
            "optional": true, "default_features": false, "target": null,
            "kind": "normal", "registry": null, "explicit_name_in_toml": "base"
        },
        {
            "name": "helper", "version_req": "^0.2", "features": [], "optional": false,
            "default_features": true, "target": "cfg(unix)", "kind": "dev",
            "registry": "https://other.example/index", "explicit_name_in_toml": null
        }
    ]);
    m["features"] = json!({
        "default": ["std"],
        "std": [],
        "with-base": ["dep:base"],
        "weak": ["base?/extra"]
    });
    m["links"] = json!("foo");
    m["rust_version"] = json!("1.70");
    m
}

#[tokio::test]
async fn publish_then_read_everything() {
    let app = TestApp::local().build().await;
    let (s, body) = app.publish("bh-base", "1.0.0", "alice").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"warnings": {"invalid_categories": [], "invalid_badges": [], "other": []}})
    );
    app.clock.advance(chrono::Duration::hours(1));
    let top = crate_file("Top_Crate", "0.1.0");
    let (s, body) = app.publish_with(&rich_metadata(), &top, "alice").await;
    assert_eq!(s, StatusCode::OK, "{body}");

    let (s, config) = app.json("/registry/config.json").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_json_snapshot!("config_json", config);

    let (s, h, raw) = app.get("/registry/to/p_/top_crate").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let lines = parse_lines(&raw);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["cksum"], sha256_hex(&top));
    assert_eq!(lines[0]["pubtime"], "2026-01-02T04:04:05Z");
    assert!(
        !String::from_utf8_lossy(&raw).contains("description"),
        "only index fields are served"
    );
    insta::assert_json_snapshot!("index_lines_rich", lines, {
        "[].cksum" => "[cksum]",
        "[].pubtime" => "[pubtime]",
    });
    let (_, base_lines) = app.lines("bh-base").await;
    insta::assert_json_snapshot!("index_lines_plain", base_lines, {
        "[].cksum" => "[cksum]",
        "[].pubtime" => "[pubtime]",
    });

    // Every spelling finds the crate; the lines keep the published name.
    for path in ["/registry/to/p-/top-crate", "/registry/to/p_/top_crate"] {
        let (s, _, b) = app.get(path).await;
        assert_eq!((s, b.as_ref()), (StatusCode::OK, raw.as_ref()), "{path}");
    }

    // ETag and 304.
    let etag = h["etag"].clone();
    let mut req = get("/registry/to/p_/top_crate", None);
    req.headers_mut().insert("if-none-match", etag.clone());
    let (s, h2, b) = app.send(req).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(b.is_empty());
    assert_eq!(h2["etag"], etag);
    app.publish_with(
        &{
            let mut m = rich_metadata();
            m["vers"] = json!("0.2.0");
            m
        },
        &crate_file("Top_Crate", "0.2.0"),
        "alice",
    )
    .await;
    let mut req = get("/registry/to/p_/top_crate", None);
    req.headers_mut().insert("if-none-match", etag.clone());
    let (s, h3, b) = app.send(req).await;
    assert_eq!(s, StatusCode::OK, "a new version changes the ETag");
    assert_ne!(h3["etag"], etag);
    assert_eq!(parse_lines(&b).len(), 2);

    // Downloads, under any spelling.
    for path in [
        "/api/v1/crates/Top_Crate/0.1.0/download",
        "/api/v1/crates/top-crate/0.1.0/download",
    ] {
        let (s, h, b) = app.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(b.as_ref(), top.as_slice());
        assert_eq!(h["content-type"], "application/octet-stream");
        assert_eq!(h["content-length"], top.len().to_string().as_str());
    }
    let (s, h, b) = app
        .send(
            http::Request::head("/api/v1/crates/Top_Crate/0.1.0/download")
                .body(batlehub_core::body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.is_empty());
    assert_eq!(h["content-length"], top.len().to_string().as_str());
    assert_eq!(
        app.get("/api/v1/crates/Top_Crate/9.9.9/download").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn publish_bodies_may_arrive_in_any_chunks() {
    let app = TestApp::local().build().await;
    // Incompressible content, so the .crate spans many chunks.
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = common::archive(&[
        (
            "chunky-1.0.0/Cargo.toml".into(),
            b"[package]\nname = \"chunky\"\nversion = \"1.0.0\"\n".to_vec(),
        ),
        ("chunky-1.0.0/data.bin".into(), noise),
    ]);
    let body = publish_body(&metadata("chunky", "1.0.0"), &big);
    for (chunk, version) in [(3, "1.0.0"), (4096, "1.0.1")] {
        let crate_bytes = if version == "1.0.0" {
            big.clone()
        } else {
            crate_file("chunky", version)
        };
        let body = if version == "1.0.0" {
            body.clone()
        } else {
            publish_body(&metadata("chunky", version), &crate_bytes)
        };
        let (s, _, b) = app
            .send(common::put_chunked(
                "/api/v1/crates/new",
                body,
                chunk,
                "alice",
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&b));
        let (s, _, got) = app
            .get(&format!("/api/v1/crates/chunky/{version}/download"))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got.as_ref(), crate_bytes.as_slice());
    }
    // A truncated streamed body is refused too, leaving nothing behind.
    let before = app.state(&["chunky"]).await;
    let mut cut = publish_body(&metadata("chunky", "2.0.0"), &big);
    cut.truncate(cut.len() - 1000);
    let (s, _, b) = app
        .send(common::put_chunked(
            "/api/v1/crates/new",
            cut,
            1000,
            "alice",
        ))
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&b)
    );
    assert_eq!(app.state(&["chunky"]).await, before);
}

#[tokio::test]
async fn names_are_unique_ignoring_case_and_dashes() {
    let app = TestApp::local().build().await;
    assert_eq!(
        app.publish("foo-bar", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    for other in ["foo_bar", "Foo-Bar", "FOO_BAR"] {
        let before = app.state(&["foo-bar"]).await;
        let (s, err) = app.publish(other, "1.0.1", "alice").await;
        assert_eq!(s, StatusCode::CONFLICT, "{other}: {err}");
        assert!(
            err["errors"][0]["detail"]
                .as_str()
                .expect("detail")
                .contains("conflicts with the existing crate `foo-bar`"),
            "{err}"
        );
        assert_eq!(app.state(&["foo-bar"]).await, before, "{other}");
        if other == "foo_bar" {
            insta::assert_json_snapshot!("error_name_conflict", err);
        }
    }
    let (s, lines) = app.lines("foo_bar").await;
    assert_eq!(s, StatusCode::OK, "the other spelling finds it");
    assert_eq!(lines[0]["name"], "foo-bar");

    // Re-publishing a version, also with build metadata, is refused.
    let (s, err) = app.publish("foo-bar", "1.0.0", "alice").await;
    assert_eq!(s, StatusCode::CONFLICT);
    insta::assert_json_snapshot!("error_republish", err);
    assert_eq!(
        app.publish("foo-bar", "1.0.0+build.5", "alice").await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.publish("foo-bar", "1.0.1", "alice").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn yank_unyank_and_owners() {
    let app = TestApp::local().build().await;
    app.publish("owned", "1.0.0", "alice").await;
    app.publish("owned", "1.1.0", "alice").await;

    let (s, _, b) = app
        .send(delete("/api/v1/crates/owned/1.1.0/yank", "bob"))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_not_an_owner", err);
    let (s, h, _) = app
        .send(delete("/api/v1/crates/owned/1.1.0/yank", "anonymous"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key("www-authenticate"));

    let (s, _, b) = app
        .send(delete("/api/v1/crates/owned/1.1.0/yank", "alice"))
        .await;
    assert_eq!(
        (s, b.as_ref()),
        (StatusCode::OK, br#"{"ok":true}"#.as_ref())
    );
    let (_, lines) = app.lines("owned").await;
    assert_eq!(lines[1]["yanked"], true);
    assert_eq!(lines[0]["yanked"], false);
    assert_eq!(
        app.get("/api/v1/crates/owned/1.1.0/download").await.0,
        StatusCode::OK,
        "yanked versions stay downloadable for existing lockfiles"
    );
    assert_eq!(
        app.send(delete("/api/v1/crates/owned/9.0.0/yank", "alice"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send(delete("/api/v1/crates/nope/1.0.0/yank", "alice"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, _, _) = app
        .send(put(
            "/api/v1/crates/owned/1.1.0/unyank",
            Vec::new(),
            "alice",
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.lines("owned").await.1[1]["yanked"], false);

    // Owners.
    let (s, owners) = app.json("/api/v1/crates/owned/owners").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        owners,
        json!({"users": [{"id": 1, "login": "alice", "name": null}]})
    );
    let add = |who: &str, users: Value| {
        with_body(
            Method::PUT,
            "/api/v1/crates/owned/owners",
            &json!({ "users": users }),
            who,
        )
    };
    assert_eq!(
        app.send(add("bob", json!(["bob"]))).await.0,
        StatusCode::FORBIDDEN,
        "only owners add owners"
    );
    let (s, _, b) = app.send(add("alice", json!(["bob", "group:team-a"]))).await;
    assert_eq!(s, StatusCode::OK);
    let ok: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(ok["ok"], true);
    assert!(ok["msg"].as_str().expect("msg").contains("bob"), "{ok}");
    let (_, owners) = app.json("/api/v1/crates/OWNED/owners").await;
    let logins: Vec<&str> = owners["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["login"].as_str().expect("login"))
        .collect();
    assert_eq!(logins, ["alice", "bob", "group:team-a"]);
    assert_eq!(
        app.send(delete("/api/v1/crates/owned/1.0.0/yank", "bob"))
            .await
            .0,
        StatusCode::OK,
        "a new owner may yank"
    );
    let remove = |who: &str, users: Value| {
        with_body(
            Method::DELETE,
            "/api/v1/crates/owned/owners",
            &json!({ "users": users }),
            who,
        )
    };
    assert_eq!(
        app.send(remove("bob", json!(["alice", "group:team-a"])))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.send(remove("bob", json!(["carol"]))).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, _, b) = app.send(remove("bob", json!(["bob"]))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "the last owner stays");
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_last_owner", err);
    assert_eq!(
        app.send(add("alice", json!(["x"]))).await.0,
        StatusCode::FORBIDDEN,
        "removed owners lose their rights"
    );
    assert_eq!(
        app.send(add("bob", json!(["../x"]))).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/api/v1/crates/ghost/owners").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn search_finds_visible_crates() {
    let app = TestApp::local().build().await;
    app.publish("search_me", "1.0.0", "alice").await;
    app.publish("search_me", "1.2.0", "alice").await;
    app.publish("search-other", "0.1.0", "alice").await;
    app.publish("unrelated", "0.1.0", "alice").await;
    app.send(delete("/api/v1/crates/search_me/1.2.0/yank", "alice"))
        .await;
    let (s, found) = app.json("/api/v1/crates?q=search_&per_page=10").await;
    assert_eq!(s, StatusCode::OK);
    let mut crates = found["crates"].as_array().expect("crates").clone();
    crates.sort_by_key(|c| c["name"].as_str().map(str::to_owned));
    assert_eq!(
        json!(crates),
        json!([
            {"name": "search-other", "max_version": "0.1.0", "description": "the search-other test crate"},
            {"name": "search_me", "max_version": "1.0.0", "description": "the search_me test crate"}
        ]),
        "yanked versions are not the max_version"
    );
    assert_eq!(found["meta"]["total"], 2);
    let (_, found) = app.json("/api/v1/crates?q=search&per_page=1").await;
    assert_eq!(found["crates"].as_array().expect("crates").len(), 1);

    app.storage
        .index
        .set_visibility(
            "cargo",
            "search-other",
            batlehub_core::model::Visibility::Internal,
        )
        .await
        .expect("visibility");
    let (_, found) = app.json("/api/v1/crates?q=search").await;
    assert_eq!(found["meta"]["total"], 1, "hidden from anonymous: {found}");
    assert_eq!(
        app.lines("search-other").await.0,
        StatusCode::NOT_FOUND,
        "hidden crates are absent from the index too"
    );
    let (_, _, b) = app.get_as("/api/v1/crates?q=search", "bob").await;
    let found: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(found["meta"]["total"], 2, "visible to users: {found}");
}

#[tokio::test]
async fn auth_required_registry() {
    let app = TestApp::local()
        .rules("[rbac]\nanonymous = []\n")
        .build()
        .await;
    let (s, h, b) = app.get("/registry/config.json").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "cargo retries config.json with its token"
    );
    assert!(h.contains_key("www-authenticate"));
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_auth_required", err);
    let (s, _, b) = app.get_as("/registry/config.json", "bob").await;
    assert_eq!(s, StatusCode::OK);
    let config: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("config_json_auth_required", config);

    assert_eq!(
        app.publish("private", "1.0.0", "bob").await.0,
        StatusCode::OK
    );
    assert_eq!(app.lines("private").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/crates/private/1.0.0/download").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/crates?q=priv").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, _, _) = app.get_as(&index_path("private"), "bob").await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app
        .get_as("/api/v1/crates/private/1.0.0/download", "bob")
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app.get_as("/registry/config.json", "invalid").await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a wrong token is not anonymous"
    );

    // An ordinary registry says nothing about auth.
    let open = TestApp::local().build().await;
    let (_, config) = open.json("/registry/config.json").await;
    assert!(config.get("auth-required").is_none(), "{config}");
}

#[tokio::test]
async fn publish_needs_a_user() {
    let app = TestApp::local().build().await;
    let body = publish_body(&metadata("anon", "1.0.0"), &crate_file("anon", "1.0.0"));
    let (s, h, b) = app
        .send(put("/api/v1/crates/new", body.clone(), "anonymous"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Basic realm=\"batlehub\"");
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_anonymous_publish", err);
    let (s, _, _) = app.send(put("/api/v1/crates/new", body, "invalid")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, b) = app.get("/api/v2/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let err: Value = serde_json::from_slice(&b).expect("json");
    insta::assert_json_snapshot!("error_not_found", err);
    let (s, _, _) = app.send(delete("/registry/config.json", "alice")).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

/// Bad input: each is refused with a clear error and leaves storage as it was.
#[tokio::test]
async fn bad_publishes_store_nothing() {
    let app = TestApp::local().max_upload(64 * 1024).build().await;
    assert_eq!(
        app.publish("keep", "1.0.0", "alice").await.0,
        StatusCode::OK
    );
    let before = app.state(&["keep", "evil", "other"]).await;
    let good_meta = metadata("keep", "1.1.0");
    let good = crate_file("keep", "1.1.0");
    let mut wrong_cksum = good_meta.clone();
    wrong_cksum["cksum"] = json!("0".repeat(64));
    let meta_json = serde_json::to_vec(&good_meta).expect("json");
    let mut trailing = publish_body(&good_meta, &good);
    trailing.extend_from_slice(b"extra");
    let outside = common::archive(&[
        (
            "keep-1.1.0/Cargo.toml".into(),
            b"[package]\nname = \"keep\"\nversion = \"1.1.0\"\n".to_vec(),
        ),
        ("elsewhere/evil.rs".into(), b"".to_vec()),
    ]);
    let mut bad_dep = good_meta.clone();
    bad_dep["deps"] = json!([{ "name": "../up", "version_req": "^1" }]);

    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "manifest names another crate",
            publish_body(&good_meta, &crate_named("keep", "1.1.0", "other", "1.1.0")),
            StatusCode::BAD_REQUEST,
            "the .crate's Cargo.toml is `other@1.1.0`",
        ),
        (
            "manifest names another version",
            publish_body(&good_meta, &crate_named("keep", "1.1.0", "keep", "9.9.9")),
            StatusCode::BAD_REQUEST,
            "`keep@9.9.9`, but the publish metadata says `keep@1.1.0`",
        ),
        (
            "archive folder is another crate",
            publish_body(&good_meta, &crate_file("other", "1.1.0")),
            StatusCode::BAD_REQUEST,
            "not inside `keep-1.1.0/`",
        ),
        (
            "files outside the crate folder",
            publish_body(&good_meta, &outside),
            StatusCode::BAD_REQUEST,
            "`elsewhere/evil.rs`",
        ),
        (
            "wrong cksum",
            publish_body(&wrong_cksum, &good),
            StatusCode::BAD_REQUEST,
            "does not match the declared cksum",
        ),
        (
            "truncated .crate",
            framed(&meta_json, &good[..good.len() / 2], good.len() as u32),
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            "truncated metadata",
            framed(&meta_json, &[], 0)[..20].to_vec(),
            StatusCode::BAD_REQUEST,
            "truncated",
        ),
        (
            "bytes after the .crate",
            trailing,
            StatusCode::BAD_REQUEST,
            "more bytes than",
        ),
        (
            "not gzip",
            publish_body(&good_meta, b"definitely not a crate"),
            StatusCode::BAD_REQUEST,
            "not a valid crate archive",
        ),
        (
            "declared 4 GiB",
            framed(&meta_json, &good, u32::MAX),
            StatusCode::PAYLOAD_TOO_LARGE,
            "accepts at most 65536 bytes",
        ),
        (
            "huge metadata",
            framed(b"", &[], 0)[..4]
                .iter()
                .map(|_| 0xff)
                .collect::<Vec<u8>>(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "publish metadata is 4294967295 bytes",
        ),
        (
            "path characters in the name",
            publish_body(&metadata("../evil", "1.0.0"), &good),
            StatusCode::BAD_REQUEST,
            "invalid crate name `../evil`",
        ),
        (
            "slash in the name",
            publish_body(&metadata("a/b", "1.0.0"), &good),
            StatusCode::BAD_REQUEST,
            "invalid crate name",
        ),
        (
            "bad version",
            publish_body(&metadata("evil", "../1"), &good),
            StatusCode::BAD_REQUEST,
            "version",
        ),
        (
            "bad dependency name",
            publish_body(&bad_dep, &good),
            StatusCode::BAD_REQUEST,
            "invalid crate name `../up`",
        ),
        (
            "metadata is not JSON",
            framed(b"{nope", &good, good.len() as u32),
            StatusCode::BAD_REQUEST,
            "not valid",
        ),
        (
            "empty .crate",
            framed(&meta_json, &[], 0),
            StatusCode::BAD_REQUEST,
            "empty",
        ),
    ];
    for (what, body, status, needle) in cases {
        let (s, _, b) = app.send(put("/api/v1/crates/new", body, "alice")).await;
        let err: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        let detail = err["errors"][0]["detail"].as_str().unwrap_or_default();
        assert_eq!(s, status, "{what}: {err}");
        assert!(detail.contains(needle), "{what}: {detail}");
        assert_eq!(
            app.state(&["keep", "evil", "other"]).await,
            before,
            "{what}: storage changed"
        );
        if what == "manifest names another crate" {
            insta::assert_json_snapshot!("error_manifest_mismatch", err);
        }
        if what == "truncated .crate" {
            insta::assert_json_snapshot!("error_truncated", err);
        }
        if what == "declared 4 GiB" {
            insta::assert_json_snapshot!("error_too_large", err);
        }
    }

    // A 10 GB Content-Length is refused before a byte of the body is read.
    let mut req = put(
        "/api/v1/crates/new",
        publish_body(&good_meta, &good),
        "alice",
    );
    req.headers_mut().insert(
        "content-length",
        http::HeaderValue::from_static("10737418240"),
    );
    let (s, _, b) = app.send(req).await;
    assert_eq!(
        s,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&b)
    );

    // Path characters in URLs.
    for path in [
        "/api/v1/crates/..%2f..%2fetc/1.0.0/download",
        "/api/v1/crates/keep/..%2f1.0.0/download",
        "/registry/ke/ep/..",
        "/api/v1/crates/ke%5cep/owners",
    ] {
        let (s, _, b) = app.get(path).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}");
        let err: Value = serde_json::from_slice(&b).expect("cargo envelope");
        assert!(err["errors"][0]["detail"].is_string(), "{path}");
    }
    assert_eq!(app.state(&["keep", "evil", "other"]).await, before);
    // The registry still works.
    assert_eq!(
        app.publish("keep", "1.1.0", "alice").await.0,
        StatusCode::OK
    );
}
