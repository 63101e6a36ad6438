//! A local Go registry: publishing module zips, the documents the go command reads, and
//! what bad uploads are told (nothing stored, earlier versions unaffected).

mod common;

use common::{GoApp, TestApp, declare_size, escape, go_mod, h1, module_zip, zip_of};
use http::StatusCode;

const M: &str = "example.com/Org/Mod";

fn at(path: &str) -> String {
    format!("/{}/{path}", escape(M))
}

#[tokio::test]
async fn publish_then_read_every_document() {
    let app = TestApp::local().build().await;
    let zip = module_zip(M, "v1.0.0");
    let (s, body) = app
        .put_text(&at("@v/v1.0.0.zip"), zip.clone(), "alice")
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body.trim(), format!("published {M}@v1.0.0 {}", h1(&zip)));
    app.clock.advance(chrono::Duration::hours(1));
    app.upload(M, "v1.1.0", "alice").await;
    app.upload(M, "v1.2.0-rc.1", "alice").await;

    let got = app.fetch(&at("@v/list")).await;
    assert_eq!(got.status, StatusCode::OK);
    insta::assert_snapshot!("local_list", got.text());
    // Revalidation: the same list again is `304`.
    let mut again = batlehub_test::get(&at("@v/list"), None);
    again.headers_mut().insert(
        http::header::IF_NONE_MATCH,
        got.header("etag").parse().expect("etag"),
    );
    assert_eq!(app.call(again).await.status, StatusCode::NOT_MODIFIED);
    let (s, info) = app.text(&at("@v/v1.0.0.info")).await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("local_info", info);
    let (s, latest) = app.text(&at("@latest")).await;
    assert_eq!(s, StatusCode::OK);
    insta::assert_snapshot!("local_latest", latest);
    let (s, m) = app.text(&at("@v/v1.0.0.mod")).await;
    assert_eq!((s, m), (StatusCode::OK, go_mod(M)));
    let got = app.fetch(&at("@v/v1.0.0.zip")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, zip);
    assert_eq!(got.header("content-type"), "application/zip");
    // `%21` for `!` is what the go command sends.
    let got = app.fetch("/example.com/%21org/%21mod/@v/v1.0.0.zip").await;
    assert_eq!(got.body, zip);
    // Versions are immutable: the same zip again is fine, another is a conflict.
    let (s, _) = app.put_text(&at("@v/v1.0.0.zip"), zip, "alice").await;
    assert_eq!(s, StatusCode::OK);
    let other = zip_of(&[
        (format!("{M}@v1.0.0/go.mod"), go_mod(M).into_bytes()),
        (format!("{M}@v1.0.0/other.go"), b"package mod\n".to_vec()),
    ]);
    let (s, body) = app.put_text(&at("@v/v1.0.0.zip"), other, "alice").await;
    assert_eq!(s, StatusCode::CONFLICT, "{body}");
    insta::assert_snapshot!("error_conflict", body);
}

#[tokio::test]
async fn not_found_is_plain_text_the_go_command_prints() {
    let app = TestApp::local().build().await;
    let got = app.fetch("/example.com/nothing/@v/list").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert!(got.header("content-type").starts_with("text/plain"));
    insta::assert_snapshot!("error_unknown_module", got.text());
    app.upload("example.com/m", "v1.0.0", "alice").await;
    let got = app.fetch("/example.com/m/@v/v9.9.9.info").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    insta::assert_snapshot!("error_unknown_version", got.text());
    // A version the go command would never send is `404` on reads (it tries its next proxy).
    let got = app.fetch("/example.com/m/@v/1.0.0.info").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    insta::assert_snapshot!("error_not_canonical_read", got.text());
}

