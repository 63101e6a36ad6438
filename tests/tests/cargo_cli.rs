//! The real cargo against the reference server: publish two crates (one depending on the
//! other through a `dep:` feature) to a local registry, build a third crate through a proxy
//! of it configured as a source replacement, yank and unyank, manage owners, search; a
//! registry with `auth-required`; and a release-age gate that cargo's resolver respects.
//!
//! Every cargo invocation runs with a cleared environment, `CARGO_HOME` and `HOME` in the
//! test's temporary directory, and an HTTP proxy that does not exist (with loopback exempt),
//! so nothing but the loopback servers can be reached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use batlehub_e2e::{
    ADMIN_TOKEN, CmdOutput, Server, USER_TOKEN, http_client, scratch, start_server, stop_server,
    storage_toml, tokens_toml,
};
use serde_json::Value;

/// How long one cargo command may take.
const CARGO_TIMEOUT: Duration = Duration::from_secs(120);

/// The sparse index URL (`sparse+...`) of registry `name` on `server`.
fn index_url(server: &Server, name: &str) -> String {
    format!("sparse+{}/proxy/{name}/registry/", server.url())
}

/// The real cargo, isolated in a temporary home.
struct Cargo {
    home: PathBuf,
    cargo_home: PathBuf,
    target: PathBuf,
}

impl Cargo {
    /// A cargo whose `CARGO_HOME/config.toml` is `config`.
    fn new(root: &Path, config: &str) -> Self {
        let home = root.join("home");
        let cargo_home = root.join("cargo-home");
        std::fs::create_dir_all(&home).expect("create HOME");
        std::fs::create_dir_all(&cargo_home).expect("create CARGO_HOME");
        std::fs::write(cargo_home.join("config.toml"), config).expect("write config.toml");
        Self {
            home,
            cargo_home,
            target: root.join("target"),
        }
    }

