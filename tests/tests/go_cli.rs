//! The real go command against the reference server. There is no `go` command that
//! uploads, so modules are published as an uploader does (a `PUT` of the module zip, built
//! here in the `go mod zip` layout); everything else is the go command itself: a module
//! with two packages depending on another private module is downloaded (`go mod download
//! -json` reports the `h1:` this test computes), listed (`go list -m -versions`), and built
//! into a program through a proxy registry whose upstream is the local one; an upper-case
//! module path round-trips; with the upstream stopped, cached modules still download; and a
//! release-age gate hides a young version from `go list` and refuses `go get` of it with
//! the rule's reason.
//!
//! Every go invocation runs with a cleared environment: `HOME`, `GOPATH` and `GOMODCACHE` in
//! the test's temporary directory (the build cache is shared under `target/`), `GOPROXY`
//! naming one registry, no checksum database, and an HTTP proxy that does not exist (with
//! loopback exempt), so nothing but the loopback servers can be reached.

use std::io::{Cursor, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use batlehub_e2e::{
    ADMIN_TOKEN, CmdOutput, Server, http_client, run_command_within, scratch, start_server,
    stop_server, storage_toml, tokens_toml,
};
use batlehub_test::sumdb::{FakeSumdb, escape};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long one go command may take.
const GO_TIMEOUT: Duration = Duration::from_secs(180);

/// The GOPROXY URL of registry `name` on `server`.
fn goproxy(server: &Server, name: &str) -> String {
    format!("{}/proxy/{name}", server.url())
}

/// A module zip of `module@version` holding `files` (paths relative to the module root).
fn module_zip(module: &str, version: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, text) in files {
        w.start_file(
            format!("{module}@{version}/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .expect("zip entry");
        w.write_all(text.as_bytes()).expect("zip write");
    }
    w.finish().expect("zip").into_inner()
}

/// The `h1:` hash of a zip, computed as the go command does (independently of the server).
fn h1(zip: &[u8]) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        let name = f.name().expect("entry name").into_owned();
        files.push((name, hex::encode(Sha256::digest(&data))));
    }
    // Sorted by name, then one `sha256sum` line each.
    files.sort();
    let summary: String = files
        .iter()
        .map(|(name, hex)| format!("{hex}  {name}\n"))
        .collect();
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary))
    )
}

/// Publishes a module zip as an uploader does; returns the zip.
async fn publish(
    server: &Server,
    registry: &str,
    module: &str,
    version: &str,
    files: &[(&str, &str)],
) -> Vec<u8> {
    let zip = module_zip(module, version, files);
    let r = http_client()
        .put(format!(
            "{}/{}/@v/{}.zip",
            goproxy(server, registry),
            escape(module),
            escape(version)
        ))
        .bearer_auth(ADMIN_TOKEN)
        .body(zip.clone())
        .send()
        .await
        .expect("PUT");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, 201, "publish {module}@{version}: {body}");
    assert!(
        body.contains(&h1(&zip)),
        "the server's h1 is the go command's: {body}"
    );
    zip
}

/// The real go command, isolated in a temporary home.
struct Go {
    home: PathBuf,
    gopath: PathBuf,
    modcache: PathBuf,
    /// `GOSUMDB`: `off`, or a database's verifier key.
    sumdb: String,
}

impl Go {
    fn new(root: &Path) -> Self {
        let go = Self {
            home: root.join("home"),
            gopath: root.join("gopath"),
            modcache: root.join("modcache"),
            sumdb: "off".into(),
        };
        for dir in [&go.home, &go.gopath] {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        go
    }

    /// A fresh module cache (the next commands download everything again).
    fn clear_cache(&mut self, root: &Path, name: &str) {
        self.modcache = root.join(name);
    }

    /// The build cache, shared by every test run (compiled packages only).
    fn build_cache() -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
            PathBuf::from,
        );
        target.join("go-build-cache")
    }

    /// Runs `go ARGS` in `cwd` with `GOPROXY=proxy`.
    async fn run(&self, cwd: &Path, proxy: &str, args: &[&str]) -> CmdOutput {
        let mut cmd = tokio::process::Command::new("go");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GOPATH", &self.gopath)
            .env("GOMODCACHE", &self.modcache)
            .env("GOCACHE", Self::build_cache())
            .env("GOPROXY", proxy)
            .env("GOSUMDB", &self.sumdb)
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .env("GO111MODULE", "on")
            // Anything but loopback goes to a proxy that does not exist.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let line = format!(
            "go {}  (in {}; is golang-go installed?)",
            args.join(" "),
            cwd.display()
        );
        run_command_within(cmd, line, GO_TIMEOUT).await
    }
}

