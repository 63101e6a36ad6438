//! Go's helpers on the shared harness (`batlehub-test`): module zips as `go mod download`
//! serves them, uploads as an uploader sends them, and an upstream GOPROXY on wiremock.

#![allow(dead_code, unreachable_pub, missing_docs, unused_imports)]

use std::io::{Cursor, Read as _, Write as _};

use base64::Engine as _;
use batlehub_go::GoService;
use bytes::Bytes;
use http::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub use batlehub_test::{get, identity, put, start_time};

/// The shared harness serving Go.
pub type TestApp = batlehub_test::TestApp<GoService>;

/// A module path for a short test name (`conformance` -> `example.com/conformance`); a
/// path already holding a dot in its first element is kept.
pub fn module(name: &str) -> String {
    if name
        .split('/')
        .next()
        .is_some_and(|first| first.contains('.'))
    {
        name.to_owned()
    } else {
        format!("example.com/{name}")
    }
}

pub use batlehub_test::sumdb::escape;

/// The `go.mod` of a test module.
pub fn go_mod(module: &str) -> String {
    format!("module {module}\n\ngo 1.19\n")
}

/// A zip of `entries` (names as stored), deflated as the go command writes them.
pub fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .expect("entry");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// `zip` with the uncompressed size of entry `name` rewritten to `size` in its local and
/// central headers (a zip that lies about what it unpacks to).
pub fn declare_size(mut zip: Vec<u8>, name: &str, size: u32) -> Vec<u8> {
    let name = name.as_bytes();
    for i in 0..zip.len().saturating_sub(46) {
        if zip[i..i + 4] == [0x50, 0x4b, 0x03, 0x04] && zip[i + 30..].starts_with(name) {
            zip[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
        }
        if zip[i..i + 4] == [0x50, 0x4b, 0x01, 0x02] && zip[i + 46..].starts_with(name) {
            zip[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
        }
    }
    zip
}

/// The Go version of a bare test version: `v1.0.0`, and `v2.0.0+incompatible` from major
/// 2 on (test modules have no `/vN` suffix).
pub fn go_version(bare: &str) -> String {
    let major: u64 = bare
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major >= 2 {
        format!("v{bare}+incompatible")
    } else {
        format!("v{bare}")
    }
}

/// The module zip of `module@version` (`version` with its `v`): a `go.mod` (none for an
/// `+incompatible` version) and one Go file.
pub fn module_zip(module: &str, version: &str) -> Vec<u8> {
    let prefix = format!("{module}@{version}/");
    let mut entries = vec![(
        format!("{prefix}lib.go"),
        format!("package lib\n\n// Version is {version}.\nconst Version = \"{version}\"\n")
            .into_bytes(),
    )];
    if !version.ends_with("+incompatible") {
        entries.insert(0, (format!("{prefix}go.mod"), go_mod(module).into_bytes()));
    }
    zip_of(&entries)
}

/// The `.mod` the go command expects for `module@version`.
pub fn mod_of(module: &str, version: &str) -> String {
    if version.ends_with("+incompatible") {
        format!("module {module}\n")
    } else {
        go_mod(module)
    }
}

/// The `h1:` hash the go command computes for `zip` (every entry name, sorted).
pub fn h1(zip: &[u8]) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).expect("entry");
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("read");
        let name = f.name().expect("entry name").into_owned();
        files.push((name, hex::encode(Sha256::digest(&data))));
    }
    // Sorted by name, then one `sha256sum` line each.
    files.sort();
    let summary: String = files
        .iter()
        .map(|(name, hex)| format!("{hex}  {name}\n"))
        .collect();
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(summary))
    )
}

/// The `h1:` hash of a `go.mod` (the `/go.mod` line of `go.sum`).
pub fn go_mod_h1(go_mod: &[u8]) -> String {
    let line = format!("{}  go.mod\n", hex::encode(Sha256::digest(go_mod)));
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(line))
    )
}

/// A checksum database's lookup answer for `module@version` with these hashes.
pub fn lookup(module: &str, version: &str, zip_h1: &str, mod_h1: &str) -> String {
    format!(
        "7\n{module} {version} {zip_h1}\n{module} {version}/go.mod {mod_h1}\n\ngo.sum database tree\n8\nAAAA\n\n\u{2014} sum.test AAAA\n"
    )
}

/// What Go tests ask of the harness beyond the shared requests.
pub trait GoApp {
    /// An anonymous GET, the body as text.
    async fn text(&self, path: &str) -> (StatusCode, String);
    /// A PUT of `body` as `who`, the answer as text.
    async fn put_text(&self, path: &str, body: Vec<u8>, who: &str) -> (StatusCode, String);
    /// Uploads the module zip of `module@version` as `who` (must succeed).
    async fn upload(&self, module: &str, version: &str, who: &str) -> Vec<u8>;
    /// Whether the zip of `module@version` is in the registry's artifact cache.
    async fn zip_cached(&self, module_at_version: &str) -> bool;
}

impl GoApp for TestApp {
    async fn text(&self, path: &str) -> (StatusCode, String) {
        let (s, _, b) = self.get(path).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    async fn put_text(&self, path: &str, body: Vec<u8>, who: &str) -> (StatusCode, String) {
        let (s, _, b) = self.send(put(path, body, who)).await;
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    async fn upload(&self, module: &str, version: &str, who: &str) -> Vec<u8> {
        let zip = module_zip(module, version);
        let (s, b) = self
            .put_text(
                &format!("/{}/@v/{}.zip", escape(module), escape(version)),
                zip.clone(),
                who,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        zip
    }

    async fn zip_cached(&self, module_at_version: &str) -> bool {
        self.registry
            .cached_artifact(&format!("zip:{module_at_version}"))
            .await
            .expect("read the cache")
            .is_some()
    }
}

/// Serves `module` with `versions` (with their `v`) as an upstream GOPROXY does, under
/// `/goproxy/` on `server`, each published on 2025-01-01.
pub async fn mount_module(server: &MockServer, module: &str, versions: &[&str]) {
    let root = format!("/goproxy/{}", escape(module));
    let list: String = versions.iter().map(|v| format!("{v}\n")).collect();
    let mut files = vec![(format!("{root}/@v/list"), list.into_bytes())];
    for v in versions {
        let ev = escape(v);
        files.push((
            format!("{root}/@v/{ev}.info"),
            format!(r#"{{"Version":"{v}","Time":"2025-01-01T00:00:00Z"}}"#).into_bytes(),
        ));
        files.push((
            format!("{root}/@v/{ev}.mod"),
            mod_of(module, v).into_bytes(),
        ));
        files.push((format!("{root}/@v/{ev}.zip"), module_zip(module, v)));
    }
    for (p, bytes) in files {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
            .mount(server)
            .await;
    }
}
