//! The admin API from the outside: personal access tokens used by the real npm CLI and
//! revoked, blocks, namespaces, owners, visibility, and the audit query that answers "who
//! downloaded this version between these dates".

use batlehub_e2e::{
    ADMIN_TOKEN, Npm, USER_TOKEN, auth_line, http_client, registry_url, scratch, start_server,
    storage_toml, tokens_toml, write_consumer, write_package,
};
use serde_json::{Value, json};

async fn server(data: &std::path::Path) -> batlehub_e2e::Server {
    start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"local\"\n",
        storage_toml(data),
        tokens_toml()
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_tokens_blocks_and_audit() {
    let data = scratch();
    let srv = server(data.path()).await;
    let api = format!("{}/api/v1/admin", srv.url());
    let registry = registry_url(&srv, "npm");
    let http = http_client();

    // Only admins.
    let r = http.get(format!("{api}/tokens")).send().await.expect("req");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .get(format!("{api}/tokens"))
        .bearer_auth(USER_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);

    // A personal access token for carol, used by npm.
    let r = http
        .post(format!("{api}/tokens"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"principal": "carol", "role": "user", "groups": ["team-a"], "expires_in_secs": 3600}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let pat = created["token"].as_str().expect("token").to_owned();
    assert!(pat.starts_with("bhp_"));
    let home = scratch();
    let npm = Npm::new(home.path()).await;
    npm.write_npmrc(&[auth_line(&registry, &pat)]);
    let who = npm
        .run(Some(&registry), home.path(), &["whoami"])
        .await
        .success();
    assert_eq!(who.stdout.trim(), "carol", "{who}");
    let pkg = home.path().join("pkg");
    write_package(&pkg, "audited-pkg", "1.0.0", &[]);
    npm.run(Some(&registry), &pkg, &["publish"]).await.success();

    // Downloads by two principals inside a window, one outside.
    let t0 = chrono::Utc::now();
    let tarball = format!("{registry}audited-pkg/-/audited-pkg-1.0.0.tgz");
    for token in [USER_TOKEN, &pat] {
        let r = http
            .get(&tarball)
            .bearer_auth(token)
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 200);
    }
    let t1 = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(http.get(&tarball).send().await.expect("req").status(), 200);
    let r = http
        .get(format!("{api}/audit"))
        .query(&[
            ("registry", "npm"),
            ("package", "audited-pkg"),
            ("version", "1.0.0"),
            ("action", "download"),
            ("since", &t0.to_rfc3339()),
            ("until", &t1.to_rfc3339()),
        ])
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let events: Vec<Value> = r.json().await.expect("json");
    let who: Vec<&str> = events
        .iter()
        .filter_map(|e| e["principal"].as_str())
        .collect();
    assert_eq!(who, vec!["bob", "carol"], "{events:?}");

    // A block takes effect at once, with its reason, and is lifted again.
    let r = http
        .post(format!("{api}/blocks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"registry": "npm", "package": "audited-pkg", "versions": "1.0.0", "reason": "CVE-2026-4242"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    let block: Value = r.json().await.expect("json");
    let r = http.get(&tarball).send().await.expect("req");
    assert_eq!(r.status(), 403);
    assert!(r.text().await.expect("body").contains("CVE-2026-4242"));
    let project = home.path().join("consumer");
    write_consumer(&project);
    let out = npm
        .run(Some(&registry), &project, &["install", "audited-pkg@1.0.0"])
        .await
        .failure();
    assert!(out.combined_lower().contains("cve-2026-4242"), "{out}");
    let id = block["id"].as_str().expect("id");
    let r = http
        .delete(format!("{api}/blocks/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    assert_eq!(http.get(&tarball).send().await.expect("req").status(), 200);

    // Revoking the token locks npm out immediately.
    let pat_id = created["id"].as_str().expect("id");
    let r = http
        .delete(format!("{api}/tokens/{pat_id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let out = npm
        .run(Some(&registry), home.path(), &["whoami"])
        .await
        .failure();
    assert!(
        out.combined_lower().contains("401") || out.combined_lower().contains("revoked"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_owners_visibility() {
    let data = scratch();
    let srv = server(data.path()).await;
    let api = format!("{}/api/v1/admin", srv.url());
    let registry = registry_url(&srv, "npm");
    let http = http_client();
    let post = |path: String, body: Value| {
        http.post(format!("{api}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };

    let r = post(
        "/registries/npm/namespaces".into(),
        json!({"prefix": "@team-a/", "group": "team-a"}),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 201);
    let r = post(
        "/registries/npm/namespaces".into(),
        json!({"prefix": "@team-a/", "group": "other"}),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 409);
    let r = post(
        "/registries/nope/namespaces".into(),
        json!({"prefix": "x", "group": "y"}),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 404);

    // bob (user, no group) cannot publish into the namespace.
    let home = scratch();
    let npm = Npm::new(home.path()).await;
    npm.write_npmrc(&[auth_line(&registry, USER_TOKEN)]);
    let pkg = home.path().join("ns-pkg");
    write_package(&pkg, "@team-a/tool", "1.0.0", &[]);
    let out = npm.run(Some(&registry), &pkg, &["publish"]).await.failure();
    assert!(out.combined_lower().contains("namespace"), "{out}");

    // bob publishes his own package; the admin makes it team-visible and adds a group owner.
    let mine = home.path().join("bob-pkg");
    write_package(&mine, "bob-pkg", "1.0.0", &[]);
    npm.run(Some(&registry), &mine, &["publish"])
        .await
        .success();
    let r = http
        .get(format!("{api}/registries/npm/owners"))
        .query(&[("package", "bob-pkg")])
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    let owners: Value = r.json().await.expect("json");
    assert_eq!(owners["owners"], json!([{"kind": "user", "name": "bob"}]));
    // The last owner cannot be removed (the name would be anyone's).
    let r = http
        .delete(format!("{api}/registries/npm/owners"))
        .query(&[("package", "bob-pkg"), ("kind", "user"), ("name", "bob")])
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 409);
    assert!(r.text().await.expect("body").contains("last owner"));
    let r = http
        .put(format!("{api}/registries/npm/visibility"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"package": "bob-pkg", "visibility": "internal"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    assert_eq!(
        http.get(format!("{registry}bob-pkg"))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{registry}bob-pkg"))
            .bearer_auth(USER_TOKEN)
            .send()
            .await
            .expect("req")
            .status(),
        200
    );
    let r = http
        .get(format!("{api}/registries/npm/visibility"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("req");
    let restricted: Value = r.json().await.expect("json");
    assert_eq!(
        restricted,
        json!([{"package": "bob-pkg", "visibility": "internal"}])
    );

    // Yank through the admin API: 200 for a version that exists, 404 otherwise.
    let yank = |v: &str| json!({"package": "bob-pkg", "version": v, "yanked": true});
    let r = post("/registries/npm/yank".into(), yank("1.0.0"))
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let r = post("/registries/npm/yank".into(), yank("9.9.9"))
        .await
        .expect("req");
    assert_eq!(r.status(), 404);
}

/// The admin API normalizes package names the registry's way: for cargo, `Serde_JSON`,
/// `serde_json` and `serde-json` are one crate (stored as `serde-json`), for PyPI PEP 503
/// applies; names the protocol refuses are a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_names_are_normalized_per_registry_type() {
    let data = scratch();
    let srv = start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"crates\"\ntype = \"cargo\"\nmode = \"local\"\n\
         [[registries]]\nname = \"py\"\ntype = \"pypi\"\nmode = \"local\"\n",
        storage_toml(data.path()),
        tokens_toml()
    ))
    .await;
    let api = format!("{}/api/v1/admin", srv.url());
    let http = http_client();
    let owners = |registry: &'static str, package: &'static str| {
        http.get(format!("{api}/registries/{registry}/owners"))
            .query(&[("package", package)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };

    let r = http
        .post(format!("{api}/registries/crates/owners"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"package": "Serde_JSON", "kind": "user", "name": "bob"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    for spelling in ["serde-json", "serde_json", "SERDE_JSON"] {
        let body: Value = owners("crates", spelling)
            .await
            .expect("req")
            .json()
            .await
            .expect("json");
        assert_eq!(body["package"], "serde-json", "{spelling}");
        assert_eq!(
            body["owners"],
            json!([{"kind": "user", "name": "bob"}]),
            "{spelling}"
        );
    }
    let r = owners("crates", "not a crate").await.expect("req");
    assert_eq!(r.status(), 400);

    let r = http
        .put(format!("{api}/registries/py/visibility"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"package": "My_Project.Name", "visibility": "internal"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["package"], "my-project-name");
    let r = http
        .post(format!("{api}/blocks"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"registry": "crates", "package": "Serde_JSON", "reason": "CVE-2026-1"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 201);
    let block: Value = r.json().await.expect("json");
    assert_eq!(block["package"], "serde-json");
    let r = http
        .post(format!("{api}/registries/crates/yank"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"package": "Serde_JSON", "version": "1.0.0", "yanked": true}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("serde-json"),
        "{body}"
    );
}
