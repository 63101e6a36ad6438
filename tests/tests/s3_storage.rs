//! The reference server on S3 blob storage (`[storage] type = "s3"`), against the
//! S3-compatible server at `BATLEHUB_TEST_S3_ENDPOINT` (`.ci/run` starts one): the real npm
//! CLI publishes and installs, the bytes land in the bucket under the configured prefix, and
//! a registry with `[registries.storage]` keeps its blobs apart.

use batlehub::core::BlobStore as _;
use batlehub::storage::{OpendalBlobStore, S3Config};
use batlehub_e2e::{
    ADMIN_TOKEN, Npm, auth_line, registry_url, scratch, start_server, stop_server, tokens_toml,
    toml_path, write_consumer, write_package,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_publish_and_install_with_blobs_in_s3() {
    let Ok(endpoint) = std::env::var("BATLEHUB_TEST_S3_ENDPOINT") else {
        eprintln!("skipping: BATLEHUB_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket =
        std::env::var("BATLEHUB_TEST_S3_BUCKET").unwrap_or_else(|_| "batlehub-test".into());
    let tmp = scratch();
    let prefix = format!(
        "e2e-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let own = tmp.path().join("own-blobs");
    let server = start_server(&format!(
        "[database]\nurl = \"sqlite://{db}\"\n\
         [storage]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
         prefix = \"{prefix}\"\n\
         {tokens}\n\
         [[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"local\"\n\
         [[registries]]\nname = \"team\"\ntype = \"npm\"\nmode = \"local\"\n\
         [registries.storage]\ntype = \"filesystem\"\npath = {own_path}\n",
        db = tmp.path().join("batlehub.db").display(),
        tokens = tokens_toml(),
        own_path = toml_path(&own),
    ))
    .await;
    let npm = Npm::new(&tmp.path().join("home")).await;
    let shared = registry_url(&server, "npm");
    let team = registry_url(&server, "team");
    npm.write_npmrc(&[
        auth_line(&shared, ADMIN_TOKEN),
        auth_line(&team, ADMIN_TOKEN),
    ]);

    let pkg = tmp.path().join("pkg");
    write_package(&pkg, "s3-plain", "1.0.0", &[]);
    npm.run(Some(&shared), &pkg, &["publish"]).await.success();
    let team_pkg = tmp.path().join("team-pkg");
    write_package(&team_pkg, "team-only", "1.0.0", &[]);
    npm.run(Some(&team), &team_pkg, &["publish"])
        .await
        .success();

    for (registry, name) in [(&shared, "s3-plain"), (&team, "team-only")] {
        let dir = tmp.path().join(format!("consumer-{name}"));
        write_consumer(&dir);
        let out = npm
            .run(Some(registry), &dir, &["install", name])
            .await
            .success();
        assert!(
            dir.join(format!("node_modules/{name}/package.json"))
                .is_file(),
            "{name} was not installed\n{out}"
        );
    }
    stop_server(server).await;

    // The shared registry's tarball is in the bucket, under the prefix; the team registry's
    // is on its own filesystem, not in the bucket.
    let mut config = S3Config::new(bucket);
    config.endpoint = Some(endpoint);
    config.region = Some("us-east-1".into());
    config.access_key_id = Some("test".into());
    config.secret_access_key = Some("test".into());
    config.prefix = prefix;
    let in_bucket = OpendalBlobStore::s3(&config)
        .expect("S3 store")
        .list("sha256/")
        .await
        .expect("list the bucket");
    assert_eq!(
        in_bucket.len(),
        1,
        "one tarball in the bucket: {in_bucket:?}"
    );
    let on_disk = OpendalBlobStore::filesystem(&own)
        .expect("filesystem store")
        .list("sha256/")
        .await
        .expect("list the directory");
    assert_eq!(on_disk.len(), 1, "one tarball on disk: {on_disk:?}");
    assert_ne!(in_bucket, on_disk, "each registry kept its own tarball");
}

/// `/readyz` answers `200` while the database and the bucket answer, and `503` naming the
/// blob store when the bucket's endpoint does not; `/healthz` stays `200` (the process is
/// up). Needs no S3 server: the endpoint is a port nothing listens on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_an_unreachable_bucket() {
    let tmp = scratch();
    let ready = start_server(&format!(
        "[database]\nurl = \"sqlite://{}\"\n",
        tmp.path().join("ready.db").display()
    ))
    .await;
    let http = batlehub_e2e::http_client();
    let r = http
        .get(format!("{}/readyz", ready.url()))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    stop_server(ready).await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let down = start_server(&format!(
        "[database]\nurl = \"sqlite://{db}\"\n\
         [storage]\ntype = \"s3\"\nbucket = \"gone\"\nendpoint = \"http://127.0.0.1:{port}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        db = tmp.path().join("down.db").display(),
    ))
    .await;
    let r = http
        .get(format!("{}/readyz", down.url()))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 503);
    let body = r.text().await.expect("body");
    assert!(body.contains("blob store blobs"), "{body}");
    assert!(!body.contains("database"), "{body}");
    let r = http
        .get(format!("{}/healthz", down.url()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
    stop_server(down).await;
}
