//! The real `gem` and `bundle` (Debian's ruby and bundler: RubyGems 3.3, bundler 2.3)
//! against the reference server. Gems are built with `gem build` and pushed with
//! `gem push` (one depends on the other, which also has a variant for this machine's
//! platform); `gem list --remote` reads the full index; bundler installs them through a
//! **proxy** registry whose upstream is the local one, and again after a new version is
//! pushed, fetching only what was appended (a `206` is seen on the wire); `gem install
//! --source` installs through the proxy; `gem yank` removes a version; with the upstream
//! stopped, cached gems still install; and a release-age gate keeps a young version out of
//! resolution, while pinning it fails naming the rule.
//!
//! Every command runs with a cleared environment: `HOME`, `GEM_HOME` and `BUNDLE_*` in the
//! test's temporary directory, and an HTTP proxy that does not exist (loopback exempt), so
//! nothing but the loopback servers can be reached.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use batlehub_e2e::{
    ADMIN_TOKEN, CmdOutput, Server, http_client, run_command_within, scratch, start_server,
    stop_server, storage_toml, tokens_toml,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How long one gem or bundle command may take.
const RUBY_TIMEOUT: Duration = Duration::from_secs(180);

/// The source URL of registry `name` on `server` (trailing slash, as bundler writes it).
fn source(server: &Server, name: &str) -> String {
    format!("{}/proxy/{name}/", server.url())
}

/// The real `gem` and `bundle`, isolated in a temporary home.
struct Ruby {
    home: PathBuf,
    gem_home: PathBuf,
    bundle_path: PathBuf,
}

