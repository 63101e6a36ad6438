//! A local PyPI registry driven through `oneshot`: twine-shaped uploads, the Simple API in
//! both forms, `.metadata` files, the JSON API, yanking, and bad uploads that must leave
//! storage unchanged.

mod common;

use common::{
    Dist, JSON, PIP_ACCEPT, PypiApp, TestApp, get, raw_upload, sdist, sha256, twine_fields,
    upload_request, wheel, wheel_with,
};
use http::StatusCode;
use serde_json::{Value, json};

const TIME_REDACTIONS: &str = "[time]";

#[tokio::test]
async fn sdist_and_wheel_of_one_release_then_every_read() {
    let app = TestApp::local().build().await;
    let sd = sdist("Demo_Pkg", "1.0");
    let whl = wheel("Demo_Pkg", "1.0", &["requests>=2"]);
    let got = app.upload("Demo_Pkg", "1.0", &sd, "alice").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let got = app.upload("Demo_Pkg", "1.0", &whl, "alice").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(
        app.publish_wheel("demo-pkg", "1.1", "alice").await.status,
        StatusCode::OK
    );

    // HTML by default, with hashes, requires-python and core metadata.
    let page = app.fetch("/simple/demo-pkg/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert_eq!(page.header("vary"), "Accept");
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    insta::assert_snapshot!("local_project_page_html", page.text());

    let page = app
        .call(get("/simple/demo-pkg/", Some(PIP_ACCEPT), None))
        .await;
    assert_eq!(page.header("content-type"), JSON);
    let doc = page.json();
    assert_eq!(doc["versions"], json!(["1.0", "1.1"]));
    assert_eq!(doc["files"][0]["size"], sd.bytes.len());
    insta::assert_json_snapshot!("local_project_page_json", doc, {
        ".files[][\"upload-time\"]" => TIME_REDACTIONS,
    });

    // The wheel's .metadata is served and matches the advertised hash.
    let wheel_entry = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["filename"] == whl.filename.as_str())
        .expect("wheel listed")
        .clone();
    assert_eq!(
        wheel_entry["core-metadata"]["sha256"],
        sha256(&whl.metadata)
    );
    let url = wheel_entry["url"].as_str().expect("url");
    let path = url.strip_prefix("http://hub.test/pypi").expect("ours");
    let meta = app.fetch(&format!("{path}.metadata")).await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.body.as_ref(), whl.metadata.as_slice());
    let file = app.fetch(path).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.header("content-type"), "application/octet-stream");
    assert_eq!(file.body.as_ref(), whl.bytes.as_slice());
    assert_eq!(file.header("content-length"), whl.bytes.len().to_string());
    // The sdist has no .metadata.
    assert_eq!(
        app.fetch(&format!("/packages/demo-pkg/{}.metadata", sd.filename))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let head = app
        .call(
            http::Request::head(path)
                .body(batlehub_core::body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());

    // JSON API.
    let api = app.fetch("/pypi/demo-pkg/json").await;
    assert_eq!(api.status, StatusCode::OK);
    let api = api.json();
    assert_eq!(api["info"]["version"], "1.1");
    assert_eq!(api["info"]["name"], "demo-pkg");
    assert_eq!(api["releases"]["1.0"].as_array().map(Vec::len), Some(2));
    insta::assert_json_snapshot!("local_json_api", api, {
        ".**.upload_time" => TIME_REDACTIONS,
        ".**.upload_time_iso_8601" => TIME_REDACTIONS,
    });
    let v = app.fetch("/pypi/demo-pkg/1.0/json").await.json();
    assert_eq!(
        v["info"]["name"], "demo-pkg",
        "the newest upload's spelling"
    );
    assert_eq!(
        v["info"]["requires_dist"],
        Value::Null,
        "from the sdist's PKG-INFO"
    );
    assert_eq!(v["urls"].as_array().map(Vec::len), Some(2));
    assert!(v.get("releases").is_none());
    assert_eq!(
        app.fetch("/pypi/demo-pkg/1.0.0/json").await.status,
        StatusCode::OK,
        "PEP 440 equality"
    );
    assert_eq!(
        app.fetch("/pypi/demo-pkg/9.9/json").await.status,
        StatusCode::NOT_FOUND
    );

    // The project list.
    let list = app.fetch("/simple/").await;
    insta::assert_snapshot!("local_index_html", list.text());
    let list = app.get_json("/simple/").await.json();
    assert_eq!(list["projects"], json!([{ "name": "demo-pkg" }]));
}

#[tokio::test]
async fn names_are_normalized_and_redirected() {
    let app = TestApp::local().build().await;
    assert_eq!(
        app.publish_wheel("My.Pkg", "1.0", "alice").await.status,
        StatusCode::OK
    );
    for (from, to) in [
        ("/simple/My.Pkg/", "http://hub.test/pypi/simple/my-pkg/"),
        ("/simple/my_pkg/", "http://hub.test/pypi/simple/my-pkg/"),
        ("/simple/my-pkg", "http://hub.test/pypi/simple/my-pkg/"),
        ("/simple", "http://hub.test/pypi/simple/"),
        ("/pypi/MY_PKG/json", "http://hub.test/pypi/pypi/my-pkg/json"),
    ] {
        let got = app.fetch(from).await;
        assert_eq!(got.status, StatusCode::MOVED_PERMANENTLY, "{from}");
        assert_eq!(got.header("location"), to, "{from}");
    }
    // One project, whatever the spelling of later uploads.
    let got = app.publish_wheel("my_pkg", "2.0", "alice").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let doc = app.get_json("/simple/my-pkg/").await.json();
    assert_eq!(doc["versions"], json!(["1.0", "2.0"]));
    // A second upload of the same release with another spelling joins it.
    let whl = wheel_with(
        "my_pkg-1.0.0-py2-none-any.whl",
        "my_pkg-1.0.0.dist-info",
        &common::core_metadata("my-pkg", "1.0.0", &[]),
    );
    let got = app.upload("my-pkg", "1.0.0", &whl, "alice").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let doc = app.get_json("/simple/my-pkg/").await.json();
    assert_eq!(doc["versions"], json!(["1.0", "2.0"]));
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn negotiation_and_versions_order() {
    let app = TestApp::local().build().await;
    for v in ["1.10", "1.9", "2.0rc1", "1.0.post1", "1.0"] {
        assert_eq!(
            app.publish_wheel("order", v, "alice").await.status,
            StatusCode::OK
        );
    }
    let doc = app.get_json("/simple/order/").await.json();
    assert_eq!(
        doc["versions"],
        json!(["1.0", "1.0.post1", "1.9", "1.10", "2.0rc1"])
    );
    assert_eq!(
        app.fetch("/pypi/order/json").await.json()["info"]["version"],
        "1.10",
        "info describes the highest stable release"
    );
    for (accept, ct) in [
        (None, "text/html; charset=utf-8"),
        (Some("*/*"), "text/html; charset=utf-8"),
        (Some("text/html"), "text/html; charset=utf-8"),
        (
            Some("application/vnd.pypi.simple.v1+html"),
            "application/vnd.pypi.simple.v1+html",
        ),
        (Some(PIP_ACCEPT), JSON),
        (
            Some("application/vnd.pypi.simple.v1+json;q=0.2, text/html;q=0.5"),
            "text/html; charset=utf-8",
        ),
    ] {
        let got = app.call(get("/simple/order/", accept, None)).await;
        assert_eq!(got.header("content-type"), ct, "{accept:?}");
        assert_eq!(got.header("vary"), "Accept");
        // Revalidation: the same representation's ETag gets a 304.
        let mut req = get("/simple/order/", accept, None);
        req.headers_mut()
            .insert("if-none-match", got.headers["etag"].clone());
        let again = app.call(req).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{accept:?}");
        assert!(again.body.is_empty());
    }
}

/// twine uploads one file per request; several first files of a new release may race to
/// create it. The losers join the release the winner created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_files_make_one_release() {
    let app = TestApp::local().build().await;
    let mut dists = vec![sdist("race", "1.0")];
    for tag in ["py3", "py2", "cp311", "cp312", "cp313"] {
        dists.push(wheel_with(
            &format!("race-1.0-{tag}-none-any.whl"),
            "race-1.0.dist-info",
            &common::core_metadata("race", "1.0", &[]),
        ));
    }
    let uploads = dists.iter().map(|d| app.upload("race", "1.0", d, "alice"));
    for got in futures::future::join_all(uploads).await {
        assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    }
    let pkg = app
        .storage
        .index
        .package("pypi", "race")
        .await
        .expect("index")
        .expect("package");
    assert_eq!(pkg.versions.len(), 1);
    let mut files: Vec<_> = pkg.versions[0]
        .files
        .iter()
        .map(|f| f.filename.clone())
        .collect();
    files.sort_unstable();
    let mut expected: Vec<String> = dists
        .iter()
        .flat_map(|d| [d.filename.clone(), format!("{}.metadata", d.filename)])
        .collect();
    expected.sort_unstable();
    assert_eq!(files, expected);
    for f in &pkg.versions[0].files {
        assert!(
            app.storage
                .blobs
                .stat(&batlehub_core::store::blob_path(&f.sha256))
                .await
                .expect("stat")
                .is_some(),
            "blob of {} present",
            f.filename
        );
    }
    let doc = app.get_json("/simple/race/").await.json();
    assert_eq!(doc["files"].as_array().map(Vec::len), Some(dists.len()));
}

#[tokio::test]
async fn yank_and_unyank_through_the_admin_function() {
    let app = TestApp::local().build().await;
    app.publish_wheel("yanky", "1.0", "alice").await;
    app.publish_wheel("yanky", "1.1", "alice").await;
    let stored = batlehub_pypi::admin::set_yanked(
        app.registry.index(),
        "pypi",
        "Yanky",
        "1.1.0",
        true,
        Some("broken \"build\""),
    )
    .await
    .expect("yank");
    assert_eq!(stored, "1.1");
    let html = app.fetch("/simple/yanky/").await.text();
    assert!(
        html.contains("data-yanked=\"broken &quot;build&quot;\""),
        "{html}"
    );
    let doc = app.get_json("/simple/yanky/").await.json();
    assert_eq!(doc["files"][1]["yanked"], "broken \"build\"");
    assert_eq!(
        doc["versions"],
        json!(["1.0", "1.1"]),
        "yanked stays listed"
    );
    let api = app.fetch("/pypi/yanky/json").await.json();
    assert_eq!(api["info"]["version"], "1.0", "info skips yanked releases");
    assert_eq!(api["releases"]["1.1"][0]["yanked"], true);
    assert_eq!(
        api["releases"]["1.1"][0]["yanked_reason"],
        "broken \"build\""
    );
    // Still downloadable when pinned (PEP 592).
    assert_eq!(
        app.fetch("/packages/yanky/yanky-1.1-py3-none-any.whl")
            .await
            .status,
        StatusCode::OK
    );
    batlehub_pypi::admin::set_yanked(app.registry.index(), "pypi", "yanky", "1.1", false, None)
        .await
        .expect("unyank");
    let doc = app.get_json("/simple/yanky/").await.json();
    assert_eq!(doc["files"][1]["yanked"], false);
    assert!(matches!(
        batlehub_pypi::admin::set_yanked(app.registry.index(), "pypi", "yanky", "3", true, None)
            .await,
        Err(batlehub_core::Error::NotFound(_))
    ));
}

/// Uploads that must be refused with a clear message and leave storage as it was.
#[tokio::test]
async fn bad_uploads_are_refused_and_store_nothing() {
    let app = TestApp::local().build().await;
    app.publish_wheel("good", "1.0", "alice").await;
    let before = app.state(&["good", "evil", "x"]).await;

    let mismatched = wheel_with(
        "good-2.0-py3-none-any.whl",
        "good-2.0.dist-info",
        &common::core_metadata("evil", "2.0", &[]),
    );
    let other_version = wheel_with(
        "good-2.0-py3-none-any.whl",
        "good-2.0.dist-info",
        &common::core_metadata("good", "3.0", &[]),
    );
    let bomb = {
        // 80 MiB of zeros deflate to about 80 KiB: a ratio no real wheel has.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("good-2.0.dist-info/METADATA", opts)
            .expect("start");
        std::io::Write::write_all(&mut w, &common::core_metadata("good", "2.0", &[]))
            .expect("write");
        w.start_file("good/zeros.bin", opts).expect("start");
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..80 {
            std::io::Write::write_all(&mut w, &zeros).expect("write");
        }
        Dist {
            filename: "good-2.0-py3-none-any.whl".into(),
            bytes: w.finish().expect("zip").into_inner(),
            metadata: Vec::new(),
        }
    };
    let empty = Dist {
        filename: "good-2.0-py3-none-any.whl".into(),
        bytes: Vec::new(),
        metadata: Vec::new(),
    };
    let good2 = wheel("good", "2.0", &[]);
    let mut wrong_sha = twine_fields("good", "2.0", &good2);
    for (k, v) in &mut wrong_sha {
        if k == "sha256_digest" {
            *v = "0".repeat(64);
        }
    }
    let traversal = Dist {
        filename: "../x-1.0-py3-none-any.whl".into(),
        ..wheel("x", "1.0", &[])
    };
    let not_a_wheel = Dist {
        filename: "good-2.0-py3-none-any.whl".into(),
        bytes: b"PK\x03\x04 this is not a zip archive".to_vec(),
        metadata: Vec::new(),
    };

    let cases: Vec<(&str, http::Request<batlehub_core::body::Body>, &str)> = vec![
        (
            "metadata_name_mismatch",
            upload_request(
                &twine_fields("good", "2.0", &mismatched),
                &mismatched,
                Some("alice"),
            ),
            "names project `evil`",
        ),
        (
            "metadata_version_mismatch",
            upload_request(
                &twine_fields("good", "2.0", &other_version),
                &other_version,
                Some("alice"),
            ),
            "names version `3.0`",
        ),
        (
            "filename_mismatch",
            upload_request(&twine_fields("good", "2.1", &good2), &good2, Some("alice")),
            "names version `2.0`",
        ),
        (
            "zip_bomb",
            upload_request(&twine_fields("good", "2.0", &bomb), &bomb, Some("alice")),
            "zip bomb",
        ),
        (
            "wrong_sha256",
            upload_request(&wrong_sha, &good2, Some("alice")),
            "sha256_digest does not match",
        ),
        (
            "traversal_name",
            upload_request(
                &twine_fields("../x", "1.0", &traversal),
                &traversal,
                Some("alice"),
            ),
            "file name",
        ),
        (
            "traversal_project",
            upload_request(&twine_fields("../x", "1.0", &good2), &good2, Some("alice")),
            "invalid project name",
        ),
        (
            "empty_file",
            upload_request(&twine_fields("good", "2.0", &empty), &empty, Some("alice")),
            "is empty",
        ),
        (
            "not_a_zip",
            upload_request(
                &twine_fields("good", "2.0", &not_a_wheel),
                &not_a_wheel,
                Some("alice"),
            ),
            "not a valid zip",
        ),
        (
            "garbage_multipart",
            raw_upload(b"--nope\r\n\r\n".to_vec(), Some("alice")),
            "malformed multipart",
        ),
        (
            "truncated_multipart",
            {
                let body = common::multipart(&twine_fields("good", "2.0", &good2), &good2);
                raw_upload(body[..body.len() - 100].to_vec(), Some("alice"))
            },
            "truncated",
        ),
    ];
    for (label, req, needle) in cases {
        let got = app.call(req).await;
        assert_eq!(
            got.status,
            StatusCode::BAD_REQUEST,
            "{label}: {}",
            got.text()
        );
        assert!(got.text().contains(needle), "{label}: {}", got.text());
        assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
        assert_eq!(
            got.reason.as_deref(),
            Some(got.text().trim()),
            "{label}: the reason phrase carries the message"
        );
        assert_eq!(
            app.state(&["good", "evil", "x"]).await,
            before,
            "{label}: nothing stored"
        );
        if label == "metadata_name_mismatch" || label == "wrong_sha256" {
            insta::assert_snapshot!(format!("error_{label}"), got.text());
        }
    }

    // The same file twice: 409, which `twine upload --skip-existing` understands.
    let again = wheel("good", "1.0", &[]);
    let got = app.upload("good", "1.0", &again, "alice").await;
    assert_eq!(got.status, StatusCode::CONFLICT);
    insta::assert_snapshot!("error_file_exists", got.text());
    assert_eq!(app.state(&["good", "evil", "x"]).await, before);

    // Not multipart at all.
    let got = app
        .call(
            http::Request::post("/legacy/")
                .header("content-type", "application/json")
                .body(batlehub_core::body::full("{}"))
                .expect("req"),
        )
        .await;
    // Anonymous callers are asked for credentials before anything is read.
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.header("www-authenticate"), "Basic realm=\"batlehub\"");
    let mut req = http::Request::post("/legacy/")
        .header("content-type", "application/json")
        .body(batlehub_core::body::full("{}"))
        .expect("req");
    req.extensions_mut().insert(common::identity("alice"));
    assert_eq!(app.call(req).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.state(&["good", "evil", "x"]).await, before);
}

