//! RubyGems helpers on the shared harness (`batlehub-test`): `.gem` files as `gem build`
//! writes them, pushes as `gem push` sends them, and an upstream source on wiremock.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use std::io::Write as _;

use batlehub_rubygems::RubyGemsService;
use bytes::Bytes;
use http::{Method, StatusCode};
use md5::Digest as _;
use sha2::{Sha256, Sha512};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use batlehub_test::{get, identity, start_time};

/// The shared harness serving RubyGems.
pub type TestApp = batlehub_test::TestApp<RubyGemsService>;

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("tar entry");
    }
    b.into_inner().expect("tar")
}

/// The YAML gemspec `gem build` writes for `name`/`version`/`platform` with runtime
/// dependencies `deps` (`(name, "op version")`).
pub fn gemspec(name: &str, version: &str, platform: &str, deps: &[(&str, &str)]) -> String {
    let mut deps_yaml = String::new();
    for (dep, req) in deps {
        let (op, v) = req.split_once(' ').expect("op version");
        deps_yaml.push_str(&format!(
            "- !ruby/object:Gem::Dependency\n  name: {dep}\n  requirement: !ruby/object:Gem::Requirement\n    requirements:\n    - - \"{op}\"\n      - !ruby/object:Gem::Version\n        version: '{v}'\n  type: :runtime\n  prerelease: false\n  version_requirements: !ruby/object:Gem::Requirement\n    requirements:\n    - - \"{op}\"\n      - !ruby/object:Gem::Version\n        version: '{v}'\n"
        ));
    }
    let deps_yaml = if deps_yaml.is_empty() {
        "dependencies: []\n".to_owned()
    } else {
        format!("dependencies:\n{deps_yaml}")
    };
    format!(
        "--- !ruby/object:Gem::Specification\nname: {name}\nversion: !ruby/object:Gem::Version\n  version: {version}\nplatform: {platform}\nauthors:\n- Test Author\nautorequire:\nbindir: bin\ncert_chain: []\ndate: 2026-01-02 00:00:00.000000000 Z\n{deps_yaml}description: A test gem.\nemail:\nexecutables: []\nextensions: []\nextra_rdoc_files: []\nfiles:\n- lib/{name}.rb\nhomepage: https://example.com/{name}\nlicenses:\n- MIT\nmetadata: {{}}\npost_install_message:\nrdoc_options: []\nrequire_paths:\n- lib\nrequired_ruby_version: !ruby/object:Gem::Requirement\n  requirements:\n  - - \">=\"\n    - !ruby/object:Gem::Version\n      version: '2.7'\nrequired_rubygems_version: !ruby/object:Gem::Requirement\n  requirements:\n  - - \">=\"\n    - !ruby/object:Gem::Version\n      version: '0'\nrequirements: []\nrubygems_version: 3.3.15\nsigning_key:\nspecification_version: 4\nsummary: The {name} test gem.\ntest_files: []\n"
    )
}

/// A `.gem` of the YAML gemspec `spec` (metadata, one file, checksums).
pub fn gem_of_spec(spec: &str) -> Vec<u8> {
    let metadata = gz(spec.as_bytes());
    let data = gz(&tar_of(&[("lib/gem.rb", b"module Gem1; end\n")]));
    let sums = format!(
        "---\nSHA256:\n  metadata.gz: {}\n  data.tar.gz: {}\nSHA512:\n  metadata.gz: {}\n  data.tar.gz: {}\n",
        hex::encode(Sha256::digest(&metadata)),
        hex::encode(Sha256::digest(&data)),
        hex::encode(Sha512::digest(&metadata)),
        hex::encode(Sha512::digest(&data)),
    );
    tar_of(&[
        ("metadata.gz", &metadata),
        ("data.tar.gz", &data),
        ("checksums.yaml.gz", &gz(sums.as_bytes())),
    ])
}

/// A `.gem` of `name`/`version` (pure Ruby, no dependencies).
pub fn gem(name: &str, version: &str) -> Vec<u8> {
    gem_of_spec(&gemspec(name, version, "ruby", &[]))
}

/// `POST /api/v1/gems` of `bytes`, as `who` when given (a key in `Authorization`).
pub fn push_request(bytes: Vec<u8>, who: Option<&str>) -> http::Request<batlehub_core::body::Body> {
    let mut req = batlehub_test::request(Method::POST, "/api/v1/gems", bytes, who);
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    req
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(md5::Md5::digest(bytes))
}

/// Serves `name` with `versions` as an upstream source does: `/info/{name}` (checksums of
/// the gems served), `/versions`, `/gems/*.gem`, `/api/v1/versions/{name}.json` (pushed
/// long ago), `/names` under `prefix` (`""` or `/upstream`). Returns the `/info` and
/// `/versions` bodies served.
pub async fn mount_gem(
    server: &MockServer,
    prefix: &str,
    name: &str,
    versions: &[&str],
) -> (String, String) {
    let mut info = String::from("---\n");
    let mut json = Vec::new();
    for v in versions {
        let bytes = gem(name, v);
        info.push_str(&format!(
            "{v} |checksum:{},ruby:>= 2.7\n",
            sha256_hex(&bytes)
        ));
        json.push(serde_json::json!({
            "number": v, "platform": "ruby", "created_at": "2020-01-02T03:04:05.000Z",
        }));
        Mock::given(method("GET"))
            .and(path(format!("{prefix}/gems/{name}-{v}.gem")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(server)
            .await;
    }
    let versions_doc = format!(
        "created_at: 2026-01-01T00:00:00Z\n---\n{name} {} {}\n",
        versions.join(","),
        md5_hex(info.as_bytes())
    );
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/info/{name}")))
        .respond_with(ResponseTemplate::new(200).set_body_string(info.clone()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/versions")))
        .respond_with(ResponseTemplate::new(200).set_body_string(versions_doc.clone()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/names")))
        .respond_with(ResponseTemplate::new(200).set_body_string(format!("---\n{name}\n")))
        .mount(server)
        .await;
    json.reverse();
    Mock::given(method("GET"))
        .and(path(format!("{prefix}/api/v1/versions/{name}.json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json))
        .mount(server)
        .await;
    (info, versions_doc)
}
