//! A staged upload that is neither published nor discarded is deleted when dropped, so a
//! handler that returns early with an error leaves no temporary blob behind.

use std::sync::Arc;

use batlehub_core::{FakeClock, Hub, Mode, RegistryConfig};
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
