//! cargo's helpers on the shared harness (`batlehub-test`): `.crate` and publish-body
//! builders, index paths and lines, and the cargo-shaped requests the tests send.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use batlehub_cargo::CargoService;
use batlehub_core::body::Body;
use bytes::Bytes;
use http::{Request, StatusCode};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use batlehub_test::{delete, get, identity, put, sha256_hex, start_time};

/// The shared harness serving cargo.
pub type TestApp = batlehub_test::TestApp<CargoService>;

/// What cargo tests ask of the harness beyond the shared requests.
pub trait CargoApp {
    /// A GET as `who`.
    async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Bytes);
    /// The index file of `name` as parsed lines.
    async fn lines(&self, name: &str) -> (StatusCode, Vec<Value>);
    /// Publishes `name@vers` (a plain crate) as `who`.
    async fn publish(&self, name: &str, vers: &str, who: &str) -> (StatusCode, Value);
    /// Publishes a crate with the given metadata as `who`.
    async fn publish_with(
        &self,
        meta: &Value,
        crate_bytes: &[u8],
        who: &str,
    ) -> (StatusCode, Value);
}

impl CargoApp for TestApp {
    async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        self.send(get(path, Some(who))).await
    }

    async fn lines(&self, name: &str) -> (StatusCode, Vec<Value>) {
        let (s, _, b) = self.get(&index_path(name)).await;
        (s, parse_lines(&b))
    }

    async fn publish(&self, name: &str, vers: &str, who: &str) -> (StatusCode, Value) {
        let meta = metadata(name, vers);
        self.publish_with(&meta, &crate_file(name, vers), who).await
    }

    async fn publish_with(
        &self,
        meta: &Value,
        crate_bytes: &[u8],
        who: &str,
    ) -> (StatusCode, Value) {
        let (s, _, b) = self
            .send(put(
                "/api/v1/crates/new",
                publish_body(meta, crate_bytes),
                who,
            ))
            .await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }
}

/// A PUT whose body arrives in `chunk`-byte pieces.
pub fn put_chunked(path: &str, body: Vec<u8>, chunk: usize, who: &str) -> Request<Body> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut req = put(path, Bytes::new(), who);
    *req.body_mut() = batlehub_core::body::from_stream(futures::stream::iter(pieces));
    req
}

pub fn with_body(method: http::Method, path: &str, body: &Value, who: &str) -> Request<Body> {
    let mut req = batlehub_test::request(
        method,
        path,
        serde_json::to_vec(body).expect("json"),
        Some(who),
    );
    req.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// `/registry/{prefix}/{lowercase name}`.
pub fn index_path(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let prefix = match lower.len() {
        1 => "1".to_owned(),
        2 => "2".to_owned(),
        3 => format!("3/{}", &lower[..1]),
        _ => format!("{}/{}", &lower[..2], &lower[2..4]),
    };
    format!("/registry/{prefix}/{lower}")
}

pub fn parse_lines(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).expect("index line is JSON"))
        .collect()
}

/// A `.crate` with `{name}-{vers}/Cargo.toml` naming `toml_name@toml_vers`.
pub fn crate_named(dir_name: &str, dir_vers: &str, toml_name: &str, toml_vers: &str) -> Vec<u8> {
    let manifest = format!(
        "[package]\nname = \"{toml_name}\"\nversion = \"{toml_vers}\"\nedition = \"2021\"\n"
    );
    archive(&[
        (
            format!("{dir_name}-{dir_vers}/Cargo.toml"),
            manifest.into_bytes(),
        ),
        (
            format!("{dir_name}-{dir_vers}/src/lib.rs"),
            format!("pub fn version() -> &'static str {{ \"{toml_vers}\" }}\n").into_bytes(),
        ),
    ])
}

/// A well-formed `.crate` for `name@vers`.
pub fn crate_file(name: &str, vers: &str) -> Vec<u8> {
    crate_named(name, vers, name, vers)
}

/// A gzip'd tar of `files`.
pub fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, path, data.as_slice())
            .expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).expect("gz");
    gz.finish().expect("gz")
}

/// The JSON metadata `cargo publish` sends for a plain crate.
pub fn metadata(name: &str, vers: &str) -> Value {
    json!({
        "name": name,
        "vers": vers,
        "deps": [],
        "features": {},
        "authors": [],
        "description": format!("the {name} test crate"),
        "documentation": null,
        "homepage": null,
        "readme": null,
        "readme_file": null,
        "keywords": [],
        "categories": [],
        "license": "MIT",
        "license_file": null,
        "repository": null,
        "badges": {},
        "links": null,
        "rust_version": null
    })
}

/// u32 LE JSON length, JSON, u32 LE crate length, crate.
pub fn publish_body(meta: &Value, crate_bytes: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).expect("json");
    framed(&json, crate_bytes, crate_bytes.len() as u32)
}

/// A publish body whose `.crate` length field says `declared`.
pub fn framed(json: &[u8], crate_bytes: &[u8], declared: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(json);
    out.extend_from_slice(&declared.to_le_bytes());
    out.extend_from_slice(crate_bytes);
    out
}

/// An upstream index line for `name@vers` whose crate is `bytes`.
pub fn line(name: &str, vers: &str, bytes: &[u8], pubtime: Option<&str>) -> String {
    let mut v = json!({
        "name": name, "vers": vers, "deps": [], "cksum": sha256_hex(bytes),
        "features": {}, "yanked": false, "links": null,
        "x-unknown-field": "kept as is",
    });
    if let Some(t) = pubtime {
        v["pubtime"] = json!(t);
    }
    v.to_string()
}

/// Serves a sparse index on `server` under `/index/` holding `name` with `versions` (and
/// publish times), crates under `{uri}/files/{crate}-{version}.crate`.
pub async fn mount_index(server: &MockServer, name: &str, versions: &[(&str, Option<&str>)]) {
    let dl = format!("{}/files/{{crate}}-{{version}}.crate", server.uri());
    Mock::given(method("GET"))
        .and(path("/index/config.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "dl": dl, "api": server.uri() })),
        )
        .mount(server)
        .await;
    let mut text = String::new();
    for (v, t) in versions {
        text.push_str(&line(name, v, &crate_file(name, v), *t));
        text.push('\n');
        Mock::given(method("GET"))
            .and(path(format!("/files/{name}-{v}.crate")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(crate_file(name, v)))
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!(
            "/index{}",
            index_path(name).trim_start_matches("/registry")
        )))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(text)
                .insert_header("etag", "\"v1\""),
        )
        .mount(server)
        .await;
}
