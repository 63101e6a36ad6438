//! The registry engine: one instance per configured registry, shared by its protocol service.
//!
//! Split by concern: this file holds the types and accessors; `access` the policy checks
//! and audit, `publish` staging and publishing, `fetch` blobs and upstream documents and
//! artifacts (cache, single-flight, integrity).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use url::Url;

mod access;
pub(crate) mod commit;
mod fetch;
mod local;
mod publish;

pub use local::LocalIndex;

use crate::audit::AuditSink;
use crate::body::Body;
use crate::clock::Clock;
use crate::digest::Digests;
use crate::error::{ConfigError, Error, Result};
use crate::memo::MemoCache;
use crate::model::{CachedArtifact, CachedDocument, Mode};
use crate::policy::Policy;
use crate::store::{BlobStore, Index, Storage, blob_path};
use crate::upstream::{UpstreamClient, UpstreamOptions};

/// Blobs up to this size are kept in the storage's memory cache once read.
pub const SMALL_BLOB_BYTES: u64 = 1024 * 1024;

/// Configuration of one registry instance.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RegistryConfig {
    /// Instance name (unique within a hub; the reference server serves it at `/proxy/NAME/`).
    pub name: String,
    /// `local`, `proxy` or `hybrid`.
    pub mode: Mode,
    /// How to reach the upstreams (required for proxy and hybrid).
    pub upstream: UpstreamOptions,
    /// How long a cached upstream document is fresh before revalidation.
    pub metadata_ttl: Duration,
    /// The largest upload accepted.
    pub max_upload_bytes: u64,
    /// The largest upstream artifact cached.
    pub max_artifact_bytes: u64,
    /// The largest upstream metadata document accepted.
    pub max_document_bytes: u64,
    /// Names claimed for local use in a hybrid registry: a package key, or a prefix ending
    /// in `*` (`@acme/*`, `com.acme:*`). A claimed name may be published even when the
    /// upstream has it, and is never read from the upstream. Namespaces (admin API) claim
    /// their prefixes too.
    pub claims: Vec<String>,
    /// Serve upstream artifacts whose upstream published no digest (default `false`: such
    /// an artifact is refused with `502`, fail closed). When allowed, they are streamed
    /// through without being cached, marked `X-Batlehub-Unverified` and `no-store`.
    pub allow_unverified: bool,
    /// Uploads one caller (a principal, else a client address) may have in progress at
    /// once; more are refused with `429` before their bodies are read. Default 8 (Maven
    /// clients upload up to five files in parallel).
    pub max_concurrent_uploads: usize,
}

impl RegistryConfig {
    /// A configuration with defaults: TTL 300 s, uploads up to 512 MiB.
    #[must_use]
    pub fn new(name: impl Into<String>, mode: Mode) -> Self {
        Self {
            name: name.into(),
            mode,
            upstream: UpstreamOptions::default(),
            metadata_ttl: Duration::from_secs(300),
            max_upload_bytes: 512 * 1024 * 1024,
            max_artifact_bytes: 8 * 1024 * 1024 * 1024,
            max_document_bytes: 256 * 1024 * 1024,
            claims: Vec::new(),
            allow_unverified: false,
            max_concurrent_uploads: 8,
        }
    }

    /// Sets the upstream URLs.
    #[must_use]
    pub fn upstreams<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.upstream.urls = urls.into_iter().map(Into::into).collect();
        self
    }
}

/// A document fetched from (or cached for) an upstream.
#[derive(Debug, Clone)]
pub struct Document {
    /// The raw upstream bytes.
    pub body: Bytes,
    /// The upstream's Content-Type.
    pub content_type: Option<String>,
    /// Served from cache because every upstream failed.
    pub stale: bool,
    /// Which upstream it came from.
    pub upstream: usize,
    /// When it was fetched or last revalidated.
    pub fetched_at: DateTime<Utc>,
    /// sha256 (hex) of `body`: a key for values derived from it (see [`Registry::memo`]).
    pub sha256: String,
    /// The upstream's `Last-Modified`, as sent.
    pub last_modified: Option<String>,
}

impl Document {
    /// The document a cache row describes, with its body; `stale` when every upstream
    /// failed and this copy is served anyway.
    fn cached(row: CachedDocument, body: Bytes, stale: bool) -> Self {
        Self {
            body,
            content_type: row.content_type,
            stale,
            upstream: row.upstream as usize,
            fetched_at: row.fetched_at,
            sha256: row.sha256,
            last_modified: row.last_modified,
        }
    }
}

