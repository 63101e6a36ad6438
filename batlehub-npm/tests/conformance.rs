//! The shared conformance suite (`batlehub-test`), run for npm.

mod common;

use batlehub_core::body::Body;
use batlehub_npm::NpmService;
use batlehub_test::conformance::{Conformance, Lie};
use common::{NpmApp, TestApp, escape, publish_body, put_json, tgz, upstream_packument};
use http::{Request, StatusCode};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Npm;

fn tarball(name: &str, version: &str) -> Vec<u8> {
    tgz(&json!({"name": name, "version": version}))
}

impl Conformance for Npm {
    type Service = NpmService;

    fn package() -> &'static str {
        "conformance-pkg"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        let body = publish_body(name, version, &tarball(name, version));
        put_json(&format!("/{}", escape(name)), &body, who)
    }

    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        app.publish(name, version, who).await.0
    }

    fn metadata_path(name: &str) -> String {
        format!("/{}", escape(name))
    }

    fn artifact_path(name: &str, version: &str) -> String {
        let base = name.rsplit('/').next().unwrap_or(name);
        format!("/{name}/-/{base}-{version}.tgz")
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        Self::artifact_path(name, version)
    }

    fn upstream_metadata_path(name: &str) -> String {
        format!("/{name}")
    }

    /// A tarball whose `package.json` unpacks to 8 MiB (twice the limit) from a few KiB.
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>> {
        let bomb = tgz(&json!({"name": name, "version": version, "pad": " ".repeat(8 << 20)}));
        let body = publish_body(name, version, &bomb);
        Some(put_json(&format!("/{}", escape(name)), &body, Some(who)))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        let tarballs: Vec<(&str, Vec<u8>)> =
            versions.iter().map(|v| (*v, tarball(name, v))).collect();
        let listed: Vec<(&str, &[u8])> = tarballs.iter().map(|(v, b)| (*v, b.as_slice())).collect();
        Mock::given(method("GET"))
            .and(path(format!("/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(upstream_packument(
                name,
                &server.uri(),
                &listed,
            )))
            .mount(server)
            .await;
        for (v, bytes) in tarballs {
            Mock::given(method("GET"))
                .and(path(Self::artifact_path(name, v)))
                .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
                .mount(server)
                .await;
        }
    }

    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        Self::mount_upstream(server, name, &[version]).await;
        match lie {
            Lie::WrongDigest => {
                Mock::given(method("GET"))
                    .and(path(Self::artifact_path(name, version)))
                    .respond_with(ResponseTemplate::new(200).set_body_bytes(tarball(name, "6.6.6")))
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
            Lie::NoDigest => {
                let bytes = tarball(name, version);
                let mut doc =
                    upstream_packument(name, &server.uri(), &[(version, bytes.as_slice())]);
                let dist = &mut doc["versions"][version]["dist"];
                dist.as_object_mut().map(|d| {
                    d.remove("integrity");
                    d.remove("shasum")
                });
                Mock::given(method("GET"))
                    .and(path(format!("/{name}")))
                    .respond_with(ResponseTemplate::new(200).set_body_json(doc))
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
        }
        true
    }
}

batlehub_test::conformance_suite!(Npm);
batlehub_test::adversarial_suite!(Npm);
batlehub_test::fuzz_suite!(Npm);
