//! A local RubyGems source driven through `oneshot`: push, the compact index (with the
//! ETag, Repr-Digest and Range behaviour bundler relies on), downloads, the full index and
//! quick gemspecs, the JSON APIs, yank, bad uploads and the release-age gate.

mod common;

use std::io::Read as _;

use common::{
    TestApp, gem, gem_of_spec, gemspec, get, gz, md5_hex, push_request, sha256_hex, tar_of,
};
use http::{Method, StatusCode};

async fn push(app: &TestApp, bytes: Vec<u8>) -> batlehub_test::Got {
    app.call(push_request(bytes, Some("alice"))).await
}

/// `app` with `app-gem` 1.0.0 (depending on `dep-gem`), `dep-gem` 0.1.0 and its
/// `x86_64-linux` variant.
async fn seeded() -> TestApp {
    let app = TestApp::local().build().await;
    for bytes in [
        gem("dep-gem", "0.1.0"),
        gem_of_spec(&gemspec("dep-gem", "0.1.0", "x86_64-linux", &[])),
        gem_of_spec(&gemspec(
            "app-gem",
            "1.0.0",
            "ruby",
            &[("dep-gem", "~> 0.1")],
        )),
    ] {
        let got = push(&app, bytes).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    }
    app
}

/// Checksums vary with gzip output; snapshots show them as `<sha256>`/`<md5>`.
fn redact(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_inclusive([' ', ',', '|', '"', '\n', ':']) {
        let core = word.trim_end_matches([' ', ',', '|', '"', '\n', ':']);
        let tail = &word[core.len()..];
        let is_hex = |n: usize| core.len() == n && core.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex(64) {
            out.push_str("<sha256>");
        } else if is_hex(32) {
            out.push_str("<md5>");
        } else {
            out.push_str(core);
        }
        out.push_str(tail);
    }
    out
}

