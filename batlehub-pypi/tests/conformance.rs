//! The shared conformance suite (`batlehub-test`), run for PyPI.

mod common;

use batlehub_core::body::Body;
use batlehub_pypi::PypiService;
use batlehub_test::conformance::{Conformance, Lie};
use common::{
    PypiApp, TestApp, core_metadata, file_prefix, json_page, serve_files, serve_page, twine_fields,
    upload_request, wheel, wheel_with,
};
use http::{Request, StatusCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Pypi;

impl Conformance for Pypi {
    type Service = PypiService;

    fn package() -> &'static str {
        "conformance-pkg"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        let whl = wheel(name, version, &[]);
        upload_request(&twine_fields(name, version, &whl), &whl, who)
    }

    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        app.publish_wheel(name, version, who).await.status
    }

    fn metadata_path(name: &str) -> String {
        format!("/simple/{name}/")
    }

    fn artifact_path(name: &str, version: &str) -> String {
        format!("/packages/{name}/{}", wheel(name, version, &[]).filename)
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        format!("/files/{}", wheel(name, version, &[]).filename)
    }

    fn upstream_metadata_path(name: &str) -> String {
        format!("/simple/{name}/")
    }

    /// A wheel whose `METADATA` unpacks to 8 MiB (twice the limit) from a few KiB.
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>> {
        let honest = wheel(name, version, &[]);
        let mut metadata = core_metadata(name, version, &[]);
        metadata.extend(std::iter::repeat_n(b'x', 8 << 20));
        let prefix = file_prefix(name);
        let bomb = wheel_with(
            &honest.filename,
            &format!("{prefix}-{version}.dist-info"),
            &metadata,
        );
        Some(upload_request(
            &twine_fields(name, version, &bomb),
            &bomb,
            Some(who),
        ))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        let wheels: Vec<_> = versions.iter().map(|v| wheel(name, v, &[])).collect();
        let listed: Vec<_> = wheels
            .iter()
            .map(|w| (w, "2025-01-01T00:00:00.000000Z"))
            .collect();
        serve_page(server, name, json_page(name, &server.uri(), &listed)).await;
        serve_files(server, &wheels.iter().collect::<Vec<_>>()).await;
    }

    fn upstream_url(server: &MockServer) -> String {
        format!("{}/simple/", server.uri())
    }

    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        Self::mount_upstream(server, name, &[version]).await;
        let honest = wheel(name, version, &[]);
        match lie {
            Lie::WrongDigest => {
                Mock::given(method("GET"))
                    .and(path(format!("/files/{}", honest.filename)))
                    .respond_with(
                        ResponseTemplate::new(200).set_body_bytes(wheel(name, "6.6.6", &[]).bytes),
                    )
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
            Lie::NoDigest => {
                let mut page = json_page(
                    name,
                    &server.uri(),
                    &[(&honest, "2025-01-01T00:00:00.000000Z")],
                );
                page["files"][0]["hashes"] = serde_json::json!({});
                Mock::given(method("GET"))
                    .and(path(format!("/simple/{name}/")))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(serde_json::to_vec(&page).expect("json"), common::JSON),
                    )
                    .with_priority(1)
                    .mount(server)
                    .await;
            }
        }
        true
    }
}

batlehub_test::conformance_suite!(Pypi);
batlehub_test::adversarial_suite!(Pypi);
batlehub_test::fuzz_suite!(Pypi);
