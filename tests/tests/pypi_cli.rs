//! The real Python clients against the reference server: twine uploads an sdist and a wheel
//! of one release to a local PyPI registry; pip and uv install from a proxy of it (pip reads
//! the PEP 658 `.metadata` file); a private dependency resolves; `pip download` still works
//! once the upstream has gone; and behind a release-age gate pip skips a young version and a
//! direct download of it prints the rule's reason.
//!
//! The clients live in a virtualenv: `$BATLEHUB_E2E_VENV` when set (CI creates it), else
//! `target/e2e-venv`, created on first use with `python3 -m venv` and
//! `pip install twine uv wheel build setuptools` (pip's default configuration).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use batlehub::core::digest::Digests;
use batlehub_e2e::{
    ADMIN_TOKEN, CmdOutput, Server, http_client, registry_url, scratch, start_server, stop_server,
    storage_toml, tokens_toml,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long one Python command may take.
const TIMEOUT: Duration = Duration::from_secs(300);
/// What the virtualenv must provide.
const CLIENTS: &[&str] = &["twine", "uv", "wheel", "build", "setuptools"];

/// The virtualenv with the clients, created once per machine (a lock file keeps concurrent
/// test processes from building it twice).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = std::env::var_os("BATLEHUB_E2E_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
                    .join("e2e-venv")
            });
        let ready = |dir: &Path| {
            std::process::Command::new(dir.join("bin/python"))
                .args(["-c", "import twine, build, setuptools, wheel"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
                && dir.join("bin/uv").is_file()
        };
        if ready(&dir) {
            return dir;
        }
        let parent = dir.parent().expect("the venv path has a parent");
        std::fs::create_dir_all(parent).expect("create the venv's parent directory");
        let lock = std::fs::File::create(parent.join(".e2e-venv.lock")).expect("lock file");
        lock.lock().expect("lock the venv");
        if !ready(&dir) {
            eprintln!("[e2e] creating {} with {CLIENTS:?}", dir.display());
            let status = std::process::Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&dir)
                .status()
                .unwrap_or_else(|e| {
                    panic!("the PyPI end-to-end tests need python3 with venv on PATH: {e}")
                });
            assert!(status.success(), "python3 -m venv {} failed", dir.display());
            let status = std::process::Command::new(dir.join("bin/python"))
                .args(["-m", "pip", "install", "-q", "--upgrade", "pip"])
                .args(CLIENTS)
                .status()
                .expect("run pip install in the venv");
            assert!(
                status.success(),
                "installing {CLIENTS:?} into {} failed",
                dir.display()
            );
        }
        drop(lock);
        dir
    })
}

/// Runs a program of the venv (`python`, `twine`, `uv`) isolated from the user's
/// configuration: cleared environment, its own home, no pip or uv config files.
async fn run(home: &Path, program: &str, args: &[&str]) -> CmdOutput {
    let venv = venv();
    let bin = venv.join("bin");
    std::fs::create_dir_all(home).expect("create the home directory");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new(bin.join(program));
    cmd.args(args)
        .current_dir(home)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("UV_NO_CONFIG", "1")
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_CACHE_DIR", home.join("uv-cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let line = format!("{program} {}", args.join(" "));
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not finish within {TIMEOUT:?}"))
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

/// Writes a setuptools project `name` (module `name` with `-` as `_`) exporting
/// `VALUE = "{name}@{version}"`, importing its dependencies first.
fn write_project(dir: &Path, name: &str, version: &str, deps: &[&str]) {
    let module = name.replace('-', "_");
    std::fs::create_dir_all(dir.join(&module)).expect("create the project");
    let deps_toml: Vec<String> = deps.iter().map(|d| format!("{d:?}")).collect();
    std::fs::write(
        dir.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = {name:?}\nversion = {version:?}\ndescription = \"batlehub end-to-end test package\"\n\
             requires-python = \">=3.8\"\ndependencies = [{}]\n\n[tool.setuptools]\npackages = [{module:?}]\n",
            deps_toml.join(", ")
        ),
    )
    .expect("write pyproject.toml");
    let mut py = String::new();
    for d in deps {
        let dep = d
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .next()
            .unwrap_or_default()
            .replace('-', "_");
        py.push_str(&format!("import {dep}\n"));
    }
    py.push_str(&format!("VALUE = {:?}\n", format!("{name}@{version}")));
    std::fs::write(dir.join(&module).join("__init__.py"), py).expect("write the module");
}

