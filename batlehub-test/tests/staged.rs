//! Blob lifecycle: a staged upload that is neither published nor discarded is deleted when
//! dropped (a handler returning early leaves no temporary blob behind); a failed publish
//! never deletes a blob; the orphan sweep removes what nothing refers to.

use std::sync::Arc;

use batlehub_core::model::{FileRecord, NewVersion, VersionRecord};
use batlehub_core::policy::Caller;
use batlehub_core::store::{BlobReader, BlobWriter};
use batlehub_core::{
    BlobStore, BlobSweeper, FakeClock, Hub, Mode, RegistryConfig, Result, Staged, Storage,
};
use batlehub_test::BoxFuture;
use bytes::Bytes;

async fn temp_blobs(storage: &batlehub_core::Storage) -> Vec<String> {
    let all = storage.blobs.list("").await.expect("list");
    all.into_iter().filter(|p| p.starts_with("tmp/")).collect()
}

#[tokio::test]
async fn dropped_staged_uploads_are_deleted() {
    let storage = batlehub_storage::memory().await.expect("storage");
    let hub = Hub::builder()
        .storage(storage.clone())
        .clock(FakeClock::new(batlehub_test::start_time()))
        .build()
        .expect("hub");
    let registry = hub
        .registry_with_policy(
            RegistryConfig::new("r", Mode::Local),
            Arc::new(batlehub_core::AllowAll),
        )
        .expect("registry");

    let staged = registry
        .stage_bytes(Bytes::from_static(b"abandoned"))
        .await
        .expect("staged");
    let copy = staged.clone();
    assert_eq!(temp_blobs(&storage).await.len(), 1);
    drop(staged);
    tokio::task::yield_now().await;
    assert_eq!(
        temp_blobs(&storage).await.len(),
        1,
        "a clone still holds it"
    );
    drop(copy);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(temp_blobs(&storage).await.is_empty(), "deleted on drop");

    // Discarded explicitly: deleted at once, nothing left to do on drop.
    let staged = registry
        .stage_bytes(Bytes::from_static(b"discarded"))
        .await
        .expect("staged");
    registry.discard(staged).await;
    assert!(temp_blobs(&storage).await.is_empty());
}

/// A blob store that holds deletes of content-addressed blobs until released, to put a
/// failing publish's clean-up after a concurrent publish of the same bytes.
#[derive(Debug)]
struct Gated {
    inner: Arc<dyn BlobStore>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl BlobStore for Gated {
    fn writer(&self, path: &str) -> BoxFuture<'_, Result<Box<dyn BlobWriter>>> {
        self.inner.writer(path)
    }
    fn reader(&self, path: &str) -> BoxFuture<'_, Result<Option<BlobReader>>> {
        self.inner.reader(path)
    }
    fn read_all(&self, path: &str) -> BoxFuture<'_, Result<Option<Bytes>>> {
        self.inner.read_all(path)
    }
    fn stat(&self, path: &str) -> BoxFuture<'_, Result<Option<u64>>> {
        self.inner.stat(path)
    }
    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, Result<()>> {
        self.inner.rename(from, to)
    }
    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>> {
        let path = path.to_owned();
        Box::pin(async move {
            if path.starts_with("sha256/") {
                self.entered.notify_one();
                self.release.notified().await;
            }
            self.inner.delete(&path).await
        })
    }
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<String>>> {
        self.inner.list(prefix)
    }
}

/// In-memory storage whose deletes of content-addressed blobs wait: `entered` is notified
/// when one starts, which goes on when `release` is notified.
async fn gated_storage() -> (Storage, Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
    let memory = batlehub_storage::memory().await.expect("storage");
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let gated = Storage::new(
        Arc::new(Gated {
            inner: memory.blobs.clone(),
            entered: entered.clone(),
            release: release.clone(),
        }),
        memory.index.clone(),
    );
    (gated, entered, release)
}

fn version(package: &str, staged: &Staged) -> NewVersion {
    NewVersion {
        registry: "r".into(),
        version: VersionRecord {
            package: package.into(),
            version: "1.0.0".into(),
            published_at: batlehub_test::start_time(),
            yanked: false,
            deprecated: None,
            publisher: Some("alice".into()),
            metadata: serde_json::Value::Null,
            files: vec![FileRecord {
                filename: format!("{package}-1.0.0.tgz"),
                sha256: staged.digests.sha256_hex(),
                size: staged.digests.size,
                signature: None,
                signature_type: None,
            }],
        },
        tags: Vec::new(),
    }
}

fn registry_over(storage: Storage, clock: &FakeClock) -> batlehub_core::Registry {
    Hub::builder()
        .storage(storage)
        .clock(clock.clone())
        .build()
        .expect("hub")
        .registry_with_policy(
            RegistryConfig::new("r", Mode::Local),
            Arc::new(batlehub_core::AllowAll),
        )
        .expect("registry")
}

