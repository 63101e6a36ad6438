//! A small harness: an npm service over in-memory storage, a fake clock, requests with an
//! identity, and tarball builders.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;

use base64::Engine as _;
use batlehub_core::body::Body;
use batlehub_core::digest::Digests;
use batlehub_core::{
    BaseUrl, FakeClock, Hub, Identity, Mode, Principal, Registry, RegistryConfig, Role, Storage,
};
use batlehub_npm::NpmService;
use bytes::Bytes;
use chrono::TimeZone as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub struct TestApp {
    pub hub: Hub,
    pub service: NpmService,
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
    auth: Option<batlehub_core::UpstreamAuth>,
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

    pub async fn json(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.get(path).await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    /// A GET as `who`.
    pub async fn get_as(&self, path: &str, who: &str) -> (StatusCode, http::HeaderMap, Value) {
        let (s, h, b) = self.send(get(path, Some(who))).await;
        (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub async fn publish(&self, name: &str, version: &str, who: &str) -> (StatusCode, Value) {
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

    /// Every blob path and every package in the index, to assert nothing changed.
    pub async fn snapshot_state(&self, names: &[&str]) -> (Vec<String>, Vec<Option<usize>>) {
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
            base: BaseUrl::fixed("http://hub.test/npm"),
            ttl_secs: 300,
            allowed_origins: Vec::new(),
            auth: None,
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

    pub fn upstream_auth(mut self, a: batlehub_core::UpstreamAuth) -> Self {
        self.auth = Some(a);
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
        let mut config = RegistryConfig::new("npm", self.mode).upstreams(self.upstreams);
        config.metadata_ttl = std::time::Duration::from_secs(self.ttl_secs);
        config.upstream.allowed_origins = self.allowed_origins;
        config.upstream.auth = self.auth;
        if let Some(m) = self.max_upload {
            config.max_upload_bytes = m;
        }
        let policy = self.policy.unwrap_or_else(|| {
            Arc::new(batlehub_rules::RegistryPolicy::rbac_only(
                batlehub_rules::Rbac::default(),
            ))
        });
        let registry = hub.registry_with_policy(config, policy).expect("registry");
        let service = NpmService::new(registry.clone(), self.base);
        TestApp {
            hub,
            service,
            storage,
            clock,
            registry,
        }
    }
}

/// `name` or `name@group+group` (groups become `static:<group>`); `admin` is an admin.
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

pub fn escape(name: &str) -> String {
    name.replace('/', "%2f")
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

pub fn get_corgi(path: &str) -> Request<Body> {
    Request::get(path)
        .header(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )
        .body(batlehub_core::body::empty())
        .expect("request")
}

pub fn put_json(path: &str, body: &Value, who: Option<&str>) -> Request<Body> {
    let mut req = Request::put(path)
        .header("content-type", "application/json")
        .body(batlehub_core::body::full(
            serde_json::to_vec(body).expect("json"),
        ))
        .expect("request");
    if let Some(w) = who {
        req.extensions_mut().insert(identity(w));
    }
    req
}

pub fn delete(path: &str, who: &str) -> Request<Body> {
    let mut req = Request::delete(path)
        .body(batlehub_core::body::empty())
        .expect("request");
    req.extensions_mut().insert(identity(who));
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
