//! Crash safety of the `batlehub-server` binary: `kill -9` in the middle of a publish and in
//! the middle of a proxied download, then a restart on the same data directory. No partial
//! version may become visible, no cache entry may hold partial bytes, and the client's retry
//! must succeed.
//!
//! The server runs as a child process (`SIGKILL` gives it no chance to clean up); the
//! upstream is a small HTTP server on a thread of this test that trickles its tarball, so
//! the kill lands while the download is under way.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha512};

const BIN: &str = env!("CARGO_BIN_EXE_batlehub-server");
const TOKEN: &str = "alice-crash-token-1";

/// A running server process on a data directory.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path, upstream: u16) -> Self {
        let storage = format!(
            "[storage]\ntype = \"filesystem\"\npath = {:?}\n",
            dir.join("blobs").display().to_string()
        );
        Self::start_on(dir, &storage, upstream)
    }

    /// A server whose `[database]`/`[storage]` tables are `storage`.
    fn start_on(dir: &Path, storage: &str, upstream: u16) -> Self {
        let config = dir.join("batlehub.toml");
        std::fs::write(
            &config,
            format!(
                "{storage}\n\
                 [[auth.tokens]]\nname = \"alice\"\nvalue = \"{TOKEN}\"\nrole = \"admin\"\n\n\
                 [[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"local\"\n\n\
                 [[registries]]\nname = \"mirror\"\ntype = \"npm\"\nmode = \"proxy\"\n\
                 upstreams = [\"http://127.0.0.1:{upstream}\"]\n",
            ),
        )
        .expect("write config");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new(BIN)
            .args(["--config", &config.display().to_string()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the server");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = server.try_request("GET", "/healthz", &[], b"")
                && r.status == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGKILL`, and wait until the process is gone.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write_head(&mut s, method, path, headers, body.len())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        Ok(Response::parse(&raw))
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.0 request head (the answer is then close-delimited, never chunked).
fn write_head(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
) -> std::io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
}

struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Self {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        Self {
            status,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Incompressible bytes (xorshift), so that the tarball is as big on the wire as on disk.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha512_sri(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(bytes))
    )
}

/// An npm package tarball of `name@version` carrying `size` bytes of noise.
fn tarball(name: &str, version: &str, size: usize) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let manifest = serde_json::json!({"name": name, "version": version}).to_string();
    let seed = version.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    for (path, data) in [
        ("package/package.json", manifest.into_bytes()),
        ("package/data.bin", noise(size, seed)),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// The body `npm publish` sends for `name@version` with `tgz`.
fn publish_body(name: &str, version: &str, tgz: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: {
            "name": name,
            "version": version,
            "dist": {"integrity": sha512_sri(tgz)},
        }},
        "_attachments": {format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": base64::engine::general_purpose::STANDARD.encode(tgz),
            "length": tgz.len(),
        }},
    }))
    .expect("json")
}

const AUTH: (&str, &str) = ("Authorization", "Bearer alice-crash-token-1");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A connection to `server` that has sent the head of a `crashlocal` publish of `len`
/// bytes; the body is the caller's to send (or not).
fn publish_head(server: &Server, len: usize) -> TcpStream {
    let mut s = server.connect();
    write_head(&mut s, "PUT", "/proxy/npm/crashlocal", &[AUTH, JSON], len).expect("head");
    s
}

/// What a client sees of `crashlocal@version` after a restart: either the whole version
/// (listed, and its tarball is exactly `tgz`) or nothing at all.
fn visible(server: &Server, version: &str, tgz: &[u8]) -> bool {
    let doc = server.get("/proxy/npm/crashlocal");
    let listed = match doc.status {
        404 => false,
        200 => {
            let doc: serde_json::Value = serde_json::from_slice(&doc.body).expect("packument");
            doc["versions"].get(version).is_some()
        }
        s => panic!("packument answered {s}: {}", doc.text()),
    };
    let file = server.get(&format!("/proxy/npm/crashlocal/-/crashlocal-{version}.tgz"));
    if listed {
        assert_eq!(file.status, 200, "listed {version} but: {}", file.text());
        assert!(
            file.body == tgz,
            "{version}: the served tarball is not the published one"
        );
    } else {
        assert_eq!(
            file.status,
            404,
            "{version} is not listed, its tarball answered: {}",
            file.text()
        );
    }
    listed
}

#[test]
fn kill_9_during_publish_leaves_no_partial_version_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = 3 * 1024 * 1024;

    // How long a publish takes here, from the end of its body to the answer: the kills
    // below land across that span (body read, hashing, staging, storing, indexing).
    let tgz = tarball("crashlocal", "1.0.0", size);
    let body = publish_body("crashlocal", "1.0.0", &tgz);
    let server = Server::start(dir.path(), 9);
    let mut s = publish_head(&server, body.len());
    s.write_all(&body).expect("body");
    let sent = Instant::now();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("answer");
    let span = sent.elapsed();
    let answer = Response::parse(&raw);
    assert!((200..300).contains(&answer.status), "{}", answer.text());
    server.kill9();
    let mut published: Vec<(String, Vec<u8>)> = vec![("1.0.0".into(), tgz)];

    // Killed halfway through the body, then at fractions of the span after all of it.
    let kills: &[Option<f64>] = &[
        None,
        Some(0.0),
        Some(0.1),
        Some(0.25),
        Some(0.4),
        Some(0.55),
        Some(0.7),
        Some(0.85),
        Some(0.95),
        Some(1.5),
    ];
    for (i, kill_at) in kills.iter().enumerate() {
        let version = format!("1.0.{}", i + 1);
        let tgz = tarball("crashlocal", &version, size);
        let body = publish_body("crashlocal", &version, &tgz);

        let server = Server::start(dir.path(), 9);
        let mut s = publish_head(&server, body.len());
        match kill_at {
            None => s.write_all(&body[..body.len() / 2]).expect("half the body"),
            Some(f) => {
                s.write_all(&body).expect("body");
                std::thread::sleep(span.mul_f64(*f));
            }
        }
        server.kill9();
        drop(s);

        let server = Server::start(dir.path(), 9);
        let whole = visible(&server, &version, &tgz);
        eprintln!("killed at {kill_at:?} of {span:?}: {version} visible: {whole}");
        if whole {
            // Complete before the kill: publishing it again is a conflict, not a 5xx.
            let again = server.request("PUT", "/proxy/npm/crashlocal", &[AUTH, JSON], &body);
            assert!(
                (400..500).contains(&again.status),
                "republish of {version}: {} {}",
                again.status,
                again.text()
            );
        } else {
            let retry = server.request("PUT", "/proxy/npm/crashlocal", &[AUTH, JSON], &body);
            assert!(
                (200..300).contains(&retry.status),
                "retry of {version} after kill -9: {} {}",
                retry.status,
                retry.text()
            );
            assert!(
                visible(&server, &version, &tgz),
                "{version} after the retry"
            );
        }
        // Everything published before is still whole.
        for (v, t) in &published {
            assert!(visible(&server, v, t), "{v} vanished");
        }
        published.push((version, tgz));
        server.kill9();
    }
}

/// An npm upstream serving `crashup@1.0.0`; its first tarball transfer trickles (so that a
/// kill lands in the middle of it), later ones are fast.
struct Upstream {
    port: u16,
    tarball_requests: Arc<AtomicUsize>,
}

fn upstream(tgz: Vec<u8>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let doc = serde_json::to_vec(&serde_json::json!({
        "name": "crashup",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {
            "name": "crashup",
            "version": "1.0.0",
            "dist": {
                "tarball": format!("http://127.0.0.1:{port}/crashup/-/crashup-1.0.0.tgz"),
                "integrity": sha512_sri(&tgz),
            },
        }},
        "time": {"1.0.0": "2020-01-01T00:00:00.000Z"},
    }))
    .expect("json");
    let tarball_requests = Arc::new(AtomicUsize::new(0));
    let counter = tarball_requests.clone();
    let (doc, tgz) = (Arc::new(doc), Arc::new(tgz));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (doc, tgz, counter) = (doc.clone(), tgz.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let (body, slow): (&[u8], bool) = if path == "/crashup" {
                    (&doc, false)
                } else if path == "/crashup/-/crashup-1.0.0.tgz" {
                    (&tgz, counter.fetch_add(1, Ordering::SeqCst) == 0)
                } else {
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    return;
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).is_err() {
                    return;
                }
                for chunk in body.chunks(if slow { 64 * 1024 } else { body.len().max(1) }) {
                    if conn.write_all(chunk).is_err() {
                        return;
                    }
                    if slow {
                        std::thread::sleep(Duration::from_millis(15));
                    }
                }
            });
        }
    });
    Upstream {
        port,
        tarball_requests,
    }
}

#[test]
fn kill_9_during_a_proxied_download_caches_nothing_partial_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tgz = tarball("crashup", "1.0.0", 6 * 1024 * 1024);
    let up = upstream(tgz.clone());
    let path = "/proxy/mirror/crashup/-/crashup-1.0.0.tgz";

    let server = Server::start(dir.path(), up.port);
    let mut s = server.connect();
    write_head(&mut s, "GET", path, &[], 0).expect("head");
    // Read the head and the first MiB of the tarball, then kill the server mid-transfer.
    let mut got = vec![0u8; 1024 * 1024];
    s.read_exact(&mut got).expect("the start of the transfer");
    assert!(
        got.starts_with(b"HTTP/1.0 200") || got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got[..64])
    );
    server.kill9();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        got.len() + rest.len() < tgz.len(),
        "the transfer was cut short"
    );
    assert_eq!(up.tarball_requests.load(Ordering::SeqCst), 1);

    // After the restart the client's retry gets the whole, verified tarball: nothing
    // partial was cached, so it is fetched again...
    let server = Server::start(dir.path(), up.port);
    let retry = server.get(path);
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert!(
        retry.body == tgz,
        "the retry served other bytes ({} bytes)",
        retry.body.len()
    );
    assert_eq!(up.tarball_requests.load(Ordering::SeqCst), 2);
    // ...and cached whole this time. The verified bytes reach the client while the blob and
    // its index row are committed; a request meanwhile waits for that commit instead of
    // downloading again, so once it is answered the tarball is stored...
    let again = server.get(path);
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.body == tgz, "the second request served other bytes");
    assert_eq!(up.tarball_requests.load(Ordering::SeqCst), 2);
    // ...and served from storage across another crash too.
    server.kill9();
    let server = Server::start(dir.path(), up.port);
    let cached = server.get(path);
    assert_eq!(cached.status, 200, "{}", cached.text());
    assert!(cached.body == tgz, "the cached tarball differs");
    assert_eq!(
        up.tarball_requests.load(Ordering::SeqCst),
        2,
        "served from the cache"
    );
}

/// Two replicas on one PostgreSQL database and one S3 bucket (`BATLEHUB_TEST_POSTGRES_URL`,
/// `BATLEHUB_TEST_S3_ENDPOINT`; skipped without them). One is killed in the middle of a
/// proxied download, then in the middle of a publish; the client's retry on the other
/// succeeds, and no partial version or cache entry is ever visible there.
#[test]
fn kill_9_of_a_replica_on_postgres_and_s3_and_the_retry_on_the_other_succeeds() {
    let (Ok(pg), Ok(s3)) = (
        std::env::var("BATLEHUB_TEST_POSTGRES_URL"),
        std::env::var("BATLEHUB_TEST_S3_ENDPOINT"),
    ) else {
        eprintln!("skipping: BATLEHUB_TEST_POSTGRES_URL or BATLEHUB_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket =
        std::env::var("BATLEHUB_TEST_S3_BUCKET").unwrap_or_else(|_| "batlehub-test".into());
    let unique = format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let schema = format!("batlehub_crash_{unique}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sql = |statement: String| {
        runtime.block_on(async {
            use batlehub::storage::sqlx::{self, AssertSqlSafe, Connection as _};
            let mut conn = sqlx::PgConnection::connect(&pg).await.expect("connect");
            sqlx::query(AssertSqlSafe(statement))
                .execute(&mut conn)
                .await
                .expect("schema statement");
        });
    };
    sql(format!("CREATE SCHEMA {schema}"));
    let storage = format!(
        "[database]\nurl = \"{pg}?options=-c%20search_path%3D{schema}\"\n\
         [storage]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{s3}\"\n\
         region = \"us-east-1\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n\
         prefix = \"crash-{unique}\"\n"
    );
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );

    // A download: the first replica dies 1 MiB into it, holding the download's lease.
    let tgz = tarball("crashup", "1.0.0", 6 * 1024 * 1024);
    let up = upstream(tgz.clone());
    let a = Server::start_on(dir_a.path(), &storage, up.port);
    let b = Server::start_on(dir_b.path(), &storage, up.port);
    let path = "/proxy/mirror/crashup/-/crashup-1.0.0.tgz";
    let mut s = a.connect();
    write_head(&mut s, "GET", path, &[], 0).expect("head");
    let mut got = vec![0u8; 1024 * 1024];
    s.read_exact(&mut got).expect("the start of the transfer");
    a.kill9();
    drop(s);
    // The retry on the other replica waits for the dead one's lease to lapse, then
    // downloads and verifies the tarball itself.
    let asked = Instant::now();
    let retry = b.get(path);
    assert_eq!(retry.status, 200, "{}", retry.text());
    assert!(retry.body == tgz, "the retry served other bytes");
    assert!(
        asked.elapsed() < Duration::from_secs(25),
        "the retry waited {:?}",
        asked.elapsed()
    );
    assert_eq!(up.tarball_requests.load(Ordering::SeqCst), 2);
    let again = b.get(path);
    assert!(
        again.status == 200 && again.body == tgz,
        "served from the cache"
    );
    assert_eq!(up.tarball_requests.load(Ordering::SeqCst), 2);

    // Publishes: the first replica dies with half the body read, then after all of it.
    for (i, whole_body) in [false, true].into_iter().enumerate() {
        let a = Server::start_on(dir_a.path(), &storage, up.port);
        let version = format!("2.0.{i}");
        let tgz = tarball("crashlocal", &version, 3 * 1024 * 1024);
        let body = publish_body("crashlocal", &version, &tgz);
        let mut s = publish_head(&a, body.len());
        if whole_body {
            s.write_all(&body).expect("body");
            std::thread::sleep(Duration::from_millis(30));
        } else {
            s.write_all(&body[..body.len() / 2]).expect("half the body");
        }
        a.kill9();
        drop(s);
        let whole = visible(&b, &version, &tgz);
        eprintln!("replica killed (whole body sent: {whole_body}): {version} visible: {whole}");
        if !whole {
            let retry = b.request("PUT", "/proxy/npm/crashlocal", &[AUTH, JSON], &body);
            assert!(
                (200..300).contains(&retry.status),
                "retry of {version} on the other replica: {} {}",
                retry.status,
                retry.text()
            );
            assert!(visible(&b, &version, &tgz), "{version} after the retry");
        }
    }
    b.kill9();
    sql(format!("DROP SCHEMA {schema} CASCADE"));
}
