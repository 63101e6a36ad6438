//! Proxy and hybrid registries against a wiremock upstream: checksum-verified artifacts,
//! metadata filtered by policy (publish time from the POM's `Last-Modified`), the hybrid
//! guard.

mod common;

use common::{MavenApp, TestApp, get, pom, redact, sha1_hex};
use http::StatusCode;
use sha2::Digest as _;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OLD: &str = "Wed, 01 Jan 2025 00:00:00 GMT";
/// One hour before the harness clock's start.
const RECENT: &str = "Fri, 02 Jan 2026 02:04:05 GMT";

async fn mount(
    server: &MockServer,
    p: &str,
    body: impl Into<Vec<u8>>,
    last_modified: Option<&str>,
) {
    let mut resp = ResponseTemplate::new(200).set_body_bytes(body.into());
    if let Some(lm) = last_modified {
        resp = resp.insert_header("last-modified", lm);
    }
    Mock::given(method("GET"))
        .and(path(format!("/repo/{p}")))
        .respond_with(resp)
        .mount(server)
        .await;
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

async fn upstream() -> MockServer {
    let server = MockServer::start().await;
    mount(
        &server,
        "org/example/lib/maven-metadata.xml",
        "<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><versioning><latest>2.0</latest><release>2.0</release><versions><version>1.0</version><version>2.0</version></versions><lastUpdated>20251231000000</lastUpdated></versioning></metadata>",
        None,
    )
    .await;
    for (v, lm) in [("1.0", OLD), ("2.0", RECENT)] {
        let dir = format!("org/example/lib/{v}");
        let pom = pom("org.example", "lib", v);
        mount(
            &server,
            &format!("{dir}/lib-{v}.pom"),
            pom.clone(),
            Some(lm),
        )
        .await;
        mount(
            &server,
            &format!("{dir}/lib-{v}.pom.sha1"),
            sha1_hex(pom.as_bytes()),
            None,
        )
        .await;
        let jar = format!("jar {v}");
        mount(
            &server,
            &format!("{dir}/lib-{v}.jar"),
            jar.clone(),
            Some(lm),
        )
        .await;
        mount(
            &server,
            &format!("{dir}/lib-{v}.jar.sha256"),
            sha256_hex(jar.as_bytes()),
            None,
        )
        .await;
    }
    server
}

#[tokio::test]
async fn proxy_serves_verified_artifacts() {
    let server = upstream().await;
    // A jar whose published checksum is wrong.
    let dir = "org/example/lib/1.0";
    mount(
        &server,
        &format!("{dir}/lib-1.0-tests.jar"),
        "tampered",
        None,
    )
    .await;
    mount(
        &server,
        &format!("{dir}/lib-1.0-tests.jar.sha1"),
        sha1_hex(b"original"),
        None,
    )
    .await;
    let app = TestApp::proxy(&format!("{}/repo/", server.uri()))
        .build()
        .await;

    let (s, h, b) = app.get("/maven2/org/example/lib/1.0/lib-1.0.jar").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&b[..], b"jar 1.0");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let (s, sum) = app
        .text("/maven2/org/example/lib/1.0/lib-1.0.jar.sha1")
        .await;
    assert_eq!((s, sum), (StatusCode::OK, sha1_hex(b"jar 1.0")));
    let (s, b) = app.text("/maven2/org/example/lib/1.0/lib-1.0.pom").await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.contains("<artifactId>lib</artifactId>"));

    // The transfer fails (the last chunk is held back until the digest is checked), and
    // nothing is cached: the next request fails the same way.
    for _ in 0..2 {
        let (s, body) = app
            .send_raw(get("/maven2/org/example/lib/1.0/lib-1.0-tests.jar", None))
            .await;
        assert!(
            s == StatusCode::BAD_GATEWAY || body.is_err(),
            "{s}: {body:?}"
        );
    }
    let (s, _, _) = app.get("/maven2/org/example/lib/9.9/lib-9.9.jar").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, b) = app
        .put("/maven2/org/example/lib/3.0/lib-3.0.jar", "x", "bob")
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{b}");
}