/// Two publishes of the same bytes at once, one of which fails (its version exists): the
/// failing one must not delete the blob the other one's version now refers to.
#[tokio::test]
async fn a_failed_publish_never_deletes_a_shared_blob() {
    let (gated, entered, release) = gated_storage().await;
    let clock = FakeClock::new(batlehub_test::start_time());
    let registry = registry_over(gated, &clock);
    let caller = Caller::default();
    let first = registry
        .stage_bytes(Bytes::from_static(b"older bytes"))
        .await
        .expect("stage");
    registry
        .publish(&caller, version("taken", &first), vec![first])
        .await
        .expect("first publish");

    let shared = Bytes::from_static(b"the same bytes twice");
    let a = registry.stage_bytes(shared.clone()).await.expect("stage a");
    let b = registry.stage_bytes(shared).await.expect("stage b");
    let sha = a.digests.sha256_hex();
    // A republishes `taken@1.0.0` (a conflict) with the new bytes: it moves them to their
    // content address first, then its commit fails.
    let failing = {
        let registry = registry.clone();
        let caller = caller.clone();
        let new = version("taken", &a);
        tokio::spawn(async move { registry.publish(&caller, new, vec![a]).await })
    };
    // Wait until A is in its clean-up (old behaviour) or done (it deletes nothing).
    tokio::select! {
        () = entered.notified() => {}
        () = async { while !failing.is_finished() { tokio::task::yield_now().await } } => {}
    }
    // B publishes another package with the same bytes: the blob exists, so B reuses it.
    registry
        .publish(&caller, version("other", &b), vec![b])
        .await
        .expect("second publish");
    release.notify_one();
    let outcome = failing.await.expect("join");
    assert!(
        matches!(outcome, Err(batlehub_core::Error::Conflict(_))),
        "{outcome:?}"
    );
    assert!(
        registry.open_blob(&sha).await.is_ok(),
        "the blob `other@1.0.0` refers to is still there"
    );
}

/// Orphans (an unpublished version's file, a failed publish's blob, an abandoned upload) are
/// deleted once they stayed unreferenced for the grace period; referenced blobs never are,
/// and an orphan referenced again meanwhile is kept.
#[tokio::test]
async fn the_sweep_deletes_orphans_after_their_grace() {
    let storage = batlehub_storage::memory().await.expect("storage");
    let clock = FakeClock::new(batlehub_test::start_time());
    let registry = registry_over(storage.clone(), &clock);
    let caller = Caller::default();
    let kept = registry
        .stage_bytes(Bytes::from_static(b"published"))
        .await
        .expect("stage");
    let kept_sha = kept.digests.sha256_hex();
    registry
        .publish(&caller, version("kept", &kept), vec![kept])
        .await
        .expect("publish");
    let gone = registry
        .stage_bytes(Bytes::from_static(b"unpublished later"))
        .await
        .expect("stage");
    let gone_sha = gone.digests.sha256_hex();
    registry
        .publish(&caller, version("gone", &gone), vec![gone])
        .await
        .expect("publish");
    registry
        .local()
        .delete_package("gone")
        .await
        .expect("unpublish");
    let revived = registry
        .stage_bytes(Bytes::from_static(b"orphan, then published again"))
        .await
        .expect("stage");
    let revived_sha = revived.digests.sha256_hex();
    registry
        .publish(&caller, version("revived", &revived), vec![revived])
        .await
        .expect("publish");
    registry
        .local()
        .delete_package("revived")
        .await
        .expect("unpublish");
    let abandoned = registry
        .stage_bytes(Bytes::from_static(b"a client went away"))
        .await
        .expect("stage");
    std::mem::forget(abandoned); // as after a crash: nothing cleans it up

    let sweeper = BlobSweeper::new(storage.clone(), Arc::new(clock.clone()));
    let report = sweeper.sweep().await.expect("sweep");
    assert_eq!((report.deleted, report.pending), (0, 3), "{report:?}");

    // `revived` is published again before the grace ends: it is referenced, so kept.
    let again = registry
        .stage_bytes(Bytes::from_static(b"orphan, then published again"))
        .await
        .expect("stage");
    registry
        .publish(&caller, version("revived", &again), vec![again])
        .await
        .expect("publish");

    clock.advance(chrono::Duration::minutes(61));
    let report = sweeper.sweep().await.expect("sweep");
    assert_eq!((report.deleted, report.pending), (1, 1), "{report:?}");
    assert!(
        registry.open_blob(&gone_sha).await.is_err(),
        "orphan deleted"
    );
    assert!(registry.open_blob(&kept_sha).await.is_ok());
    assert!(registry.open_blob(&revived_sha).await.is_ok());
    assert_eq!(temp_blobs(&storage).await.len(), 1, "uploads get a day");

    clock.advance(chrono::Duration::hours(24));
    let report = sweeper.sweep().await.expect("sweep");
    assert_eq!((report.deleted, report.pending), (1, 0), "{report:?}");
    assert!(temp_blobs(&storage).await.is_empty());
    assert!(registry.open_blob(&kept_sha).await.is_ok());
}

