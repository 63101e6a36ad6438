//! PyPI's helpers on the shared harness (`batlehub-test`): wheel/sdist builders,
//! twine-shaped multipart uploads, and requests with an `Accept` header.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use std::io::Write as _;

use batlehub_core::body::Body;
use batlehub_core::digest::Digests;
use batlehub_pypi::{DeniedVersions, PypiService};
use http::Request;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use batlehub_test::sha256_hex as sha256;
pub use batlehub_test::{Got, identity, start_time};

pub const JSON: &str = "application/vnd.pypi.simple.v1+json";
/// What pip sends.
pub const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

/// The shared harness serving PyPI.
pub type TestApp = batlehub_test::TestApp<PypiService>;

/// PyPI settings of the harness's builder.
pub trait PypiBuilder {
    /// How versions refused by policy appear on project pages.
    fn denied(self, d: DeniedVersions) -> Self;
}

impl PypiBuilder for batlehub_test::Builder<PypiService> {
    fn denied(self, d: DeniedVersions) -> Self {
        self.map_service(move |s| s.denied_versions(d))
    }
}

/// What PyPI tests ask of the harness beyond the shared requests.
pub trait PypiApp {
    /// An anonymous GET asking for PEP 691 JSON.
    async fn get_json(&self, path: &str) -> Got;
    /// A GET as `who` with `accept`.
    async fn get_as(&self, path: &str, accept: Option<&str>, who: &str) -> Got;
    /// Uploads `file` as twine does, with correct digests.
    async fn upload(&self, name: &str, version: &str, file: &Dist, who: &str) -> Got;
    /// Builds and uploads a wheel whose METADATA is right.
    async fn publish_wheel(&self, name: &str, version: &str, who: &str) -> Got;
}

impl PypiApp for TestApp {
    async fn get_json(&self, path: &str) -> Got {
        self.call(get(path, Some(JSON), None)).await
    }

    async fn get_as(&self, path: &str, accept: Option<&str>, who: &str) -> Got {
        self.call(get(path, accept, Some(who))).await
    }

    async fn upload(&self, name: &str, version: &str, file: &Dist, who: &str) -> Got {
        self.call(upload_request(
            &twine_fields(name, version, file),
            file,
            Some(who),
        ))
        .await
    }

    async fn publish_wheel(&self, name: &str, version: &str, who: &str) -> Got {
        let whl = wheel(name, version, &[]);
        self.upload(name, version, &whl, who).await
    }
}

/// A GET with `Accept: accept`, as `who` when given.
pub fn get(path: &str, accept: Option<&str>, who: Option<&str>) -> Request<Body> {
    let mut req = batlehub_test::get(path, who);
    if let Some(a) = accept {
        req.headers_mut()
            .insert("accept", http::HeaderValue::from_str(a).expect("header"));
    }
    req
}

/// A distribution file: name and bytes.
#[derive(Debug, Clone)]
pub struct Dist {
    pub filename: String,
    pub bytes: Vec<u8>,
    /// The core metadata inside it.
    pub metadata: Vec<u8>,
}

pub fn core_metadata(name: &str, version: &str, requires: &[&str]) -> Vec<u8> {
    let mut m = format!(
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: The {name} test package\n\
         Author: Test Author\nLicense: MIT\nRequires-Python: >=3.8\nClassifier: Programming Language :: Python :: 3\n"
    );
    for r in requires {
        m.push_str(&format!("Requires-Dist: {r}\n"));
    }
    m.push_str("Description-Content-Type: text/markdown\n\n# readme\n");
    m.into_bytes()
}

/// The file-name form of a project name.
pub fn file_prefix(name: &str) -> String {
    let mut out = String::new();
    let mut run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !run {
                out.push('_');
            }
            run = true;
        } else {
            out.push(c.to_ascii_lowercase());
            run = false;
        }
    }
    out
}

/// A wheel with `{dist}-{version}.dist-info/METADATA` = `metadata`.
pub fn wheel_with(filename: &str, dist_info: &str, metadata: &[u8]) -> Dist {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, data) in [
        ("pkg/__init__.py".to_owned(), b"VALUE = 1\n".to_vec()),
        (format!("{dist_info}/METADATA"), metadata.to_vec()),
        (
            format!("{dist_info}/WHEEL"),
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_vec(),
        ),
        (format!("{dist_info}/RECORD"), Vec::new()),
    ] {
        w.start_file(path, opts).expect("start");
        w.write_all(&data).expect("write");
    }
    Dist {
        filename: filename.to_owned(),
        bytes: w.finish().expect("finish").into_inner(),
        metadata: metadata.to_vec(),
    }
}

