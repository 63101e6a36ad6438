//! The zero-config path of the reference server (what `batlehub-server` with no arguments
//! does, driven through the library): a persistent generated admin token, and a local npm
//! registry that the real npm CLI can publish to and install from with nothing but the two
//! `.npmrc` lines the README documents.

use batlehub_e2e::{
    Config, Npm, auth_line, registry_url, scratch, start_config, stop_server, write_consumer,
    write_package,
};
use batlehub_server::config::{TokenRole, TokenToml};

#[test]
fn admin_token_is_generated_once_and_private() {
    let tmp = scratch();
    let data = tmp.path().join("data");
    let (token, created) = batlehub_server::admin_token(&data).expect("create the admin token");
    assert!(created, "the first call creates the token");
    assert!(
        token.starts_with("bh_") && token.len() > 40,
        "token {token:?}"
    );

    let (again, created) = batlehub_server::admin_token(&data).expect("read the admin token");
    assert!(!created, "the second call reads the existing token");
    assert_eq!(again, token);

    let file = data.join("admin-token");
    assert_eq!(
        std::fs::read_to_string(&file)
            .expect("read admin-token")
            .trim(),
        token
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file)
            .expect("stat admin-token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "admin-token mode {mode:o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_server_publishes_and_installs_with_two_npmrc_lines() {
    let tmp = scratch();
    let data = tmp.path().join("data");

    // What `run(None, _, Some(data))` does before serving.
    let mut config = Config::zero_config(&data);
    let (token, _) = batlehub_server::admin_token(&data).expect("admin token");
    config.auth.tokens.push(TokenToml {
        name: "admin".into(),
        value: Some(token.clone()),
        hash: None,
        role: TokenRole::Admin,
        groups: Vec::new(),
        id: None,
    });
    let server = start_config(&config).await;
    let registry = registry_url(&server, "npm");

    // Only the `.npmrc` (no npm_config_registry in the environment).
    let npm = Npm::new(&tmp.path().join("home")).await;
    npm.write_npmrc(&[format!("registry={registry}"), auth_line(&registry, &token)]);

    let pkg = tmp.path().join("pkg");
    write_package(&pkg, "e2e-zero", "1.0.0", &[]);
    npm.run(None, &pkg, &["publish"]).await.success();

    let whoami = npm.run(None, &pkg, &["whoami"]).await.success();
    assert_eq!(whoami.stdout.trim(), "admin", "{whoami}");

    let project = tmp.path().join("project");
    write_consumer(&project);
    let out = npm
        .run(None, &project, &["install", "e2e-zero"])
        .await
        .success();
    assert!(
        project.join("node_modules/e2e-zero/package.json").is_file(),
        "{out}"
    );
    let loaded = npm
        .node(&project, "process.stdout.write(require('e2e-zero'))")
        .await
        .success();
    assert_eq!(loaded.stdout, "e2e-zero@1.0.0", "{loaded}");

    assert!(
        data.join("batlehub.db").is_file(),
        "the database lives in the data directory"
    );
    assert!(
        data.join("blobs").is_dir(),
        "blobs live in the data directory"
    );
    stop_server(server).await;
}
