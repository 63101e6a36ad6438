//! npm's helpers on the shared harness (`batlehub-test`): tarball and publish-body builders,
//! upstream packuments, and the npm-shaped requests the tests send.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use base64::Engine as _;
use batlehub_core::body::Body;
use batlehub_core::digest::Digests;
use batlehub_npm::NpmService;
use http::{Request, StatusCode};
use serde_json::{Value, json};

pub use batlehub_test::{delete, get, identity, start_time};

/// The shared harness serving npm.
pub type TestApp = batlehub_test::TestApp<NpmService>;

/// What npm tests ask of the harness beyond the shared requests.
pub trait NpmApp {
    /// A GET as `who`, its body as JSON.
    async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Value);
    /// Publishes `name@version` as `who`, as `npm publish` does.
    async fn publish(&self, name: &str, version: &str, who: &str) -> (StatusCode, Value);
}

impl NpmApp for TestApp {
    async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Value) {
        let (s, h, b) = self.send(get(path, Some(who))).await;
        (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn publish(&self, name: &str, version: &str, who: &str) -> (StatusCode, Value) {
        let body = publish_body(
            name,
            version,
            &tgz(&json!({"name": name, "version": version})),
        );
        let (s, _, b) = self
            .send(put_json(&format!("/{}", escape(name)), &body, Some(who)))
            .await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }
}

pub fn escape(name: &str) -> String {
    name.replace('/', "%2f")
}

pub fn get_corgi(path: &str) -> Request<Body> {
    let mut req = get(path, None);
    req.headers_mut().insert(
        "accept",
        http::HeaderValue::from_static(
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        ),
    );
    req
}

pub fn put_json(path: &str, body: &Value, who: Option<&str>) -> Request<Body> {
    let mut req = batlehub_test::request(
        http::Method::PUT,
        path,
        serde_json::to_vec(body).expect("json"),
        who,
    );
    req.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// A .tgz with `package/package.json` = `manifest`.
pub fn tgz(manifest: &Value) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [
        (
            "package/package.json",
            serde_json::to_vec(manifest).expect("json"),
        ),
        ("package/index.js", b"module.exports = 42;\n".to_vec()),
    ] {
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

/// The body `npm publish` sends.
pub fn publish_body(name: &str, version: &str, tarball: &[u8]) -> Value {
    let d = Digests::of(tarball);
    let basename = name.rsplit('/').next().unwrap_or(name);
    json!({
        "_id": name,
        "name": name,
        "description": "a test package",
        "dist-tags": { "latest": version },
        "versions": { version: {
            "name": name,
            "version": version,
            "description": "a test package",
            "dependencies": { "dep-a": "^1.0.0" },
            "scripts": { "postinstall": "node x.js" },
            "readme": "# readme",
            "dist": { "integrity": d.sha512_sri(), "shasum": d.sha1_hex(), "tarball": format!("http://x/{name}/-/{basename}-{version}.tgz") }
        }},
        "access": null,
        "_attachments": { format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(tarball),
            "length": tarball.len()
        }}
    })
}

/// An upstream packument for `name` with the given versions, tarballs on `tarball_base`.
pub fn upstream_packument(name: &str, tarball_base: &str, versions: &[(&str, &[u8])]) -> Value {
    let basename = name.rsplit('/').next().unwrap_or(name);
    let mut vs = serde_json::Map::new();
    let mut time = serde_json::Map::new();
    for (v, bytes) in versions {
        let d = Digests::of(bytes);
        vs.insert((*v).to_owned(), json!({
            "name": name, "version": v,
            "dependencies": {},
            "dist": { "integrity": d.sha512_sri(), "shasum": d.sha1_hex(), "tarball": format!("{tarball_base}/{name}/-/{basename}-{v}.tgz") }
        }));
        time.insert((*v).to_owned(), json!("2025-01-01T00:00:00.000Z"));
    }
    time.insert("modified".into(), json!("2025-01-01T00:00:00.000Z"));
    json!({
        "_id": name, "name": name,
        "dist-tags": { "latest": versions.last().map(|v| v.0).unwrap_or("1.0.0") },
        "versions": vs, "time": time,
    })
}
