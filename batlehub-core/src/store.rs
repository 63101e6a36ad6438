//! The storage traits the engine speaks to: a blob store and a metadata index.
//!
//! `batlehub-storage` implements both (opendal for blobs; sqlx over SQLite or PostgreSQL for
//! the index). Protocol crates never see these directly: they go through
//! [`Registry`](crate::Registry).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::memo::MemoCache;
use crate::model::{
    AuditEvent, AuditQuery, Block, CachedArtifact, CachedDocument, FileRecord, LocalPackage,
    Namespace, NewVersion, Owner, PackageSummary, TokenRecord, Usage, VersionRecord, Visibility,
};

/// A stream of blob bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// An open blob: its size and its bytes as a stream.
pub struct BlobReader {
    /// Size in bytes.
    pub size: u64,
    /// The bytes.
    pub stream: ByteStream,
}

impl Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// `stream` without its first `skip` bytes.
fn skip_bytes(stream: ByteStream, skip: u64) -> ByteStream {
    use futures::StreamExt as _;
    let mut left = skip;
    stream
        .filter_map(move |item| {
            let out = match item {
                Ok(mut chunk) if left > 0 => {
                    let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
                    left -= n as u64;
                    let rest = chunk.split_off(n);
                    (!rest.is_empty()).then_some(Ok(rest))
                }
                other => Some(other),
            };
            futures::future::ready(out)
        })
        .boxed()
}

/// A blob being written. Nothing is visible at `path` until `close` returns.
pub trait BlobWriter: Send {
    /// Appends a chunk.
    fn write(&mut self, chunk: Bytes) -> BoxFuture<'_, Result<()>>;
    /// Finishes the blob.
    fn close(&mut self) -> BoxFuture<'_, Result<()>>;
    /// Abandons the blob; whatever was written is removed.
    fn abort(&mut self) -> BoxFuture<'_, Result<()>>;
}

/// Where artifact bytes and cached documents live (filesystem, memory, S3).
///
/// Paths are `/`-separated keys chosen by the engine (`sha256/ab/cd/<hex>`, `tmp/<uuid>`),
/// never derived from client input.
pub trait BlobStore: Send + Sync + Debug + 'static {
    /// Opens a writer for `path`.
    fn writer(&self, path: &str) -> BoxFuture<'_, Result<Box<dyn BlobWriter>>>;
    /// Opens `path` for reading; `None` when it does not exist.
    fn reader(&self, path: &str) -> BoxFuture<'_, Result<Option<BlobReader>>>;
    /// Opens `path` for reading from byte `offset` on (a ranged read where the backend has
    /// one); [`BlobReader::size`] is the whole blob's size. `None` when it does not exist.
    ///
    /// The default reads from the start and drops the first `offset` bytes.
    fn reader_from(&self, path: &str, offset: u64) -> BoxFuture<'_, Result<Option<BlobReader>>> {
        let path = path.to_owned();
        Box::pin(async move {
            let Some(reader) = self.reader(&path).await? else {
                return Ok(None);
            };
            Ok(Some(BlobReader {
                size: reader.size,
                stream: skip_bytes(reader.stream, offset),
            }))
        })
    }
    /// Reads a whole (small) blob; for metadata documents, never artifacts.
    fn read_all(&self, path: &str) -> BoxFuture<'_, Result<Option<Bytes>>>;
    /// The size of `path`, or `None` when it does not exist.
    fn stat(&self, path: &str) -> BoxFuture<'_, Result<Option<u64>>>;
    /// Moves `from` to `to` (copy and delete where the backend cannot rename).
    fn rename(&self, from: &str, to: &str) -> BoxFuture<'_, Result<()>>;
    /// Deletes `path`; deleting a missing blob is not an error.
    fn delete(&self, path: &str) -> BoxFuture<'_, Result<()>>;
    /// Lists every path under `prefix` (for tests and maintenance).
    fn list(&self, prefix: &str) -> BoxFuture<'_, Result<Vec<String>>>;
}

