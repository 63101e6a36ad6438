//! Two replicas of the reference server on one PostgreSQL database and one S3 bucket (the
//! servers at `BATLEHUB_TEST_POSTGRES_URL` and `BATLEHUB_TEST_S3_ENDPOINT`; `.ci/run` starts
//! both). The real npm CLI publishes through one replica and installs through the other;
//! 50 concurrent publishes of one version spread over both give exactly one success; 50
//! concurrent cold downloads of one artifact through a proxy registry reach the upstream
//! once; a package quota holds against publishes racing on both replicas; a block (and a
//! token revocation) made on one replica refuses downloads on the other within a second.
//!
//! The replicas run in this process, each with its own hub, pools and caches, as separate
//! processes would; `kill -9` of a replica is in `examples/server/tests/crash.rs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use batlehub::core::BlobStore as _;
use batlehub::core::digest::Digests;
use batlehub::storage::sqlx::{self, AssertSqlSafe};
use batlehub::storage::{OpendalBlobStore, S3Config};
use batlehub_e2e::{
    ADMIN_TOKEN, Npm, auth_line, http_client, npm_tarball, npm_tarball_with, registry_url, scratch,
    start_server, stop_server, tokens_toml, write_consumer, write_package,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What the test needs from the environment, or `None` (the test is skipped).
fn services() -> Option<(String, String, String)> {
    let pg = std::env::var("BATLEHUB_TEST_POSTGRES_URL").ok()?;
    let s3 = std::env::var("BATLEHUB_TEST_S3_ENDPOINT").ok()?;
    let bucket =
        std::env::var("BATLEHUB_TEST_S3_BUCKET").unwrap_or_else(|_| "batlehub-test".into());
    Some((pg, s3, bucket))
}

/// The npm publish document of `name@version` with `tarball` attached.
fn publish_body(name: &str, version: &str, tarball: &[u8]) -> Value {
    let d = Digests::of(tarball);
    json!({
        "_id": name,
        "name": name,
        "dist-tags": { "latest": version },
        "versions": { version: {
            "name": name,
            "version": version,
            "dist": {
                "integrity": d.sha512_sri(),
                "shasum": d.sha1_hex(),
                "tarball": format!("http://x/{name}/-/{name}-{version}.tgz"),
            },
        }},
        "_attachments": { format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(tarball),
            "length": tarball.len(),
        }},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_and_s3() {
    let Some((pg, s3, bucket)) = services() else {
        eprintln!("skipping: BATLEHUB_TEST_POSTGRES_URL or BATLEHUB_TEST_S3_ENDPOINT is not set");
        return;
    };
    let unique = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    // A schema of this run's own on the shared database (dropped at the end).
    let schema = format!("batlehub_replicas_{unique}");
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&pg)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");

    // The upstream of the proxy registry: slow enough that every download asks while the
    // first is still under way.
    let upstream = MockServer::start().await;
    let cold = npm_tarball("cold-pkg", "1.0.0");
    let d = Digests::of(&cold);
    Mock::given(method("GET"))
        .and(path("/cold-pkg"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_id": "cold-pkg", "name": "cold-pkg",
            "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {
                "name": "cold-pkg", "version": "1.0.0",
                "dist": {
                    "integrity": d.sha512_sri(),
                    "shasum": d.sha1_hex(),
                    "tarball": format!("{}/cold-pkg/-/cold-pkg-1.0.0.tgz", upstream.uri()),
                },
            }},
            "time": {"1.0.0": "2020-01-01T00:00:00.000Z"},
        })))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .and(path("/cold-pkg/-/cold-pkg-1.0.0.tgz"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(cold.clone())
                .set_delay(Duration::from_millis(700)),
        )
        .mount(&upstream)
        .await;

    let prefix = format!("replicas-{unique}");
    let toml = format!(
        "[database]\nurl = \"{pg}?options=-c%20search_path%3D{schema}\"\n\
         [storage]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{s3}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
         prefix = \"{prefix}\"\n\
         {tokens}\n\
         [[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"local\"\n\
         max_concurrent_uploads = 64\n\
         [[registries]]\nname = \"mirror\"\ntype = \"npm\"\nmode = \"proxy\"\n\
         upstreams = [\"{upstream}/\"]\n\
         [[registries]]\nname = \"capped\"\ntype = \"npm\"\nmode = \"local\"\n\
         max_concurrent_uploads = 64\n\
         [registries.quota]\nmax_packages_per_user = 3\n",
        tokens = tokens_toml(),
        upstream = upstream.uri(),
    );
    let a = start_server(&toml).await;
    let b = start_server(&toml).await;
    let http = http_client();

    // The real npm CLI: publish through one replica, install through the other.
    let tmp = scratch();
    let npm = Npm::new(&tmp.path().join("home")).await;
    let (on_a, on_b) = (registry_url(&a, "npm"), registry_url(&b, "npm"));
    npm.write_npmrc(&[auth_line(&on_a, ADMIN_TOKEN), auth_line(&on_b, ADMIN_TOKEN)]);
    let pkg = tmp.path().join("pkg");
    write_package(&pkg, "replica-pkg", "1.0.0", &[]);
    npm.run(Some(&on_a), &pkg, &["publish"]).await.success();
    let consumer = tmp.path().join("consumer");
    write_consumer(&consumer);
    let out = npm
        .run(Some(&on_b), &consumer, &["install", "replica-pkg"])
        .await
        .success();
    assert!(
        consumer
            .join("node_modules/replica-pkg/package.json")
            .is_file(),
        "not installed through the other replica\n{out}"
    );

    // 50 concurrent publishes of one version, spread over both replicas, each with bytes
    // of its own: exactly one succeeds, and both replicas serve its bytes.
    let publishes = (0..50).map(|i| {
        let base = if i % 2 == 0 { a.url() } else { b.url() };
        let nonce = format!("publish {i}");
        let tarball = npm_tarball_with("raced-pkg", "1.0.0", &[("nonce.txt", nonce.as_bytes())]);
        let body = publish_body("raced-pkg", "1.0.0", &tarball);
        let http = http.clone();
        async move {
            let r = http
                .put(format!("{base}/proxy/npm/raced-pkg"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("publish request");
            let status = r.status();
            if status.is_client_error() && status != 409 {
                eprintln!(
                    "publish {i}: {status} {}",
                    r.text().await.unwrap_or_default()
                );
            }
            (status, tarball)
        }
    });
    let results = futures::future::join_all(publishes).await;
    let won: Vec<&Vec<u8>> = results
        .iter()
        .filter(|(s, _)| s.is_success())
        .map(|(_, t)| t)
        .collect();
    let statuses: Vec<u16> = results.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 200 || *s == 409),
        "{statuses:?}"
    );
    for server in [&a, &b] {
        let r = http
            .get(format!(
                "{}/proxy/npm/raced-pkg/-/raced-pkg-1.0.0.tgz",
                server.url()
            ))
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.expect("body")[..], &won[0][..]);
    }

    // A quota holds across replicas: 20 first publishes of distinct packages by one user,
    // spread over both at once, each fitting alone; exactly three commit.
    let capped = (0..20).map(|i| {
        let base = if i % 2 == 0 { a.url() } else { b.url() };
        let name = format!("capped-{i}");
        let body = publish_body(&name, "1.0.0", &npm_tarball(&name, "1.0.0"));
        let http = http.clone();
        async move {
            let r = http
                .put(format!("{base}/proxy/capped/{name}"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("publish request");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    });
    let results = futures::future::join_all(capped).await;
    let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| (200..300).contains(*s)).count(),
        3,
        "{statuses:?}"
    );
    for (status, body) in &results {
        assert!(
            (200..300).contains(status) || (*status == 403 && body.contains("package quota")),
            "{status} {body}"
        );
    }

    // 50 concurrent cold downloads through the proxy registry, spread over both replicas:
    // the upstream is asked for the artifact once, and every client gets its bytes.
    let downloads = (0..50).map(|i| {
        let base = if i % 2 == 0 { a.url() } else { b.url() };
        let http = http.clone();
        async move {
            let r = http
                .get(format!("{base}/proxy/mirror/cold-pkg/-/cold-pkg-1.0.0.tgz"))
                .send()
                .await
                .expect("download request");
            (r.status().as_u16(), r.bytes().await.expect("body"))
        }
    });
    for (status, body) in futures::future::join_all(downloads).await {
        assert_eq!(status, 200);
        assert_eq!(&body[..], &cold[..]);
    }
    let asked = upstream
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/cold-pkg/-/cold-pkg-1.0.0.tgz")
        .count();
    assert_eq!(
        asked, 1,
        "the upstream was asked {asked} times for one artifact"
    );

    // A block added on one replica refuses downloads on the other within a second.
    let tarball_on_b = format!("{}/proxy/npm/replica-pkg/-/replica-pkg-1.0.0.tgz", b.url());
    assert_eq!(
        http.get(&tarball_on_b).send().await.expect("req").status(),
        200
    );
    let r = http
        .post(format!("{}/api/v1/admin/blocks", a.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"registry": "npm", "package": "replica-pkg", "versions": "1.0.0", "reason": "CVE-2026-0001"}))
        .send()
        .await
        .expect("block");
    assert_eq!(r.status(), 201);
    let blocked_at = Instant::now();
    loop {
        let status = http.get(&tarball_on_b).send().await.expect("req").status();
        if status == 403 {
            break;
        }
        assert!(
            blocked_at.elapsed() < Duration::from_secs(1),
            "the other replica still serves a blocked version after 1 s ({status})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A personal access token revoked on one replica is refused on the other within a
    // second, though the other had just verified (and cached) it.
    let r = http
        .post(format!("{}/api/v1/admin/tokens", a.url()))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"principal": "carol"}))
        .send()
        .await
        .expect("create token");
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("token json");
    let (id, pat) = (
        created["id"].as_str().expect("id").to_owned(),
        created["token"].as_str().expect("token").to_owned(),
    );
    let ping = format!("{}/proxy/npm/replica-pkg", b.url());
    let with_pat = || http.get(&ping).bearer_auth(&pat).send();
    assert_eq!(with_pat().await.expect("req").status(), 200);
    let r = http
        .delete(format!("{}/api/v1/admin/tokens/{id}", a.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success(), "{}", r.status());
    let revoked_at = Instant::now();
    let mut seen = Vec::new();
    loop {
        let status = with_pat().await.expect("req").status();
        seen.push(status.as_u16());
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the other replica still accepts a revoked token after 1 s ({seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop_server(a).await;
    stop_server(b).await;
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .expect("drop schema");
    let mut config = S3Config::new(bucket);
    config.endpoint = Some(s3);
    config.region = Some("us-east-1".into());
    config.access_key_id = Some("test".into());
    config.secret_access_key = Some("test".into());
    config.prefix = prefix;
    let store = OpendalBlobStore::s3(&config).expect("S3 store");
    for p in store.list("").await.expect("list") {
        store.delete(&p).await.expect("delete");
    }
}
