//! The shared conformance suite (`batlehub-test`), run for RubyGems.

mod common;

use batlehub_core::body::Body;
use batlehub_rubygems::RubyGemsService;
use batlehub_test::conformance::{Conformance, Lie};
use common::{TestApp, gem, gem_of_spec, gemspec, gz, mount_gem, push_request, tar_of};
use http::{Request, StatusCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct RubyGems;

impl Conformance for RubyGems {
    type Service = RubyGemsService;

    fn package() -> &'static str {
        "conformance-gem"
    }

    fn publish_request(name: &str, version: &str, who: Option<&str>) -> Request<Body> {
        push_request(gem(name, version), who)
    }

    async fn publish(app: &TestApp, name: &str, version: &str, who: &str) -> StatusCode {
        app.call(push_request(gem(name, version), Some(who)))
            .await
            .status
    }

    fn metadata_path(name: &str) -> String {
        format!("/info/{name}")
    }

    fn artifact_path(name: &str, version: &str) -> String {
        format!("/gems/{name}-{version}.gem")
    }

    fn lists_version(body: &[u8], version: &str) -> bool {
        String::from_utf8_lossy(body)
            .lines()
            .any(|l| l.starts_with(&format!("{version} ")))
    }

    async fn mount_upstream(server: &MockServer, name: &str, versions: &[&str]) {
        mount_gem(server, "", name, versions).await;
    }

    fn upstream_artifact_path(name: &str, version: &str) -> String {
        format!("/gems/{name}-{version}.gem")
    }

    fn upstream_metadata_path(name: &str) -> String {
        format!("/info/{name}")
    }

    /// `metadata.gz` that unpacks to 17 MiB of spaces (the gemspec limit is 16 MiB).
    fn bomb_publish_request(_name: &str, _version: &str, who: &str) -> Option<Request<Body>> {
        let bomb = gz(&vec![b' '; 17 << 20]);
        let data = gz(&tar_of(&[("lib/x.rb", b"x")]));
        Some(push_request(
            tar_of(&[("metadata.gz", &bomb), ("data.tar.gz", &data)]),
            Some(who),
        ))
    }

    /// The compact index always publishes a `checksum:`; the lies are a `.gem` whose
    /// bytes are not the ones it names, and a line without one.
    async fn mount_lying_upstream(
        server: &MockServer,
        name: &str,
        version: &str,
        lie: Lie,
    ) -> bool {
        mount_gem(server, "", name, &[version]).await;
        let honest = gem(name, version);
        let line = match lie {
            Lie::WrongDigest => {
                let evil = gem_of_spec(&gemspec(name, version, "ruby", &[("evil", ">= 0")]));
                Mock::given(method("GET"))
                    .and(path(format!("/gems/{name}-{version}.gem")))
                    .respond_with(ResponseTemplate::new(200).set_body_bytes(evil))
                    .with_priority(1)
                    .mount(server)
                    .await;
                format!("{version} |checksum:{}\n", common::sha256_hex(&honest))
            }
            Lie::NoDigest => format!("{version} |ruby:>= 2.7\n"),
        };
        Mock::given(method("GET"))
            .and(path(format!("/info/{name}")))
            .respond_with(ResponseTemplate::new(200).set_body_string(format!("---\n{line}")))
            .with_priority(1)
            .mount(server)
            .await;
        true
    }
}

batlehub_test::conformance_suite!(RubyGems);
batlehub_test::adversarial_suite!(RubyGems);
batlehub_test::fuzz_suite!(RubyGems);