/// Two first publishes of a new name by different users, both past the policy check before
/// either commits: the first to commit owns the name, the other is refused, and the name
/// has one owner.
#[tokio::test]
async fn racing_first_publishes_leave_one_owner() {
    let storage = batlehub_storage::memory().await.expect("storage");
    let clock = FakeClock::new(batlehub_test::start_time());
    let registry = Hub::builder()
        .storage(storage)
        .clock(clock)
        .build()
        .expect("hub")
        .registry_with_policy(
            RegistryConfig::new("r", Mode::Local),
            Arc::new(batlehub_core::DefaultPolicy),
        )
        .expect("registry");
    let caller = |who: &str| Caller {
        identity: batlehub_test::identity(who),
        client_ip: None,
    };
    let facts = |v: &str| batlehub_core::policy::PublishFacts {
        package: "contested".into(),
        version: v.into(),
        size: 1,
        sha256: Vec::new(),
        package_exists: false,
        signature: None,
    };
    registry
        .check_publish(&caller("alice"), &facts("1.0.0"), &[])
        .await
        .expect("alice may publish a new name");
    registry
        .check_publish(&caller("bob"), &facts("1.0.1"), &[])
        .await
        .expect("so may bob, before anything is committed");
    let by = |who: &str, v: &str, staged: &Staged| {
        let mut new = version("contested", staged);
        new.version.version = v.into();
        new.version.publisher = Some(who.into());
        new.version.files[0].filename = format!("contested-{v}.tgz");
        new
    };
    let a = registry
        .stage_bytes(Bytes::from_static(b"a"))
        .await
        .expect("stage");
    let b = registry
        .stage_bytes(Bytes::from_static(b"b"))
        .await
        .expect("stage");
    registry
        .publish(&caller("alice"), by("alice", "1.0.0", &a), vec![a])
        .await
        .expect("alice commits first");
    let lost = registry
        .publish(&caller("bob"), by("bob", "1.0.1", &b), vec![b])
        .await;
    assert!(
        matches!(&lost, Err(batlehub_core::Error::Denied(d)) if d.rule == "ownership"),
        "{lost:?}"
    );
    assert_eq!(
        registry.local().owners("contested").await.expect("owners"),
        [batlehub_core::model::Owner::User("alice".into())]
    );
    let pkg = registry.local().package("contested").await.expect("read");
    assert_eq!(pkg.expect("exists").versions.len(), 1);
}

/// An orphan blob is due for deletion; while the sweep deletes it, a publish of the same
/// bytes commits a version naming it. The version's blob must exist afterwards: the publish
/// either is seen by the sweep (which then keeps the blob) or sees the blob gone and puts
/// its own copy in place (before the fix it kept the doomed blob and lost its bytes).
#[tokio::test]
async fn a_sweep_never_deletes_a_blob_a_concurrent_publish_names() {
    let (gated, entered, release) = gated_storage().await;
    let clock = FakeClock::new(batlehub_test::start_time());
    let hub = Hub::builder()
        .storage(gated)
        .clock(clock.clone())
        .build()
        .expect("hub");
    let registry = hub
        .registry_with_policy(
            RegistryConfig::new("r", Mode::Local),
            Arc::new(batlehub_core::AllowAll),
        )
        .expect("registry");
    let caller = Caller::default();
    let first = registry
        .stage_bytes(Bytes::from_static(b"first bytes"))
        .await
        .expect("stage");
    registry
        .publish(&caller, version("taken", &first), vec![first])
        .await
        .expect("first publish");
    // An orphan: a failed republish moved its bytes into place.
    let bytes = Bytes::from_static(b"bytes orphaned, then published again");
    let orphan = registry.stage_bytes(bytes.clone()).await.expect("stage");
    let sha = orphan.digests.sha256_hex();
    let failed = registry
        .publish(&caller, version("taken", &orphan), vec![orphan])
        .await;
    assert!(
        matches!(failed, Err(batlehub_core::Error::Conflict(_))),
        "{failed:?}"
    );

    let sweeper = BlobSweeper::new(hub.storage().clone(), hub.clock())
        .grace(std::time::Duration::from_secs(60));
    assert_eq!(sweeper.sweep().await.expect("first sweep").deleted, 0);
    clock.advance(chrono::Duration::minutes(2));
    let sweeping = tokio::spawn({
        let sweeper = sweeper.clone();
        async move { sweeper.sweep().await }
    });
    // The sweep checked the references and is deleting the orphan now.
    entered.notified().await;
    let again = registry.stage_bytes(bytes).await.expect("stage");
    let publishing = tokio::spawn({
        let registry = registry.clone();
        let caller = caller.clone();
        let new = version("again", &again);
        async move { registry.publish(&caller, new, vec![again]).await }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    release.notify_one();
    let report = sweeping.await.expect("join").expect("sweep");
    assert_eq!(report.deleted, 1, "{report:?}");
    publishing.await.expect("join").expect("publish");
    let blob = registry.open_blob(&sha).await.err();
    assert!(
        blob.is_none(),
        "`again@1.0.0` names a deleted blob: {blob:?}"
    );
}