/// Overwrites the stored blob of `bytes` with other bytes, as a failing disk would.
async fn corrupt(app: &TestApp, bytes: &[u8]) {
    let path = batlehub_core::store::blob_path(&sha256_hex(bytes));
    assert!(
        app.storage.blobs.stat(&path).await.expect("stat").is_some(),
        "stored"
    );
    let mut w = app.storage.blobs.writer(&path).await.expect("writer");
    w.write(bytes::Bytes::from_static(b"bit rot"))
        .await
        .expect("write");
    w.close().await.expect("close");
}

/// Checksums are never computed from bytes that changed after they were verified: a
/// proxied file's checksum is the upstream's own, and one computed here (no upstream
/// checksum for that algorithm, or a deployed file) is checked against the digest the bytes
/// were stored under, so a corrupted cache entry is detected instead of vouched for.
#[tokio::test]
async fn checksums_expose_corrupted_blobs() {
    let server = upstream().await;
    let app = TestApp::proxy(&format!("{}/repo/", server.uri()))
        .build()
        .await;
    let jar = "/maven2/org/example/lib/1.0/lib-1.0.jar";
    assert_eq!(app.get(jar).await.0, StatusCode::OK);
    corrupt(&app, b"jar 1.0").await;
    let (s, sum) = app.text(&format!("{jar}.sha256")).await;
    assert_eq!(
        (s, sum),
        (StatusCode::OK, sha256_hex(b"jar 1.0")),
        "the upstream's checksum, not one of the bytes held here"
    );
    let (s, b) = app.text(&format!("{jar}.sha1")).await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
    assert!(b.contains("integrity"), "{b}");

    // Deployed here, corrupted before anything read it back into memory.
    let app = TestApp::local().build().await;
    let (s, b) = app
        .put(
            "/maven2/org/example/lib/3.0/lib-3.0.jar",
            "jar of lib 3.0",
            "bob",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = app
        .put(
            "/maven2/org/example/lib/3.0/lib-3.0.pom",
            pom("org.example", "lib", "3.0"),
            "bob",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    corrupt(&app, b"jar of lib 3.0").await;
    let (s, b) = app
        .text("/maven2/org/example/lib/3.0/lib-3.0.jar.sha1")
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{b}");
}

#[tokio::test]
async fn age_gate_filters_metadata_and_refuses_downloads() {
    let server = upstream().await;
    {
        // Metadata first: the POMs' Last-Modified is looked up for the gate.
        let app = TestApp::proxy(&format!("{}/repo/", server.uri()))
            .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
            .build()
            .await;
        let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            xml.contains("<latest>1.0</latest>") && !xml.contains("2.0"),
            "{xml}"
        );
    }
    let app = TestApp::proxy(&format!("{}/repo/", server.uri()))
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    // 2.0's POM was published an hour ago: refused, with the reason.
    let (s, h, b) = app.get("/maven2/org/example/lib/2.0/lib-2.0.jar").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(h.contains_key("retry-after"));
    insta::assert_snapshot!("age_gate_refused", String::from_utf8_lossy(&b));
    // Metadata hides it and recomputes latest/release.
    let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("proxy_metadata_gated", redact(&xml));
    let (s, _, _) = app.get("/maven2/org/example/lib/1.0/lib-1.0.jar").await;
    assert_eq!(s, StatusCode::OK);
}

/// Hybrid: an artifact deployed here lists and serves only its own versions; the
/// upstream's never merge into it (dependency-confusion guard). Artifacts not deployed here
/// still come from the upstream.
/// Claims `prefix` for local use with a namespace owned by group `team`.
async fn claim(app: &TestApp, prefix: &str) {
    app.storage
        .index
        .add_namespace(&batlehub_core::model::Namespace {
            registry: app.registry.name().into(),
            prefix: prefix.into(),
            group: "team".into(),
        })
        .await
        .expect("namespace");
}

#[tokio::test]
async fn hybrid_local_artifact_never_merges_upstream_versions() {
    let server = upstream().await;
    let app = TestApp::hybrid(&format!("{}/repo/", server.uri()))
        .build()
        .await;
    let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        xml.contains("<version>1.0</version>"),
        "upstream artifact: {xml}"
    );
    // The upstream has the artifact: deploying it here takes an admin's claim.
    claim(&app, "org.example:lib").await;
    app.deploy_release("org.example", "lib", "3.0", "bob@team")
        .await;
    let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert_eq!(s, StatusCode::OK);
    assert!(xml.contains("<latest>3.0</latest>"), "{xml}");
    for v in ["1.0", "2.0"] {
        assert!(!xml.contains(&format!("<version>{v}</version>")), "{xml}");
    }
    let (s, _, b) = app.get("/maven2/org/example/lib/3.0/lib-3.0.jar").await;
    assert_eq!((s, &b[..]), (StatusCode::OK, &b"jar of lib 3.0"[..]));
    let (s, _, _) = app.get("/maven2/org/example/lib/1.0/lib-1.0.jar").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn proxy_passes_snapshot_metadata_through() {
    let server = upstream().await;
    let meta = "<metadata modelVersion=\"1.1.0\"><groupId>org.example</groupId><artifactId>lib</artifactId><version>3.0-SNAPSHOT</version><versioning><snapshot><timestamp>20260101.000000</timestamp><buildNumber>4</buildNumber></snapshot></versioning></metadata>";
    mount(
        &server,
        "org/example/lib/3.0-SNAPSHOT/maven-metadata.xml",
        meta,
        None,
    )
    .await;
    mount(
        &server,
        "org/example/other/3.0-SNAPSHOT/maven-metadata.xml",
        "<!DOCTYPE x [<!ENTITY a \"b\">]><metadata/>",
        None,
    )
    .await;
    let app = TestApp::proxy(&format!("{}/repo/", server.uri()))
        .build()
        .await;
    let (s, xml) = app
        .text("/maven2/org/example/lib/3.0-SNAPSHOT/maven-metadata.xml")
        .await;
    assert_eq!((s, xml.as_str()), (StatusCode::OK, meta));
    let (s, _) = app
        .text("/maven2/org/example/other/3.0-SNAPSHOT/maven-metadata.xml")
        .await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
}

/// The generated metadata is kept in memory between requests; a block added afterwards and
/// a version deployed locally (hybrid) still show on the very next request.
#[tokio::test]
async fn cached_metadata_follows_blocks_and_deploys() {
    let server = upstream().await;
    let app = TestApp::hybrid(&format!("{}/repo/", server.uri()))
        .build()
        .await;
    let path = "/maven2/org/example/lib/maven-metadata.xml";
    for _ in 0..2 {
        let (s, xml) = app.text(path).await;
        assert_eq!(s, StatusCode::OK);
        assert!(xml.contains("<latest>2.0</latest>"), "{xml}");
    }
    app.storage
        .index
        .add_block(&batlehub_core::model::Block {
            id: "b1".into(),
            registry: app.registry.name().into(),
            package: "org.example:lib".into(),
            versions: Some("2.0".into()),
            reason: "CVE-2026-0003".into(),
            created_by: "admin".into(),
            created_at: common::start_time(),
        })
        .await
        .expect("block");
    let (_, xml) = app.text(path).await;
    assert!(
        xml.contains("<latest>1.0</latest>") && !xml.contains("<version>2.0</version>"),
        "{xml}"
    );
    app.storage.index.remove_block("b1").await.expect("unblock");
    let (_, xml) = app.text(path).await;
    assert!(xml.contains("<version>2.0</version>"), "{xml}");
    // Claimed and deployed here, the artifact lists its own versions only, at once.
    claim(&app, "org.example:lib").await;
    app.deploy_release("org.example", "lib", "3.0", "bob@team")
        .await;
    let (_, xml) = app.text(path).await;
    assert!(
        xml.contains("<latest>3.0</latest>") && !xml.contains("<version>2.0</version>"),
        "{xml}"
    );
}
