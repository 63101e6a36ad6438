//! Errors raised while opening a store; once open, stores speak [`batlehub_core::Error`].

use std::path::PathBuf;

/// Why a blob store or an index could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The database URL names no supported backend.
    #[error(
        "unsupported database URL scheme `{scheme}`: expected `sqlite:`, `postgres:` or `postgresql:`"
    )]
    UnsupportedUrl {
        /// The scheme found (never the whole URL, which may hold a password).
        scheme: String,
    },
    /// The database could not be opened or configured.
    #[error("cannot open the index database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema migrations could not be applied.
    #[error("cannot apply the index migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The blob backend refused its configuration.
    #[error("cannot open the blob store: {0}")]
    Blob(#[from] opendal::Error),
    /// A directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// The S3 configuration is incomplete or unusable.
    #[error("S3 storage: {0}")]
    S3(String),
    /// A path is not valid UTF-8, which the blob backend requires.
    #[error("path {} is not valid UTF-8", .0.display())]
    NonUtf8Path(PathBuf),
}