impl Ruby {
    fn new(root: &Path, name: &str) -> Self {
        let base = root.join(name);
        let ruby = Self {
            home: base.join("home"),
            gem_home: base.join("gems"),
            bundle_path: base.join("bundle"),
        };
        for dir in [&ruby.home, &ruby.gem_home] {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        ruby
    }

    /// Runs `program ARGS` in `cwd`.
    async fn run(
        &self,
        cwd: &Path,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> CmdOutput {
        let mut cmd = tokio::process::Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GEM_HOME", &self.gem_home)
            .env("BUNDLE_PATH", &self.bundle_path)
            .env("BUNDLE_USER_HOME", self.home.join(".bundle"))
            .env("BUNDLE_SILENCE_ROOT_WARNING", "1")
            .env("BUNDLE_JOBS", "2")
            .env("BUNDLE_RETRY", "0")
            .env("LANG", "C.UTF-8")
            // Anything but loopback goes to a proxy that does not exist.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .envs(env.iter().copied())
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let line = format!(
            "{program} {}  (in {}; are Debian's ruby and bundler installed?)",
            args.join(" "),
            cwd.display()
        );
        run_command_within(cmd, line, RUBY_TIMEOUT).await
    }

    async fn gem(&self, cwd: &Path, args: &[&str]) -> CmdOutput {
        self.run(cwd, "gem", args, &[("GEM_HOST_API_KEY", ADMIN_TOKEN)])
            .await
    }

    async fn bundle(&self, cwd: &Path, args: &[&str]) -> CmdOutput {
        self.run(cwd, "bundle", args, &[]).await
    }
}

/// This machine's platform as RubyGems names it (`x86_64-linux`).
fn local_platform() -> String {
    let out = std::process::Command::new("ruby")
        .args(["-e", "print Gem::Platform.local.to_s"])
        .output()
        .expect("ruby (is Debian's ruby installed?)");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Writes a gem's sources under `dir/name-version[-platform]` and builds it with
/// `gem build`; returns the `.gem`'s path. `lib/{name}.rb` defines `hello`, which reports
/// the gem's version and platform (and its dependency's `hello`).
async fn build_gem(
    ruby: &Ruby,
    dir: &Path,
    name: &str,
    version: &str,
    platform: Option<&str>,
    dep: Option<(&str, &str)>,
) -> PathBuf {
    let src = dir.join(format!(
        "{name}-{version}{}",
        platform.map(|p| format!("-{p}")).unwrap_or_default()
    ));
    std::fs::create_dir_all(src.join("lib")).expect("src dir");
    let module: String = name
        .split('-')
        .map(|p| p[..1].to_uppercase() + &p[1..])
        .collect();
    let (require, dep_hello, dep_line) = match dep {
        Some((d, req)) => {
            let dm: String = d
                .split('-')
                .map(|p| p[..1].to_uppercase() + &p[1..])
                .collect();
            (
                format!("require \"{d}\"\n"),
                format!(" + \" with \" + {dm}.hello"),
                format!("  s.add_runtime_dependency \"{d}\", \"{req}\"\n"),
            )
        }
        None => (String::new(), String::new(), String::new()),
    };
    let shown = platform.unwrap_or("ruby");
    std::fs::write(
        src.join("lib").join(format!("{name}.rb")),
        format!("{require}module {module}\n  def self.hello\n    \"{name} {version} ({shown})\"{dep_hello}\n  end\nend\n"),
    )
    .expect("lib");
    let platform_line = platform
        .map(|p| format!("  s.platform = \"{p}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        src.join(format!("{name}.gemspec")),
        format!(
            "Gem::Specification.new do |s|\n  s.name = \"{name}\"\n  s.version = \"{version}\"\n  s.summary = \"The {name} e2e gem\"\n  s.authors = [\"batlehub e2e\"]\n  s.license = \"MIT\"\n  s.files = [\"lib/{name}.rb\"]\n  s.required_ruby_version = \">= 2.7\"\n{platform_line}{dep_line}end\n"
        ),
    )
    .expect("gemspec");
    ruby.gem(&src, &["build", &format!("{name}.gemspec")])
        .await
        .success();
    let file = format!(
        "{name}-{version}{}.gem",
        platform.map(|p| format!("-{p}")).unwrap_or_default()
    );
    src.join(file)
}

/// `gem push FILE --host URL`.
async fn push(ruby: &Ruby, gem: &Path, host: &str) {
    let out = ruby
        .gem(
            gem.parent().expect("dir"),
            &["push", &gem.display().to_string(), "--host", host],
        )
        .await
        .success();
    assert!(
        out.stdout.contains("Successfully registered gem"),
        "gem push prints the server's answer\n{out}"
    );
}

/// A TCP forwarder in front of `target` that counts `206` responses passing through (so the
/// test sees what bundler was sent); returns its address.
async fn counting_forwarder(target: std::net::SocketAddr, partials: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let partials = partials.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        tail.extend_from_slice(&buf[..n]);
                        let needle = b"HTTP/1.1 206 ";
                        let found = tail.windows(needle.len()).filter(|w| w == needle).count();
                        partials.fetch_add(found, Ordering::SeqCst);
                        let keep = tail.len().min(needle.len() - 1);
                        tail.drain(..tail.len() - keep);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown().await;
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

fn gemfile(dir: &Path, source: &str, gems: &str) {
    std::fs::create_dir_all(dir).expect("project dir");
    std::fs::write(
        dir.join("Gemfile"),
        format!("source \"{source}\"\n\n{gems}"),
    )
    .expect("Gemfile");
}

/// `bundle exec ruby -e CODE` in `project`.
async fn bundle_ruby(ruby: &Ruby, project: &Path, code: &str) -> String {
    ruby.bundle(project, &["exec", "ruby", "-e", code])
        .await
        .success()
        .stdout
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gem_and_bundler_push_install_update_and_yank_through_local_and_proxy_sources() {
    let tmp = scratch();
    let platform = local_platform();
    let upstream = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"gems\"\ntype = \"rubygems\"\nmode = \"local\"\n",
        storage_toml(&tmp.path().join("upstream")),
        tokens_toml(),
    ))
    .await;
    let local = source(&upstream, "gems");
    let host = local.trim_end_matches('/').to_owned();
    let builder = Ruby::new(tmp.path(), "builder");
    let build = tmp.path().join("build");
    for gem in [
        build_gem(&builder, &build, "dep-gem", "0.1.0", None, None).await,
        build_gem(&builder, &build, "dep-gem", "0.1.0", Some(&platform), None).await,
        build_gem(
            &builder,
            &build,
            "app-gem",
            "1.0.0",
            None,
            Some(("dep-gem", "~> 0.1")),
        )
        .await,
    ] {
        push(&builder, &gem, &host).await;
    }

    // The full index, as `gem list --remote` reads it.
    let listed = builder
        .gem(
            tmp.path(),
            &[
                "list",
                "--remote",
                "--all",
                "--clear-sources",
                "--source",
                &local,
            ],
        )
        .await
        .success();
    assert!(listed.stdout.contains("app-gem (1.0.0)"), "{listed}");
    assert!(
        listed
            .stdout
            .contains(&format!("dep-gem (0.1.0 ruby {platform})"))
            || listed
                .stdout
                .contains(&format!("dep-gem (0.1.0 {platform} ruby)")),
        "{listed}"
    );

    // The proxy registry: its upstream is the local registry of the other server, and it
    // revalidates every document (no metadata TTL) so the next push shows at once.
    let mirror = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"mirror\"\ntype = \"rubygems\"\nmode = \"proxy\"\nupstreams = [\"{local}\"]\n[registries.cache]\nmetadata_ttl_secs = 0\n",
        storage_toml(&tmp.path().join("mirror")),
        tokens_toml(),
    ))
    .await;
    let partials = Arc::new(AtomicUsize::new(0));
    let front = counting_forwarder(mirror.addr, partials.clone()).await;
    let proxied = format!("{front}/proxy/mirror/");

    let user = Ruby::new(tmp.path(), "user");
    let project = tmp.path().join("project");
    gemfile(&project, &proxied, "gem \"app-gem\"\n");
    user.bundle(&project, &["install"]).await.success();
    let hello = bundle_ruby(&user, &project, "require \"app-gem\"; print AppGem.hello").await;
    assert_eq!(
        hello,
        format!("app-gem 1.0.0 (ruby) with dep-gem 0.1.0 ({platform})"),
        "bundler picks this platform's variant of dep-gem"
    );
    let lock = std::fs::read_to_string(project.join("Gemfile.lock")).expect("lock");
    assert!(
        lock.contains(&format!("dep-gem (0.1.0-{platform})")),
        "{lock}"
    );

    // A new version, then a second install: bundler asks for what it lacks with
    // `Range` + `If-None-Match`, and is sent only what was appended.
    let v11 = build_gem(
        &builder,
        &build,
        "app-gem",
        "1.1.0",
        None,
        Some(("dep-gem", "~> 0.1")),
    )
    .await;
    push(&builder, &v11, &host).await;
    let before = partials.load(Ordering::SeqCst);
    gemfile(&project, &proxied, "gem \"app-gem\", \">= 1.1\"\n");
    user.bundle(&project, &["install"]).await.success();
    assert!(
        partials.load(Ordering::SeqCst) > before,
        "the second install fetched the compact index incrementally (a 206)"
    );
    let hello = bundle_ruby(&user, &project, "require \"app-gem\"; print AppGem.hello").await;
    assert!(hello.starts_with("app-gem 1.1.0"), "{hello}");

    // `gem install --source` through the proxy.
    let other = Ruby::new(tmp.path(), "gem-user");
    other
        .gem(
            tmp.path(),
            &[
                "install",
                "app-gem",
                "--clear-sources",
                "--source",
                &proxied,
                "--no-document",
            ],
        )
        .await
        .success();
    let installed = other.gem(tmp.path(), &["list", "--local"]).await.success();
    assert!(installed.stdout.contains("app-gem (1.1.0)"), "{installed}");
    assert!(installed.stdout.contains("dep-gem (0.1.0"), "{installed}");

    // `gem yank` on the local registry.
    let yanked = builder
        .gem(
            tmp.path(),
            &["yank", "app-gem", "-v", "1.1.0", "--host", &host],
        )
        .await
        .success();
    assert!(
        yanked
            .stdout
            .contains("Successfully deleted gem: app-gem (1.1.0)"),
        "{yanked}"
    );
    let info = http_client()
        .get(format!("{local}info/app-gem"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        info.contains("1.0.0 ") && !info.contains("1.1.0 "),
        "{info}"
    );

    // With the upstream stopped, gems the proxy cached still install into a fresh home.
    stop_server(upstream).await;
    let offline = Ruby::new(tmp.path(), "offline");
    let project = tmp.path().join("offline-project");
    gemfile(&project, &proxied, "gem \"app-gem\", \"1.0.0\"\n");
    offline.bundle(&project, &["install"]).await.success();
    let hello = bundle_ruby(
        &offline,
        &project,
        "require \"app-gem\"; print AppGem.hello",
    )
    .await;
    assert!(hello.starts_with("app-gem 1.0.0"), "{hello}");
    stop_server(mirror).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_version_is_not_resolved_and_pinning_it_names_the_rule() {
    let tmp = scratch();
    let builder = Ruby::new(tmp.path(), "builder");
    let build = tmp.path().join("build");
    // An upstream source with an old version and one pushed just now.
    let upstream = MockServer::start().await;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut info = String::from("---\n");
    let mut versions = Vec::new();
    for (version, created) in [
        ("1.0.0", "2020-01-02T03:04:05.000Z"),
        ("1.1.0", now.as_str()),
    ] {
        let file = build_gem(&builder, &build, "young", version, None, None).await;
        let bytes = std::fs::read(&file).expect("gem");
        info.push_str(&format!(
            "{version} |checksum:{},ruby:>= 2.7\n",
            sha256_hex(&bytes)
        ));
        versions.push(serde_json::json!({
            "number": version, "platform": "ruby", "created_at": created,
        }));
        Mock::given(method("GET"))
            .and(path(format!("/gems/young-{version}.gem")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(&upstream)
            .await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/quick/Marshal.4.8/young-{version}.gemspec.rz"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(quick_spec(&file)))
            .mount(&upstream)
            .await;
    }
    let md5 = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(info.as_bytes()))
    };
    for (p, body) in [
        (
            "/versions".to_owned(),
            format!("---\nyoung 1.0.0,1.1.0 {md5}\n"),
        ),
        ("/info/young".to_owned(), info.clone()),
        (
            "/api/v1/versions/young.json".to_owned(),
            serde_json::to_string(&versions).expect("json"),
        ),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_string(body))
            .mount(&upstream)
            .await;
    }
    let server = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"gated\"\ntype = \"rubygems\"\nmode = \"proxy\"\nupstreams = [\"{}/\"]\n\
         [[registries.rules]]\nkind = \"release_age_gate\"\nmin_age_secs = 86400\n",
        storage_toml(&tmp.path().join("data")),
        tokens_toml(),
        upstream.uri(),
    ))
    .await;
    let gated = source(&server, "gated");
    let user = Ruby::new(tmp.path(), "user");
    let project = tmp.path().join("project");
    gemfile(&project, &gated, "gem \"young\"\n");
    user.bundle(&project, &["install"]).await.success();
    let lock = std::fs::read_to_string(project.join("Gemfile.lock")).expect("lock");
    assert!(
        lock.contains("young (1.0.0)"),
        "the young 1.1.0 is not resolved\n{lock}"
    );

    // Pinning it fails, naming the rule and when the version becomes eligible.
    let pinned = tmp.path().join("pinned");
    gemfile(&pinned, &gated, "gem \"young\", \"1.1.0\"\n");
    let out = user.bundle(&pinned, &["install"]).await.failure();
    eprintln!("[e2e] bundle install of the pinned young version printed:\n{out}");
    let text = out.combined_lower();
    assert!(
        text.contains("release_age_gate") && text.contains("until-"),
        "bundler names the rule\n{out}"
    );
    let out = user
        .gem(
            tmp.path(),
            &[
                "install",
                "young",
                "-v",
                "1.1.0",
                "--clear-sources",
                "--source",
                &gated,
            ],
        )
        .await
        .failure();
    eprintln!("[e2e] gem install of the young version printed:\n{out}");
    // `gem` asks for the version's quick gemspec, which is refused: it prints the reason
    // phrase ("bad response <reason> 403").
    let text = out.combined_lower();
    assert!(
        text.contains("younger than the release-age gate") && text.contains("eligible from"),
        "{out}"
    );
    // The old one installs.
    user.gem(
        tmp.path(),
        &[
            "install",
            "young",
            "-v",
            "1.0.0",
            "--clear-sources",
            "--source",
            &gated,
            "--no-document",
        ],
    )
    .await
    .success();
    stop_server(server).await;
}

#[tokio::test]
async fn zero_config_serves_rubygems() {
    let dir = scratch();
    let server = batlehub_e2e::start_config(&batlehub_e2e::Config::zero_config(dir.path())).await;
    let root = source(&server, "rubygems");
    let client = http_client();
    let head = client.head(&root).send().await.expect("HEAD");
    assert_eq!(head.status(), 200, "gem checks a source with HEAD /");
    let versions = client
        .get(format!("{root}versions"))
        .send()
        .await
        .expect("GET");
    assert_eq!(versions.status(), 200);
    let push = client
        .post(format!("{root}api/v1/gems"))
        .body("gem")
        .send()
        .await
        .expect("POST");
    assert_eq!(push.status(), 401);
    assert_eq!(
        push.headers()["www-authenticate"],
        "Basic realm=\"batlehub\""
    );
    stop_server(server).await;
}

/// The quick gemspec of a `.gem` as a RubyGems server writes it, by the real Ruby.
fn quick_spec(gem: &Path) -> Vec<u8> {
    let out = std::process::Command::new("ruby")
        .args([
            "-rrubygems/package",
            "-rzlib",
            "-e",
            "$stdout.binmode; print Zlib::Deflate.deflate(Marshal.dump(Gem::Package.new(ARGV[0]).spec))",
        ])
        .arg(gem)
        .output()
        .expect("ruby");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}
