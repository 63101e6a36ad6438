//! One conformance suite for [`BlobStore`], run against the memory and filesystem stores and,
//! when `BATLEHUB_TEST_S3_ENDPOINT` names an S3-compatible server (`.ci/run` starts one),
//! an S3 bucket.

#![expect(clippy::unwrap_used, reason = "tests")]

use batlehub_core::store::blob_path;
use batlehub_core::{BlobStore, Error};
use batlehub_storage::OpendalBlobStore;
use bytes::Bytes;
use futures::TryStreamExt;

/// 200 000 bytes of a non-repeating-looking pattern, written in uneven chunks.
fn payload() -> Vec<u8> {
    (0..200_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

async fn put(store: &dyn BlobStore, path: &str, data: &[u8]) {
    let mut w = store.writer(path).await.unwrap();
    for chunk in data.chunks(70_001) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    w.close().await.unwrap();
}

/// Reads `path` through the streaming reader; returns the bytes and the largest chunk seen.
async fn stream(store: &dyn BlobStore, path: &str) -> Option<(u64, Vec<u8>, usize)> {
    let reader = store.reader(path).await.unwrap()?;
    let chunks: Vec<Bytes> = reader.stream.try_collect().await.unwrap();
    let largest = chunks.iter().map(Bytes::len).max().unwrap_or(0);
    Some((reader.size, chunks.concat(), largest))
}

async fn run_suite(backend: &str, store: &dyn BlobStore) {
    let data = payload();

    // Write, then read back streaming.
    let mut w = store.writer("tmp/upload-1").await.unwrap();
    for chunk in data.chunks(70_001) {
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(
        store.stat("tmp/upload-1").await.unwrap(),
        None,
        "{backend}: visible before close"
    );
    w.close().await.unwrap();
    assert!(
        w.write(Bytes::from_static(b"late")).await.is_err(),
        "{backend}: write after close"
    );
    assert!(
        w.abort().await.is_ok(),
        "{backend}: abort after close is a no-op"
    );
    assert_eq!(
        store.stat("tmp/upload-1").await.unwrap(),
        Some(data.len() as u64)
    );
    let (size, read, largest) = stream(store, "tmp/upload-1").await.unwrap();
    assert_eq!(size, data.len() as u64);
    assert_eq!(read, data);
    assert!(largest <= 256 * 1024, "{backend}: chunk of {largest} bytes");
    // A big blob streams in bounded chunks (memory stays flat whatever the artifact size).
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    put(store, "tmp/big", &big).await;
    let (size, read_big, largest) = stream(store, "tmp/big").await.unwrap();
    assert_eq!(
        (size, read_big == big),
        (big.len() as u64, true),
        "{backend}"
    );
    assert!(largest <= 256 * 1024, "{backend}: chunk of {largest} bytes");
    store.delete("tmp/big").await.unwrap();
    assert_eq!(store.read_all("tmp/upload-1").await.unwrap().unwrap(), data);

    // Ranged reads: from any offset to the end; past the end is empty.
    for offset in [0usize, 1, 70_001, 199_999, 200_000, 250_000] {
        let reader = store
            .reader_from("tmp/upload-1", offset as u64)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reader.size, data.len() as u64, "{backend}: whole size");
        let chunks: Vec<Bytes> = reader.stream.try_collect().await.unwrap();
        assert_eq!(
            chunks.concat(),
            data[offset.min(data.len())..],
            "{backend}: read from {offset}"
        );
    }
    assert!(store.reader_from("tmp/missing", 5).await.unwrap().is_none());

    // Missing blobs.
    assert!(store.reader("tmp/missing").await.unwrap().is_none());
    assert!(store.read_all("tmp/missing").await.unwrap().is_none());
    assert_eq!(store.stat("tmp/missing").await.unwrap(), None);
    // A "directory" is not a blob.
    assert_eq!(store.stat("tmp").await.unwrap(), None);

    // Empty blob, and overwrite.
    put(store, "tmp/empty", b"").await;
    assert_eq!(store.stat("tmp/empty").await.unwrap(), Some(0));
    assert_eq!(
        store.read_all("tmp/empty").await.unwrap().unwrap(),
        Bytes::new()
    );
    let (size, read, _) = stream(store, "tmp/empty").await.unwrap();
    assert_eq!((size, read.len()), (0, 0));
    put(store, "tmp/empty", b"now full").await;
    assert_eq!(
        store.read_all("tmp/empty").await.unwrap().unwrap(),
        &b"now full"[..]
    );

    // Rename into the content-addressed layout.
    let digest = "ab".repeat(32);
    let target = blob_path(&digest);
    store.rename("tmp/upload-1", &target).await.unwrap();
    assert_eq!(store.stat("tmp/upload-1").await.unwrap(), None);
    assert_eq!(stream(store, &target).await.unwrap().1, data);
    store.rename(&target, &target).await.unwrap();
    assert_eq!(store.stat(&target).await.unwrap(), Some(data.len() as u64));
    assert!(store.rename("tmp/missing", "tmp/elsewhere").await.is_err());

    // Abort leaves nothing.
    let mut w = store.writer("tmp/aborted").await.unwrap();
    w.write(Bytes::from_static(b"partial")).await.unwrap();
    w.abort().await.unwrap();
    assert_eq!(store.stat("tmp/aborted").await.unwrap(), None);
    assert!(
        !store
            .list("")
            .await
            .unwrap()
            .iter()
            .any(|p| p.contains("aborted"))
    );

    // Delete, and delete of a missing blob.
    store.delete("tmp/empty").await.unwrap();
    assert_eq!(store.stat("tmp/empty").await.unwrap(), None);
    store.delete("tmp/empty").await.unwrap();
    store.delete("never/was").await.unwrap();

    // Listing is recursive and prefix-based.
    for p in ["docs/a/1", "docs/a/2", "docs/b/1", "docs/ab/1", "docsx"] {
        put(store, p, p.as_bytes()).await;
    }
    assert_eq!(
        store.list("docs/a/").await.unwrap(),
        ["docs/a/1", "docs/a/2"]
    );
    assert_eq!(
        store.list("docs/a").await.unwrap(),
        ["docs/a/1", "docs/a/2", "docs/ab/1"]
    );
    assert_eq!(
        store.list("docs/").await.unwrap(),
        ["docs/a/1", "docs/a/2", "docs/ab/1", "docs/b/1"]
    );
    assert_eq!(
        store.list("").await.unwrap(),
        [
            "docs/a/1",
            "docs/a/2",
            "docs/ab/1",
            "docs/b/1",
            "docsx",
            target.as_str()
        ]
    );
    assert!(store.list("nothing/here/").await.unwrap().is_empty());

    // Unsafe paths are refused before reaching the backend.
    for bad in [
        "../escape",
        "/etc/passwd",
        "a/../../b",
        "a\\b",
        "a\0b",
        "",
        "a//b",
        ".partial/x",
    ] {
        assert!(
            matches!(store.writer(bad).await, Err(Error::Storage(_))),
            "{backend}: writer {bad:?}"
        );
        assert!(
            matches!(store.reader(bad).await, Err(Error::Storage(_))),
            "{backend}: reader {bad:?}"
        );
        assert!(
            matches!(store.read_all(bad).await, Err(Error::Storage(_))),
            "{backend}: read_all {bad:?}"
        );
        assert!(
            matches!(store.stat(bad).await, Err(Error::Storage(_))),
            "{backend}: stat {bad:?}"
        );
        assert!(
            matches!(store.delete(bad).await, Err(Error::Storage(_))),
            "{backend}: delete {bad:?}"
        );
        assert!(
            matches!(store.rename("docsx", bad).await, Err(Error::Storage(_))),
            "{backend}: rename to {bad:?}"
        );
        assert!(
            matches!(store.rename(bad, "docsx").await, Err(Error::Storage(_))),
            "{backend}: rename from {bad:?}"
        );
    }
    for bad in ["../", "/", "/docs", "a/../"] {
        assert!(
            matches!(store.list(bad).await, Err(Error::Storage(_))),
            "{backend}: list {bad:?}"
        );
    }
    assert_eq!(store.stat("docsx").await.unwrap(), Some(5));
}

#[tokio::test]
async fn memory_store() {
    let store = OpendalBlobStore::memory().unwrap();
    run_suite("memory", &store).await;
}

#[tokio::test]
async fn filesystem_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = OpendalBlobStore::filesystem(&root).unwrap();
    run_suite("filesystem", &store).await;

    // Blobs are plain files under the root; nothing escaped it.
    let on_disk = std::fs::read(root.join(blob_path(&"ab".repeat(32)))).unwrap();
    assert_eq!(on_disk, payload());
    assert!(!dir.path().join("escape").exists());
    // Aborted and closed writes left no staging files behind.
    let staged: Vec<_> = std::fs::read_dir(root.join(".partial")).unwrap().collect();
    assert!(staged.is_empty(), "{staged:?}");

    // A second store on the same root sees the same blobs.
    let again = OpendalBlobStore::filesystem(&root).unwrap();
    assert_eq!(again.stat("docsx").await.unwrap(), Some(5));
}

#[tokio::test]
async fn embedded_and_memory_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = batlehub_storage::embedded(dir.path().join("data"))
        .await
        .unwrap();
    put(storage.blobs.as_ref(), "tmp/x", b"x").await;
    assert!(dir.path().join("data/blobs/tmp/x").is_file());
    assert!(dir.path().join("data/batlehub.db").is_file());
    assert!(!storage.index.package_exists("npm", "x").await.unwrap());

    let storage = batlehub_storage::memory().await.unwrap();
    put(storage.blobs.as_ref(), "tmp/x", b"x").await;
    assert_eq!(storage.blobs.stat("tmp/x").await.unwrap(), Some(1));
}