/// The metadata index: packages, versions, files, tags and the upstream caches.
///
/// Every method is scoped by registry instance name. Implementations must make
/// [`Index::publish`] atomic: either the version, its files and its tags are all visible,
/// or none is, and a second publish of the same version fails with
/// [`Error::Conflict`](crate::Error::Conflict).
pub trait Index: Send + Sync + Debug + 'static {
    /// Whether `name` exists locally.
    fn package_exists<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// The package with all its versions and tags.
    fn package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<LocalPackage>>>;
    /// Like [`Index::package`], shared: an index that caches packages hands out the same
    /// `Arc` until the package changes, so callers can keep what they derive from it and
    /// reuse it while [`Arc::ptr_eq`] holds.
    fn package_shared<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<LocalPackage>>>> {
        Box::pin(async move { Ok(self.package(registry, name).await?.map(Arc::new)) })
    }
    /// One version.
    fn version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>>>;
    /// Commits a new version with its files and tags in one transaction.
    fn publish<'a>(&'a self, new: &'a NewVersion) -> BoxFuture<'a, Result<()>>;
    /// Adds a file to an existing version (PyPI wheels beside an sdist, Maven classifiers);
    /// `false` when the version does not exist, [`Error::Conflict`](crate::Error::Conflict)
    /// when the package already has a file of that name.
    fn add_file<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        version: &'a str,
        file: &'a FileRecord,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Sets or clears the yanked flag; `false` when the version does not exist.
    fn set_yanked<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        yanked: bool,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Sets or clears the deprecation message; `false` when the version does not exist.
    fn set_deprecated<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
        message: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes a version (and its tags); the package goes when its last version goes.
    fn delete_version<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes a package with every version and tag.
    fn delete_package<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// The tags of a package.
    fn tags<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>>>;
    /// Points `tag` at `version` (which must exist); `false` when it does not.
    fn set_tag<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        tag: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes a tag; `false` when it did not exist.
    fn remove_tag<'a>(
        &'a self,
        registry: &'a str,
        name: &'a str,
        tag: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Packages whose name contains `text` (case-insensitive), newest change first.
    fn search<'a>(
        &'a self,
        registry: &'a str,
        text: &'a str,
        offset: u32,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<PackageSummary>>>;
    /// A cached upstream document.
    fn cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedDocument>>>;
    /// Stores (or replaces) a cached upstream document.
    fn put_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        doc: &'a CachedDocument,
    ) -> BoxFuture<'a, Result<()>>;
    /// Marks a cached document as revalidated at `at`.
    fn touch_cached_document<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<()>>;
    /// A cached upstream artifact.
    fn cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedArtifact>>>;
    /// [`cached_artifact`](Self::cached_artifact) read from the database itself, past any
    /// memory of a missing row: for a replica waiting on another's download. The default
    /// calls `cached_artifact`.
    fn cached_artifact_now<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<CachedArtifact>>> {
        self.cached_artifact(registry, key)
    }
    /// Records a cached upstream artifact.
    fn put_cached_artifact<'a>(
        &'a self,
        registry: &'a str,
        key: &'a str,
        artifact: &'a CachedArtifact,
    ) -> BoxFuture<'a, Result<()>>;

    // ---- access control and policy state ---------------------------------------------

    /// Stores a new personal access token; [`Error::Conflict`](crate::Error::Conflict) when
    /// the id exists.
    fn create_token<'a>(&'a self, token: &'a TokenRecord) -> BoxFuture<'a, Result<()>>;
    /// A token by id (revoked and expired ones included).
    fn token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<TokenRecord>>>;
    /// Every token, newest first.
    fn list_tokens(&self) -> BoxFuture<'_, Result<Vec<TokenRecord>>>;
    /// Marks a token revoked at `at`; `false` when it does not exist or is already revoked.
    fn revoke_token<'a>(&'a self, id: &'a str, at: DateTime<Utc>) -> BoxFuture<'a, Result<bool>>;
    /// A counter that changes whenever a token may have been revoked, through this index
    /// or, on an index shared by replicas, through another replica's (as soon as its
    /// announcement arrives). Caches of verified tokens compare it to know when to look a
    /// token up again. The default never changes (such caches then rely on their TTL).
    fn tokens_generation(&self) -> u64 {
        0
    }

    /// The owners of a package, sorted.
    fn owners<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Owner>>>;
    /// Adds an owner; `false` when already an owner.
    fn add_owner<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Removes an owner; `false` when not an owner, or when it is the package's last owner
    /// (a package never loses its last owner: that would let anyone take it).
    fn remove_owner<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>>;
    /// Makes `owner` the first owner of `package` if nobody has claimed it yet: `true` when
    /// this call made `owner` the owner; `false` when the name was claimed before or already
    /// has owners (assigned ahead of its first publish). Atomic: of two concurrent first
    /// publishes, exactly one gets `true`. The claim outlives the package.
    ///
    /// The default is not atomic (owners read, then added); indexes shared by several
    /// processes must override it.
    fn claim_package<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        owner: &'a Owner,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            if !self.owners(registry, package).await?.is_empty() {
                return Ok(false);
            }
            self.add_owner(registry, package, owner).await
        })
    }

    /// The namespaces claimed in a registry, sorted by prefix.
    fn namespaces<'a>(&'a self, registry: &'a str) -> BoxFuture<'a, Result<Vec<Namespace>>>;
    /// Claims a prefix for a group; `false` when the prefix is already claimed.
    fn add_namespace<'a>(&'a self, namespace: &'a Namespace) -> BoxFuture<'a, Result<bool>>;
    /// Releases a prefix; `false` when it was not claimed.
    fn remove_namespace<'a>(
        &'a self,
        registry: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<bool>>;

    /// A package's visibility (`Public` when never set).
    fn visibility<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Visibility>>;
    /// Every package of a registry whose visibility is not `Public`.
    fn restricted_packages<'a>(
        &'a self,
        registry: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, Visibility)>>>;
    /// Sets a package's visibility (the package need not exist yet).
    fn set_visibility<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
        visibility: Visibility,
    ) -> BoxFuture<'a, Result<()>>;

    /// Blocks on one package (whole-package and version blocks), oldest first.
    fn blocks_for<'a>(
        &'a self,
        registry: &'a str,
        package: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Block>>>;
    /// Every block, optionally of one registry, oldest first.
    fn list_blocks<'a>(&'a self, registry: Option<&'a str>) -> BoxFuture<'a, Result<Vec<Block>>>;
    /// Adds a block; [`Error::Conflict`](crate::Error::Conflict) when the id exists.
    fn add_block<'a>(&'a self, block: &'a Block) -> BoxFuture<'a, Result<()>>;
    /// Removes a block by id; `false` when it does not exist.
    fn remove_block<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Atomically adds one hit to the counter `key` for the window starting at
    /// `window_start`, returning the count after the increment. Counters of windows that
    /// ended before `window_start` may be deleted.
    fn rate_hit<'a>(
        &'a self,
        key: &'a str,
        window_start: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Deletes the counters whose key starts with `prefix` and whose window started before
    /// `before` (keys that are never hit again, such as one-off client addresses, would
    /// otherwise stay forever); returns how many went.
    fn rate_sweep<'a>(
        &'a self,
        prefix: &'a str,
        before: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<u64>>;

    /// What `principal` has published in `registry` (bytes of files, distinct packages).
    fn usage<'a>(&'a self, registry: &'a str, principal: &'a str) -> BoxFuture<'a, Result<Usage>>;

    /// Appends audit events (one transaction).
    fn append_audit<'a>(&'a self, events: &'a [AuditEvent]) -> BoxFuture<'a, Result<()>>;
    /// Audit events matching the query, oldest first.
    fn query_audit<'a>(&'a self, query: &'a AuditQuery) -> BoxFuture<'a, Result<Vec<AuditEvent>>>;

    /// Answers when the index can serve requests (a round trip to its database), for
    /// readiness probes. The default answers at once.
    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Takes the lease `name` in `scope` for `holder` until `until`, or renews it when
    /// `holder` has it: granted when nobody holds it or the holder's lease ended before
    /// `now`. Replicas sharing one database take a lease before work that one of them
    /// should do for all (an upstream download, the orphan sweep); the others wait for its
    /// result or skip. Times come from the callers' clocks, so replicas' clocks must agree
    /// to well within a lease's length.
    ///
    /// The default answers [`Lease::Local`]: an index that serves one process needs no
    /// leases (the process's own single-flight suffices).
    fn try_lease<'a>(
        &'a self,
        scope: &'a str,
        name: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Lease>> {
        let _ = (scope, name, holder, now, until);
        Box::pin(async { Ok(Lease::Local) })
    }

    /// Gives up the lease `name` in `scope` if `holder` has it.
    fn release_lease<'a>(
        &'a self,
        scope: &'a str,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let _ = (scope, name, holder);
        Box::pin(async { Ok(()) })
    }

    /// The sha256 (lowercase hex) of every blob the index refers to, in every registry:
    /// published files, cached documents and cached artifacts. The orphan sweep
    /// ([`BlobSweeper`](crate::sweep::BlobSweeper)) deletes blobs outside this set. The
    /// default answers an error, so an index that does not implement it is never swept.
    fn referenced_blobs(&self) -> BoxFuture<'_, Result<std::collections::HashSet<String>>> {
        Box::pin(async {
            Err(crate::Error::storage(
                "this index cannot list the blobs it refers to",
            ))
        })
    }
}

