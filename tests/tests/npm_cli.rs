//! The real npm CLI against the reference server: publish to a local registry, install
//! through a proxy of it (also after the upstream has gone away), dist-tags, deprecation,
//! `npm view`, and the publish failures npm users see (bad or missing token, re-publish).

use std::path::Path;

use batlehub_e2e::{
    ADMIN_TOKEN, Npm, Server, USER_TOKEN, auth_line, http_client, registry_url, scratch,
    start_server, stop_server, storage_toml, tokens_toml, write_consumer, write_package,
};

/// A server with one local npm registry `npm` and the tokens of [`tokens_toml`].
async fn local_server(data: &Path) -> Server {
    start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"local\"\n",
        storage_toml(data),
        tokens_toml()
    ))
    .await
}

/// Publishes `e2e-plain@1.0.0` and `@e2e/scoped@1.0.0` (which depends on `e2e-plain@^1.0.0`)
/// to `registry`, whose admin token must already be in the npm user config.
async fn publish_fixtures(npm: &Npm, registry: &str, work: &Path) {
    let plain = work.join("pkg-plain");
    write_package(&plain, "e2e-plain", "1.0.0", &[]);
    npm.run(Some(registry), &plain, &["publish"])
        .await
        .success();

    let scoped = work.join("pkg-scoped");
    write_package(&scoped, "@e2e/scoped", "1.0.0", &[("e2e-plain", "^1.0.0")]);
    npm.run(Some(registry), &scoped, &["publish"])
        .await
        .success();
}

