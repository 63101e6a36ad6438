//! The real mvn against the reference server: `mvn deploy` of a release and of a SNAPSHOT
//! (twice) to a local registry; a consumer project resolving both through a proxy registry
//! (on a second server) whose upstream is the local one, with `-C` (strict checksums),
//! compiling against the deployed jar and running it; a redeploy of the release refused;
//! a deploy without credentials refused with an authentication error.
//!
//! The machines running this cannot reach any public repository, so every mvn run uses
//! its own local repository seeded by copying Debian's `/usr/share/maven-repo` (the plugins,
//! installed by `.ci/run` from the `libmaven-*-plugin-java` packages), and a `settings.xml`
//! whose `<mirror>` sends every other request to batlehub. A profile re-declares `central`
//! with snapshots enabled so SNAPSHOT dependencies are resolved through the mirror too.
//! The artifacts under test are never in a seeded repository (producer and consumer use
//! separate ones), so the consumer can only get them from the proxy over HTTP.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use batlehub_e2e::{
    CmdOutput, Server, USER_TOKEN, http_client, scratch, start_server, stop_server, storage_toml,
    tokens_toml,
};

/// How long one mvn run may take (they take 3-8 s here).
const MVN_TIMEOUT: Duration = Duration::from_secs(180);
/// Debian's offline Maven repository.
const DEBIAN_REPO: &str = "/usr/share/maven-repo";

/// The repository root of registry `name` on `server`.
fn repo_url(server: &Server, name: &str) -> String {
    format!("{}/proxy/{name}/maven2/", server.url())
}

/// A `settings.xml` mirroring everything to `mirror`, with the Basic credentials
/// (any username, the token as password) for server id `batlehub` when `token` is given.
fn settings(mirror: &str, token: Option<&str>) -> String {
    let servers = token.map_or_else(String::new, |t| {
        format!(
            "<servers><server><id>batlehub</id><username>bob</username><password>{t}</password></server></servers>"
        )
    });
    format!(
        r#"<settings>
  <mirrors>
    <mirror><id>batlehub</id><mirrorOf>*</mirrorOf><url>{mirror}</url></mirror>
  </mirrors>
  {servers}
  <profiles>
    <profile>
      <id>batlehub</id>
      <repositories>
        <repository><id>central</id><url>http://unused.invalid</url>
          <releases><enabled>true</enabled></releases>
          <snapshots><enabled>true</enabled></snapshots></repository>
      </repositories>
    </profile>
  </profiles>
  <activeProfiles><activeProfile>batlehub</activeProfile></activeProfiles>
</settings>
"#
    )
}

/// Copies Debian's Maven repository to `dest`, following its symlinks.
fn seed_repo(dest: &Path) {
    let deploy = Path::new(DEBIAN_REPO).join("org/apache/maven/plugins/maven-deploy-plugin");
    assert!(
        deploy.is_dir(),
        "{} is missing: install Debian's Maven plugins (see .ci/run)",
        deploy.display()
    );
    let status = std::process::Command::new("cp")
        .arg("-rL")
        .arg(DEBIAN_REPO)
        .arg(dest)
        .status()
        .expect("run cp");
    assert!(status.success(), "seeding {} failed", dest.display());
}

/// Writes a jar project `com.example.e2e:greeter:{version}` whose greeting is `greeting`.
fn write_producer(dir: &Path, version: &str, greeting: &str, deploy_to: &str) {
    let src = dir.join("src/main/java/com/example/greeter");
    std::fs::create_dir_all(&src).expect("create sources");
    std::fs::write(
        dir.join("pom.xml"),
        format!(
            r#"<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example.e2e</groupId>
  <artifactId>greeter</artifactId>
  <version>{version}</version>
  <properties>
    <maven.compiler.source>1.8</maven.compiler.source>
    <maven.compiler.target>1.8</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <distributionManagement>
    <repository><id>batlehub</id><url>{deploy_to}</url></repository>
    <snapshotRepository><id>batlehub</id><url>{deploy_to}</url></snapshotRepository>
  </distributionManagement>
</project>
"#
        ),
    )
    .expect("write pom.xml");
    std::fs::write(
        src.join("Greeter.java"),
        format!(
            "package com.example.greeter;\npublic final class Greeter {{\n  public static String greet(String who) {{ return \"{greeting}, \" + who; }}\n}}\n"
        ),
    )
    .expect("write Greeter.java");
}