    /// The cargo that runs these tests (so the toolchain matches), else `cargo` on PATH.
    fn program() -> PathBuf {
        std::env::var_os("CARGO")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("cargo"))
    }

    /// Runs `cargo ARGS` in `cwd` with `env` added to the isolated environment.
    async fn run(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
        let program = Self::program();
        let mut cmd = tokio::process::Command::new(&program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CARGO_HOME", &self.cargo_home)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_TERM_COLOR", "never")
            .env("CARGO_TERM_PROGRESS_WHEN", "never")
            .env("CARGO_NET_RETRY", "0")
            .env("CARGO_HTTP_TIMEOUT", "30")
            // Anything but loopback goes to a proxy that does not exist.
            .env("CARGO_HTTP_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        // The toolchain's own rustc, so rustup's proxies need no home of their own.
        if let Some(dir) = program.parent()
            && dir.join("rustc").is_file()
        {
            cmd.env("RUSTC", dir.join("rustc"));
        }
        for var in ["RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
            if let Some(v) = std::env::var_os(var) {
                cmd.env(var, v);
            }
        }
        if std::env::var_os("RUSTUP_HOME").is_none()
            && let Some(real_home) = std::env::var_os("HOME")
        {
            cmd.env("RUSTUP_HOME", Path::new(&real_home).join(".rustup"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let line = format!("cargo {}  (in {})", args.join(" "), cwd.display());
        let started = Instant::now();
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}` ({}): {e}", program.display()));
        let out = tokio::time::timeout(CARGO_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("`{line}` did not finish within {CARGO_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("waiting for `{line}`: {e}"));
        let result = CmdOutput {
            command: line,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        if std::env::var_os("BATLEHUB_E2E_VERBOSE").is_some() {
            eprintln!("[e2e] {result}");
        } else {
            eprintln!(
                "[e2e] {} -> {} in {:.1?}",
                result.command, result.status, result.elapsed
            );
        }
        result
    }
}

/// Writes a library crate: `Cargo.toml` with `extra` appended, and `src/lib.rs`.
fn write_lib(dir: &Path, name: &str, version: &str, extra: &str, lib_rs: &str) {
    std::fs::create_dir_all(dir.join("src")).expect("create crate dir");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n\
             description = \"batlehub end-to-end test crate {name}\"\nlicense = \"MIT\"\n\n{extra}"
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/lib.rs"), lib_rs).expect("write lib.rs");
}

/// Writes a binary crate `bh_app` with `deps` as its `[dependencies]` and `main_rs`.
fn write_app(dir: &Path, deps: &str, main_rs: &str) {
    std::fs::create_dir_all(dir.join("src")).expect("create app dir");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bh_app\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\n{deps}"
        ),
    )
    .expect("write Cargo.toml");
    std::fs::write(dir.join("src/main.rs"), main_rs).expect("write main.rs");
}

/// The version locked for `name` in `dir/Cargo.lock`.
fn locked_version(dir: &Path, name: &str) -> Option<String> {
    let lock = std::fs::read_to_string(dir.join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("name = \"{name}\"") {
            return lines
                .next()
                .and_then(|v| v.trim().strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// The parsed index lines of `name` on registry `reg` of `server`, as `token`.
async fn index_lines(server: &Server, reg: &str, name: &str, token: Option<&str>) -> Vec<Value> {
    let lower = name.to_ascii_lowercase();
    let prefix = match lower.len() {
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", &lower[..1]),
        _ => format!("{}/{}", &lower[..2], &lower[2..4]),
    };
    let url = format!("{}/proxy/{reg}/registry/{prefix}/{lower}", server.url());
    let mut req = http_client().get(&url);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let resp = req.send().await.expect("GET index file");
    let status = resp.status();
    let text = resp.text().await.expect("index body");
    assert_eq!(status, 200, "GET {url}: {text}");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("index line is JSON"))
        .collect()
}

const BASE_RS: &str = "pub fn base() -> u32 { 41 }\n";
const TOP_RS: &str = "#[cfg(feature = \"base\")]\npub fn top() -> u32 { bh_base::base() + 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_build_through_a_mirror_yank_owners_search() {
    let tmp = scratch();
    let upstream = start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"crates\"\ntype = \"cargo\"\nmode = \"local\"\n",
        storage_toml(&tmp.path().join("upstream")),
        tokens_toml()
    ))
    .await;
    let cargo = Cargo::new(
        tmp.path(),
        &format!(
            "[registries.local]\nindex = \"{}\"\n",
            index_url(&upstream, "crates")
        ),
    );
    let admin = [("CARGO_REGISTRIES_LOCAL_TOKEN", ADMIN_TOKEN)];
    let user = [("CARGO_REGISTRIES_LOCAL_TOKEN", USER_TOKEN)];

    // Two crates: bh_top depends on bh_base through a `dep:` feature.
    let base = tmp.path().join("bh_base");
    write_lib(&base, "bh_base", "0.1.0", "", BASE_RS);
    cargo
        .run(
            &base,
            &["publish", "--registry", "local", "--allow-dirty"],
            &admin,
        )
        .await
        .success();
    let top = tmp.path().join("bh_top");
    write_lib(
        &top,
        "bh_top",
        "0.1.0",
        "[dependencies]\nbh_base = { version = \"0.1\", registry = \"local\", optional = true }\n\n\
         [features]\ndefault = [\"base\"]\nbase = [\"dep:bh_base\"]\n",
        TOP_RS,
    );
    cargo
        .run(
            &top,
            &["publish", "--registry", "local", "--allow-dirty"],
            &admin,
        )
        .await
        .success();
    let lines = index_lines(&upstream, "crates", "bh_top", None).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["v"], 2, "{}", lines[0]);
    assert_eq!(
        lines[0]["features2"]["base"][0], "dep:bh_base",
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["deps"][0]["name"], "bh_base", "{}", lines[0]);
    assert_eq!(lines[0]["deps"][0]["registry"], Value::Null, "{}", lines[0]);
    assert!(lines[0]["pubtime"].is_string(), "{}", lines[0]);

    // A third crate builds through a proxy of the local registry, configured as a
    // replacement of the default source.
    let mirror = start_server(&format!(
        "{}\n[[registries]]\nname = \"mirror\"\ntype = \"cargo\"\nmode = \"proxy\"\nupstreams = [\"{}\"]\n",
        storage_toml(&tmp.path().join("mirror")),
        index_url(&upstream, "crates")
    ))
    .await;
    let app = tmp.path().join("bh_app");
    write_app(
        &app,
        "bh_top = \"0.1\"\n",
        "fn main() { println!(\"top = {}\", bh_top::top()); }\n",
    );
    std::fs::create_dir_all(app.join(".cargo")).expect("create .cargo");
    std::fs::write(
        app.join(".cargo/config.toml"),
        format!(
            "[source.crates-io]\nreplace-with = \"mirror\"\n\n[source.mirror]\nregistry = \"{}\"\n",
            index_url(&mirror, "mirror")
        ),
    )
    .expect("write .cargo/config.toml");
    let out = cargo.run(&app, &["run", "--quiet"], &[]).await.success();
    assert_eq!(out.stdout.trim(), "top = 42", "{out}");
    assert_eq!(locked_version(&app, "bh_base").as_deref(), Some("0.1.0"));

    // Yank and unyank.
    cargo
        .run(
            &base,
            &["yank", "--registry", "local", "bh_base@0.1.0"],
            &admin,
        )
        .await
        .success();
    assert_eq!(
        index_lines(&upstream, "crates", "bh_base", None).await[0]["yanked"],
        true
    );
    cargo
        .run(
            &base,
            &["yank", "--undo", "--registry", "local", "bh_base@0.1.0"],
            &admin,
        )
        .await
        .success();
    assert_eq!(
        index_lines(&upstream, "crates", "bh_base", None).await[0]["yanked"],
        false
    );

    // bob may not yank until he owns the crate.
    let refused = cargo
        .run(
            &base,
            &["yank", "--registry", "local", "bh_base@0.1.0"],
            &user,
        )
        .await
        .failure();
    assert!(
        refused.combined_lower().contains("is not an owner of"),
        "{refused}"
    );
    cargo
        .run(
            &base,
            &["owner", "--registry", "local", "--add", "bob", "bh_base"],
            &admin,
        )
        .await
        .success();
    let list = cargo
        .run(
            &base,
            &["owner", "--registry", "local", "--list", "bh_base"],
            &user,
        )
        .await
        .success();
    let owners: Vec<&str> = list.stdout.lines().map(str::trim).collect();
    assert_eq!(owners, ["alice", "bob"], "{list}");
    cargo
        .run(
            &base,
            &[
                "owner",
                "--registry",
                "local",
                "--remove",
                "alice",
                "bh_base",
            ],
            &user,
        )
        .await
        .success();
    let list = cargo
        .run(
            &base,
            &["owner", "--registry", "local", "--list", "bh_base"],
            &admin,
        )
        .await
        .success();
    assert_eq!(list.stdout.trim(), "bob", "{list}");
    let last = cargo
        .run(
            &base,
            &["owner", "--registry", "local", "--remove", "bob", "bh_base"],
            &user,
        )
        .await
        .failure();
    assert!(
        last.combined_lower().contains("cannot remove every owner"),
        "{last}"
    );

    // Search.
    let found = cargo
        .run(&base, &["search", "--registry", "local", "bh_"], &[])
        .await
        .success();
    assert!(
        found.stdout.contains("bh_base = \"0.1.0\"") && found.stdout.contains("bh_top = \"0.1.0\""),
        "{found}"
    );
    assert!(
        found
            .stdout
            .contains("batlehub end-to-end test crate bh_top"),
        "{found}"
    );

    // Re-publishing a version is refused (cargo checks the index before uploading; the
    // registry refuses it too).
    let again = cargo
        .run(
            &base,
            &["publish", "--registry", "local", "--allow-dirty"],
            &admin,
        )
        .await
        .failure();
    let text = again.combined_lower();
    assert!(
        text.contains("already exists") || text.contains("is already uploaded"),
        "{again}"
    );

    stop_server(mirror).await;
    stop_server(upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_required_registry_needs_the_token() {
    let tmp = scratch();
    let server = start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"private\"\ntype = \"cargo\"\nmode = \"local\"\n\
         [registries.rbac]\nanonymous = []\n",
        storage_toml(&tmp.path().join("data")),
        tokens_toml()
    ))
    .await;
    let config = reqwest_status(&server, "/proxy/private/registry/config.json", None).await;
    assert_eq!(config.0, 401, "{}", config.1);
    let config = reqwest_status(
        &server,
        "/proxy/private/registry/config.json",
        Some(USER_TOKEN),
    )
    .await;
    assert_eq!(config.0, 200);
    assert!(config.1.contains("\"auth-required\":true"), "{}", config.1);

    let cargo = Cargo::new(
        tmp.path(),
        &format!(
            // cargo sends tokens to an authenticated registry only through a configured
            // credential provider; `cargo:token` reads CARGO_REGISTRIES_PRIVATE_TOKEN.
            "[registries.private]\nindex = \"{}\"\ncredential-provider = \"cargo:token\"\n",
            index_url(&server, "private")
        ),
    );
    let token = [("CARGO_REGISTRIES_PRIVATE_TOKEN", USER_TOKEN)];
    let secret = tmp.path().join("bh_secret");
    write_lib(
        &secret,
        "bh_secret",
        "1.0.0",
        "",
        "pub fn secret() -> u32 { 7 }\n",
    );
    cargo
        .run(
            &secret,
            &["publish", "--registry", "private", "--allow-dirty"],
            &token,
        )
        .await
        .success();

    let app = tmp.path().join("bh_app");
    write_app(
        &app,
        "bh_secret = { version = \"1\", registry = \"private\" }\n",
        "fn main() { println!(\"secret = {}\", bh_secret::secret()); }\n",
    );
    let without = cargo.run(&app, &["fetch"], &[]).await.failure();
    let text = without.combined_lower();
    assert!(
        text.contains("token") && text.contains("private"),
        "cargo must say a token for `private` is missing\n{without}"
    );
    let wrong = cargo
        .run(
            &app,
            &["fetch"],
            &[("CARGO_REGISTRIES_PRIVATE_TOKEN", "not-a-token")],
        )
        .await
        .failure();
    assert!(wrong.combined_lower().contains("401"), "{wrong}");
    let out = cargo.run(&app, &["run", "--quiet"], &token).await.success();
    assert_eq!(out.stdout.trim(), "secret = 7", "{out}");
    stop_server(server).await;
}

/// A GET with an optional raw token: status and body.
async fn reqwest_status(server: &Server, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http_client().get(format!("{}{path}", server.url()));
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let resp = req.send().await.expect("GET");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// A `.crate` for `name@version` exporting `fn version()`.
fn dot_crate(name: &str, version: &str) -> Vec<u8> {
    let files = [
        (
            format!("{name}-{version}/Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n"),
        ),
        (
            format!("{name}-{version}/src/lib.rs"),
            format!("pub fn version() -> &'static str {{ \"{version}\" }}\n"),
        ),
    ];
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data.as_bytes())
            .expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).expect("gz");
    gz.finish().expect("gz")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_young_version_is_not_selected_and_forcing_it_fails_with_the_reason() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // An upstream sparse index: 1.0.0 published long ago, 1.1.0 an hour ago.
    let up = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/config.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "dl": format!("{}/dl", up.uri()) })),
        )
        .mount(&up)
        .await;
    let fresh = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut index = String::new();
    for (version, pubtime) in [("1.0.0", "2020-01-01T00:00:00Z"), ("1.1.0", fresh.as_str())] {
        let bytes = dot_crate("bh_gated", version);
        index.push_str(
            &serde_json::json!({
                "name": "bh_gated", "vers": version, "deps": [], "features": {},
                "cksum": hex_sha256(&bytes), "yanked": false, "pubtime": pubtime,
            })
            .to_string(),
        );
        index.push('\n');
        Mock::given(method("GET"))
            .and(path(format!("/dl/bh_gated/{version}/download")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(&up)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/bh/_g/bh_gated"))
        .respond_with(ResponseTemplate::new(200).set_body_string(index))
        .mount(&up)
        .await;

    let tmp = scratch();
    let server = start_server(&format!(
        "{}\n[[registries]]\nname = \"gated\"\ntype = \"cargo\"\nmode = \"proxy\"\nupstreams = [\"{}/\"]\n\
         [[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(&tmp.path().join("data")),
        up.uri()
    ))
    .await;
    let cargo = Cargo::new(
        tmp.path(),
        &format!(
            "[registries.gated]\nindex = \"{}\"\n",
            index_url(&server, "gated")
        ),
    );
    let app = tmp.path().join("bh_app");
    write_app(
        &app,
        "bh_gated = { version = \"1\", registry = \"gated\" }\n",
        "fn main() { println!(\"gated = {}\", bh_gated::version()); }\n",
    );
    let out = cargo.run(&app, &["run", "--quiet"], &[]).await.success();
    assert_eq!(out.stdout.trim(), "gated = 1.0.0", "{out}");
    cargo.run(&app, &["update"], &[]).await.success();
    assert_eq!(locked_version(&app, "bh_gated").as_deref(), Some("1.0.0"));

    // Forcing the young version: cargo may lock it (it is shown as yanked), but the
    // download is refused and cargo prints the rule's reason.
    let precise = cargo
        .run(
            &app,
            &["update", "-p", "bh_gated", "--precise", "1.1.0"],
            &[],
        )
        .await;
    eprintln!("[e2e] cargo update --precise 1.1.0 printed:\n{precise}");
    let forced = if precise.status.success() {
        // cargo 1.78+ lets --precise pick a yanked version, with a warning.
        assert!(precise.combined_lower().contains("yanked"), "{precise}");
        cargo.run(&app, &["build"], &[]).await.failure()
    } else {
        precise
    };
    let text = forced.combined_lower();
    assert!(
        text.contains("younger than the release-age gate"),
        "forcing 1.1.0 must fail with the rule's reason\n{forced}"
    );
    eprintln!("[e2e] forcing the gated version printed:\n{forced}");
    stop_server(server).await;
}

/// Lowercase hex sha256 of `bytes` (the e2e package borrows the engine's hasher).
fn hex_sha256(bytes: &[u8]) -> String {
    batlehub::core::digest::Digests::of(bytes).sha256_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_config_serves_a_local_cargo_registry() {
    let tmp = scratch();
    let config = batlehub_e2e::Config::zero_config(&tmp.path().join("data"));
    let server = batlehub_e2e::start_config(&config).await;
    let (status, body) = reqwest_status(&server, "/proxy/cargo/registry/config.json", None).await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).expect("config.json is JSON");
    assert_eq!(
        json["dl"],
        format!("{}/proxy/cargo/api/v1/crates", server.url()),
        "{body}"
    );
    assert_eq!(json["api"], format!("{}/proxy/cargo", server.url()));
    stop_server(server).await;
}
