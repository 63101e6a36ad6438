//! A small harness: a PyPI service over in-memory storage, a fake clock, requests with an
//! identity, wheel/sdist builders and twine-shaped multipart uploads.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::Write as _;
use std::sync::Arc;

use batlehub_core::body::Body;
use batlehub_core::digest::Digests;
use batlehub_core::{
    BaseUrl, FakeClock, Hub, Identity, Mode, Principal, Registry, RegistryConfig, Role, Storage,
};
use batlehub_pypi::{DeniedVersions, PypiService};
use bytes::Bytes;
use chrono::TimeZone as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

pub const JSON: &str = "application/vnd.pypi.simple.v1+json";
/// What pip sends.
pub const PIP_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";

pub struct TestApp {
    pub hub: Hub,
    pub service: PypiService,
    pub storage: Storage,
    pub clock: FakeClock,
    pub registry: Registry,
}

pub fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time")
}

pub struct Builder {
    mode: Mode,
    upstreams: Vec<String>,
    ttl_secs: u64,
    allowed_origins: Vec<String>,
    max_upload: Option<u64>,
    policy: Option<Arc<dyn batlehub_core::Policy>>,
    denied: DeniedVersions,
}

/// A response, collected.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub reason: Option<String>,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl TestApp {
    pub fn local() -> Builder {
        Builder::new(Mode::Local)
    }

    pub fn proxy(upstream: &str) -> Builder {
        let mut b = Builder::new(Mode::Proxy);
        b.upstreams = vec![upstream.to_owned()];
        b
    }

    pub fn hybrid(upstream: &str) -> Builder {
        let mut b = Builder::new(Mode::Hybrid);
        b.upstreams = vec![upstream.to_owned()];
        b
    }

    pub async fn send(&self, req: Request<Body>) -> Got {
        let resp: Response<Body> = self.service.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let reason = resp
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Got {
            status,
            headers,
            reason,
            body,
        }
    }

    /// Like `send`, but returns the body error instead of swallowing it.
    pub async fn send_raw(&self, req: Request<Body>) -> (StatusCode, Result<Bytes, String>) {
        let resp: Response<Body> = self.service.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string());
        (status, body)
    }

    pub async fn get(&self, path: &str) -> Got {
        self.send(get(path, None, None)).await
    }

    pub async fn get_json(&self, path: &str) -> Got {
        self.send(get(path, Some(JSON), None)).await
    }

    pub async fn get_as(&self, path: &str, accept: Option<&str>, who: &str) -> Got {
        self.send(get(path, accept, Some(who))).await
    }

    /// Uploads `file` as twine does, with correct digests.
    pub async fn upload(&self, name: &str, version: &str, file: &Dist, who: &str) -> Got {
        self.send(upload_request(
            &twine_fields(name, version, file),
            file,
            Some(who),
        ))
        .await
    }

    /// Builds and uploads a wheel whose METADATA is right.
    pub async fn publish_wheel(&self, name: &str, version: &str, who: &str) -> Got {
        let whl = wheel(name, version, &[]);
        self.upload(name, version, &whl, who).await
    }

    /// Every blob path and every version count, to assert nothing changed.
    pub async fn state(&self, names: &[&str]) -> (Vec<String>, Vec<Option<usize>>) {
        let blobs = self.storage.blobs.list("").await.expect("list");
        let mut pkgs = Vec::new();
        for n in names {
            pkgs.push(
                self.storage
                    .index
                    .package(self.registry.name(), n)
                    .await
                    .expect("index")
                    .map(|p| p.versions.len()),
            );
        }
        (blobs, pkgs)
    }
}

impl Builder {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            upstreams: Vec::new(),
            ttl_secs: 300,
            allowed_origins: Vec::new(),
            max_upload: None,
            policy: None,
            denied: DeniedVersions::Hide,
        }
    }

    pub fn upstreams(mut self, urls: &[String]) -> Self {
        self.upstreams = urls.to_vec();
        self
    }

    pub fn ttl(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }

    pub fn allowed_origins(mut self, o: &[String]) -> Self {
        self.allowed_origins = o.to_vec();
        self
    }

    pub fn max_upload(mut self, bytes: u64) -> Self {
        self.max_upload = Some(bytes);
        self
    }

    pub fn denied(mut self, d: DeniedVersions) -> Self {
        self.denied = d;
        self
    }

    /// A `RegistryPolicy` from TOML (the `[[registries]]` policy keys).
    pub fn rules(mut self, toml_text: &str) -> Self {
        let config: batlehub_rules::PolicyConfig = toml::from_str(toml_text).expect("policy toml");
        self.policy = Some(Arc::new(
            batlehub_rules::RegistryPolicy::from_config(&config, "test").expect("policy"),
        ));
        self
    }

    pub async fn build(self) -> TestApp {
        let storage = batlehub_storage::memory().await.expect("memory storage");
        let clock = FakeClock::new(start_time());
        let hub = Hub::builder()
            .storage(storage.clone())
            .clock(clock.clone())
            .build()
            .expect("hub");
        let mut config = RegistryConfig::new("pypi", self.mode).upstreams(self.upstreams);
        config.metadata_ttl = std::time::Duration::from_secs(self.ttl_secs);
        config.upstream.allowed_origins = self.allowed_origins;
        if let Some(m) = self.max_upload {
            config.max_upload_bytes = m;
        }
        let policy = self.policy.unwrap_or_else(|| {
            Arc::new(batlehub_rules::RegistryPolicy::rbac_only(
                batlehub_rules::Rbac::default(),
            ))
        });
        let registry = hub.registry_with_policy(config, policy).expect("registry");
        let service = PypiService::new(registry.clone(), BaseUrl::fixed("http://hub.test/pypi"))
            .denied_versions(self.denied);
        TestApp {
            hub,
            service,
            storage,
            clock,
            registry,
        }
    }
}

/// `name` or `name@group+group`; `admin` is an admin.
pub fn identity(who: &str) -> Identity {
    match who {
        "" | "anonymous" => Identity::Anonymous,
        "invalid" => Identity::Invalid("invalid token".into()),
        spec => {
            let (name, groups) = spec.split_once('@').unwrap_or((spec, ""));
            Identity::User(Principal {
                id: name.into(),
                role: if name == "admin" {
                    Role::Admin
                } else {
                    Role::User
                },
                groups: groups
                    .split('+')
                    .filter(|g| !g.is_empty())
                    .map(|g| format!("static:{g}"))
                    .collect(),
                provider: "static".into(),
            })
        }
    }
}

pub fn get(path: &str, accept: Option<&str>, who: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    let mut req = b.body(batlehub_core::body::empty()).expect("request");
    if let Some(w) = who {
        req.extensions_mut().insert(identity(w));
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
    let mut req = Request::post("/legacy/")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(batlehub_core::body::full(body))
        .expect("request");
    if let Some(w) = who {
        req.extensions_mut().insert(identity(w));
    }
    req
}

/// sha256 hex of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    Digests::of(bytes).sha256_hex()
}
