//! A small harness: a maven service over in-memory storage, a fake clock, requests with an
//! identity, and POM builders.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;

use batlehub_core::body::Body;
use batlehub_core::{
    BaseUrl, FakeClock, Hub, Identity, Mode, Principal, Registry, RegistryConfig, Role, Storage,
};
use bytes::Bytes;
use chrono::TimeZone as _;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use batlehub_maven::MavenService;

pub struct TestApp {
    pub service: MavenService,
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
    policy: Option<Arc<dyn batlehub_core::Policy>>,
}

impl TestApp {
    pub fn local() -> Builder {
        Builder {
            mode: Mode::Local,
            upstreams: Vec::new(),
            policy: None,
        }
    }

    pub fn proxy(upstream: &str) -> Builder {
        Builder {
            mode: Mode::Proxy,
            upstreams: vec![upstream.to_owned()],
            policy: None,
        }
    }

    pub fn hybrid(upstream: &str) -> Builder {
        Builder {
            mode: Mode::Hybrid,
            upstreams: vec![upstream.to_owned()],
            policy: None,
        }
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
    pub async fn get_raw(&self, path: &str) -> (StatusCode, Result<Bytes, String>) {
        let resp: Response<Body> = self
            .service
            .clone()
            .oneshot(get(path, None))
            .await
            .expect("infallible");
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

    pub async fn text(&self, path: &str) -> (StatusCode, String) {
        let (s, _, b) = self.get(path).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    pub async fn put(
        &self,
        path: &str,
        body: impl Into<Vec<u8>>,
        who: &str,
    ) -> (StatusCode, String) {
        let (s, _, b) = self.send(put(path, body.into(), who)).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    /// Deploys a release the way mvn does: jar, its sha1, pom, its sha1, metadata.
    pub async fn deploy_release(&self, group: &str, artifact: &str, version: &str, who: &str) {
        let dir = format!("/maven2/{}/{artifact}/{version}", group.replace('.', "/"));
        let jar = format!("jar of {artifact} {version}");
        let pom = pom(group, artifact, version);
        for (file, bytes) in [
            (format!("{artifact}-{version}.jar"), jar.into_bytes()),
            (format!("{artifact}-{version}.pom"), pom.into_bytes()),
        ] {
            let (s, b) = self.put(&format!("{dir}/{file}"), bytes.clone(), who).await;
            assert_eq!(s, StatusCode::CREATED, "{file}: {b}");
            let (s, b) = self
                .put(&format!("{dir}/{file}.sha1"), sha1_hex(&bytes), who)
                .await;
            assert_eq!(s, StatusCode::CREATED, "{file}.sha1: {b}");
        }
        let meta = format!(
            "<metadata><groupId>{group}</groupId><artifactId>{artifact}</artifactId><versioning><versions><version>{version}</version></versions></versioning></metadata>"
        );
        let (s, b) = self
            .put(
                &format!(
                    "/maven2/{}/{artifact}/maven-metadata.xml",
                    group.replace('.', "/")
                ),
                meta,
                who,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "metadata: {b}");
    }

    /// Blob paths and the version count of a package, to assert nothing changed.
    pub async fn state(&self, key: &str) -> (Vec<String>, Option<usize>) {
        let blobs = self
            .storage
            .blobs
            .list("")
            .await
            .expect("list")
            .into_iter()
            .filter(|p| !p.starts_with("tmp/"))
            .collect();
        let versions = self
            .storage
            .index
            .package(self.registry.name(), key)
            .await
            .expect("index")
            .map(|p| p.versions.iter().map(|v| v.files.len()).sum());
        (blobs, versions)
    }
}

impl Builder {
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
        let config = RegistryConfig::new("maven", self.mode).upstreams(self.upstreams);
        let policy = self.policy.unwrap_or_else(|| {
            Arc::new(batlehub_rules::RegistryPolicy::rbac_only(
                batlehub_rules::Rbac::default(),
            ))
        });
        let registry = hub.registry_with_policy(config, policy).expect("registry");
        let service = MavenService::new(registry.clone(), BaseUrl::fixed("http://hub.test/maven"));
        TestApp {
            service,
            storage,
            clock,
            registry,
        }
    }
}

/// `name` (a user), `admin`, `anonymous`, or `invalid`.
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

pub fn pom(group: &str, artifact: &str, version: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>{group}</groupId>
  <artifactId>{artifact}</artifactId>
  <version>{version}</version>
</project>
"#
    )
}

pub fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(bytes))
}

/// Replaces `lastUpdated`, `timestamp` and `updated` values for snapshots.
pub fn redact(xml: &str) -> String {
    let mut out = String::new();
    for line in xml.lines() {
        let t = line.trim_start();
        let redacted = ["lastUpdated", "updated"].iter().find_map(|tag| {
            t.starts_with(&format!("<{tag}>"))
                .then(|| format!("{}<{tag}>[time]</{tag}>", &line[..line.len() - t.len()]))
        });
        out.push_str(&redacted.unwrap_or_else(|| line.to_owned()));
        out.push('\n');
    }
    out
}
