//! A small harness: a cargo service over in-memory storage, a fake clock, requests with an
//! identity, and `.crate` / publish-body builders.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;

use batlehub_cargo::CargoService;
use batlehub_core::body::Body;
use batlehub_core::{
    BaseUrl, FakeClock, Hub, Identity, Mode, Principal, Registry, RegistryConfig, Role, Storage,
};
use bytes::Bytes;
use chrono::TimeZone as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub struct TestApp {
    pub hub: Hub,
    pub service: CargoService,
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
    base: BaseUrl,
    ttl_secs: u64,
    allowed_origins: Vec<String>,
    max_upload: Option<u64>,
    policy: Option<Arc<dyn batlehub_core::Policy>>,
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

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
        let resp: Response<Body> = self.service.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, headers, body)
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

    pub async fn get(&self, path: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        self.send(get(path, None)).await
    }

    pub async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Bytes) {
        self.send(get(path, Some(who))).await
    }

    pub async fn json(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.get(path).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// The index file of `name` as parsed lines.
    pub async fn lines(&self, name: &str) -> (StatusCode, Vec<Value>) {
        let (s, _, b) = self.get(&index_path(name)).await;
        (s, parse_lines(&b))
    }

    /// Publishes `name@vers` (a plain crate) as `who`.
    pub async fn publish(&self, name: &str, vers: &str, who: &str) -> (StatusCode, Value) {
        let meta = metadata(name, vers);
        self.publish_with(&meta, &crate_file(name, vers), who).await
    }

    pub async fn publish_with(
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

    /// Every blob path and the versions of each named package, to assert nothing changed.
    pub async fn snapshot_state(&self, keys: &[&str]) -> (Vec<String>, Vec<Option<usize>>) {
        let blobs = self.storage.blobs.list("").await.expect("list");
        let mut pkgs = Vec::new();
        for k in keys {
            pkgs.push(
                self.storage
                    .index
                    .package(self.registry.name(), k)
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
            base: BaseUrl::fixed("http://hub.test/cargo"),
            ttl_secs: 300,
            allowed_origins: Vec::new(),
            max_upload: None,
            policy: None,
        }
    }

    pub fn base(mut self, base: BaseUrl) -> Self {
        self.base = base;
        self
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

    /// A `RegistryPolicy` from TOML (the `[[registries]]` policy keys).
    pub fn rules(self, toml_text: &str) -> Self {
        let config: batlehub_rules::PolicyConfig = toml::from_str(toml_text).expect("policy toml");
        self.policy(batlehub_rules::RegistryPolicy::from_config(&config, "test").expect("policy"))
    }

    pub fn policy(mut self, p: impl batlehub_core::Policy) -> Self {
        self.policy = Some(Arc::new(p));
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
        let mut config = RegistryConfig::new("cargo", self.mode).upstreams(self.upstreams);
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
        let service = CargoService::new(registry.clone(), self.base);
        TestApp {
            hub,
            service,
            storage,
            clock,
            registry,
        }
    }
}

/// `name` (a user), `admin` (an admin), `anonymous`, or `invalid`.
pub fn identity(who: &str) -> Identity {
    match who {
        "" | "anonymous" => Identity::Anonymous,
        "invalid" => Identity::Invalid("invalid token".into()),
        name => Identity::User(Principal {
            id: name.into(),
            role: if name == "admin" {
                Role::Admin
            } else {
                Role::User
            },
            groups: Vec::new(),
            provider: "static".into(),
        }),
    }
}

pub fn get(path: &str, who: Option<&str>) -> Request<Body> {
    let mut req = Request::get(path)
        .body(batlehub_core::body::empty())
        .expect("request");
    if let Some(w) = who {
        req.extensions_mut().insert(identity(w));
    }
    req
}

pub fn put(path: &str, body: Vec<u8>, who: &str) -> Request<Body> {
    let mut req = Request::put(path)
        .body(batlehub_core::body::full(body))
        .expect("request");
    req.extensions_mut().insert(identity(who));
    req
}

/// A PUT whose body arrives in `chunk`-byte pieces.
pub fn put_chunked(path: &str, body: Vec<u8>, chunk: usize, who: &str) -> Request<Body> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut req = Request::put(path)
        .body(batlehub_core::body::from_stream(futures::stream::iter(
            pieces,
        )))
        .expect("request");
    req.extensions_mut().insert(identity(who));
    req
}

pub fn with_body(method: http::Method, path: &str, body: &Value, who: &str) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(batlehub_core::body::full(
            serde_json::to_vec(body).expect("json"),
        ))
        .expect("request");
    req.extensions_mut().insert(identity(who));
    req
}

pub fn delete(path: &str, who: &str) -> Request<Body> {
    let mut req = Request::delete(path)
        .body(batlehub_core::body::empty())
        .expect("request");
    req.extensions_mut().insert(identity(who));
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

pub fn sha256_hex(bytes: &[u8]) -> String {
    batlehub_core::digest::Digests::of(bytes).sha256_hex()
}
