//! A local Maven registry: deploy as mvn does, generated metadata, checksums, immutability,
//! the Basic challenge, and bad input refused with nothing stored.

mod common;

use common::{MavenApp, TestApp, pom, redact, sha1_hex};
use http::StatusCode;

const DIR: &str = "/maven2/org/example/lib/1.0";

#[tokio::test]
async fn release_deploy_and_read() {
    let app = TestApp::local().build().await;
    // The jar arrives first; it stays invisible until the POM is stored.
    let (s, b) = app
        .put(&format!("{DIR}/lib-1.0.jar"), b"jar".to_vec(), "bob")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(
        app.get(&format!("{DIR}/lib-1.0.jar")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/maven2/org/example/lib/maven-metadata.xml")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (s, b) = app
        .put(
            &format!("{DIR}/lib-1.0.pom"),
            pom("org.example", "lib", "1.0"),
            "bob",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");

    let (s, h, body) = app.get(&format!("{DIR}/lib-1.0.jar")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&body[..], b"jar");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("last-modified"));
    let (s, sha1) = app.text(&format!("{DIR}/lib-1.0.jar.sha1")).await;
    assert_eq!(
        (s, sha1.as_str()),
        (StatusCode::OK, sha1_hex(b"jar").as_str())
    );
    let (_, md5) = app.text(&format!("{DIR}/lib-1.0.jar.md5")).await;
    assert_eq!(md5.len(), 32);
    let (_, sha512) = app.text(&format!("{DIR}/lib-1.0.jar.sha512")).await;
    assert_eq!(sha512.len(), 128);
    let (s, _, b) = app.send(http_head(&format!("{DIR}/lib-1.0.jar"))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.is_empty());

    app.clock.advance(chrono::Duration::seconds(60));
    app.deploy_release("org.example", "lib", "1.10", "bob")
        .await;
    app.deploy_release("org.example", "lib", "2.0-rc1", "bob")
        .await;
    let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("release_metadata", redact(&xml));
    let (_, sum) = app
        .text("/maven2/org/example/lib/maven-metadata.xml.sha1")
        .await;
    assert_eq!(sum, sha1_hex(xml.as_bytes()));
}

fn http_head(path: &str) -> http::Request<batlehub_core::body::Body> {
    http::Request::head(path)
        .body(batlehub_core::body::empty())
        .expect("request")
}

#[tokio::test]
async fn release_is_immutable() {
    let app = TestApp::local().build().await;
    app.deploy_release("org.example", "lib", "1.0", "bob").await;
    let (s, b) = app
        .put(&format!("{DIR}/lib-1.0.jar"), b"other".to_vec(), "bob")
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    insta::assert_snapshot!("error_redeploy", b);
    // Another deployer cannot add files to it either.
    let (s, _) = app
        .put(
            &format!("{DIR}/lib-1.0-sources.jar"),
            b"src".to_vec(),
            "carol",
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Yanked, a release stays immutable: its deployer cannot replace its bytes.
    assert!(
        app.registry
            .local()
            .set_yanked("org.example:lib", "1.0", true)
            .await
            .expect("yank")
    );
    let (s, b) = app
        .put(&format!("{DIR}/lib-1.0.jar"), b"other".to_vec(), "bob")
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a yanked release re-deployed: {b}");
    let (s, _) = app
        .put(
            &format!("{DIR}/lib-1.0-sources.jar"),
            b"src".to_vec(),
            "bob",
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "nor extended");
}

#[tokio::test]
async fn snapshots_keep_history() {
    let app = TestApp::local().build().await;
    let dir = "/maven2/org/example/lib/1.0-SNAPSHOT";
    for (n, ts) in [(1, "20260102.030405"), (2, "20260102.040000")] {
        for (file, body) in [
            (format!("lib-1.0-{ts}-{n}.jar"), format!("jar {n}")),
            (format!("lib-1.0-{ts}-{n}-sources.jar"), format!("src {n}")),
            (
                format!("lib-1.0-{ts}-{n}.pom"),
                pom("org.example", "lib", "1.0-SNAPSHOT"),
            ),
        ] {
            let (s, b) = app.put(&format!("{dir}/{file}"), body, "bob").await;
            assert_eq!(s, StatusCode::CREATED, "{file}: {b}");
        }
        let meta = "<metadata><groupId>org.example</groupId><artifactId>lib</artifactId><version>1.0-SNAPSHOT</version></metadata>";
        let (s, b) = app
            .put(&format!("{dir}/maven-metadata.xml"), meta, "bob")
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, xml) = app.text(&format!("{dir}/maven-metadata.xml")).await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("snapshot_metadata", redact(&xml));
    // History is kept.
    let (s, _, b) = app
        .get(&format!("{dir}/lib-1.0-20260102.030405-1.jar"))
        .await;
    assert_eq!((s, &b[..]), (StatusCode::OK, &b"jar 1"[..]));
    let (_, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert!(xml.contains("<latest>1.0-SNAPSHOT</latest>"), "{xml}");
    assert!(!xml.contains("<release>"), "{xml}");
}

#[tokio::test]
async fn anonymous_deploy_is_challenged() {
    let app = TestApp::local().build().await;
    let (s, h, b) = app
        .send(common::put(
            &format!("{DIR}/lib-1.0.jar"),
            b"jar".to_vec(),
            "anonymous",
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(h["www-authenticate"], "Basic realm=\"batlehub\"");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    insta::assert_snapshot!("error_auth_required", String::from_utf8_lossy(&b));
    let (s, _) = app
        .put(&format!("{DIR}/lib-1.0.jar"), b"jar".to_vec(), "invalid")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_stored() {
    let app = TestApp::local().build().await;
    let before = app.state_of("org.example:lib").await;
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<project><groupId>&lol1;</groupId><artifactId>lib</artifactId><version>1.0</version></project>"#;
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            format!("{DIR}/lib-1.0.pom"),
            pom("org.example", "other", "1.0").into_bytes(),
            "declares org.example:other:1.0",
        ),
        (
            format!("{DIR}/lib-1.0.pom"),
            pom("org.other", "lib", "1.0").into_bytes(),
            "declares org.other:lib:1.0",
        ),
        (
            "/maven2/org/../lib/1.0/lib-1.0.jar".into(),
            b"x".to_vec(),
            "`.` or `..`",
        ),
        (format!("{DIR}/lib-1.0.jar"), Vec::new(), "empty"),
        (
            format!("{DIR}/lib-1.0.pom"),
            b"<project><groupId>".to_vec(),
            "not valid XML",
        ),
        (
            format!("{DIR}/lib-1.0.pom"),
            bomb.as_bytes().to_vec(),
            "DOCTYPE",
        ),
        (
            "/maven2/org/example/lib/maven-metadata.xml".into(),
            b"<metadata><groupId>org.evil</groupId></metadata>".to_vec(),
            "names org.evil",
        ),
        (
            format!("{DIR}/lib-1.0.jar.sha1"),
            sha1_hex(b"x").into_bytes(),
            "was not uploaded",
        ),
    ];
    for (path, body, needle) in cases {
        let (s, b) = app.put(&path, body, "bob").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(b.contains(needle), "{path}: {b}");
    }
    assert_eq!(app.state_of("org.example:lib").await, before);

    // A checksum that does not match the stored file.
    app.deploy_release("org.example", "lib", "1.0", "bob").await;
    let (s, b) = app
        .put(
            &format!("{DIR}/lib-1.0.jar.sha1"),
            sha1_hex(b"other"),
            "bob",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    insta::assert_snapshot!("error_checksum_mismatch", b);
}

#[tokio::test]
async fn parent_pom_coordinates() {
    let app = TestApp::local().build().await;
    let pom = r#"<project><parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>1.0</version></parent><artifactId>lib</artifactId></project>"#;
    let (s, b) = app.put(&format!("{DIR}/lib-1.0.pom"), pom, "bob").await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app.text(&format!("{DIR}/lib-1.0.pom")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn unfinished_release_deploy_can_be_retried() {
    let app = TestApp::local().build().await;
    let jar = format!("{DIR}/lib-1.0.jar");
    let pom_path = format!("{DIR}/lib-1.0.pom");
    assert_eq!(
        app.put(&jar, "first build", "bob").await.0,
        StatusCode::CREATED
    );
    // The POM is refused: the version stays invisible.
    let (s, _) = app
        .put(&pom_path, pom("org.example", "other", "1.0"), "bob")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The same bytes again are fine; another deployer cannot take over.
    assert_eq!(
        app.put(&jar, "first build", "bob").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.put(&jar, "stolen", "carol").await.0,
        StatusCode::CONFLICT
    );
    // The retried deploy starts the version over.
    assert_eq!(
        app.put(&jar, "second build", "bob").await.0,
        StatusCode::CREATED
    );
    let (s, b) = app
        .put(&pom_path, pom("org.example", "lib", "1.0"), "bob")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _, body) = app.get(&jar).await;
    assert_eq!((s, &body[..]), (StatusCode::OK, &b"second build"[..]));
    // Complete now: immutable, refused before the body is read.
    assert_eq!(app.put(&jar, "third", "bob").await.0, StatusCode::CONFLICT);
}

#[tokio::test]
async fn blocked_versions_are_hidden_and_refused() {
    let app = TestApp::local().rules("").build().await;
    app.deploy_release("org.example", "lib", "1.0", "bob").await;
    app.deploy_release("org.example", "lib", "1.1", "bob").await;
    app.storage
        .index
        .add_block(&batlehub_core::model::Block {
            id: "b1".into(),
            registry: "maven".into(),
            package: "org.example:lib".into(),
            versions: Some("1.1".into()),
            reason: "CVE-2026-0001 in 1.1".into(),
            created_by: "admin".into(),
            created_at: common::start_time(),
        })
        .await
        .expect("block");
    let (s, xml) = app.text("/maven2/org/example/lib/maven-metadata.xml").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        xml.contains("<latest>1.0</latest>") && xml.contains("<release>1.0</release>"),
        "{xml}"
    );
    assert!(!xml.contains("1.1"), "{xml}");
    let (s, b) = app.text("/maven2/org/example/lib/1.1/lib-1.1.jar").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(b.contains("CVE-2026-0001"), "{b}");
    let (s, _) = app.text("/maven2/org/example/lib/1.0/lib-1.0.jar").await;
    assert_eq!(s, StatusCode::OK);
}