/// Writes a project depending on `greeter:{version}` with a main class calling it.
fn write_consumer(dir: &Path, version: &str) {
    let src = dir.join("src/main/java/app");
    std::fs::create_dir_all(&src).expect("create sources");
    std::fs::write(
        dir.join("pom.xml"),
        format!(
            r#"<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>com.example.e2e</groupId>
  <artifactId>consumer</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.source>1.8</maven.compiler.source>
    <maven.compiler.target>1.8</maven.compiler.target>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency><groupId>com.example.e2e</groupId><artifactId>greeter</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"#
        ),
    )
    .expect("write pom.xml");
    std::fs::write(
        src.join("App.java"),
        "package app;\npublic final class App {\n  public static void main(String[] args) { System.out.println(com.example.greeter.Greeter.greet(\"maven\")); }\n}\n",
    )
    .expect("write App.java");
}

/// Runs `program ARGS` in `cwd` with `HOME` in the test's directory and a timeout.
async fn run(program: &str, home: &Path, cwd: &Path, args: &[&str]) -> CmdOutput {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("MAVEN_OPTS")
        .env_remove("MAVEN_ARGS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let command = format!("{program} {}", args.join(" "));
    let started = Instant::now();
    let out = tokio::time::timeout(MVN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("`{command}` took longer than {MVN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("`{command}` could not run ({e}); is it installed?"));
    CmdOutput {
        command,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// One mvn user: a home, a seeded local repository, a settings file.
struct Mvn {
    home: PathBuf,
    repo: PathBuf,
}

impl Mvn {
    fn new(root: &Path) -> Self {
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create HOME");
        let repo = root.join("repo");
        seed_repo(&repo);
        Self { home, repo }
    }

    async fn run(&self, settings: &Path, cwd: &Path, args: &[&str]) -> CmdOutput {
        let s = settings.display().to_string();
        let r = format!("-Dmaven.repo.local={}", self.repo.display());
        let mut all = vec!["-B", "-s", &s, &r];
        all.extend_from_slice(args);
        run("mvn", &self.home, cwd, &all).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_resolve_through_a_proxy() {
    let dir = scratch();
    let root = dir.path();
    let local = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"releases\"\ntype = \"maven\"\nmode = \"local\"\n",
        storage_toml(&root.join("local")),
        tokens_toml()
    ))
    .await;
    let deploy_url = repo_url(&local, "releases");
    let proxy = start_server(&format!(
        "{}{}\n[[registries]]\nname = \"mirror\"\ntype = \"maven\"\nmode = \"proxy\"\nupstreams = [\"{deploy_url}\"]\n",
        storage_toml(&root.join("proxy")),
        tokens_toml()
    ))
    .await;
    let mirror_url = repo_url(&proxy, "mirror");

    let producer = Mvn::new(&root.join("producer"));
    let deploy_settings = root.join("deploy-settings.xml");
    std::fs::write(&deploy_settings, settings(&deploy_url, Some(USER_TOKEN))).expect("write");
    let anonymous_settings = root.join("anonymous-settings.xml");
    std::fs::write(&anonymous_settings, settings(&deploy_url, None)).expect("write");

    // A release.
    let release = root.join("release");
    write_producer(&release, "1.0.0", "hello from 1.0.0", &deploy_url);
    producer
        .run(&deploy_settings, &release, &["deploy"])
        .await
        .success();

    // Redeploying it is refused (409), and so is a deploy without credentials (401).
    let again = producer
        .run(&deploy_settings, &release, &["deploy"])
        .await
        .failure();
    assert!(again.combined_lower().contains("409"), "{again}");
    let fresh = root.join("anonymous");
    write_producer(&fresh, "2.0.0", "anonymous", &deploy_url);
    let anon = producer
        .run(&anonymous_settings, &fresh, &["deploy"])
        .await
        .failure();
    assert!(anon.combined_lower().contains("401"), "{anon}");

    // A SNAPSHOT, twice: the second build must be what consumers get, the first is kept.
    let snapshot = root.join("snapshot");
    write_producer(&snapshot, "1.1.0-SNAPSHOT", "snapshot build 1", &deploy_url);
    producer
        .run(&deploy_settings, &snapshot, &["deploy"])
        .await
        .success();
    write_producer(&snapshot, "1.1.0-SNAPSHOT", "snapshot build 2", &deploy_url);
    // Not `mvn clean`: Debian's clean plugin lacks a dependency offline.
    std::fs::remove_dir_all(snapshot.join("target")).expect("remove target");
    producer
        .run(&deploy_settings, &snapshot, &["deploy"])
        .await
        .success();
    let client = http_client();
    let meta = client
        .get(format!(
            "{deploy_url}com/example/e2e/greeter/1.1.0-SNAPSHOT/maven-metadata.xml"
        ))
        .send()
        .await
        .expect("GET metadata")
        .text()
        .await
        .expect("metadata body");
    assert!(meta.contains("<buildNumber>2</buildNumber>"), "{meta}");
    let versions = client
        .get(format!(
            "{deploy_url}com/example/e2e/greeter/maven-metadata.xml"
        ))
        .send()
        .await
        .expect("GET metadata")
        .text()
        .await
        .expect("metadata body");
    assert!(versions.contains("<release>1.0.0</release>"), "{versions}");
    assert!(
        versions.contains("<version>1.1.0-SNAPSHOT</version>"),
        "{versions}"
    );
    assert!(!versions.contains("2.0.0"), "{versions}");

    // A consumer resolving both through the proxy with strict checksums, then running.
    let consumer = Mvn::new(&root.join("consumer"));
    let consume_settings = root.join("consume-settings.xml");
    std::fs::write(&consume_settings, settings(&mirror_url, None)).expect("write");
    for (version, jar, expected) in [
        (
            "1.0.0",
            "greeter-1.0.0.jar".to_owned(),
            "hello from 1.0.0, maven",
        ),
        (
            "1.1.0-SNAPSHOT",
            "greeter-1.1.0-SNAPSHOT.jar".to_owned(),
            "snapshot build 2, maven",
        ),
    ] {
        let project = root.join(format!("consumer-{version}"));
        write_consumer(&project, version);
        let out = consumer
            .run(&consume_settings, &project, &["-C", "compile"])
            .await
            .success();
        assert!(
            out.stdout.contains(&mirror_url),
            "resolved elsewhere?\n{out}"
        );
        let jar = consumer
            .repo
            .join("com/example/e2e/greeter")
            .join(version)
            .join(jar);
        let cp = format!(
            "{}:{}",
            project.join("target/classes").display(),
            jar.display()
        );
        let ran = run("java", &consumer.home, &project, &["-cp", &cp, "app.App"])
            .await
            .success();
        assert_eq!(ran.stdout.trim(), expected, "{ran}");
    }

    stop_server(proxy).await;
    stop_server(local).await;
}

/// The zero-config default serves a local Maven registry at `/proxy/maven/`, challenging
/// an anonymous deploy with Basic.
#[tokio::test]
async fn zero_config_serves_maven() {
    let dir = scratch();
    let server = batlehub_e2e::start_config(&batlehub_e2e::Config::zero_config(dir.path())).await;
    let root = repo_url(&server, "maven");
    let client = http_client();
    let missing = client
        .get(format!("{root}org/example/lib/maven-metadata.xml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-content-type-options"], "nosniff");
    let put = client
        .put(format!("{root}org/example/lib/1.0/lib-1.0.jar"))
        .body("jar")
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
