//! Maven's helpers on the shared harness (`batlehub-test`): deploys the way mvn makes them,
//! POM builders and redaction for snapshots.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use batlehub_maven::MavenService;
use bytes::Bytes;
use http::StatusCode;

pub use batlehub_test::{get, identity, put, start_time};

/// The shared harness serving Maven.
pub type TestApp = batlehub_test::TestApp<MavenService>;

/// What Maven tests ask of the harness beyond the shared requests.
pub trait MavenApp {
    /// An anonymous GET, the body as text.
    async fn text(&self, path: &str) -> (StatusCode, String);
    /// A PUT of `body` as `who`, the answer as text.
    async fn put(&self, path: &str, body: impl Into<Vec<u8>>, who: &str) -> (StatusCode, String);
    /// Deploys a release the way mvn does: jar, its sha1, pom, its sha1, metadata.
    async fn deploy_release(&self, group: &str, artifact: &str, version: &str, who: &str);
    /// Blob paths and the file count of a package, to assert nothing changed.
    async fn state_of(&self, key: &str) -> (Vec<String>, Option<usize>);
}

impl MavenApp for TestApp {
    async fn text(&self, path: &str) -> (StatusCode, String) {
        let (s, _, b) = self.get(path).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    async fn put(&self, path: &str, body: impl Into<Vec<u8>>, who: &str) -> (StatusCode, String) {
        let (s, _, b) = self.send(put(path, body.into(), who)).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    /// Deploys a release the way mvn does: jar, its sha1, pom, its sha1, metadata.
    async fn deploy_release(&self, group: &str, artifact: &str, version: &str, who: &str) {
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

    async fn state_of(&self, key: &str) -> (Vec<String>, Option<usize>) {
        let (blobs, _) = self.state(&[]).await;
        let files = self
            .storage
            .index
            .package(self.registry.name(), key)
            .await
            .expect("index")
            .map(|p| p.versions.iter().map(|v| v.files.len()).sum());
        (blobs, files)
    }
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