/// A document fetched from (or cached for) an upstream, without its bytes: what a
/// protocol needs to find what it derived from them in the memo (see
/// [`Registry::upstream_document_ref`]); [`Registry::document_bytes`] reads them.
#[derive(Debug, Clone)]
pub struct DocumentRef {
    /// The upstream's Content-Type.
    pub content_type: Option<String>,
    /// Served from cache because every upstream failed.
    pub stale: bool,
    /// Which upstream it came from.
    pub upstream: usize,
    /// When it was fetched or last revalidated.
    pub fetched_at: DateTime<Utc>,
    /// sha256 (hex) of the bytes.
    pub sha256: String,
    /// The bytes, when they were just fetched: they may not be stored yet, and a memory
    /// cache too small to keep them must not make them unreadable.
    fetched: Option<Bytes>,
}

impl DocumentRef {
    fn cached(row: CachedDocument, stale: bool) -> Self {
        Self {
            content_type: row.content_type,
            stale,
            upstream: row.upstream as usize,
            fetched_at: row.fetched_at,
            sha256: row.sha256,
            fetched: None,
        }
    }
}

impl From<Document> for DocumentRef {
    fn from(d: Document) -> Self {
        Self {
            content_type: d.content_type,
            stale: d.stale,
            upstream: d.upstream,
            fetched_at: d.fetched_at,
            sha256: d.sha256,
            fetched: Some(d.body),
        }
    }
}

/// An artifact ready to stream to a client.
pub struct Artifact {
    /// Size when known (sets `Content-Length`).
    pub size: Option<u64>,
    /// sha256 hex when known.
    pub sha256: Option<String>,
    /// The bytes.
    pub body: Body,
    /// The bytes could not be checked against a digest their upstream published (only
    /// with [`RegistryConfig::allow_unverified`]); such bytes are never cached.
    pub unverified: bool,
}

impl fmt::Debug for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Artifact")
            .field("size", &self.size)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// An upload written to a temporary blob, hashed, not yet visible.
///
/// The temporary blob is deleted when the last clone is dropped without having been
/// published ([`Registry::publish`], [`Registry::add_file`]) or discarded
/// ([`Registry::discard`]): a handler that returns early with an error leaves nothing
/// behind.
#[derive(Debug, Clone)]
pub struct Staged {
    temp: Arc<TempBlob>,
    /// Digests of the bytes.
    pub digests: Digests,
}

/// A temporary blob, deleted on drop unless settled (moved or deleted explicitly).
struct TempBlob {
    path: String,
    blobs: Arc<dyn BlobStore>,
    settled: AtomicBool,
}

impl TempBlob {
    fn settle(&self) {
        self.settled.store(true, Ordering::Release);
    }
}

impl fmt::Debug for TempBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempBlob")
            .field("path", &self.path)
            .finish()
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if self.settled.load(Ordering::Acquire) {
            return;
        }
        let (blobs, path) = (self.blobs.clone(), std::mem::take(&mut self.path));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = blobs.delete(&path).await {
                        tracing::warn!(error = %e, temp = %path, "could not delete an unpublished upload");
                    }
                });
            }
            // Outside a runtime nothing can be awaited; the orphan sweep removes it.
            Err(_) => tracing::warn!(temp = %path, "unpublished upload left behind"),
        }
    }
}

type DocFlight = Shared<BoxFuture<'static, Result<Option<Document>>>>;
type ArtifactFlight = Shared<BoxFuture<'static, Result<CachedArtifact>>>;

struct Inner {
    config: RegistryConfig,
    storage: Storage,
    policy: Arc<dyn Policy>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    upstream: Option<UpstreamClient>,
    /// Document flights by key, each with its id (see `fetch_document`).
    doc_flights: Mutex<HashMap<String, (u64, DocFlight)>>,
    flight_ids: std::sync::atomic::AtomicU64,
    /// Documents every upstream answered `404` for, and until when that answer stands.
    absent: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
    artifact_flights: Mutex<HashMap<String, ArtifactFlight>>,
    /// Per principal: held while a commit checks [`Policy::commit`] and writes its rows.
    commit_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Uploads in progress per caller (principal, else client address).
    uploads: Arc<Mutex<HashMap<String, usize>>>,
}

/// One upload slot of a caller, released when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    uploads: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut uploads = self.uploads.lock();
        if let Some(n) = uploads.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                uploads.remove(&self.key);
            }
        }
    }
}