/// The answer to [`Index::try_lease`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lease {
    /// The caller holds the lease now.
    Taken,
    /// Another holder's lease runs past `now`.
    Busy,
    /// The index serves one process: nobody else can do the work, go ahead.
    Local,
}

/// The blob store and the index, together, with the in-memory cache of hot content.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Artifact and document bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Packages, versions, caches.
    pub index: Arc<dyn Index>,
    /// Hot content held in memory, shared by every registry on this storage: small blobs,
    /// upstream documents and the forms protocol services derive from them, keyed by
    /// content digest (see [`Registry::memo`](crate::Registry::memo)).
    pub memo: Arc<MemoCache>,
    /// Work left running after the requests that started it answered: upstream downloads
    /// and storing what they fetched (see [`Storage::settle`]).
    pub background: Arc<Background>,
    /// Keeps this process's orphan sweep from checking and deleting a blob between a
    /// commit's look at it and the commit naming it (shared; the sweep takes it
    /// exclusively).
    pub(crate) blob_gate: Arc<tokio::sync::RwLock<()>>,
}

/// Tasks left running in the background (an upstream download, storing a fetched
/// document), counted so that they can be waited for.
#[derive(Debug, Default)]
pub struct Background {
    running: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Background {
    /// Runs `task` on the current runtime, counted until it ends.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn<F>(self: &Arc<Self>, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        /// Counts the task down when it ends, panics or is dropped with its runtime.
        struct Done(Arc<Background>);
        impl Drop for Done {
            fn drop(&mut self) {
                if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
                    self.0.idle.notify_waiters();
                }
            }
        }
        self.running.fetch_add(1, Ordering::SeqCst);
        let done = Done(self.clone());
        tokio::spawn(async move {
            let _done = done;
            task.await;
        });
    }

    /// How many tasks are running.
    #[must_use]
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no task is running.
    pub async fn settle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// The default budget of [`Storage::memo`]: 64 MiB.
