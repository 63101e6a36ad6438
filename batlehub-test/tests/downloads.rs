//! Shared upstream downloads: one slow reader never stalls the others, and it still gets
//! every byte (the rest from storage once the download is committed).

use std::sync::Arc;
use std::time::Duration;

use batlehub_core::digest::ExpectedDigest;
use batlehub_core::{FakeClock, Hub, Mode, RegistryConfig};
use bytes::Bytes;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Large enough to span many more chunks than a download runs ahead of its first reader.
const SIZE: usize = 8 * 1024 * 1024;

fn artifact() -> Bytes {
    let mut bytes = Vec::with_capacity(SIZE);
    let mut x: u32 = 0x9e37_79b9;
    while bytes.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(bytes)
}

#[tokio::test]
async fn a_reader_that_stops_reading_does_not_stall_the_download() {
    let bytes = artifact();
    let upstream = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/big.tgz"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.to_vec()))
        .expect(1)
        .mount(&upstream)
        .await;
    let storage = batlehub_storage::memory().await.expect("storage");
    let registry = proxy_of(&upstream, storage);
    let url = url::Url::parse(&format!("{}/big.tgz", upstream.uri())).expect("url");
    let sha = hex_digest(&bytes);
    let expected = || ExpectedDigest::from_hex("sha256", &sha);

    // The first client receives the streaming download, and never reads a byte of it.
    let stalled = registry
        .upstream_artifact("big", url.clone(), expected())
        .await
        .expect("first client");

    // A second client for the same artifact is served as soon as the upstream is done.
    let second = tokio::time::timeout(Duration::from_secs(20), async {
        let artifact = registry
            .upstream_artifact("big", url.clone(), expected())
            .await
            .expect("second client");
        batlehub_test::collect(artifact.body).await.expect("body")
    })
    .await
    .expect("the second client was held up by the first one's reading");
    assert_eq!(second.len(), bytes.len());
    assert!(
        second == bytes,
        "the second client got the upstream's bytes"
    );

    // The first client reads late and still gets every byte, the rest from storage.
    let first = batlehub_test::collect(stalled.body)
        .await
        .expect("late body");
    assert_eq!(first.len(), bytes.len());
    assert!(first == bytes, "the late reader got the upstream's bytes");

    // Cached: a third client needs no upstream request (`expect(1)` is checked on drop).
    let third = registry
        .upstream_artifact("big", url, expected())
        .await
        .expect("third client");
    assert_eq!(third.sha256.as_deref(), Some(sha.as_str()));
}

/// Accepts content whose first byte is `ok`, reading the whole spooled file.
#[derive(Debug)]
struct FirstByte {
    ok: u8,
    size: usize,
}

impl batlehub_core::digest::ContentCheck for FirstByte {
    fn check(&self, file: &mut std::fs::File) -> Result<(), String> {
        use std::io::Read as _;
        let mut all = Vec::new();
        file.read_to_end(&mut all).map_err(|e| e.to_string())?;
        if all.len() != self.size {
            return Err(format!("spooled {} of {} bytes", all.len(), self.size));
        }
        match all.first() {
            Some(b) if *b == self.ok => Ok(()),
            _ => Err("the first byte is wrong".into()),
        }
    }
}

#[tokio::test]
async fn content_checked_downloads_are_served_only_once_they_pass() {
    let bytes = artifact();
    let upstream = MockServer::start().await;
    for name in ["good", "bad"] {
        Mock::given(method("GET"))
            .and(path(format!("/{name}.zip")))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes.to_vec()))
            .expect(if name == "good" { 1 } else { 2 })
            .mount(&upstream)
            .await;
    }
    let storage = batlehub_storage::memory().await.expect("storage");
    let registry = proxy_of(&upstream, storage.clone());
    let url = |name: &str| url::Url::parse(&format!("{}/{name}.zip", upstream.uri())).expect("url");
    let passes = Arc::new(FirstByte {
        ok: bytes[0],
        size: bytes.len(),
    });
    let fails = Arc::new(FirstByte {
        ok: bytes[0].wrapping_add(1),
        size: bytes.len(),
    });

    // No byte digest is needed when the content is checked; concurrent clients share one
    // download and each gets every byte.
    let clients = (0..3).map(|_| {
        let registry = registry.clone();
        let (url, check) = (url("good"), passes.clone());
        async move {
            let artifact = registry
                .upstream_artifact_checked("good", url, None, check)
                .await
                .expect("passed");
            batlehub_test::collect(artifact.body).await.expect("body")
        }
    });
    for body in futures::future::join_all(clients).await {
        assert!(body == bytes, "every client got the upstream's bytes");
    }
    registry.settle().await;
    assert!(
        registry
            .cached_artifact("good")
            .await
            .expect("read")
            .is_some()
    );

    // Refused content is an error before any byte, with the reason, and is not cached: the
    // next request downloads it again.
    for _ in 0..2 {
        let Err(err) = registry
            .upstream_artifact_checked("bad", url("bad"), None, fails.clone())
            .await
        else {
            panic!("content that fails its check was served");
        };
        assert_eq!(err.status(), http::StatusCode::BAD_GATEWAY);
        assert!(
            err.client_message().contains("the first byte is wrong"),
            "{err}"
        );
        registry.settle().await;
        assert!(
            registry
                .cached_artifact("bad")
                .await
                .expect("read")
                .is_none()
        );
    }
    let (blobs, _) = (storage.blobs.list("").await.expect("list"), ());
    assert!(
        blobs.iter().all(|b| !b.starts_with("tmp/")),
        "no temporary blob left: {blobs:?}"
    );
}

/// A proxy registry of `upstream` on `storage`, allowing everything.
fn proxy_of(upstream: &MockServer, storage: batlehub_core::Storage) -> batlehub_core::Registry {
    Hub::builder()
        .storage(storage)
        .clock(FakeClock::new(batlehub_test::start_time()))
        .build()
        .expect("hub")
        .registry_with_policy(
            RegistryConfig::new("r", Mode::Proxy).upstreams([upstream.uri()]),
            Arc::new(batlehub_core::AllowAll),
        )
        .expect("registry")
}

fn hex_digest(bytes: &[u8]) -> String {
    batlehub_test::sha256_hex(bytes)
}
