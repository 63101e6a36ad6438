//! A Go registry proxying an upstream GOPROXY (wiremock): what is served and cached, what a
//! lying upstream gets, and the hybrid guard.

mod common;

use batlehub_go::ChecksumDb;
use batlehub_test::sumdb::FakeSumdb;
use common::{GoApp, TestApp, go_mod, go_mod_h1, h1, lookup, module_zip, mount_module, zip_of};
use http::StatusCode;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn upstream_url(server: &MockServer) -> String {
    format!("{}/goproxy/", server.uri())
}

#[tokio::test]
async fn serves_and_caches_the_upstream() {
    let upstream = MockServer::start().await;
    mount_module(
        &upstream,
        "example.com/Org/Mod",
        &["v1.0.0", "v1.1.0", "v1.2.0-rc.1"],
    )
    .await;
    let app = TestApp::proxy(&upstream_url(&upstream)).build().await;
    let (s, list) = app.text("/example.com/!org/!mod/@v/list").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("proxy_list", list);
    let (s, info) = app.text("/example.com/!org/!mod/@v/v1.1.0.info").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("proxy_info", info);
    let (s, latest) = app.text("/example.com/!org/!mod/@latest").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("proxy_latest", latest);
    let zip = app.fetch("/example.com/!org/!mod/@v/v1.0.0.zip").await;
    assert_eq!(zip.status, StatusCode::OK, "{}", zip.text());
    assert_eq!(zip.body, module_zip("example.com/Org/Mod", "v1.0.0"));
    // Cached: the upstream is asked once for the zip.
    let again = app.fetch("/example.com/!org/!mod/@v/v1.0.0.zip").await;
    assert_eq!(again.body, zip.body);
    let asked = upstream
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path().ends_with("v1.0.0.zip"))
        .count();
    assert_eq!(asked, 1);
}