#[tokio::test]
async fn push_then_compact_index() {
    let app = seeded().await;
    let got = push(&app, gem("dep-gem", "0.1.0")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), "Gem was already pushed: dep-gem (0.1.0)\n");

    let info = app.fetch("/info/dep-gem").await;
    assert_eq!(info.status, StatusCode::OK);
    insta::assert_snapshot!("info_dep_gem", redact(&info.text()));
    assert_eq!(info.header("etag"), format!("\"{}\"", md5_hex(&info.body)));
    assert_eq!(info.header("accept-ranges"), "bytes");
    assert!(
        info.header("repr-digest").starts_with("sha-256=:"),
        "{:?}",
        info.headers
    );
    let app_info = app.fetch("/info/app-gem").await;
    insta::assert_snapshot!("info_app_gem", redact(&app_info.text()));

    let versions = app.fetch("/versions").await;
    insta::assert_snapshot!("versions", redact(&versions.text()));
    // Each line's MD5 is the MD5 of the /info served.
    assert!(versions.text().contains(&format!(
        "dep-gem 0.1.0,0.1.0-x86_64-linux {}",
        md5_hex(&info.body)
    )));
    assert_eq!(app.fetch("/names").await.text(), "---\napp-gem\ndep-gem\n");

    // The .gem served is the one /info's checksum names.
    let linux = app.fetch("/gems/dep-gem-0.1.0-x86_64-linux.gem").await;
    assert_eq!(linux.status, StatusCode::OK);
    assert!(info.text().contains(&format!(
        "0.1.0-x86_64-linux |checksum:{}",
        sha256_hex(&linux.body)
    )));
    assert_eq!(linux.header("content-type"), "application/octet-stream");
    assert!(linux.header("content-encoding").is_empty());
    assert_eq!(
        app.fetch("/gems/dep-gem-0.2.0.gem").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.fetch("/info/nothing-here").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn ranges_follow_appends() {
    let app = TestApp::local().build().await;
    push(&app, gem("grow", "1.0.0")).await;
    let before = app.fetch("/info/grow").await;
    let etag = before.header("etag").to_owned();
    // Nothing changed: 304.
    let same = app
        .call({
            let mut r = get("/info/grow", None);
            r.headers_mut()
                .insert("if-none-match", etag.parse().expect("h"));
            r
        })
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    push(&app, gem("grow", "1.1.0")).await;
    // bundler: Range from its size minus one, If-None-Match the MD5 of its copy.
    let ranged = |start: usize, tag: String| {
        let mut r = get("/info/grow", None);
        r.headers_mut()
            .insert("range", format!("bytes={start}-").parse().expect("h"));
        r.headers_mut()
            .insert("if-none-match", tag.parse().expect("h"));
        r
    };
    let part = app.call(ranged(before.body.len() - 1, etag.clone())).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT, "{}", part.text());
    let full = app.fetch("/info/grow").await;
    let mut joined = before.body.to_vec();
    joined.extend_from_slice(&part.body[1..]);
    assert_eq!(
        joined,
        full.body.to_vec(),
        "the client's copy plus the slice is ours"
    );
    assert_eq!(part.header("etag"), format!("\"{}\"", md5_hex(&joined)));
    // A copy that is not a prefix of ours gets the whole document.
    let other = app
        .call(ranged(
            before.body.len() - 1,
            format!("\"{}\"", md5_hex(b"other")),
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, full.body);
    let past = app.call(ranged(full.body.len() + 10, etag)).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn full_index_quick_specs_and_json() {
    let app = seeded().await;
    let specs = app.fetch("/specs.4.8.gz").await;
    assert_eq!(specs.status, StatusCode::OK);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&specs.body[..])
        .read_to_end(&mut raw)
        .expect("gzip");
    assert_eq!(&raw[..2], &[4, 8], "Marshal 4.8");
    for s in ["app-gem", "dep-gem", "x86_64-linux"] {
        assert!(raw.windows(s.len()).any(|w| w == s.as_bytes()), "{s}");
    }
    let quick = app
        .fetch("/quick/Marshal.4.8/app-gem-1.0.0.gemspec.rz")
        .await;
    assert_eq!(quick.status, StatusCode::OK);
    let mut spec = Vec::new();
    flate2::read::ZlibDecoder::new(&quick.body[..])
        .read_to_end(&mut spec)
        .expect("zlib");
    assert!(spec.windows(7).any(|w| w == b"dep-gem"));

    let versions = app.fetch("/api/v1/versions/dep-gem.json").await;
    let mut json = versions.json();
    for v in json.as_array_mut().expect("array") {
        v["sha"] = "<sha256>".into();
    }
    // Key order depends on whether another workspace crate turned on serde_json's
    // `preserve_order`; the snapshot is about the fields, so sort them.
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_json_snapshot!("versions_json", json);
    });
    let mut gem_json = app.fetch("/api/v1/gems/app-gem.json").await.json();
    gem_json["sha"] = "<sha256>".into();
    insta::with_settings!({ sort_maps => true }, {
        insta::assert_json_snapshot!("gem_json", gem_json);
    });
    let one = app
        .fetch("/api/v2/rubygems/dep-gem/versions/0.1.0.json?platform=x86_64-linux")
        .await;
    assert_eq!(one.json()["platform"], "x86_64-linux");
    assert_eq!(
        app.fetch("/api/v1/dependencies").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.fetch("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn yank_removes_the_version() {
    let app = seeded().await;
    let before = app.fetch("/versions").await;
    let mut req = batlehub_test::request(
        Method::DELETE,
        "/api/v1/gems/yank",
        "gem_name=dep-gem&version=0.1.0&platform=x86_64-linux",
        Some("alice"),
    );
    req.headers_mut().insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().expect("h"),
    );
    let got = app.call(req).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(
        got.text(),
        "Successfully deleted gem: dep-gem (0.1.0-x86_64-linux)\n"
    );
    let info = app.fetch("/info/dep-gem").await.text();
    assert!(!info.contains("x86_64-linux"), "{info}");
    let after = app.fetch("/versions").await;
    assert_ne!(before.body, after.body);
    assert!(after.text().contains("dep-gem 0.1.0 "), "{}", after.text());
    assert_eq!(
        app.fetch("/gems/dep-gem-0.1.0-x86_64-linux.gem")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Another user may not yank alice's gem.
    let got = app
        .call(batlehub_test::request(
            Method::DELETE,
            "/api/v1/gems/yank?gem_name=dep-gem&version=0.1.0",
            "",
            Some("mallory"),
        ))
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
}

#[tokio::test]
async fn bad_uploads_store_nothing() {
    let app = TestApp::local().build().await;
    push(&app, gem("victim", "1.0.0")).await;
    let good_info = app.fetch("/info/victim").await.body;
    let spec = gemspec("victim", "2.0.0", "ruby", &[]);
    let metadata = gz(spec.as_bytes());
    let data = gz(&tar_of(&[("lib/x.rb", b"x")]));
    let wrong_sums = gz(b"---\nSHA256:\n  metadata.gz: 00\n  data.tar.gz: 00\n");
    let mut truncated = gem("victim", "2.0.0");
    truncated.truncate(600);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            tar_of(&[
                ("metadata.gz", &metadata),
                ("data.tar.gz", &data),
                ("checksums.yaml.gz", &wrong_sums),
            ]),
            "checksums.yaml",
        ),
        (
            gem_of_spec(&format!("{spec}extra: &a [*a, *a]\n")),
            "not accepted",
        ),
        (
            gem_of_spec(&spec.replace(
                "--- !ruby/object:Gem::Specification",
                "--- !ruby/object:Gem::Installer",
            )),
            "",
        ),
        (
            gem_of_spec(&spec.replace("name: victim", "name: ../victim")),
            "invalid gem name",
        ),
        (
            tar_of(&[
                ("metadata.gz", &gz(&vec![b' '; 17 << 20])),
                ("data.tar.gz", &data),
            ]),
            "unpacks to more than",
        ),
        (truncated, ""),
        (b"not a gem at all".to_vec(), ""),
    ];
    for (bytes, why) in cases {
        let got = push(&app, bytes).await;
        assert_eq!(
            got.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            got.text()
        );
        assert!(got.text().contains(why), "{why}: {}", got.text());
    }
    assert_eq!(
        app.fetch("/info/victim").await.body,
        good_info,
        "nothing stored"
    );
    // A second push of the same version with other contents: 409.
    let other = gem_of_spec(&gemspec("victim", "1.0.0", "ruby", &[("rack", ">= 1")]));
    let got = push(&app, other).await;
    assert_eq!(got.status, StatusCode::CONFLICT, "{}", got.text());
    assert!(
        got.text()
            .starts_with("Repushing of gem versions is not allowed")
    );
    assert_eq!(app.fetch("/info/victim").await.body, good_info);
    // Anonymous pushes are challenged before the body is read.
    let got = app.call(push_request(gem("victim", "3.0.0"), None)).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert!(got.header("www-authenticate").starts_with("Basic"));
}