/// One registry instance: its mode, storage, upstreams and policy.
///
/// Cheap to clone (an `Arc`). Protocol services hold one and call it for every operation;
/// it owns caching, single-flight, integrity checks and atomic publishing so that protocol
/// crates only parse and render.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.inner.config.name)
            .field("mode", &self.inner.config.mode)
            .field("upstream", &self.inner.upstream)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Builds a registry instance.
    ///
    /// # Errors
    /// A message when the name is bad, a proxy has no upstream, or the upstream client
    /// cannot be built.
    pub fn new(
        config: RegistryConfig,
        storage: Storage,
        policy: Arc<dyn Policy>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
    ) -> std::result::Result<Self, ConfigError> {
        crate::coords::check_segment("registry name", &config.name)
            .map_err(|e| ConfigError::new(e.to_string()))?;
        for claim in &config.claims {
            let stem = claim.strip_suffix('*').unwrap_or(claim);
            if stem.is_empty() || stem.contains('*') {
                return Err(ConfigError::new(format!(
                    "registry `{}`: claim `{claim}` must be a package name or a prefix ending in `*` (not `*` alone)",
                    config.name
                )));
            }
        }
        let upstream = if config.mode.has_upstreams() {
            if config.upstream.urls.is_empty() {
                return Err(ConfigError::new(format!(
                    "registry `{}` is in {} mode and needs at least one upstream",
                    config.name, config.mode
                )));
            }
            Some(UpstreamClient::new(&config.upstream).map_err(ConfigError::new)?)
        } else {
            None
        };
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                policy,
                clock,
                audit,
                upstream,
                doc_flights: Mutex::new(HashMap::new()),
                flight_ids: std::sync::atomic::AtomicU64::new(0),
                absent: Mutex::new(HashMap::new()),
                artifact_flights: Mutex::new(HashMap::new()),
                commit_locks: Mutex::new(HashMap::new()),
                uploads: Arc::default(),
                config,
            }),
        })
    }

    /// Waits until the work requests left running is done (see [`Storage::settle`]).
    pub async fn settle(&self) {
        self.inner.storage.settle().await;
    }

    /// The in-memory cache of values derived from content (documents, parsed and rendered
    /// metadata). Key entries by content digest so that they never go stale.
    #[must_use]
    pub fn memo(&self) -> &MemoCache {
        &self.inner.storage.memo
    }

    /// A stored document's bytes: from the memo, or read once for all the requests that
    /// ask meanwhile (a burst of requests for a big document holds one copy, not one each).
    async fn document_body(&self, sha256: &str) -> Result<Option<Bytes>> {
        let read = self
            .memo()
            .get_or_load(&format!("doc:{sha256}"), async {
                let body = self
                    .inner
                    .storage
                    .blobs
                    .read_all(&blob_path(sha256))
                    .await?;
                // A missing blob is not remembered (usize::MAX is never kept).
                let weight = body.as_ref().map_or(usize::MAX, Bytes::len);
                Ok((body, weight))
            })
            .await?;
        Ok(Option::clone(&read))
    }

    /// Remembers the bytes of a document just fetched, for [`document_bytes`](Self::document_bytes).
    fn remember_body(&self, doc: &Document) {
        self.memo().insert(
            format!("doc:{}", doc.sha256),
            Arc::new(Some(doc.body.clone())),
            doc.body.len(),
        );
    }

    /// The instance name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.inner.config.mode
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// The metadata index.
    #[must_use]
    pub fn index(&self) -> &dyn Index {
        self.inner.storage.index.as_ref()
    }

    /// The clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The upstream client, in proxy and hybrid modes.
    #[must_use]
    pub fn upstream(&self) -> Option<&UpstreamClient> {
        self.inner.upstream.as_ref()
    }

    /// Resolves a link upstream `index` handed out (absolute, or relative to that upstream's
    /// root): a download URL from an index file, a tarball URL from a packument.
    ///
    /// # Errors
    /// [`Error::Internal`] without such an upstream; [`Error::Upstream`] when the link does
    /// not parse.
    pub fn upstream_link(&self, index: usize, href: &str) -> Result<Url> {
        let root = self
            .upstream()
            .and_then(|u| u.roots().get(index))
            .ok_or_else(|| Error::internal(format!("no upstream #{index}")))?;
        root.join(href).map_err(|e| {
            Error::Upstream(format!(
                "the upstream link `{}` is invalid: {e}",
                href.escape_default()
            ))
        })
    }
}