pub const DEFAULT_MEMORY_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl Storage {
    /// Combines a blob store and an index, with a memory cache of
    /// [`DEFAULT_MEMORY_CACHE_BYTES`].
    pub fn new(blobs: Arc<dyn BlobStore>, index: Arc<dyn Index>) -> Self {
        Self {
            blobs,
            index,
            memo: Arc::new(MemoCache::new(DEFAULT_MEMORY_CACHE_BYTES)),
            background: Arc::default(),
            blob_gate: Arc::default(),
        }
    }

    /// Waits until the work requests left running is done: an upstream download goes on
    /// after its first client was answered (it may have left), and a fetched document or
    /// verified artifact is stored after the response that carried it. Until then a request
    /// for the same thing is served the same bytes, not a second download. Call this before
    /// reading the cache directly, and when shutting down.
    pub async fn settle(&self) {
        self.background.settle().await;
    }

    /// The same index, memory cache and background work with other blobs: a registry
    /// keeping its artifacts in a store of its own.
    #[must_use]
    pub fn with_blobs(&self, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            blobs,
            ..self.clone()
        }
    }

    /// Sets the memory cache's budget (0 turns it off).
    #[must_use]
    pub fn with_memory_cache(mut self, bytes: usize) -> Self {
        self.memo = Arc::new(MemoCache::new(bytes));
        self
    }
}

/// The content address of a blob with this sha256 hex digest.
#[must_use]
pub fn blob_path(sha256: &str) -> String {
    let a = sha256.get(0..2).unwrap_or("00");
    let b = sha256.get(2..4).unwrap_or("00");
    format!("sha256/{a}/{b}/{sha256}")
}

#[cfg(test)]
mod tests {
    use futures::{StreamExt as _, TryStreamExt as _};

    use super::*;

    #[tokio::test]
    async fn skip_bytes_drops_a_prefix_across_chunks() {
        let chunks =
            || futures::stream::iter(["abc", "", "defg", "h"].map(|s| Ok(Bytes::from(s)))).boxed();
        for (skip, want) in [
            (0, "abcdefgh"),
            (2, "cdefgh"),
            (3, "defgh"),
            (5, "fgh"),
            (8, ""),
            (20, ""),
        ] {
            let got: Vec<Bytes> = skip_bytes(chunks(), skip)
                .try_collect()
                .await
                .expect("read");
            assert_eq!(got.concat(), want.as_bytes(), "skip {skip}");
        }
    }
}