#[tokio::test]
async fn refused_versions_explain_themselves() {
    let app = TestApp::local()
        .rules("[[rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n")
        .build()
        .await;
    push(&app, gem("young", "1.0.0")).await;
    app.clock.advance(chrono::Duration::days(2));
    push(&app, gem("young", "1.1.0")).await;
    let info = app.fetch("/info/young").await;
    insta::assert_snapshot!("info_refused", redact(&info.text()));
    // The marker gem has no versions, so resolvers skip the refused version.
    let marker = app
        .fetch("/info/batlehub.refused-by.release_age_gate.until-2026-01-05T03.04Z")
        .await;
    assert_eq!(
        (marker.status, marker.text().as_str()),
        (StatusCode::OK, "---\n")
    );
    let versions = app.fetch("/versions").await.text();
    assert!(versions.contains(&format!("young 1.0.0,1.1.0 {}", md5_hex(&info.body))));
    let got = app.fetch("/gems/young-1.1.0.gem").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(
        got.text().contains("younger than the release-age gate"),
        "{}",
        got.text()
    );
    assert!(
        got.reason
            .as_deref()
            .unwrap_or_default()
            .contains("release-age gate"),
        "{:?}",
        got.reason
    );
    assert_eq!(
        app.fetch("/gems/young-1.0.0.gem").await.status,
        StatusCode::OK
    );
    app.clock.advance(chrono::Duration::days(2));
    let later = app.fetch("/info/young").await.text();
    assert!(!later.contains("batlehub.refused-by"), "{later}");
}
