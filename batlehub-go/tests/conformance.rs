//! The shared conformance suite (`batlehub-test`), run for Go.

mod common;

use batlehub_core::body::Body;
use batlehub_go::GoService;
use batlehub_test::conformance::{Conformance, Lie};
use common::{
    GoApp, TestApp, declare_size, escape, go_mod, go_version, module, module_zip, mount_module,
    zip_of,
};
use http::{Method, Request, StatusCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Go;

impl Conformance for Go {
    type Service = GoService;

    fn package() -> &'static str {
        "example.com/conformance"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        let m = module(name);
        batlehub_test::request(
            Method::PUT,
            &Self::artifact_path(name, version),
            module_zip(&m, &go_version(version)),
            who,
        )
    }

    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        let m = module(name);
        let (status, _) = app
            .put_text(
                &Self::artifact_path(name, version),
                module_zip(&m, &go_version(version)),
                who,
            )
            .await;
        status
    }

    fn metadata_path(name: &str) -> String {
        format!("/{}/@v/list", escape(&module(name)))
    }

    fn artifact_path(name: &str, version: &str) -> String {
        format!(
            "/{}/@v/{}.zip",
            escape(&module(name)),
            escape(&go_version(version))
        )
    }

    fn lists_version(body: &[u8], version: &str) -> bool {
        String::from_utf8_lossy(body)
            .lines()
            .any(|l| l == go_version(version))
    }

    fn traversal_paths() -> Vec<String> {
        [
            "/%2e%2e/%2e%2e/etc/passwd/@v/list",
            "/example.com/%2e%2e/m/@v/list",
            "/example.com/..%2f..%2fetc/@v/v1.0.0.zip",
            "/example.com%5c..%5cetc/@v/list",
            "/example.com/a%00b/@v/v1.0.0.zip",
            "/example.com/%2e/@v/v1.0.0.info",
            "//example.com/m/@v/list",
            "/example.com/m/@v/..%2f..%2fv1.0.0.zip",
        ]
        .map(String::from)
        .to_vec()
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        format!(
            "/goproxy/{}/@v/v{}.zip",
            escape(&module(name)),
            escape(version)
        )
    }

    fn upstream_metadata_path(name: &str) -> String {
        format!("/goproxy/{}/@v/list", escape(&module(name)))
    }

    /// A module zip declaring a file of 600 MiB, past the go command's 500 MiB.
    fn bomb_publish_request(name: &str, version: &str, who: &str) -> Option<Request<Body>> {
        let m = module(name);
        let prefix = format!("{m}@{}/", go_version(version));
        let zeros = format!("{prefix}zeros.txt");
        let zip = zip_of(&[
            (format!("{prefix}go.mod"), go_mod(&m).into_bytes()),
            (zeros.clone(), vec![0u8; 1 << 20]),
        ]);
        Some(batlehub_test::request(
            Method::PUT,
            &Self::artifact_path(name, version),
            declare_size(zip, &zeros, 600 << 20),
            Some(who),
        ))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        let versions: Vec<String> = versions.iter().map(|v| go_version(v)).collect();
        let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
        mount_module(server, &module(name), &versions).await;
    }

    fn upstream_url(server: &MockServer) -> String {
        format!("{}/goproxy/", server.uri())
    }

    /// GOPROXY publishes no digest of a zip's bytes, but a zip must hold the `go.mod` its
    /// `.mod` publishes: the lie is a zip whose `go.mod` is another.
    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        if lie == Lie::NoDigest {
            return false;
        }
        let m = module(name);
        let v = go_version(version);
        mount_module(server, &m, &[&v]).await;
        let prefix = format!("{m}@{v}/");
        let lying = zip_of(&[
            (
                format!("{prefix}go.mod"),
                format!("{}require example.com/evil v1.0.0\n", go_mod(&m)).into_bytes(),
            ),
            (format!("{prefix}lib.go"), b"package lib\n".to_vec()),
        ]);
        Mock::given(method("GET"))
            .and(path(Self::upstream_artifact_path(name, version)))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(lying))
            .with_priority(1)
            .mount(server)
            .await;
        true
    }
}

batlehub_test::conformance_suite!(Go);
batlehub_test::adversarial_suite!(Go);
batlehub_test::fuzz_suite!(Go);