/// `go mod download -json MODULE@VERSION`, parsed.
async fn download(go: &Go, cwd: &Path, proxy: &str, module: &str, version: &str) -> Value {
    let out = go
        .run(
            cwd,
            proxy,
            &["mod", "download", "-json", &format!("{module}@{version}")],
        )
        .await
        .success()
        .stdout;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("go mod download -json: {e}\n{out}"))
}

const DEP_MOD: &str = "module example.com/dep\n\ngo 1.19\n";
const DEP_GO: &str = "package dep\n\n// Greeting says hello.\nfunc Greeting() string { return \"hello from dep\" }\n";
const LIB_MOD: &str = "module example.com/lib\n\ngo 1.19\n\nrequire example.com/dep v1.0.0\n";
const LIB_GO: &str = "package lib\n\nimport \"example.com/dep\"\n\n// Hello greets through dep.\nfunc Hello() string { return dep.Greeting() + \" via lib\" }\n";
const SUB_GO: &str = "package sub\n\n// Answer is the answer.\nconst Answer = 42\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_downloads_lists_and_builds_through_local_and_proxy_registries() {
    let tmp = scratch();
    let upstream_dir = tmp.path().join("upstream");
    let upstream = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"go\"\ntype = \"go\"\nmode = \"local\"\n",
        storage_toml(&upstream_dir),
        tokens_toml(),
    ))
    .await;
    let dep = publish(
        &upstream,
        "go",
        "example.com/dep",
        "v1.0.0",
        &[("go.mod", DEP_MOD), ("dep.go", DEP_GO)],
    )
    .await;
    let lib = publish(
        &upstream,
        "go",
        "example.com/lib",
        "v1.0.0",
        &[
            ("go.mod", LIB_MOD),
            ("lib.go", LIB_GO),
            ("sub/sub.go", SUB_GO),
        ],
    )
    .await;
    publish(
        &upstream,
        "go",
        "example.com/lib",
        "v1.1.0",
        &[
            ("go.mod", LIB_MOD),
            ("lib.go", LIB_GO),
            ("sub/sub.go", SUB_GO),
        ],
    )
    .await;
    let upper_mod = "module example.com/Org/Mod\n\ngo 1.19\n";
    let upper = publish(
        &upstream,
        "go",
        "example.com/Org/Mod",
        "v1.0.0",
        &[
            ("go.mod", upper_mod),
            (
                "mod.go",
                "package mod\n\n// Name names it.\nconst Name = \"Mod\"\n",
            ),
        ],
    )
    .await;

    // The proxy registry: its upstream is the local registry of the other server.
    let proxy_dir = tmp.path().join("proxy");
    let mirror = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"mirror\"\ntype = \"goproxy\"\nmode = \"proxy\"\nupstreams = [\"{}/\"]\n",
        storage_toml(&proxy_dir),
        tokens_toml(),
        goproxy(&upstream, "go"),
    ))
    .await;
    let local = goproxy(&upstream, "go");
    let proxied = goproxy(&mirror, "mirror");
    let mut go = Go::new(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");

    // The h1 the go command verifies is the one computed here, through both registries.
    for (proxy, cache) in [(&local, "cache-local"), (&proxied, "cache-proxied")] {
        go.clear_cache(tmp.path(), cache);
        let got = download(&go, &work, proxy, "example.com/lib", "v1.0.0").await;
        assert_eq!(got["Sum"], h1(&lib), "{got}");
        assert_eq!(got["Version"], "v1.0.0");
        let got = download(&go, &work, proxy, "example.com/dep", "v1.0.0").await;
        assert_eq!(got["Sum"], h1(&dep), "{got}");
        // An upper-case module path round-trips (`!o`rg/`!m`od in URLs).
        let got = download(&go, &work, proxy, "example.com/Org/Mod", "v1.0.0").await;
        assert_eq!(got["Sum"], h1(&upper), "{got}");
        assert_eq!(got["Path"], "example.com/Org/Mod");
        let out = go
            .run(
                &work,
                proxy,
                &["list", "-m", "-versions", "example.com/lib"],
            )
            .await
            .success()
            .stdout;
        assert_eq!(out.trim(), "example.com/lib v1.0.0 v1.1.0", "{out}");
    }

    // A program importing both packages of lib (and so dep), built through the proxy.
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("go.mod"),
        "module example.com/app\n\ngo 1.19\n\nrequire example.com/lib v1.0.0\n",
    )
    .expect("go.mod");
    std::fs::write(
        app.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/lib\"\n\t\"example.com/lib/sub\"\n)\n\nfunc main() { fmt.Println(lib.Hello(), sub.Answer) }\n",
    )
    .expect("main.go");
    go.clear_cache(tmp.path(), "cache-build");
    go.run(&app, &proxied, &["mod", "tidy"]).await.success();
    go.run(&app, &proxied, &["build", "-o", "app", "."])
        .await
        .success();
    let ran = std::process::Command::new(app.join("app"))
        .output()
        .expect("run the program");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "hello from dep via lib 42"
    );
    let sums = std::fs::read_to_string(app.join("go.sum")).expect("go.sum");
    assert!(
        sums.contains(&format!("example.com/lib v1.0.0 {}", h1(&lib))),
        "{sums}"
    );

    // With the upstream stopped, what the proxy cached still downloads into a fresh cache.
    stop_server(upstream).await;
    go.clear_cache(tmp.path(), "cache-offline");
    let got = download(&go, &work, &proxied, "example.com/lib", "v1.0.0").await;
    assert_eq!(got["Sum"], h1(&lib), "{got}");
    let got = download(&go, &work, &proxied, "example.com/Org/Mod", "v1.0.0").await;
    assert_eq!(got["Sum"], h1(&upper), "{got}");
    stop_server(mirror).await;
}