/// The S3 store, against the server at `BATLEHUB_TEST_S3_ENDPOINT` (bucket
/// `BATLEHUB_TEST_S3_BUCKET`, default `batlehub-test`, which must exist), under a prefix of
/// its own per run.
#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_store() {
    let Ok(endpoint) = std::env::var("BATLEHUB_TEST_S3_ENDPOINT") else {
        eprintln!("skipping the S3 blob suite: BATLEHUB_TEST_S3_ENDPOINT is not set");
        return;
    };
    let bucket =
        std::env::var("BATLEHUB_TEST_S3_BUCKET").unwrap_or_else(|_| "batlehub-test".into());
    let config = |prefix: &str| {
        let mut c = batlehub_storage::S3Config::new(bucket.clone());
        c.endpoint = Some(endpoint.clone());
        c.region = Some("us-east-1".into());
        c.access_key_id = Some("test".into());
        c.secret_access_key = Some("test".into());
        c.prefix = prefix.into();
        c
    };
    let prefix = format!("suite-{}/blobs", uuid::Uuid::new_v4().simple());
    let store = OpendalBlobStore::s3(&config(&prefix)).unwrap();
    run_suite("s3", &store).await;

    // Every key stayed under the prefix: the whole bucket, seen without one, has this run's
    // blobs only there.
    let bucket_wide = OpendalBlobStore::s3(&config("")).unwrap();
    let mine: Vec<String> = bucket_wide.list(&format!("{prefix}/")).await.unwrap();
    assert_eq!(mine.len(), 6, "{mine:?}");
    assert!(mine.contains(&format!("{prefix}/{}", blob_path(&"ab".repeat(32)))));
    // A second store on the same prefix sees the same blobs.
    let again = OpendalBlobStore::s3(&config(&prefix)).unwrap();
    assert_eq!(again.stat("docsx").await.unwrap(), Some(5));

    // Percent-escapes are kept as literal key characters, never decoded into `/` or `..`:
    // the key lands under the prefix, named as written.
    put(&store, "odd/a%2F..%2F..%2Fescape%00", b"odd").await;
    assert_eq!(
        store.read_all("odd/a%2F..%2F..%2Fescape%00").await.unwrap(),
        Some(Bytes::from_static(b"odd"))
    );
    let odd = bucket_wide.list(&format!("{prefix}/odd/")).await.unwrap();
    assert_eq!(odd, [format!("{prefix}/odd/a%2F..%2F..%2Fescape%00")]);
    assert!(bucket_wide.list("escape").await.unwrap().is_empty());
    store.delete("odd/a%2F..%2F..%2Fescape%00").await.unwrap();

    // A multipart upload: more than one 5 MiB part, written in small chunks.
    let big: Vec<u8> = (0..11 * 1024 * 1024 + 3).map(|i| (i % 253) as u8).collect();
    put(&store, "tmp/multipart", &big).await;
    let (size, read, largest) = stream(&store, "tmp/multipart").await.unwrap();
    assert_eq!((size, read == big), (big.len() as u64, true));
    assert!(largest <= 1024 * 1024, "chunk of {largest} bytes");
    let tail = store
        .reader_from("tmp/multipart", 10 * 1024 * 1024)
        .await
        .unwrap()
        .unwrap();
    let tail: Vec<Bytes> = tail.stream.try_collect().await.unwrap();
    assert_eq!(tail.concat(), big[10 * 1024 * 1024..]);

    // A writer dropped half-way (its client left) leaves nothing visible.
    let mut w = store.writer("tmp/dropped").await.unwrap();
    w.write(Bytes::from(vec![7u8; 6 * 1024 * 1024]))
        .await
        .unwrap();
    drop(w);
    assert_eq!(store.stat("tmp/dropped").await.unwrap(), None);

    for p in bucket_wide.list(&format!("{prefix}/")).await.unwrap() {
        bucket_wide.delete(&p).await.unwrap();
    }
}

