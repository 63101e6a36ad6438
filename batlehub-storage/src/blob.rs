//! [`BlobStore`] over an [`opendal::Operator`]: filesystem, memory, or any operator you build.

use std::fmt;
use std::path::Path;

use batlehub_core::store::{BlobReader, BlobStore, BlobWriter};
use batlehub_core::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use opendal::{ErrorKind, Operator};

use crate::error::StorageError;

/// Read chunk size: large enough for throughput (64 KiB served 10 MiB artifacts at ~0.85x
/// nginx, 256 KiB at ~1.0x), small enough to keep memory flat per download.
const CHUNK: usize = 256 * 1024;

/// Splits a chunk longer than [`CHUNK`] into slices of it (no copy).
fn bounded_chunks(item: std::io::Result<Bytes>) -> Vec<std::io::Result<Bytes>> {
    match item {
        Ok(mut bytes) if bytes.len() > CHUNK => {
            let mut parts = Vec::with_capacity(bytes.len().div_ceil(CHUNK));
            while bytes.len() > CHUNK {
                parts.push(Ok(bytes.split_to(CHUNK)));
            }
            parts.push(Ok(bytes));
            parts
        }
        other => vec![other],
    }
}

/// Where the filesystem backend stages blobs until `close`; hidden from `list`, refused as a key.
const PARTIAL_DIR: &str = ".partial";

/// A [`BlobStore`] backed by an opendal [`Operator`].
///
/// Reads stream in 256 KiB chunks; writes become visible only when the writer is closed
/// (the filesystem backend stages them under `<root>/.partial` and renames on close).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use batlehub_core::BlobStore;
/// use batlehub_storage::OpendalBlobStore;
///
/// let blobs = OpendalBlobStore::memory()?;
/// let mut w = blobs.writer("tmp/a").await?;
/// w.write(bytes::Bytes::from_static(b"hello")).await?;
/// w.close().await?;
/// assert_eq!(blobs.stat("tmp/a").await?, Some(5));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OpendalBlobStore {
    op: Operator,
    shape: WriteShape,
}

/// How a backend is best read and written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteShape {
    /// Bytes per read request; `None`: one request, streamed (object stores).
    pub(crate) read_chunk: Option<usize>,
    /// Bytes buffered per write request (a multipart part); `None`: the backend's default.
    pub(crate) write_chunk: Option<usize>,
    /// Write requests in flight at once.
    pub(crate) write_concurrency: usize,
}

impl WriteShape {
    /// Local backends: reads in [`CHUNK`]s, writes as they come.
    const LOCAL: Self = Self {
        read_chunk: Some(CHUNK),
        write_chunk: None,
        write_concurrency: 1,
    };
}

impl fmt::Debug for OpendalBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.op.info();
        f.debug_struct("OpendalBlobStore")
            .field("scheme", &info.scheme())
            .field("root", &info.root())
            .finish()
    }
}

impl OpendalBlobStore {
    /// Opens a store rooted at the directory `root`, creating it when missing.
    ///
    /// # Errors
    ///
    /// Fails when the directory cannot be created, its path is not UTF-8, or opendal refuses it.
    pub fn filesystem(root: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = root.as_ref();
        let partial = root.join(PARTIAL_DIR);
        std::fs::create_dir_all(&partial).map_err(|source| StorageError::CreateDir {
            path: partial.clone(),
            source,
        })?;
        // opendal resolves the staging directory against the working directory, not the root.
        let partial = std::path::absolute(&partial).map_err(|source| StorageError::CreateDir {
            path: partial.clone(),
            source,
        })?;
        let root_str = root
            .to_str()
            .ok_or_else(|| StorageError::NonUtf8Path(root.to_path_buf()))?;
        let partial_str = partial
            .to_str()
            .ok_or_else(|| StorageError::NonUtf8Path(partial.clone()))?;
        let builder = opendal::services::Fs::default()
            .root(root_str)
            .atomic_write_dir(partial_str);
        Ok(Self::from_operator(Operator::new(builder)?))
    }

    /// Opens an empty store held in process memory (for tests and ephemeral servers).
    ///
    /// # Errors
    ///
    /// Fails only if opendal refuses the memory backend's configuration.
    pub fn memory() -> Result<Self, StorageError> {
        Ok(Self::from_operator(Operator::new(
            opendal::services::Memory::default(),
        )?))
    }

    /// Wraps an operator built by the caller (S3, with layers, ...).
    ///
    /// The operator must only write a blob at its path when its writer is closed; object
    /// stores do, a filesystem operator needs an atomic write directory.
    #[must_use]
    pub fn from_operator(op: Operator) -> Self {
        Self::with_shape(op, WriteShape::LOCAL)
    }