/// Serves `module@version` (`.info` with `time`, `.mod`, `.zip` of `files`) on a wiremock
/// GOPROXY; returns the zip.
async fn mount_version(
    upstream: &MockServer,
    module: &str,
    version: &str,
    time: &str,
    files: &[(&str, &str)],
) -> Vec<u8> {
    let zip = module_zip(module, version, files);
    let go_mod = files
        .iter()
        .find(|(name, _)| *name == "go.mod")
        .map_or("", |(_, text)| text);
    for (file, body) in [
        (
            format!("{version}.info"),
            format!(r#"{{"Version":"{version}","Time":"{time}"}}"#).into_bytes(),
        ),
        (format!("{version}.mod"), go_mod.as_bytes().to_vec()),
        (format!("{version}.zip"), zip.clone()),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/{module}/@v/{file}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .mount(upstream)
            .await;
    }
    zip
}

/// The `h1:` of a `go.mod` as `go.sum` records it (`module version/go.mod h1:...`).
fn go_mod_h1(text: &str) -> String {
    let summary = format!("{}  go.mod\n", hex::encode(Sha256::digest(text)));
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_command_and_the_proxy_both_verify_the_checksum_database() {
    // An upstream GOPROXY and, on the same server, a checksum database (a signed
    // transparency log) vouching for its module.
    let upstream = MockServer::start().await;
    let module = "example.com/signed";
    let go_mod = format!("module {module}\n\ngo 1.19\n");
    let files = [("go.mod", go_mod.as_str()), ("s.go", "package signed\n")];
    let zip = mount_version(&upstream, module, "v1.0.0", "2020-01-01T00:00:00Z", &files).await;
    let (zip_h1, mod_h1) = (h1(&zip), go_mod_h1(&go_mod));
    let db = FakeSumdb::new(
        "sum.example.org",
        7,
        700,
        &[(module, "v1.0.0", &zip_h1, &mod_h1)],
    );
    let key = db.key();
    Mock::given(method("GET"))
        .and(path_regex("^/db/"))
        .respond_with(db)
        .mount(&upstream)
        .await;

    // A proxy registry checking every lookup with the database's key.
    let tmp = scratch();
    let server = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"checked\"\ntype = \"go\"\nmode = \"proxy\"\nupstreams = [\"{uri}/\"]\n\
         checksum_db = \"{uri}/db/\"\nchecksum_db_key = \"{key}\"\n",
        storage_toml(&tmp.path().join("data")),
        tokens_toml(),
        uri = upstream.uri(),
    ))
    .await;
    let proxy = goproxy(&server, "checked");

    // The go command, given the same key, reaches the database through the proxy (under the
    // key's name) and verifies the tree, the proofs and the module's hashes itself.
    let mut go = Go::new(tmp.path());
    go.sumdb = key;
    let got = download(&go, tmp.path(), &proxy, module, "v1.0.0").await;
    assert_eq!(got["Sum"], zip_h1, "{got}");
    assert_eq!(got["GoModSum"], mod_h1, "{got}");
    let latest = go.gopath.join("pkg/sumdb/sum.example.org/latest");
    let latest = std::fs::read_to_string(&latest)
        .unwrap_or_else(|e| panic!("the go command kept no verified tree at {latest:?}: {e}"));
    assert!(
        latest.starts_with("go.sum database tree\n704\n"),
        "{latest}"
    );

    // A module the database does not know is refused by the proxy, and the go command says
    // why.
    let other = "example.com/unsigned";
    let other_mod = format!("module {other}\n\ngo 1.19\n");
    let other_files = [
        ("go.mod", other_mod.as_str()),
        ("u.go", "package unsigned\n"),
    ];
    mount_version(
        &upstream,
        other,
        "v1.0.0",
        "2020-01-01T00:00:00Z",
        &other_files,
    )
    .await;
    let refused = go
        .run(
            tmp.path(),
            &proxy,
            &["mod", "download", "-json", &format!("{other}@v1.0.0")],
        )
        .await
        .failure();
    let refused = format!("{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.contains("not in the checksum database"),
        "the go command shows the proxy's reason:\n{refused}"
    );
    stop_server(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_version_is_hidden_and_refused_with_the_rule() {
    // An upstream GOPROXY with an old version and one published just now.
    let upstream = MockServer::start().await;
    let module = "example.com/young";
    let go_mod = format!("module {module}\n\ngo 1.19\n");
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (version, time) in [("v1.0.0", "2020-01-01T00:00:00Z"), ("v1.1.0", now.as_str())] {
        let files = [("go.mod", go_mod.as_str()), ("y.go", "package young\n")];
        mount_version(&upstream, module, version, time, &files).await;
    }
    Mock::given(method("GET"))
        .and(path(format!("/{module}/@v/list")))
        .respond_with(ResponseTemplate::new(200).set_body_string("v1.0.0\nv1.1.0\n"))
        .mount(&upstream)
        .await;

    let tmp = scratch();
    let server = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"gated\"\ntype = \"go\"\nmode = \"proxy\"\nupstreams = [\"{}/\"]\n\
         [[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(&tmp.path().join("data")),
        tokens_toml(),
        upstream.uri(),
    ))
    .await;
    let proxy = goproxy(&server, "gated");
    let go = Go::new(tmp.path());
    let out = go
        .run(tmp.path(), &proxy, &["list", "-m", "-versions", module])
        .await
        .success()
        .stdout;
    assert_eq!(out.trim(), format!("{module} v1.0.0"), "{out}");

    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(app.join("go.mod"), "module example.com/app\n\ngo 1.19\n").expect("go.mod");
    let refused = go
        .run(&app, &proxy, &["get", &format!("{module}@v1.1.0")])
        .await
        .failure();
    let refused = format!("{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused.contains("release-age gate") && refused.contains("403"),
        "the go command shows the rule's reason:\n{refused}"
    );
    // The old version is fine.
    go.run(&app, &proxy, &["get", &format!("{module}@v1.0.0")])
        .await
        .success();
    stop_server(server).await;
}

#[tokio::test]
async fn zero_config_serves_go() {
    let dir = scratch();
    let server = batlehub_e2e::start_config(&batlehub_e2e::Config::zero_config(dir.path())).await;
    let root = goproxy(&server, "go");
    let client = http_client();
    let missing = client
        .get(format!("{root}/example.com/m/@v/list"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    assert!(
        missing
            .text()
            .await
            .expect("body")
            .contains("example.com/m")
    );
    let put = client
        .put(format!("{root}/example.com/m/@v/v1.0.0.zip"))
        .body("zip")
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), 401);
    assert_eq!(
        put.headers()["www-authenticate"],
        "Basic realm=\"batlehub\""
    );
    stop_server(server).await;
}
