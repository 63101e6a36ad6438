//! Helpers shared by the end-to-end tests: start the reference server in-process, run the
//! real `npm` CLI against it in an isolated home, and talk HTTP to it with reqwest.
//!
//! Every npm invocation gets a fresh cache directory (npm caches tarballs by integrity, so a
//! shared cache would hide whether the server was really asked), its own `userconfig` and
//! `globalconfig` inside the test's temporary directory, a cleared environment, and a timeout.
//! Each command is logged to stderr (seen with `--nocapture`); set `BATLEHUB_E2E_VERBOSE=1`
//! to log its whole output too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use batlehub_server::{Config, Server};

/// How long one npm (or node) command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// An admin token configured by [`tokens_toml`].
pub const ADMIN_TOKEN: &str = "alice-token-123";
/// A `user`-role token configured by [`tokens_toml`].
pub const USER_TOKEN: &str = "bob-token-456";

/// A fresh temporary directory for one test.
///
/// # Panics
/// When the directory cannot be created.
#[must_use]
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("batlehub-e2e-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A path as a TOML (basic) string literal.
#[must_use]
pub fn toml_path(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).expect("a string serializes")
}

/// `[storage]` keeping blobs under `dir/blobs` (and so the SQLite database in `dir`).
#[must_use]
pub fn storage_toml(dir: &Path) -> String {
    format!(
        "[storage]\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&dir.join("blobs"))
    )
}

/// Two `[[auth.tokens]]`: `alice` ([`ADMIN_TOKEN`], admin) and `bob` ([`USER_TOKEN`], user).
#[must_use]
pub fn tokens_toml() -> String {
    format!(
        "[[auth.tokens]]\nname = \"alice\"\nvalue = \"{ADMIN_TOKEN}\"\nrole = \"admin\"\n\n\
         [[auth.tokens]]\nname = \"bob\"\nvalue = \"{USER_TOKEN}\"\nrole = \"user\"\n"
    )
}

/// Parses `toml` and starts a server on a free loopback port.
///
/// # Panics
/// When the configuration is refused or the server does not start; the message has the TOML.
pub async fn start_server(toml: &str) -> Server {
    let config = Config::parse(toml).unwrap_or_else(|e| panic!("config refused: {e}\n---\n{toml}"));
    start_config(&config).await
}

/// Starts a server for an already built configuration on a free loopback port.
///
/// # Panics
/// When the server does not start.
pub async fn start_config(config: &Config) -> Server {
    Server::start(config, "127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"))
}

/// Stops a server gracefully, failing the test when that takes longer than 15 s.
///
/// # Panics
/// When the graceful stop hangs.
pub async fn stop_server(server: Server) {
    let addr = server.addr;
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .unwrap_or_else(|_| {
            panic!("graceful stop of the server at {addr} did not finish within 15 s")
        });
}

/// The npm registry URL of registry `name` on `server`, with the trailing slash.
#[must_use]
pub fn registry_url(server: &Server, name: &str) -> String {
    format!("{}/proxy/{name}/", server.url())
}

/// The `.npmrc` line giving `token` for `registry` (`//host:port/path/:_authToken=TOKEN`).
///
/// # Panics
/// When `registry` is not an `http://` or `https://` URL.
#[must_use]
pub fn auth_line(registry: &str, token: &str) -> String {
    let nerf = registry
        .strip_prefix("http:")
        .or_else(|| registry.strip_prefix("https:"))
        .unwrap_or_else(|| panic!("registry URL without http(s) scheme: {registry}"));
    format!("{nerf}:_authToken={token}")
}

/// A reqwest client for plain-HTTP requests to the test servers.
///
/// The workspace builds reqwest with `rustls-no-provider`, so a TLS configuration with an
/// explicit provider is handed in rather than relying on a process-wide default.
///
/// # Panics
/// When the client cannot be built.
#[must_use]
pub fn http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the reqwest client")
}

/// Writes a minimal package (`package.json` and `index.js`) into `dir`, which is created.
///
/// `index.js` exports the string `"{name}@{version}"`; with `requires`, it first requires
/// those packages (so a missing dependency fails at `require` time).
///
/// # Panics
/// On I/O errors.
pub fn write_package(dir: &Path, name: &str, version: &str, dependencies: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).expect("create the package directory");
    let deps: serde_json::Map<String, serde_json::Value> = dependencies
        .iter()
        .map(|(n, r)| ((*n).to_owned(), serde_json::Value::String((*r).to_owned())))
        .collect();
    let manifest = serde_json::json!({
        "name": name,
        "version": version,
        "description": format!("batlehub end-to-end test package {name}"),
        "main": "index.js",
        "license": "MIT",
        "dependencies": deps,
    });
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&manifest).expect("serialize package.json"),
    )
    .expect("write package.json");
    let mut js = String::new();
    for (dep, _) in dependencies {
        js.push_str(&format!("require({dep:?});\n"));
    }
    js.push_str(&format!(
        "module.exports = {:?};\n",
        format!("{name}@{version}")
    ));
    std::fs::write(dir.join("index.js"), js).expect("write index.js");
}

/// Creates an empty consumer project (`package.json` only) at `dir`.
///
/// # Panics
/// On I/O errors.
pub fn write_consumer(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the project directory");
    std::fs::write(
        dir.join("package.json"),
        r#"{ "name": "e2e-consumer", "version": "0.0.0", "private": true }"#,
    )
    .expect("write the consumer package.json");
}