    pub(crate) fn with_shape(op: Operator, shape: WriteShape) -> Self {
        Self { op, shape }
    }

    /// The underlying operator.
    #[must_use]
    pub fn operator(&self) -> &Operator {
        &self.op
    }
}

/// Refuses keys that could escape the root or alias another key.
fn check_path(path: &str) -> Result<()> {
    let unsafe_path = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || path.split('/').next() == Some(PARTIAL_DIR);
    if unsafe_path {
        return Err(Error::storage(format_args!(
            "refusing unsafe blob path {path:?}"
        )));
    }
    Ok(())
}

/// Like [`check_path`], for a listing prefix: empty and a trailing `/` are allowed.
fn check_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" if !prefix.starts_with('/') => Ok(()),
        trimmed => check_path(trimmed)
            .map_err(|_| Error::storage(format_args!("refusing unsafe blob prefix {prefix:?}"))),
    }
}

/// A backend failure as the core's error: an outage or a throttling answer (which the
/// backend marks temporary) asks the client to retry; anything else is a storage error.
fn backend_error(op: &str, path: &str, e: &opendal::Error) -> Error {
    let detail = format_args!("blob {op} of {path:?} failed: {e}");
    if e.is_temporary() || e.kind() == ErrorKind::RateLimited {
        Error::unavailable(detail)
    } else {
        Error::storage(detail)
    }
}

impl BlobStore for OpendalBlobStore {
    fn writer(&self, path: &str) -> BoxFuture<'_, Result<Box<dyn BlobWriter>>> {
        let path = path.to_owned();
        Box::pin(async move {
            check_path(&path)?;
            let mut writer = self
                .op
                .writer_with(&path)
                .concurrent(self.shape.write_concurrency);
            if let Some(chunk) = self.shape.write_chunk {
                writer = writer.chunk(chunk);
            }
            let inner = writer
                .await
                .map_err(|e| backend_error("open writer", &path, &e))?;
            Ok(Box::new(OpendalWriter {
                inner: Some(inner),
                path,
            }) as Box<dyn BlobWriter>)
        })
    }

    fn reader(&self, path: &str) -> BoxFuture<'_, Result<Option<BlobReader>>> {
        self.reader_from(path, 0)
    }

    fn reader_from(&self, path: &str, offset: u64) -> BoxFuture<'_, Result<Option<BlobReader>>> {
        let path = path.to_owned();
        Box::pin(async move {
            check_path(&path)?;
            let Some(size) = self.stat_inner(&path).await? else {
                return Ok(None);
            };
            if offset >= size {
                // Nothing left to read (an object store would refuse the range).
                return Ok(Some(BlobReader {
                    size,
                    stream: futures::stream::empty().boxed(),
                }));
            }
            let opened = async {
                let reader = self.op.reader_with(&path);
                let reader = match self.shape.read_chunk {
                    Some(chunk) => reader.chunk(chunk),
                    None => reader,
                };
                reader.await?.into_bytes_stream(offset..).await
            };
            match opened.await {
                Ok(stream) => Ok(Some(BlobReader {
                    size,
                    stream: match self.shape.read_chunk {
                        Some(_) => stream.boxed(),
                        // An object store's body arrives in whatever frames the connection
                        // read; hand them on in bounded slices of the same bytes.
                        None => stream
                            .flat_map(|item| futures::stream::iter(bounded_chunks(item)))
                            .boxed(),
                    },
                })),
                // Deleted between stat and open.
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(backend_error("read", &path, &e)),
            }
        })
    }

    fn read_all(&self, path: &str) -> BoxFuture<'_, Result<Option<Bytes>>> {
        let path = path.to_owned();
        Box::pin(async move {
            check_path(&path)?;
            match self.op.read(&path).await {
                Ok(buf) => Ok(Some(buf.to_bytes())),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(backend_error("read", &path, &e)),
            }
        })
    }

    fn stat(&self, path: &str) -> BoxFuture<'_, Result<Option<u64>>> {
        let path = path.to_owned();
        Box::pin(async move {
            check_path(&path)?;
            self.stat_inner(&path).await
        })
    }

    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, Result<()>> {
        let (from, to) = (from.to_owned(), to.to_owned());
        Box::pin(async move {
            check_path(&from)?;
            check_path(&to)?;
            if from == to {
                return Ok(());
            }
            let cap = self.op.info().capability();
            if cap.rename {
                return self
                    .op
                    .rename(&from, &to)
                    .await
                    .map_err(|e| backend_error("rename", &from, &e));
            }
            if cap.copy {
                self.op
                    .copy(&from, &to)
                    .await
                    .map_err(|e| backend_error("copy", &from, &e))?;
            } else {
                self.stream_copy(&from, &to).await?;
            }
            self.delete_inner(&from).await
        })
    }

    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>> {
        let path = path.to_owned();
        Box::pin(async move {
            check_path(&path)?;
            self.delete_inner(&path).await
        })
    }

    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<String>>> {
        let prefix = prefix.to_owned();
        Box::pin(async move {
            check_prefix(&prefix)?;
            // List the enclosing directory and filter: backends differ on partial-name prefixes.
            let dir = match prefix.rfind('/') {
                Some(i) => &prefix[..=i],
                None => "/",
            };
            let entries = match self.op.list_with(dir).recursive(true).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(backend_error("list", dir, &e)),
            };
            let mut paths: Vec<String> = entries
                .into_iter()
                .filter(|e| e.metadata().is_file())
                .map(|e| e.path().trim_start_matches('/').to_owned())
                .filter(|p| p.starts_with(&prefix) && check_path(p).is_ok())
                .collect();
            paths.sort();
            paths.dedup();
            Ok(paths)
        })
    }
}