#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let app = TestApp::local().build().await;
    let m = "example.com/m";
    app.upload(m, "v1.0.0", "alice").await;
    let before = app.state(&[m]).await;
    let prefix = format!("{m}@v2.0.0/");
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        (
            "traversal",
            "/example.com/m/@v/v1.1.0.zip".into(),
            zip_of(&[(
                format!("{m}@v1.1.0/../../evil.go"),
                b"package evil\n".to_vec(),
            )]),
            "invalid file path",
        ),
        (
            "go.mod names another module",
            "/example.com/m/@v/v1.1.0.zip".into(),
            zip_of(&[(
                format!("{m}@v1.1.0/go.mod"),
                go_mod("example.com/other").into_bytes(),
            )]),
            "declares module",
        ),
        (
            "bomb",
            "/example.com/m/@v/v1.1.0.zip".into(),
            declare_size(
                zip_of(&[
                    (format!("{m}@v1.1.0/go.mod"), go_mod(m).into_bytes()),
                    (format!("{m}@v1.1.0/zeros"), vec![0u8; 1 << 20]),
                ]),
                &format!("{m}@v1.1.0/zeros"),
                600 << 20,
            ),
            "more than",
        ),
        (
            "entries of another version",
            "/example.com/m/@v/v1.1.0.zip".into(),
            module_zip(m, "v1.2.0"),
            "is not under",
        ),
        (
            "v2 without /v2",
            "/example.com/m/@v/v2.0.0.zip".into(),
            zip_of(&[(format!("{prefix}go.mod"), go_mod(m).into_bytes())]),
            "major version",
        ),
        (
            "not canonical",
            "/example.com/m/@v/1.0.0.zip".into(),
            module_zip(m, "1.0.0"),
            "no leading v",
        ),
        (
            "shorthand",
            "/example.com/m/@v/v1.0.zip".into(),
            module_zip(m, "v1.0"),
            "MAJOR.MINOR.PATCH",
        ),
        (
            "dot-dot path",
            "/example.com/%2e%2e/m/@v/v1.1.0.zip".into(),
            module_zip(m, "v1.1.0"),
            "..",
        ),
        (
            "leading slash",
            "//example.com/m/@v/v1.1.0.zip".into(),
            module_zip(m, "v1.1.0"),
            "empty path segment",
        ),
        (
            "truncated",
            "/example.com/m/@v/v1.1.0.zip".into(),
            {
                let mut z = module_zip(m, "v1.1.0");
                z.truncate(z.len() / 2);
                z
            },
            "not a zip",
        ),
    ];
    for (what, path, body, why) in cases {
        let (s, text) = app.put_text(&path, body, "alice").await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {text}");
        assert!(text.contains(why), "{what}: {text}");
        assert_eq!(app.state(&[m]).await, before, "{what}: nothing stored");
    }
    let (s, text) = app
        .put_text(
            "/example.com/m/@v/v1.1.0.zip",
            zip_of(&[(
                format!("{m}@v1.1.0/go.mod"),
                go_mod("example.com/other").into_bytes(),
            )]),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    insta::assert_snapshot!("error_other_module", text);
    // The earlier version is untouched.
    let got = app.fetch("/example.com/m/@v/v1.0.0.zip").await;
    assert_eq!(got.body, module_zip(m, "v1.0.0"));
}

#[tokio::test]
async fn mod_and_info_uploads_are_checked_against_the_zip() {
    let app = TestApp::local().build().await;
    let m = "example.com/m";
    // Before the zip: a .mod naming this module is accepted, then must match the zip's.
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.mod",
            b"module example.com/m\n".to_vec(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, text) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.zip",
            module_zip(m, "v1.0.0"),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("differs from the go.mod"), "{text}");
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.mod",
            go_mod(m).into_bytes(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    app.upload(m, "v1.0.0", "alice").await;
    // After the zip: the same .mod is fine, another a conflict; .info must name the version.
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.mod",
            go_mod(m).into_bytes(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.mod",
            b"module example.com/m\n".to_vec(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.info",
            br#"{"Version":"v1.0.0","Time":"2001-01-01T00:00:00Z"}"#.to_vec(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .put_text(
            "/example.com/m/@v/v1.0.0.info",
            br#"{"Version":"v1.0.1"}"#.to_vec(),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // A module path that is not one is refused before anything is read.
    let (s, _) = app
        .put_text(
            "/example/m/@v/v1.0.0.zip",
            module_zip("example/m", "v1.0.0"),
            "alice",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn policy_hides_denied_versions_from_list_and_latest() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    let m = "example.com/m";
    app.upload(m, "v1.0.0", "alice").await;
    app.clock.advance(chrono::Duration::days(2));
    app.upload(m, "v1.1.0", "alice").await;
    let (_, list) = app.text("/example.com/m/@v/list").await;
    assert_eq!(list, "v1.0.0\n");
    let (_, latest) = app.text("/example.com/m/@latest").await;
    assert!(latest.contains("\"v1.0.0\""), "{latest}");
    let got = app.fetch("/example.com/m/@v/v1.1.0.info").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.header("x-batlehub-rule"), "release_age_gate");
    insta::assert_snapshot!("age_gate_info", got.text());
    // Nothing left: @latest is 404.
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    app.upload(m, "v1.0.0", "alice").await;
    let got = app.fetch("/example.com/m/@latest").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND, "{}", got.text());
}
