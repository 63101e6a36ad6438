//! The shared conformance suite (`batlehub-test`), run for Maven.

mod common;

use batlehub_core::body::Body;
use batlehub_maven::MavenService;
use batlehub_test::conformance::{Conformance, Lie};
use common::{MavenApp, TestApp, pom, sha1_hex};
use http::{Method, Request, StatusCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Maven;

/// `group:artifact` into the repository path of the artifact.
fn split(name: &str) -> (String, &str) {
    let (group, artifact) = name.split_once(':').unwrap_or(("org.example", name));
    (group.replace('.', "/"), artifact)
}

fn jar(name: &str, version: &str) -> Vec<u8> {
    format!("jar of {name} {version}").into_bytes()
}

impl Conformance for Maven {
    type Service = MavenService;

    fn package() -> &'static str {
        "org.example:conformance"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        batlehub_test::request(
            Method::PUT,
            &Self::artifact_path(name, version),
            jar(name, version),
            who,
        )
    }

    /// Deploys as mvn does (jar, its sha1, pom, its sha1); the first refusal's status.
    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        let (group, artifact) = name.split_once(':').unwrap_or(("org.example", name));
        let dir = format!("/maven2/{}/{artifact}/{version}", group.replace('.', "/"));
        let pom = pom(group, artifact, version).into_bytes();
        for (file, bytes) in [
            (format!("{artifact}-{version}.jar"), jar(name, version)),
            (format!("{artifact}-{version}.pom"), pom),
        ] {
            for (path, body) in [
                (format!("{dir}/{file}"), bytes.clone()),
                (format!("{dir}/{file}.sha1"), sha1_hex(&bytes).into_bytes()),
            ] {
                let (status, _) = app.put(&path, body, who).await;
                if !status.is_success() {
                    return status;
                }
            }
        }
        StatusCode::CREATED
    }

    fn metadata_path(name: &str) -> String {
        let (group, artifact) = split(name);
        format!("/maven2/{group}/{artifact}/maven-metadata.xml")
    }

    fn artifact_path(name: &str, version: &str) -> String {
        let (group, artifact) = split(name);
        format!("/maven2/{group}/{artifact}/{version}/{artifact}-{version}.jar")
    }

    fn lists_version(body: &[u8], version: &str) -> bool {
        String::from_utf8_lossy(body).contains(&format!("<version>{version}</version>"))
    }

    fn traversal_paths() -> Vec<String> {
        [
            "/maven2/%2e%2e/%2e%2e/etc/passwd",
            "/maven2/org/%2e%2e/lib/maven-metadata.xml",
            "/maven2/org/..%2f..%2fetc/lib/1.0/lib-1.0.jar",
            "/maven2/org%5c..%5cetc/lib/maven-metadata.xml",
            "/maven2/org/lib/1.0/a%00b.jar",
            "/maven2/org/lib/%2e/lib-1.0.jar",
            "/maven2//org/lib/maven-metadata.xml",
            "/%2e%2e/maven2/org/lib/maven-metadata.xml",
        ]
        .map(String::from)
        .to_vec()
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        let (group, artifact) = split(name);
        format!("/repo/{group}/{artifact}/{version}/{artifact}-{version}.jar")
    }

    fn upstream_metadata_path(name: &str) -> String {
        let (group, artifact) = split(name);
        format!("/repo/{group}/{artifact}/maven-metadata.xml")
    }

    /// Maven reads no archive; its manifest is the POM: one whose entities expand a
    /// billion-fold ("billion laughs").
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>> {
        let (group_path, artifact) = split(name);
        let group = name.split_once(':').map_or("org.example", |(g, _)| g);
        let mut entities = String::from("<!ENTITY lol0 \"lollollollollollollollollollol\">");
        for i in 1..10 {
            let refs = format!("&lol{};", i - 1).repeat(10);
            entities.push_str(&format!("<!ENTITY lol{i} \"{refs}\">"));
        }
        let bomb = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE project [{entities}]><project><modelVersion>4.0.0</modelVersion><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version><description>&lol9;</description></project>"
        );
        Some(batlehub_test::request(
            Method::PUT,
            &format!("/maven2/{group_path}/{artifact}/{version}/{artifact}-{version}.pom"),
            bomb,
            Some(who),
        ))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        let (group_path, artifact) = split(name);
        let group = name.split_once(':').map_or("org.example", |(g, _)| g);
        let root = format!("/repo/{group_path}/{artifact}");
        let listed: String = versions
            .iter()
            .map(|v| format!("<version>{v}</version>"))
            .collect();
        let last = versions.last().copied().unwrap_or_default();
        let metadata = format!(
            "<metadata><groupId>{group}</groupId><artifactId>{artifact}</artifactId><versioning><latest>{last}</latest><release>{last}</release><versions>{listed}</versions><lastUpdated>20250101000000</lastUpdated></versioning></metadata>"
        );
        let mut files = vec![(format!("{root}/maven-metadata.xml"), metadata.into_bytes())];
        for v in versions {
            let pom = pom(group, artifact, v).into_bytes();
            let jar = jar(name, v);
            for (file, bytes) in [
                (format!("{artifact}-{v}.pom"), pom),
                (format!("{artifact}-{v}.jar"), jar),
            ] {
                files.push((
                    format!("{root}/{v}/{file}.sha1"),
                    sha1_hex(&bytes).into_bytes(),
                ));
                files.push((format!("{root}/{v}/{file}"), bytes));
            }
        }
        for (p, bytes) in files {
            Mock::given(method("GET"))
                .and(path(p))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_bytes(bytes)
                        .insert_header("last-modified", "Wed, 01 Jan 2025 00:00:00 GMT"),
                )
                .mount(server)
                .await;
        }
    }

    fn upstream_url(server: &MockServer) -> String {
        format!("{}/repo/", server.uri())
    }

    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        Self::mount_upstream(server, name, &[version]).await;
        let (group_path, artifact) = split(name);
        let dir = format!("/repo/{group_path}/{artifact}/{version}");
        match lie {
            Lie::WrongDigest => {
                Mock::given(method("GET"))
                    .and(path(format!("{dir}/{artifact}-{version}.jar")))
                    .respond_with(ResponseTemplate::new(200).set_body_bytes(jar(name, "6.6.6")))
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
            Lie::NoDigest => {
                for file in [
                    format!("{artifact}-{version}.jar"),
                    format!("{artifact}-{version}.pom"),
                ] {
                    for algo in ["sha1", "sha256", "sha512", "md5"] {
                        Mock::given(method("GET"))
                            .and(path(format!("{dir}/{file}.{algo}")))
                            .respond_with(ResponseTemplate::new(404))
                            .with_priority(1)
                            .mount(server)
                            .await;
                    }
                }
            }
        }
        true
    }
}

batlehub_test::conformance_suite!(Maven);
batlehub_test::adversarial_suite!(Maven);
batlehub_test::fuzz_suite!(Maven);