pub fn wheel(name: &str, version: &str, requires: &[&str]) -> Dist {
    let prefix = file_prefix(name);
    wheel_with(
        &format!("{prefix}-{version}-py3-none-any.whl"),
        &format!("{prefix}-{version}.dist-info"),
        &core_metadata(name, version, requires),
    )
}

pub fn sdist(name: &str, version: &str) -> Dist {
    let prefix = file_prefix(name);
    let top = format!("{prefix}-{version}");
    let metadata = core_metadata(name, version, &[]);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [
        (format!("{top}/PKG-INFO"), metadata.clone()),
        (format!("{top}/pkg/__init__.py"), b"VALUE = 1\n".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        builder
            .append_data(&mut h, path, data.as_slice())
            .expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gz");
    Dist {
        filename: format!("{top}.tar.gz"),
        bytes: gz.finish().expect("gz"),
        metadata,
    }
}

/// The form fields twine sends for `file`.
pub fn twine_fields(name: &str, version: &str, file: &Dist) -> Vec<(String, String)> {
    let filetype = if file.filename.ends_with(".whl") {
        "bdist_wheel"
    } else {
        "sdist"
    };
    vec![
        ("name".into(), name.into()),
        ("version".into(), version.into()),
        ("filetype".into(), filetype.into()),
        ("pyversion".into(), "py3".into()),
        ("metadata_version".into(), "2.1".into()),
        ("summary".into(), "test".into()),
        (
            "sha256_digest".into(),
            Digests::of(&file.bytes).sha256_hex(),
        ),
        (":action".into(), "file_upload".into()),
        ("protocol_version".into(), "1".into()),
    ]
}

pub const BOUNDARY: &str = "b0undaryXYZ";

/// A multipart body: the fields, then `content` (as twine orders them).
pub fn multipart(fields: &[(String, String)], file: &Dist) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"content\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            file.filename
        )
        .as_bytes(),
    );
    body.extend_from_slice(&file.bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn upload_request(
    fields: &[(String, String)],
    file: &Dist,
    who: Option<&str>,
) -> Request<Body> {
    raw_upload(multipart(fields, file), who)
}

pub fn raw_upload(body: Vec<u8>, who: Option<&str>) -> Request<Body> {
    let mut req = batlehub_test::request(http::Method::POST, "/legacy/", body, who);
    req.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))
            .expect("header"),
    );
    req
}

/// A PEP 691 page listing `files` at `{files_base}/files/{filename}`.
pub fn json_page(name: &str, files_base: &str, files: &[(&Dist, &str)]) -> Value {
    let list: Vec<Value> = files
        .iter()
        .map(|(d, time)| {
            let mut f = json!({
                "filename": d.filename,
                "url": format!("{files_base}/files/{}", d.filename),
                "hashes": { "sha256": sha256(&d.bytes) },
                "requires-python": ">=3.8",
                "yanked": false,
                "size": d.bytes.len(),
                "upload-time": time,
            });
            if !d.metadata.is_empty() && d.filename.ends_with(".whl") {
                f["core-metadata"] = json!({ "sha256": sha256(&d.metadata) });
            }
            f
        })
        .collect();
    json!({ "meta": { "api-version": "1.1" }, "name": name, "files": list })
}

pub async fn serve_files(server: &MockServer, files: &[&Dist]) {
    for d in files {
        Mock::given(method("GET"))
            .and(path(format!("/files/{}", d.filename)))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(d.bytes.clone()))
            .mount(server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/files/{}.metadata", d.filename)))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(d.metadata.clone()))
            .mount(server)
            .await;
    }
}

pub async fn serve_page(server: &MockServer, name: &str, page: Value) {
    Mock::given(method("GET"))
        .and(path(format!("/simple/{name}/")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(serde_json::to_vec(&page).expect("json"), JSON)
                .insert_header("etag", "\"p1\""),
        )
        .mount(server)
        .await;
}
