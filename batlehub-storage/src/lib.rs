#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blob;
mod error;
mod index;
#[cfg(feature = "s3")]
mod s3;

use std::path::Path;
use std::sync::Arc;

use batlehub_core::Storage;

pub use blob::OpendalBlobStore;
pub use error::StorageError;
pub use index::SqlIndex;
/// The opendal version this crate builds on, for [`OpendalBlobStore::from_operator`].
pub use opendal;
#[cfg(feature = "s3")]
pub use s3::S3Config;
/// The sqlx version this crate builds on, for [`SqlIndex::from_sqlite_pool`] and
/// [`SqlIndex::from_pg_pool`].
pub use sqlx;

/// Opens the single-machine layout: blobs under `data_dir/blobs`, the index in `data_dir/batlehub.db`.
///
/// Both are created when missing.
///
/// # Errors
///
/// Fails when the directory, the blob store or the SQLite database cannot be created or opened.
pub async fn embedded(data_dir: impl AsRef<Path>) -> Result<Storage, StorageError> {
    let dir = data_dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let blobs = OpendalBlobStore::filesystem(dir.join("blobs"))?;
    let index = SqlIndex::sqlite_file(dir.join("batlehub.db")).await?;
    Ok(Storage::new(Arc::new(blobs), Arc::new(index)))
}

/// Opens an empty storage held in memory: memory blobs and an in-memory SQLite index (for tests).
///
/// # Errors
///
/// Fails only if the memory backends cannot be initialised.
pub async fn memory() -> Result<Storage, StorageError> {
    let blobs = OpendalBlobStore::memory()?;
    let index = SqlIndex::sqlite_in_memory().await?;
    Ok(Storage::new(Arc::new(blobs), Arc::new(index)))
}

/// Combines the index at `database_url` (see [`SqlIndex::connect`]) with a blob store.
///
/// # Errors
///
/// Fails when the database cannot be opened or migrated.
pub async fn open(database_url: &str, blobs: OpendalBlobStore) -> Result<Storage, StorageError> {
    let index = SqlIndex::connect(database_url).await?;
    Ok(Storage::new(Arc::new(blobs), Arc::new(index)))
}