#[tokio::test]
async fn upload_limits_and_permissions() {
    let app = TestApp::local().max_upload(64 * 1024).build().await;
    let big = Dist {
        filename: "big-1.0-py3-none-any.whl".into(),
        bytes: vec![7u8; 200 * 1024],
        metadata: Vec::new(),
    };
    let got = app.upload("big", "1.0", &big, "alice").await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", got.text());
    assert!(app.storage.blobs.list("").await.expect("list").is_empty());

    assert_eq!(
        app.publish_wheel("owned", "1.0", "alice").await.status,
        StatusCode::OK
    );
    let got = app.publish_wheel("owned", "2.0", "bob").await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(got.text().contains("not an owner"), "{}", got.text());
    let got = app.publish_wheel("owned", "2.0", "invalid").await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);

    let fields = vec![(":action".to_owned(), "submit".to_owned())];
    let got = app
        .call(upload_request(
            &fields,
            &wheel("x", "1.0", &[]),
            Some("alice"),
        ))
        .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert!(got.text().contains("unsupported :action"), "{}", got.text());
}

#[tokio::test]
async fn error_envelopes() {
    let app = TestApp::local().build().await;
    let got = app.fetch("/simple/nothing-here/").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    assert_eq!(got.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    insta::assert_snapshot!("error_not_found", got.text());
    let got = app.fetch("/simple/%2e%2e/").await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    insta::assert_snapshot!("error_traversal", got.text());
    let got = app.fetch("/packages/a/..%2f..%2fetc").await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    let got = app.fetch("/packages/a/a-1.0-py3-none-any.whl").await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);
    let got = app
        .call(
            http::Request::delete("/simple/a/")
                .body(batlehub_core::body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED);
    let got = app.fetch("/").await;
    assert_eq!(got.status, StatusCode::MOVED_PERMANENTLY);
}