#[tokio::test]
async fn a_zip_that_disagrees_with_its_mod_is_refused_and_not_cached() {
    let upstream = MockServer::start().await;
    let m = "example.com/m";
    mount_module(&upstream, m, &["v1.0.0"]).await;
    let lying = zip_of(&[
        (
            format!("{m}@v1.0.0/go.mod"),
            format!("{}require example.com/evil v1.0.0\n", go_mod(m)).into_bytes(),
        ),
        (format!("{m}@v1.0.0/lib.go"), b"package lib\n".to_vec()),
    ]);
    Mock::given(method("GET"))
        .and(path("/goproxy/example.com/m/@v/v1.0.0.zip"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(lying))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::proxy(&upstream_url(&upstream)).build().await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    insta::assert_snapshot!("proxy_error_lying_zip", got.text());
    assert!(!app.zip_cached("example.com/m@v1.0.0").await);

    // A zip whose paths escape its prefix is refused the same way.
    upstream.reset().await;
    mount_module(&upstream, m, &["v1.0.0"]).await;
    Mock::given(method("GET"))
        .and(path("/goproxy/example.com/m/@v/v1.0.0.zip"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(zip_of(&[(
            format!("{m}@v1.0.0/../../x.go"),
            b"package x\n".to_vec(),
        )])))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(got.text().contains("invalid file path"), "{}", got.text());
}

#[tokio::test]
async fn an_upstream_mod_of_another_module_is_refused() {
    let upstream = MockServer::start().await;
    mount_module(&upstream, "example.com/m", &["v1.0.0"]).await;
    Mock::given(method("GET"))
        .and(path("/goproxy/example.com/m/@v/v1.0.0.mod"))
        .respond_with(ResponseTemplate::new(200).set_body_string(go_mod("example.com/other")))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::proxy(&upstream_url(&upstream)).build().await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.mod").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(got.text().contains("example.com/other"), "{}", got.text());
}

#[tokio::test]
async fn hybrid_serves_a_local_module_from_here_only() {
    let upstream = MockServer::start().await;
    let m = "example.com/private";
    mount_module(&upstream, m, &["v1.0.0", "v9.9.9"]).await;
    mount_module(&upstream, "example.com/public", &["v1.0.0"]).await;
    let app = TestApp::hybrid(&upstream_url(&upstream))
        .claims(&["example.com/private"])
        .build()
        .await;
    app.upload(m, "v1.0.0", "alice").await;
    let (_, list) = app.text("/example.com/private/@v/list").await;
    assert_eq!(list, "v1.0.0\n", "the upstream's v9.9.9 is not listed");
    let got = app.fetch("/example.com/private/@v/v9.9.9.zip").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    // Other modules come from the upstream.
    let (s, list) = app.text("/example.com/public/@v/list").await;
    assert_eq!((s, list.as_str()), (StatusCode::OK, "v1.0.0\n"));
}

#[tokio::test]
async fn the_age_gate_learns_upstream_times_from_info() {
    let upstream = MockServer::start().await;
    let m = "example.com/m";
    mount_module(&upstream, m, &["v1.0.0"]).await;
    // v1.1.0 published at the harness's "now".
    for (file, body) in [
        (
            "v1.1.0.info",
            br#"{"Version":"v1.1.0","Time":"2026-01-02T03:04:05Z"}"#.to_vec(),
        ),
        ("v1.1.0.mod", go_mod(m).into_bytes()),
        ("v1.1.0.zip", module_zip(m, "v1.1.0")),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/goproxy/example.com/m/@v/{file}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .mount(&upstream)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/goproxy/example.com/m/@v/list"))
        .respond_with(ResponseTemplate::new(200).set_body_string("v1.0.0\nv1.1.0\n"))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = TestApp::proxy(&upstream_url(&upstream))
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    let (_, list) = app.text("/example.com/m/@v/list").await;
    assert_eq!(list, "v1.0.0\n");
    let (_, latest) = app.text("/example.com/m/@latest").await;
    assert!(latest.contains("\"v1.0.0\""), "{latest}");
    let got = app.fetch("/example.com/m/@v/v1.1.0.zip").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(got.text().contains("release-age gate"), "{}", got.text());
    app.clock.advance(chrono::Duration::days(2));
    let got = app.fetch("/example.com/m/@v/v1.1.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}

/// A proxy of `upstream`'s GOPROXY with its checksum database at `/db/` (skipping `skip`).
async fn with_sumdb(upstream: &MockServer, skip: &[&str]) -> (TestApp, String) {
    let db = ChecksumDb::new(&format!("{}/db/", upstream.uri()), skip.iter().copied())
        .expect("database");
    let name = format!("{}/db", upstream.uri().trim_start_matches("http://"));
    let app = TestApp::proxy(&upstream_url(upstream))
        .map_service(move |s| s.checksum_db(db))
        .build()
        .await;
    (app, name)
}

async fn mount_lookup(server: &MockServer, module: &str, version: &str, body: String) {
    Mock::given(method("GET"))
        .and(path(format!("/db/lookup/{module}@{version}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn zips_and_go_mods_are_checked_against_the_checksum_database() {
    let upstream = MockServer::start().await;
    let m = "example.com/m";
    mount_module(&upstream, m, &["v1.0.0", "v1.1.0", "v1.2.0"]).await;
    let good = |v: &str| {
        lookup(
            m,
            v,
            &h1(&module_zip(m, v)),
            &go_mod_h1(go_mod(m).as_bytes()),
        )
    };
    mount_lookup(&upstream, m, "v1.0.0", good("v1.0.0")).await;
    // v1.1.0: the database knows another zip; v1.2.0: another go.mod.
    mount_lookup(
        &upstream,
        m,
        "v1.1.0",
        lookup(
            m,
            "v1.1.0",
            "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            &go_mod_h1(go_mod(m).as_bytes()),
        ),
    )
    .await;
    mount_lookup(
        &upstream,
        m,
        "v1.2.0",
        lookup(
            m,
            "v1.2.0",
            &h1(&module_zip(m, "v1.2.0")),
            "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ),
    )
    .await;
    let (app, name) = with_sumdb(&upstream, &[]).await;

    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let got = app.fetch("/example.com/m/@v/v1.1.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    insta::assert_snapshot!("proxy_error_sumdb_zip", got.text());
    assert!(!app.zip_cached("example.com/m@v1.1.0").await);
    let got = app.fetch("/example.com/m/@v/v1.2.0.mod").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(
        got.text().contains("does not match the checksum database"),
        "{}",
        got.text()
    );

    // The database passes through (so GOSUMDB can go through this registry), unfiltered.
    let (s, text) = app.text(&format!("/sumdb/{name}/supported")).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let (s, text) = app
        .text(&format!("/sumdb/{name}/lookup/example.com/m@v1.1.0"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(text.contains("h1:AAAA"), "{text}");
    let (s, _) = app.text("/sumdb/sum.example.org/supported").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// A proxy of `upstream`'s GOPROXY checking lookups with `key`, the database `db` served
/// at `/db/` of the same server.
async fn with_verified_sumdb(upstream: &MockServer, db: FakeSumdb, key: &str) -> TestApp {
    mount_sumdb(upstream, db).await;
    let db = ChecksumDb::new(&format!("{}/db/", upstream.uri()), Vec::<String>::new())
        .expect("database")
        .verified_by(key)
        .expect("key");
    TestApp::proxy(&upstream_url(upstream))
        .map_service(move |s| s.checksum_db(db))
        .build()
        .await
}

/// Serves `db` at `/db/` of `upstream`.
async fn mount_sumdb(upstream: &MockServer, db: FakeSumdb) {
    Mock::given(method("GET"))
        .and(path_regex("^/db/"))
        .respond_with(db)
        .mount(upstream)
        .await;
}

#[tokio::test]
async fn a_database_that_forks_is_refused() {
    let m = "example.com/m";
    let versions = ["v1.0.0", "v1.1.0", "v1.2.0"];
    let zips: Vec<String> = versions.iter().map(|v| h1(&module_zip(m, v))).collect();
    let mod_h1 = go_mod_h1(go_mod(m).as_bytes());
    let entry = |i: usize| (m, versions[i], zips[i].as_str(), mod_h1.as_str());
    let honest = FakeSumdb::new("sum.example.org", 7, 300, &[entry(0)]);
    let grown = honest.extended(&[entry(1)]);
    // Signed with the same key, but another history: it never held `grown` as a prefix.
    let fork = FakeSumdb::new("sum.example.org", 7, 310, &[entry(0), entry(1), entry(2)]);
    let key = honest.key();

    let upstream = MockServer::start().await;
    mount_module(&upstream, m, &versions).await;
    let app = with_verified_sumdb(&upstream, honest, &key).await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());

    // The database grows: its new tree holds the old one.
    upstream.reset().await;
    mount_module(&upstream, m, &versions).await;
    mount_sumdb(&upstream, grown).await;
    let got = app.fetch("/example.com/m/@v/v1.1.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());

    // It forks: every signature is good, but the trees disagree.
    upstream.reset().await;
    mount_module(&upstream, m, &versions).await;
    mount_sumdb(&upstream, fork).await;
    let got = app.fetch("/example.com/m/@v/v1.2.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    insta::assert_snapshot!("proxy_error_sumdb_fork", got.text());
}

#[tokio::test]
async fn lookups_are_verified_against_the_signed_tree_with_the_key() {
    let m = "example.com/m";
    let zip = |v: &str| h1(&module_zip(m, v));
    let mod_h1 = go_mod_h1(go_mod(m).as_bytes());
    let (z1, z2) = (zip("v1.0.0"), zip("v1.1.0"));
    let entries = [
        (m, "v1.0.0", z1.as_str(), mod_h1.as_str()),
        // The database vouches for another zip of v1.1.0 than the upstream serves.
        (m, "v1.1.0", z1.as_str(), mod_h1.as_str()),
    ];
    let db = FakeSumdb::new("sum.example.org", 7, 300, &entries);
    let key = db.key();

    let upstream = MockServer::start().await;
    mount_module(&upstream, m, &["v1.0.0", "v1.1.0"]).await;
    let app = with_verified_sumdb(&upstream, db, &key).await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(got.body.len(), module_zip(m, "v1.0.0").len());
    let got = app.fetch("/example.com/m/@v/v1.1.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(
        got.text()
            .contains(&format!("the checksum database says {z1}")),
        "{}",
        got.text()
    );
    assert_ne!(z1, z2);
    // The database passes through under its key's name too (what the go command asks).
    let (s, _) = app.text("/sumdb/sum.example.org/supported").await;
    assert_eq!(s, StatusCode::OK);
    let (s, text) = app
        .text("/sumdb/sum.example.org/lookup/example.com/m@v1.0.0")
        .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(text.contains("go.sum database tree"), "{text}");

    // The same records signed by another key: nothing is served, nothing cached.
    let upstream = MockServer::start().await;
    mount_module(&upstream, m, &["v1.0.0"]).await;
    let forged = FakeSumdb::new("sum.example.org", 8, 300, &entries);
    let app = with_verified_sumdb(&upstream, forged, &key).await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(
        got.text().contains("failed verification")
            && got.text().contains("not signed by sum.example.org"),
        "{}",
        got.text()
    );
    assert!(!app.zip_cached("example.com/m@v1.0.0").await);
}

#[tokio::test]
async fn a_record_outside_the_signed_tree_is_refused() {
    let m = "example.com/m";
    let zip = h1(&module_zip(m, "v1.0.0"));
    let mod_h1 = go_mod_h1(go_mod(m).as_bytes());
    let db = FakeSumdb::new("sum.example.org", 7, 40, &[]);
    let key = db.key();
    // A correctly signed tree, but a record (with the right hashes) that is not in it.
    let lie = db.lookup_of(
        41,
        Some(&format!("{m} v1.0.0 {zip}\n{m} v1.0.0/go.mod {mod_h1}\n")),
    );
    let upstream = MockServer::start().await;
    mount_module(&upstream, m, &["v1.0.0"]).await;
    Mock::given(method("GET"))
        .and(path(format!("/db/lookup/{m}@v1.0.0")))
        .respond_with(ResponseTemplate::new(200).set_body_string(lie))
        .with_priority(1)
        .mount(&upstream)
        .await;
    let app = with_verified_sumdb(&upstream, db, &key).await;
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    insta::assert_snapshot!("proxy_error_sumdb_unproved", got.text());
}

#[tokio::test]
async fn a_module_the_database_does_not_know_is_refused_unless_skipped() {
    let upstream = MockServer::start().await;
    let m = "example.com/private/lib";
    mount_module(&upstream, m, &["v1.0.0"]).await;
    Mock::given(method("GET"))
        .and(path(format!("/db/lookup/{m}@v1.0.0")))
        .respond_with(ResponseTemplate::new(404).set_body_string("not found"))
        .mount(&upstream)
        .await;
    let (app, _) = with_sumdb(&upstream, &[]).await;
    let got = app.fetch("/example.com/private/lib/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert!(
        got.text().contains("not in the checksum database"),
        "{}",
        got.text()
    );
    let (app, _) = with_sumdb(&upstream, &["example.com/private"]).await;
    let got = app.fetch("/example.com/private/lib/@v/v1.0.0.zip").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}