impl OpendalBlobStore {
    async fn stat_inner(&self, path: &str) -> Result<Option<u64>> {
        match self.op.stat(path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.content_length())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend_error("stat", path, &e)),
        }
    }

    async fn delete_inner(&self, path: &str) -> Result<()> {
        match self.op.delete(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend_error("delete", path, &e)),
        }
    }

    /// Copies chunk by chunk, for backends that can neither rename nor copy.
    async fn stream_copy(&self, from: &str, to: &str) -> Result<()> {
        let mut stream = self
            .op
            .reader_with(from)
            .chunk(CHUNK)
            .await
            .map_err(|e| backend_error("read", from, &e))?
            .into_bytes_stream(..)
            .await
            .map_err(|e| backend_error("read", from, &e))?;
        let mut writer = self
            .op
            .writer(to)
            .await
            .map_err(|e| backend_error("open writer", to, &e))?;
        let copied = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::storage(format_args!("blob read of {from:?} failed: {e}"))
                })?;
                writer
                    .write(chunk)
                    .await
                    .map_err(|e| backend_error("write", to, &e))?;
            }
            writer
                .close()
                .await
                .map_err(|e| backend_error("close", to, &e))?;
            Ok(())
        };
        let result: Result<()> = copied.await;
        if result.is_err() {
            // Best effort: the error being reported is the copy failure.
            let _ = writer.abort().await;
        }
        result
    }
}

/// A [`BlobWriter`] over an opendal writer; finished after `close` or `abort`.
struct OpendalWriter {
    inner: Option<opendal::Writer>,
    path: String,
}

impl fmt::Debug for OpendalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpendalWriter")
            .field("path", &self.path)
            .field("open", &self.inner.is_some())
            .finish()
    }
}

/// A writer dropped before `close` or `abort` (its request failed, its client left) is
/// aborted in the background, so that no staged file or multipart upload is left behind.
impl Drop for OpendalWriter {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        let path = std::mem::take(&mut self.path);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = inner.abort().await {
                        tracing::warn!(path, error = %e, "could not abort an abandoned blob write");
                    }
                });
            }
            Err(_) => tracing::warn!(path, "abandoned blob write left to the orphan sweep"),
        }
    }
}

impl BlobWriter for OpendalWriter {
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(inner) = self.inner.as_mut() else {
                return Err(Error::storage(format_args!(
                    "write to finished blob writer {:?}",
                    self.path
                )));
            };
            inner
                .write(chunk)
                .await
                .map_err(|e| backend_error("write", &self.path, &e))
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(mut inner) = self.inner.take() else {
                return Err(Error::storage(format_args!(
                    "close of finished blob writer {:?}",
                    self.path
                )));
            };
            match inner.close().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Best effort: leave no staged bytes behind.
                    let _ = inner.abort().await;
                    Err(backend_error("close", &self.path, &e))
                }
            }
        })
    }

    fn abort(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            match self.inner.take() {
                Some(mut inner) => inner
                    .abort()
                    .await
                    .map_err(|e| backend_error("abort", &self.path, &e)),
                // Already closed or aborted: nothing left to remove.
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{check_path, check_prefix};

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\b",
            "a\0b",
            "a/",
            ".partial/x",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["sha256/ab/cd/abcd", "tmp/0c6e", "a.b/c..d", ".x"] {
            assert!(check_path(good).is_ok(), "{good:?} refused");
        }
        assert!(check_prefix("").is_ok());
        assert!(check_prefix("sha256/").is_ok());
        assert!(check_prefix("sha").is_ok());
        assert!(check_prefix("/").is_err());
        assert!(check_prefix("../").is_err());
    }
}
