//! The release-age gate seen from the real npm CLI: a proxy in front of an upstream where
//! one version is ten days old and the next one a minute old. `npm install pkg` picks the
//! old version; `npm install pkg@new` fails and prints the rule's reason.

use batlehub::core::digest::Digests;
use batlehub_e2e::{
    Npm, npm_tarball as tgz, registry_url, scratch, start_server, storage_toml, write_consumer,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_gate_resolves_older_version_and_explains_the_pinned_refusal() {
    let upstream = MockServer::start().await;
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(10);
    let fresh = now - chrono::Duration::minutes(1);
    let mut versions = serde_json::Map::new();
    for v in ["1.0.0", "1.1.0"] {
        let bytes = tgz("gated-dep", v);
        let d = Digests::of(&bytes);
        versions.insert(
            v.into(),
            json!({
                "name": "gated-dep", "version": v, "main": "index.js",
                "dist": {
                    "integrity": d.sha512_sri(),
                    "shasum": d.sha1_hex(),
                    "tarball": format!("{}/gated-dep/-/gated-dep-{v}.tgz", upstream.uri()),
                }
            }),
        );
        Mock::given(method("GET"))
            .and(path(format!("/gated-dep/-/gated-dep-{v}.tgz")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(&upstream)
            .await;
    }
    let iso =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let doc = json!({
        "_id": "gated-dep", "name": "gated-dep",
        "dist-tags": {"latest": "1.1.0"},
        "versions": versions,
        "time": {"created": iso(old), "modified": iso(fresh), "1.0.0": iso(old), "1.1.0": iso(fresh)},
    });
    Mock::given(method("GET"))
        .and(path("/gated-dep"))
        .respond_with(ResponseTemplate::new(200).set_body_json(doc))
        .mount(&upstream)
        .await;

    let data = scratch();
    let server = start_server(&format!(
        "{}\n[[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"proxy\"\nupstreams = [\"{}/\"]\n\n\
         [[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(data.path()),
        upstream.uri()
    ))
    .await;
    let registry = registry_url(&server, "npm");
    let home = scratch();
    let npm = Npm::new(home.path()).await;
    npm.write_npmrc(&[]);

    let project = home.path().join("project");
    write_consumer(&project);
    npm.run(Some(&registry), &project, &["install", "gated-dep"])
        .await
        .success();
    let installed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join("node_modules/gated-dep/package.json"))
            .expect("installed"),
    )
    .expect("json");
    assert_eq!(
        installed["version"], "1.0.0",
        "the one-minute-old 1.1.0 must not be selected"
    );

    let pinned = home.path().join("pinned");
    write_consumer(&pinned);
    let out = npm
        .run(Some(&registry), &pinned, &["install", "gated-dep@1.1.0"])
        .await
        .failure();
    let text = out.combined_lower();
    assert!(text.contains("policy violations"), "{out}");
    assert!(
        text.contains("release-age gate") && text.contains("eligible from"),
        "{out}"
    );

    // The tarball itself is refused too, with the reason and Retry-After.
    let resp = batlehub_e2e::http_client()
        .get(format!("{registry}gated-dep/-/gated-dep-1.1.0.tgz"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().contains_key("retry-after"));
}