/// Builds the sdist and the wheel of the project in `dir` into `dir/dist`.
async fn build(home: &Path, dir: &Path) -> Vec<PathBuf> {
    let dist = dir.join("dist");
    run(
        home,
        "python",
        &[
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            dist.to_str().expect("utf-8 path"),
            dir.to_str().expect("utf-8 path"),
        ],
    )
    .await
    .success();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dist)
        .expect("dist")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "an sdist and a wheel: {files:?}");
    files
}

async fn twine_upload(home: &Path, registry: &str, files: &[PathBuf], extra: &[&str]) -> CmdOutput {
    let repo = format!("{registry}legacy/");
    let mut args = vec![
        "upload",
        "--repository-url",
        &repo,
        "-u",
        "__token__",
        "-p",
        ADMIN_TOKEN,
        "--non-interactive",
        "--disable-progress-bar",
    ];
    args.extend_from_slice(extra);
    for f in files {
        args.push(f.to_str().expect("utf-8 path"));
    }
    run(home, "twine", &args).await
}

/// `python -c SCRIPT` with `target` on `PYTHONPATH`, printing what the script prints.
async fn import_from(home: &Path, target: &Path, script: &str) -> String {
    let code = format!(
        "import sys; sys.path.insert(0, {:?}); {script}",
        target.display().to_string()
    );
    run(home, "python", &["-c", &code]).await.success().stdout
}

async fn local_server(data: &Path) -> Server {
    start_server(&format!(
        "{}\n{}\n[[registries]]\nname = \"pypi\"\ntype = \"pypi\"\nmode = \"local\"\n",
        storage_toml(data),
        tokens_toml()
    ))
    .await
}

