//! The shared conformance suite (`batlehub-test`), run for cargo.

mod common;

use batlehub_cargo::CargoService;
use batlehub_core::body::Body;
use batlehub_test::conformance::{Conformance, Lie};
use common::{
    CargoApp, TestApp, archive, crate_file, index_path, metadata, mount_index, publish_body,
};
use http::{Method, Request, StatusCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Cargo;

impl Conformance for Cargo {
    type Service = CargoService;

    fn package() -> &'static str {
        "conformance-pkg"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        let body = publish_body(&metadata(name, version), &crate_file(name, version));
        batlehub_test::request(Method::PUT, "/api/v1/crates/new", body, who)
    }

    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        app.publish(name, version, who).await.0
    }

    fn metadata_path(name: &str) -> String {
        index_path(name)
    }

    fn artifact_path(name: &str, version: &str) -> String {
        format!("/api/v1/crates/{name}/{version}/download")
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        format!("/files/{name}-{version}.crate")
    }

    fn upstream_metadata_path(name: &str) -> String {
        format!("/index{}", index_path(name).trim_start_matches("/registry"))
    }

    /// A `.crate` whose `Cargo.toml` unpacks to 8 MiB (twice the limit) from a few KiB.
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>> {
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"{version}\"\n{}",
            "#".repeat(8 << 20)
        );
        let bomb = archive(&[
            (
                format!("{name}-{version}/Cargo.toml"),
                manifest.into_bytes(),
            ),
            (format!("{name}-{version}/src/lib.rs"), Vec::new()),
        ]);
        let body = publish_body(&metadata(name, version), &bomb);
        Some(batlehub_test::request(
            Method::PUT,
            "/api/v1/crates/new",
            body,
            Some(who),
        ))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        let versions: Vec<(&str, Option<&str>)> = versions.iter().map(|v| (*v, None)).collect();
        mount_index(server, name, &versions).await;
    }

    fn upstream_url(server: &MockServer) -> String {
        format!("sparse+{}/index/", server.uri())
    }

    /// Index lines always carry `cksum`: only the bytes can lie.
    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        Self::mount_upstream(server, name, &[version]).await;
        if lie == Lie::NoDigest {
            return false;
        }
        Mock::given(method("GET"))
            .and(path(format!("/files/{name}-{version}.crate")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(crate_file(name, "6.6.6")))
            .with_priority(1)
            .mount(server)
            .await;
        true
    }
}

batlehub_test::conformance_suite!(Cargo);
batlehub_test::adversarial_suite!(Cargo);
batlehub_test::fuzz_suite!(Cargo);
