//! The shared conformance suite (`batlehub-test`), run for PyPI.

mod common;

use batlehub_core::body::Body;
use batlehub_pypi::PypiService;
use batlehub_test::conformance::Conformance;
use common::{
    PypiApp, TestApp, json_page, serve_files, serve_page, twine_fields, upload_request, wheel,
};
use http::{Request, StatusCode};
use wiremock::MockServer;

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
}

batlehub_test::conformance_suite!(Pypi);
batlehub_test::adversarial_suite!(Pypi);