fn blob(data: &Path, sha256: &str) -> PathBuf {
    data.join("blobs/sha256")
        .join(&sha256[0..2])
        .join(&sha256[2..4])
        .join(sha256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twine_upload_then_pip_and_uv_install_through_a_proxy_that_outlives_its_upstream() {
    let started = Instant::now();
    let tmp = scratch();
    let home = tmp.path().join("home");
    let upstream = local_server(&tmp.path().join("upstream")).await;
    let local = registry_url(&upstream, "pypi");

    // Two private projects, the second depending on the first: sdist + wheel each.
    write_project(&tmp.path().join("base"), "e2e-base", "1.0", &[]);
    write_project(
        &tmp.path().join("app"),
        "e2e-app",
        "1.0",
        &["e2e-base>=1.0"],
    );
    let base = build(&home, &tmp.path().join("base")).await;
    let app = build(&home, &tmp.path().join("app")).await;
    twine_upload(&home, &local, &base, &[]).await.success();
    twine_upload(&home, &local, &app, &[]).await.success();

    // The same file again: refused, with the reason in twine's output. (twine 7 allows
    // --skip-existing only for the public index, so that flag is not exercised here.)
    let again = twine_upload(&home, &local, &app[..1], &[]).await.failure();
    assert!(
        again.combined_lower().contains("409")
            && again.combined_lower().contains("file already exists"),
        "{again}"
    );

    let http = http_client();
    let page: Value = http
        .get(format!("{local}simple/e2e-app/"))
        .header("accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .expect("GET the project page")
        .json()
        .await
        .expect("PEP 691 JSON");
    assert_eq!(page["versions"], json!(["1.0"]), "{page}");
    assert_eq!(page["files"].as_array().map(Vec::len), Some(2), "{page}");
    let wheel = page["files"]
        .as_array()
        .and_then(|fs| {
            fs.iter()
                .find(|f| f["filename"].as_str().is_some_and(|n| n.ends_with(".whl")))
        })
        .expect("the wheel is listed")
        .clone();
    let metadata_sha = wheel["core-metadata"]["sha256"]
        .as_str()
        .expect("core-metadata advertised")
        .to_owned();
    let served = http
        .get(format!("{}.metadata", wheel["url"].as_str().expect("url")))
        .send()
        .await
        .expect("GET .metadata")
        .bytes()
        .await
        .expect("body");
    assert_eq!(Digests::of(&served).sha256_hex(), metadata_sha);

    // A proxy of it (metadata_ttl_secs = 0: every page request revalidates upstream).
    let proxy_data = tmp.path().join("proxy");
    let proxy = start_server(&format!(
        "{}\n[[registries]]\nname = \"pypi\"\ntype = \"pypi\"\nmode = \"proxy\"\nupstreams = [\"{local}simple/\"]\n\
         [registries.cache]\nmetadata_ttl_secs = 0\n",
        storage_toml(&proxy_data),
    ))
    .await;
    let index = format!("{}simple/", registry_url(&proxy, "pypi"));
    assert!(!blob(&proxy_data, &metadata_sha).exists());

    let pip_target = tmp.path().join("pip-target");
    run(
        &home,
        "python",
        &[
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            &index,
            "--target",
            pip_target.to_str().expect("utf-8"),
            "e2e-app",
        ],
    )
    .await
    .success();
    assert_eq!(
        import_from(
            &home,
            &pip_target,
            "import e2e_app, e2e_base; print(e2e_app.VALUE, e2e_base.VALUE)"
        )
        .await
        .trim(),
        "e2e-app@1.0 e2e-base@1.0"
    );
    // pip asked the proxy for the wheel's .metadata (PEP 658): the proxy fetched and cached
    // it from its upstream, which only happens when a client requests it.
    assert!(
        blob(&proxy_data, &metadata_sha).exists(),
        "the proxy never fetched {}.metadata",
        wheel["filename"]
    );

    let uv_target = tmp.path().join("uv-target");
    let python = venv().join("bin/python");
    run(
        &home,
        "uv",
        &[
            "pip",
            "install",
            "--no-cache",
            "--python",
            python.to_str().expect("utf-8"),
            "--index-url",
            &index,
            "--target",
            uv_target.to_str().expect("utf-8"),
            "e2e-app",
        ],
    )
    .await
    .success();
    assert_eq!(
        import_from(&home, &uv_target, "import e2e_app; print(e2e_app.VALUE)")
            .await
            .trim(),
        "e2e-app@1.0"
    );

    // The upstream goes away: the cached files still download.
    stop_server(upstream).await;
    let dest = tmp.path().join("downloaded");
    let out = run(
        &home,
        "python",
        &[
            "-m",
            "pip",
            "download",
            "--no-cache-dir",
            "--index-url",
            &index,
            "--dest",
            dest.to_str().expect("utf-8"),
            "e2e-app",
        ],
    )
    .await
    .success();
    let mut got: Vec<String> = std::fs::read_dir(&dest)
        .expect("downloads")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "e2e_app-1.0-py3-none-any.whl",
            "e2e_base-1.0-py3-none-any.whl"
        ],
        "{out}"
    );
    stop_server(proxy).await;
    eprintln!("[e2e] pypi install flow took {:.1?}", started.elapsed());
}

/// A minimal valid wheel, written by Python's zipfile (with a correct RECORD).
const MAKE_WHEEL: &str = r#"
import base64, hashlib, os, sys, zipfile
name, version, out = sys.argv[1:4]
mod = name.replace("-", "_")
dist = f"{mod}-{version}"
files = {
    f"{mod}/__init__.py": f"VALUE = {name + '@' + version!r}\n",
    f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: batlehub-e2e\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for p, c in files.items():
    d = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()
    record.append(f"{p},sha256={d},{len(c.encode())}")
record.append(f"{dist}.dist-info/RECORD,,")
files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
path = os.path.join(out, f"{dist}-py3-none-any.whl")
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
    for p, c in files.items():
        z.writestr(p, c)
print(path)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_gate_skips_a_young_version_and_a_direct_download_explains_why() {
    let tmp = scratch();
    let home = tmp.path().join("home");
    let out_dir = tmp.path().join("wheels");
    std::fs::create_dir_all(&out_dir).expect("wheels dir");
    let upstream = MockServer::start().await;
    let now = chrono::Utc::now();
    let mut files = Vec::new();
    for (version, age) in [
        ("1.0", chrono::Duration::days(30)),
        ("1.1", chrono::Duration::hours(1)),
    ] {
        let built = run(
            &home,
            "python",
            &[
                "-c",
                MAKE_WHEEL,
                "e2e-gated",
                version,
                out_dir.to_str().expect("utf-8"),
            ],
        )
        .await
        .success();
        let wheel_path = PathBuf::from(built.stdout.trim());
        let bytes = std::fs::read(&wheel_path).expect("read the wheel");
        let filename = wheel_path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        Mock::given(method("GET"))
            .and(path(format!("/files/{filename}")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
            .mount(&upstream)
            .await;
        files.push(json!({
            "filename": filename,
            "url": format!("{}/files/{filename}", upstream.uri()),
            "hashes": { "sha256": Digests::of(&bytes).sha256_hex() },
            "requires-python": ">=3.8",
            "size": bytes.len(),
            "upload-time": (now - age).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }));
    }
    Mock::given(method("GET"))
        .and(path("/simple/e2e-gated/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(
                serde_json::to_vec(&json!({
                    "meta": { "api-version": "1.1" },
                    "name": "e2e-gated",
                    "files": files,
                    "versions": ["1.0", "1.1"],
                }))
                .expect("json"),
                "application/vnd.pypi.simple.v1+json",
            ),
        )
        .mount(&upstream)
        .await;

    let proxy = start_server(&format!(
        "{}\n[[registries]]\nname = \"pypi\"\ntype = \"pypi\"\nmode = \"proxy\"\nupstreams = [\"{}/simple/\"]\n\
         [[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(&tmp.path().join("proxy")),
        upstream.uri()
    ))
    .await;
    let base = registry_url(&proxy, "pypi");
    let index = format!("{base}simple/");
    let pip = |target: &Path, spec: &str| {
        let target = target.to_str().expect("utf-8").to_owned();
        let (index, spec, home) = (index.clone(), spec.to_owned(), home.clone());
        async move {
            run(
                &home,
                "python",
                &[
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--index-url",
                    &index,
                    "--target",
                    &target,
                    &spec,
                ],
            )
            .await
        }
    };

    // Unpinned: the resolver never sees 1.1 and installs 1.0.
    let target = tmp.path().join("t1");
    pip(&target, "e2e-gated").await.success();
    assert_eq!(
        import_from(&home, &target, "import e2e_gated; print(e2e_gated.VALUE)")
            .await
            .trim(),
        "e2e-gated@1.0"
    );

    // Pinned: 1.1 is not on the page, so pip reports it missing.
    let pinned = pip(&tmp.path().join("t2"), "e2e-gated==1.1")
        .await
        .failure();
    assert!(
        pinned.combined_lower().contains("from versions: 1.0)"),
        "{pinned}"
    );
    let uv = run(
        &home,
        "uv",
        &[
            "pip",
            "install",
            "--no-cache",
            "--python",
            venv().join("bin/python").to_str().expect("utf-8"),
            "--index-url",
            &index,
            "--target",
            tmp.path().join("t3").to_str().expect("utf-8"),
            "e2e-gated==1.1",
        ],
    )
    .await
    .failure();
    assert!(uv.combined_lower().contains("e2e-gated"), "{uv}");

    // Its file, asked for directly: 403 with the rule's reason, which pip prints.
    let direct = run(
        &home,
        "python",
        &[
            "-m",
            "pip",
            "download",
            "--no-cache-dir",
            "--no-deps",
            "--dest",
            tmp.path().join("d").to_str().expect("utf-8"),
            &format!("{base}packages/e2e-gated/e2e_gated-1.1-py3-none-any.whl"),
        ],
    )
    .await
    .failure();
    let text = direct.combined_lower();
    assert!(
        text.contains("403") && text.contains("release-age gate") && text.contains("e2e-gated@1.1"),
        "{direct}"
    );
    assert!(
        !upstream
            .received_requests()
            .await
            .expect("recorded")
            .iter()
            .any(|r| r.url.path().contains("1.1")),
        "the gated file is never fetched"
    );
    stop_server(proxy).await;

    // With `denied_versions = "yanked"` the refused version stays listed as yanked with the
    // rule's reason: the resolver still skips it, and an exact pin shows why it is refused.
    let yanking = start_server(&format!(
        "{}\n[[registries]]\nname = \"pypi\"\ntype = \"pypi\"\nmode = \"proxy\"\nupstreams = [\"{}/simple/\"]\n\
         denied_versions = \"yanked\"\n[[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(&tmp.path().join("proxy-yanked")),
        upstream.uri()
    ))
    .await;
    let index = format!("{}simple/", registry_url(&yanking, "pypi"));
    let pip_at = |target: PathBuf, spec: &'static str| {
        let (index, home) = (index.clone(), home.clone());
        async move {
            let target = target.to_str().expect("utf-8").to_owned();
            run(
                &home,
                "python",
                &[
                    "-m",
                    "pip",
                    "install",
                    "--no-cache-dir",
                    "--index-url",
                    &index,
                    "--target",
                    &target,
                    spec,
                ],
            )
            .await
        }
    };
    let target = tmp.path().join("y1");
    pip_at(target.clone(), "e2e-gated").await.success();
    assert_eq!(
        import_from(&home, &target, "import e2e_gated; print(e2e_gated.VALUE)")
            .await
            .trim(),
        "e2e-gated@1.0",
        "the yanked 1.1 is skipped by the resolver"
    );
    let pinned = pip_at(tmp.path().join("y2"), "e2e-gated==1.1")
        .await
        .failure();
    let text = pinned.combined_lower();
    assert!(
        text.contains("release-age gate") && text.contains("eligible from"),
        "{pinned}"
    );
    stop_server(yanking).await;
}