/// The result of one command.
#[derive(Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl CmdOutput {
    /// Fails the test unless the command succeeded.
    ///
    /// # Panics
    /// When the exit status is not success.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(self.status.success(), "expected success\n{self}");
        self
    }

    /// Fails the test unless the command failed.
    ///
    /// # Panics
    /// When the exit status is success.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(!self.status.success(), "expected a failure\n{self}");
        self
    }

    /// Standard output and standard error together, lowercased, for loose matching.
    #[must_use]
    pub fn combined_lower(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command,
            self.status,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// The npm CLI, isolated in a temporary home.
#[derive(Debug)]
pub struct Npm {
    home: PathBuf,
    runs: AtomicUsize,
}

impl Npm {
    /// Prepares an npm home under `home` (with an empty `.npmrc`) and checks that `npm` and
    /// `node` can be run.
    ///
    /// # Panics
    /// When `npm` or `node` is not on `PATH`: these tests must not pass silently without them.
    pub async fn new(home: &Path) -> Self {
        std::fs::create_dir_all(home).expect("create the npm home");
        let npm = Self {
            home: home.to_owned(),
            runs: AtomicUsize::new(0),
        };
        npm.write_npmrc(&[]);
        for tool in ["npm", "node"] {
            let mut cmd = npm.command(tool);
            cmd.arg("--version").current_dir(home);
            match cmd.output().await {
                Ok(out) if out.status.success() => {}
                Ok(out) => panic!(
                    "`{tool} --version` failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(e) => panic!(
                    "the end-to-end tests need the real `{tool}` on PATH, but it could not be run: {e} \
                     (PATH={:?})",
                    std::env::var_os("PATH")
                ),
            }
        }
        npm
    }

    /// The npm home (also `HOME` for every command).
    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Replaces the user `.npmrc` with `lines`.
    ///
    /// # Panics
    /// On I/O errors.
    pub fn write_npmrc(&self, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(self.home.join(".npmrc"), text).expect("write .npmrc");
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("npm_config_userconfig", self.home.join(".npmrc"))
            .env("npm_config_globalconfig", self.home.join("global-npmrc"))
            .env("npm_config_cache", self.home.join(format!("npm-cache-{n}")))
            .env("npm_config_audit", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_update_notifier", "false")
            .env("npm_config_progress", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `npm ARGS` in `cwd`; `registry` (when given) is passed as `npm_config_registry`.
    ///
    /// # Panics
    /// When npm cannot be started or exceeds [`COMMAND_TIMEOUT`].
    pub async fn run(&self, registry: Option<&str>, cwd: &Path, args: &[&str]) -> CmdOutput {
        let mut cmd = self.command("npm");
        cmd.args(args).current_dir(cwd);
        if let Some(r) = registry {
            cmd.env("npm_config_registry", r);
        }
        let line = format!(
            "npm {}{}  (in {})",
            args.join(" "),
            registry
                .map(|r| format!("  [registry={r}]"))
                .unwrap_or_default(),
            cwd.display()
        );
        run_command(cmd, line).await
    }

    /// Runs `node -e SCRIPT` in `cwd` with the same isolated environment.
    ///
    /// # Panics
    /// When node cannot be started or exceeds [`COMMAND_TIMEOUT`].
    pub async fn node(&self, cwd: &Path, script: &str) -> CmdOutput {
        let mut cmd = self.command("node");
        cmd.arg("-e").arg(script).current_dir(cwd);
        run_command(cmd, format!("node -e {script:?}  (in {})", cwd.display())).await
    }
}

async fn run_command(cmd: tokio::process::Command, line: String) -> CmdOutput {
    run_command_within(cmd, line, COMMAND_TIMEOUT).await
}

/// Runs `cmd` (its output piped), described as `line` in messages, waiting at most
/// `timeout`; logs the outcome (`BATLEHUB_E2E_VERBOSE` set: with the whole output).
///
/// # Panics
/// When the command cannot be started or exceeds `timeout`.
pub async fn run_command_within(
    mut cmd: tokio::process::Command,
    line: String,
    timeout: Duration,
) -> CmdOutput {
    let started = Instant::now();
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`{line}` did not finish within {timeout:?}"))
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

/// An npm tarball of `name@version`: `package/package.json` and `package/index.js`, which
/// exports the string `"{name}@{version}"`.
///
/// # Panics
/// Never in practice (writing to memory).
#[must_use]
pub fn npm_tarball(name: &str, version: &str) -> Vec<u8> {
    npm_tarball_with(name, version, &[])
}

/// [`npm_tarball`] with more files under `package/` (bytes of their own for one version).
///
/// # Panics
/// Never in practice (writing to memory).
#[must_use]
pub fn npm_tarball_with(name: &str, version: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(
        &serde_json::json!({"name": name, "version": version, "main": "index.js"}),
    )
    .expect("json");
    let index = format!("module.exports = {:?};\n", format!("{name}@{version}")).into_bytes();
    let extra = extra
        .iter()
        .map(|(p, data)| (format!("package/{p}"), data.to_vec()));
    for (p, data) in [
        ("package/package.json".to_owned(), manifest),
        ("package/index.js".to_owned(), index),
    ]
    .into_iter()
    .chain(extra)
    {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, &p, data.as_slice())
            .expect("append");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &builder.into_inner().expect("tar")).expect("gz");
    gz.finish().expect("gz")
}