/// `npm install @e2e/scoped` in a new project `dir` from `registry` (with a fresh npm cache),
/// then checks both packages landed in `node_modules` and load in node.
async fn install_and_check(npm: &Npm, registry: &str, dir: &Path) {
    write_consumer(dir);
    let out = npm
        .run(Some(registry), dir, &["install", "@e2e/scoped"])
        .await
        .success();

    let manifest = dir.join("node_modules/@e2e/scoped/package.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap_or_else(|e| panic!("{} after install: {e}\n{out}", manifest.display()));
    let json: serde_json::Value =
        serde_json::from_str(&text).expect("installed package.json is JSON");
    assert_eq!(json["version"], "1.0.0", "{text}");
    assert!(
        dir.join("node_modules/e2e-plain/package.json").is_file(),
        "the dependency was not installed\n{out}"
    );

    let loaded = npm
        .node(
            dir,
            "process.stdout.write(require('e2e-plain') + ' ' + require('@e2e/scoped'))",
        )
        .await
        .success();
    assert_eq!(
        loaded.stdout, "e2e-plain@1.0.0 @e2e/scoped@1.0.0",
        "{loaded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_locally_then_install_through_a_proxy_that_outlives_its_upstream() {
    let tmp = scratch();
    let upstream = local_server(&tmp.path().join("upstream")).await;
    let local = registry_url(&upstream, "npm");
    let npm = Npm::new(&tmp.path().join("home")).await;
    npm.write_npmrc(&[auth_line(&local, ADMIN_TOKEN)]);
    publish_fixtures(&npm, &local, tmp.path()).await;

    // metadata_ttl_secs = 0: every packument request revalidates against the upstream.
    let proxy = start_server(&format!(
        "{}\n[[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"proxy\"\nupstreams = [\"{local}\"]\n\
         [registries.cache]\nmetadata_ttl_secs = 0\n",
        storage_toml(&tmp.path().join("proxy")),
    ))
    .await;
    let proxied = registry_url(&proxy, "npm");
    install_and_check(&npm, &proxied, &tmp.path().join("project-1")).await;

    let http = http_client();
    let fresh = http
        .get(format!("{proxied}e2e-plain"))
        .send()
        .await
        .expect("GET packument via proxy");
    assert_eq!(fresh.status(), 200);
    assert_eq!(
        fresh.headers().get("x-batlehub-cache"),
        None,
        "upstream is up, the copy is not stale"
    );

    stop_server(upstream).await;
    assert!(
        http.get(format!("{local}e2e-plain")).send().await.is_err(),
        "the upstream should refuse connections once stopped"
    );

    // Both the full document and the abbreviated one npm install asks for.
    for accept in ["application/json", "application/vnd.npm.install-v1+json"] {
        for path in ["e2e-plain", "@e2e%2fscoped"] {
            let resp = http
                .get(format!("{proxied}{path}"))
                .header("accept", accept)
                .send()
                .await
                .expect("GET packument via proxy");
            let status = resp.status();
            let cache = resp.headers().get("x-batlehub-cache").cloned();
            let body = resp.text().await.unwrap_or_default();
            assert_eq!(
                status, 200,
                "GET {proxied}{path} ({accept}) with the upstream down: {body}"
            );
            assert_eq!(
                cache.as_ref().and_then(|v| v.to_str().ok()),
                Some("stale"),
                "GET {proxied}{path} ({accept}): a packument served from cache after the TTL must say so"
            );
        }
    }

    install_and_check(&npm, &proxied, &tmp.path().join("project-2")).await;
    stop_server(proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dist_tags_deprecation_and_view() {
    let tmp = scratch();
    let server = local_server(&tmp.path().join("data")).await;
    let registry = registry_url(&server, "npm");
    let reg = Some(registry.as_str());
    let npm = Npm::new(&tmp.path().join("home")).await;
    npm.write_npmrc(&[auth_line(&registry, ADMIN_TOKEN)]);
    publish_fixtures(&npm, &registry, tmp.path()).await;
    let cwd = npm.home();

    npm.run(reg, cwd, &["dist-tag", "add", "e2e-plain@1.0.0", "beta"])
        .await
        .success();
    let ls = npm
        .run(reg, cwd, &["dist-tag", "ls", "e2e-plain"])
        .await
        .success();
    let tags: Vec<&str> = ls.stdout.lines().map(str::trim).collect();
    assert!(tags.contains(&"beta: 1.0.0"), "{ls}");
    assert!(tags.contains(&"latest: 1.0.0"), "{ls}");

    npm.run(reg, cwd, &["deprecate", "e2e-plain@1.0.0", "use 2"])
        .await
        .success();
    let view = npm
        .run(reg, cwd, &["view", "e2e-plain", "deprecated"])
        .await
        .success();
    assert_eq!(view.stdout.trim(), "use 2", "{view}");

    let view = npm
        .run(reg, cwd, &["view", "@e2e/scoped", "version"])
        .await
        .success();
    assert_eq!(view.stdout.trim(), "1.0.0", "{view}");
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_needs_a_valid_token() {
    let tmp = scratch();
    let server = local_server(&tmp.path().join("data")).await;
    let registry = registry_url(&server, "npm");
    let reg = Some(registry.as_str());
    let npm = Npm::new(&tmp.path().join("home")).await;
    let pkg = tmp.path().join("pkg-wrong");
    write_package(&pkg, "e2e-wrong", "1.0.0", &[]);
    let http = http_client();
    let packument = format!("{registry}e2e-wrong");
    let status = async || {
        http.get(&packument)
            .send()
            .await
            .expect("GET packument")
            .status()
    };

    npm.write_npmrc(&[auth_line(&registry, "wrong-token-xyz")]);
    let out = npm.run(reg, &pkg, &["publish"]).await.failure();
    let text = out.combined_lower();
    assert!(
        text.contains("401") || text.contains("unauthorized"),
        "expected a 401 from the server\n{out}"
    );
    assert_eq!(
        status().await,
        404,
        "nothing may be published with a wrong token"
    );

    npm.write_npmrc(&[]);
    npm.run(reg, &pkg, &["publish"]).await.failure();
    assert_eq!(status().await, 404, "nothing may be published anonymously");
    // npm refuses to publish without credentials before asking; the server must refuse too.
    let anon = http
        .put(&packument)
        .header("content-type", "application/json")
        .body(r#"{"name":"e2e-wrong","versions":{},"_attachments":{}}"#)
        .send()
        .await
        .expect("anonymous PUT");
    assert_eq!(anon.status(), 401, "anonymous publish");
    let challenge = anon
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        challenge.starts_with("Basic"),
        "WWW-Authenticate: {challenge:?}"
    );
    assert_eq!(status().await, 404);

    npm.write_npmrc(&[auth_line(&registry, USER_TOKEN)]);
    npm.run(reg, &pkg, &["publish"]).await.success();
    let doc: serde_json::Value = http
        .get(&packument)
        .send()
        .await
        .expect("GET packument")
        .error_for_status()
        .expect("published by the user token")
        .json()
        .await
        .expect("packument is JSON");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0", "{doc}");
    assert_eq!(doc["versions"]["1.0.0"]["_npmUser"]["name"], "bob", "{doc}");
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_a_version_is_refused() {
    let tmp = scratch();
    let server = local_server(&tmp.path().join("data")).await;
    let registry = registry_url(&server, "npm");
    let npm = Npm::new(&tmp.path().join("home")).await;
    npm.write_npmrc(&[auth_line(&registry, ADMIN_TOKEN)]);
    let pkg = tmp.path().join("pkg-again");
    write_package(&pkg, "e2e-again", "1.0.0", &[]);

    let http = http_client();
    let packument = async || -> serde_json::Value {
        let resp = http
            .get(format!("{registry}e2e-again"))
            .send()
            .await
            .expect("GET packument");
        resp.error_for_status()
            .expect("packument status")
            .json()
            .await
            .expect("packument is JSON")
    };

    npm.run(Some(&registry), &pkg, &["publish"]).await.success();
    let first = packument().await;
    // Different contents, same version: still refused, and the stored tarball is kept.
    std::fs::write(pkg.join("index.js"), "module.exports = 'changed';\n").expect("edit index.js");
    let out = npm.run(Some(&registry), &pkg, &["publish"]).await.failure();
    assert!(
        out.combined_lower().contains("previously published"),
        "{out}"
    );

    let after = packument().await;
    assert_eq!(
        after["versions"]["1.0.0"]["dist"], first["versions"]["1.0.0"]["dist"],
        "{after}"
    );
    stop_server(server).await;
}