#[cfg(feature = "s3")]
#[test]
fn s3_configuration_mistakes_are_reported() {
    let mut c = batlehub_storage::S3Config::new("");
    assert!(
        OpendalBlobStore::s3(&c)
            .unwrap_err()
            .to_string()
            .contains("bucket")
    );
    c.bucket = "b".into();
    c.access_key_id = Some("only-the-id".into());
    let e = OpendalBlobStore::s3(&c).unwrap_err().to_string();
    assert!(e.contains("secret_access_key"), "{e}");
    c.access_key_id = None;
    c.prefix = "../elsewhere".into();
    let e = OpendalBlobStore::s3(&c).unwrap_err().to_string();
    assert!(e.contains("prefix"), "{e}");
}

/// An S3 endpoint that does not answer (an outage): every operation fails with
/// `Error::Unavailable` (503 with `Retry-After` to the client), never as a missing blob.
#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_outage_is_unavailable() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = batlehub_storage::S3Config::new("down");
    c.endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.region = Some("us-east-1".into());
    c.access_key_id = Some("test".into());
    c.secret_access_key = Some("test".into());
    let store = OpendalBlobStore::s3(&c).unwrap();
    let unavailable = |r: Result<(), Error>| matches!(r, Err(Error::Unavailable(_)));
    assert!(unavailable(store.stat("sha256/ab").await.map(drop)));
    assert!(unavailable(store.reader("sha256/ab").await.map(drop)));
    assert!(unavailable(store.read_all("sha256/ab").await.map(drop)));
    assert!(unavailable(store.list("sha256/").await.map(drop)));
    let written = async {
        let mut w = store.writer("tmp/x").await?;
        w.write(Bytes::from_static(b"bytes")).await?;
        w.close().await
    };
    assert!(unavailable(written.await));
}
