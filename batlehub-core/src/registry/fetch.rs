//! Reading blobs, and upstream documents and artifacts: cache, single-flight, integrity.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::future::FutureExt as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::body;
use crate::digest::{ContentCheck, Digests, ExpectedDigest, MultiHasher};
use crate::error::{Error, Result};
use crate::model::{CachedArtifact, CachedDocument};
use crate::store::{Lease, blob_path};
use crate::upstream::UpstreamClient;

use super::commit::Source;
use super::{Artifact, ArtifactFlight, Document, DocumentRef, Registry, SMALL_BLOB_BYTES};

/// The longest an upstream's `404` for a document is believed without asking again.
pub(crate) const NEGATIVE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// How many names answered `404` are remembered per registry.
const MAX_ABSENT: usize = 10_000;

/// What asking the upstreams for a document gave.
enum Refreshed {
    /// A document read just now, with the cache row to store for it.
    New(Document, CachedDocument),
    /// Nothing to store: a revalidated or stale cached copy, or no document at all.
    Known(Option<Document>),
}

impl Refreshed {
    fn into_document(self) -> Option<Document> {
        match self {
            Self::New(doc, _) => Some(doc),
            Self::Known(doc) => doc,
        }
    }
}

impl Registry {
    /// Opens a content-addressed blob for download.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the blob is missing; storage errors.
    pub async fn open_blob(&self, sha256: &str) -> Result<Artifact> {
        self.read_blob(sha256)
            .await?
            .ok_or_else(|| Error::storage(format!("blob {sha256} is referenced but missing")))
    }

    /// A blob ready to stream: blobs up to [`SMALL_BLOB_BYTES`] are kept in the memory cache
    /// after their first read and served from there; larger ones stream from the store.
    async fn read_blob(&self, sha256: &str) -> Result<Option<Artifact>> {
        let key = format!("blob:{sha256}");
        if let Some(hit) = self.memo().get::<Bytes>(&key) {
            return Ok(Some(Artifact {
                size: Some(hit.len() as u64),
                sha256: Some(sha256.to_owned()),
                body: body::full(Bytes::clone(&hit)),
                unverified: false,
            }));
        }
        let Some(reader) = self.inner.storage.blobs.reader(&blob_path(sha256)).await? else {
            return Ok(None);
        };
        let size = reader.size;
        if size > SMALL_BLOB_BYTES {
            return Ok(Some(Artifact {
                size: Some(size),
                sha256: Some(sha256.to_owned()),
                body: body::from_stream(reader.stream),
                unverified: false,
            }));
        }
        let mut buf = bytes::BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut stream = reader.stream;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| Error::storage(format!("blob {sha256} read failed: {e}")))?;
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > size {
                return Err(Error::storage(format!("blob {sha256} grew while read")));
            }
        }
        let bytes = buf.freeze();
        self.memo()
            .insert(key, Arc::new(bytes.clone()), bytes.len());
        Ok(Some(Artifact {
            size: Some(bytes.len() as u64),
            sha256: Some(sha256.to_owned()),
            body: body::full(bytes),
            unverified: false,
        }))
    }

    // ---- upstream documents -----------------------------------------------------------

    pub(super) fn upstream_client(&self) -> Result<&UpstreamClient> {
        self.inner
            .upstream
            .as_ref()
            .ok_or_else(|| Error::NotFound(format!("registry `{}` has no upstream", self.name())))
    }

    /// Fetches a metadata document from the upstreams (tried in order), through the cache:
    /// fresh copies are served directly; stale ones are revalidated with `If-None-Match` /
    /// `If-Modified-Since`; when every upstream fails the cached copy is served with
    /// [`Document::stale`] set. Concurrent misses for one key make one upstream request.
    ///
    /// `key` names the document in the cache; `path` is relative to each upstream root.
    /// Returns `None` when every upstream answers 404; that answer is remembered for the
    /// metadata TTL, at most 60 seconds (a flood of requests for names that do not
    /// exist costs the upstream one request per name and period, not one per request).
    ///
    /// # Errors
    /// [`Error::Upstream`] when every upstream failed and nothing was cached.
    pub async fn upstream_document(
        &self,
        key: &str,
        path: &str,
        accept: &'static str,
    ) -> Result<Option<Document>> {
        self.upstream_client()?;
        let cached = self.index().cached_document(self.name(), key).await?;
        if let Some(c) = cached.as_ref().filter(|c| self.is_fresh(c.fetched_at))
            && let Some(body) = self.document_body(&c.sha256).await?
        {
            return Ok(Some(Document::cached(c.clone(), body, false)));
        }
        self.fetch_document(key, path, accept, cached).await
    }

    /// Forgets the document flight `id` for `key` (unless a newer one took its place).
    fn end_doc_flight(&self, key: &str, id: u64) {
        let mut flights = self.inner.doc_flights.lock();
        if flights.get(key).is_some_and(|(i, _)| *i == id) {
            flights.remove(key);
        }
    }

    /// Whether a document fetched at `fetched_at` is younger than the metadata TTL.
    fn is_fresh(&self, fetched_at: chrono::DateTime<chrono::Utc>) -> bool {
        let age = self.now().signed_duration_since(fetched_at);
        let ttl = chrono::Duration::from_std(self.inner.config.metadata_ttl).unwrap_or_default();
        age < ttl
    }

    /// The upstream half of [`upstream_document`](Self::upstream_document): the cache
    /// (`cached`, as just looked up) had no fresh copy.
    ///
    /// A new document is answered as soon as it is read; storing it (blob, then index row)
    /// goes on in the background, and the flight stays open until it is stored, so a
    /// request meanwhile takes the same document instead of asking the upstream again.
    async fn fetch_document(
        &self,
        key: &str,
        path: &str,
        accept: &'static str,
        cached: Option<CachedDocument>,
    ) -> Result<Option<Document>> {
        if self
            .inner
            .absent
            .lock()
            .get(key)
            .is_some_and(|until| self.now() < *until)
        {
            return Ok(None);
        }
        let flight = {
            let mut flights = self.inner.doc_flights.lock();
            // A flight still running is joined; one that already answered and is storing its
            // document is joined while that document is fresh, as its stored copy would be.
            let joinable = flights.get(key).filter(|(_, f)| match f.peek() {
                None => true,
                Some(Ok(Some(doc))) => self.is_fresh(doc.fetched_at),
                Some(_) => false,
            });
            if let Some((_, f)) = joinable {
                f.clone()
            } else {
                let id = self.inner.flight_ids.fetch_add(1, Ordering::Relaxed);
                let this = self.clone();
                let k = key.to_owned();
                let p = path.to_owned();
                let fut = async move {
                    match this.refresh_document(&k, &p, accept, cached).await {
                        Ok(Refreshed::New(doc, row)) => {
                            let served = doc.clone();
                            let background = this.inner.storage.background.clone();
                            background.spawn(async move {
                                if let Err(e) = this.store_document(&k, &doc, &row).await {
                                    tracing::warn!(registry = %this.name(), key = %k, error = %e, "could not cache an upstream document");
                                }
                                this.end_doc_flight(&k, id);
                            });
                            Ok(Some(served))
                        }
                        out => {
                            this.end_doc_flight(&k, id);
                            out.map(Refreshed::into_document)
                        }
                    }
                }
                .boxed()
                .shared();
                flights.insert(key.to_owned(), (id, fut.clone()));
                fut
            }
        };
        flight.await
    }

    /// Like [`upstream_document`](Self::upstream_document), without reading the bytes of
    /// a fresh cached copy: a protocol that keeps what it derives from a document by its
    /// digest (a parsed packument, a rendering) finds it without touching the bytes, and
    /// reads them with [`document_bytes`](Self::document_bytes) only when it must.
    ///
    /// # Errors
    /// As [`upstream_document`](Self::upstream_document).
    pub async fn upstream_document_ref(
        &self,
        key: &str,
        path: &str,
        accept: &'static str,
    ) -> Result<Option<DocumentRef>> {
        self.upstream_client()?;
        let cached = self.index().cached_document(self.name(), key).await?;
        if let Some(c) = cached.as_ref().filter(|c| self.is_fresh(c.fetched_at)) {
            if self.has_document(&c.sha256).await? {
                return Ok(Some(DocumentRef::cached(c.clone(), false)));
            }
        }
        let doc = self.fetch_document(key, path, accept, cached).await?;
        Ok(doc.map(|d| {
            self.remember_body(&d);
            DocumentRef::from(d)
        }))
    }

    /// The bytes of a document [`upstream_document_ref`](Self::upstream_document_ref)
    /// described: from memory, or read once for every request asking meanwhile.
    ///
    /// # Errors
    /// [`Error::Upstream`] when the stored copy is gone (the next request fetches it
    /// again); storage errors.
    pub async fn document_bytes(&self, doc: &DocumentRef) -> Result<Bytes> {
        if let Some(body) = &doc.fetched {
            return Ok(body.clone());
        }
        self.document_body(&doc.sha256).await?.ok_or_else(|| {
            Error::Upstream(format!(
                "the cached upstream document {} is gone; try again",
                doc.sha256
            ))
        })
    }

    /// Whether the bytes of a cached document are at hand (in memory or stored).
    async fn has_document(&self, sha256: &str) -> Result<bool> {
        if self
            .memo()
            .get::<Option<Bytes>>(&format!("doc:{sha256}"))
            .is_some()
        {
            return Ok(true);
        }
        Ok(self
            .inner
            .storage
            .blobs
            .stat(&blob_path(sha256))
            .await?
            .is_some())
    }

    /// Remembers that every upstream answered `404` for `key` (bounded: expired answers go
    /// first, and past [`MAX_ABSENT`] names the oldest knowledge is dropped wholesale).
    fn remember_absent(&self, key: &str) {
        let ttl = self.inner.config.metadata_ttl.min(NEGATIVE_TTL);
        let Ok(ttl) = chrono::Duration::from_std(ttl) else {
            return;
        };
        if ttl.is_zero() {
            return;
        }
        let now = self.now();
        let mut absent = self.inner.absent.lock();
        if absent.len() >= MAX_ABSENT {
            absent.retain(|_, until| now < *until);
            if absent.len() >= MAX_ABSENT {
                absent.clear();
            }
        }
        absent.insert(key.to_owned(), now + ttl);
    }

    /// Asks the upstreams for a document, revalidating `cached` (the cache's row) when it
    /// came from the upstream asked.
    async fn refresh_document(
        &self,
        key: &str,
        path: &str,
        accept: &'static str,
        cached: Option<CachedDocument>,
    ) -> Result<Refreshed> {
        let client = self.upstream_client()?;
        let index = self.index();
        let mut not_found = 0usize;
        let mut failures = Vec::new();
        for i in 0..client.roots().len() {
            let url = client.url_for(i, path)?;
            let mut headers = HeaderMap::new();
            headers.insert(http::header::ACCEPT, HeaderValue::from_static(accept));
            if let Some(c) = cached.as_ref().filter(|c| c.upstream as usize == i) {
                if let Some(etag) = c
                    .etag
                    .as_deref()
                    .and_then(|e| HeaderValue::from_str(e).ok())
                {
                    headers.insert(http::header::IF_NONE_MATCH, etag);
                }
                if let Some(lm) = c
                    .last_modified
                    .as_deref()
                    .and_then(|e| HeaderValue::from_str(e).ok())
                {
                    headers.insert(http::header::IF_MODIFIED_SINCE, lm);
                }
            }
            let resp = match client.get(url.clone(), headers).await {
                Ok(r) => r,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let status = resp.status();
            if status == StatusCode::NOT_MODIFIED {
                if let Some(c) = cached.as_ref()
                    && let Some(body) = self.document_body(&c.sha256).await?
                {
                    let now = self.now();
                    index.touch_cached_document(self.name(), key, now).await?;
                    return Ok(Refreshed::Known(Some(Document {
                        body,
                        content_type: c.content_type.clone(),
                        stale: false,
                        upstream: i,
                        fetched_at: now,
                        sha256: c.sha256.clone(),
                        last_modified: c.last_modified.clone(),
                    })));
                }
                failures.push(format!("{url}: 304 without a cached copy"));
                continue;
            }
            if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                not_found += 1;
                continue;
            }
            if !status.is_success() {
                tracing::warn!(%url, %status, "upstream answered with an error");
                failures.push(format!("{url}: {status}"));
                continue;
            }
            let header = |name: http::header::HeaderName| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let etag = header(http::header::ETAG);
            let last_modified = header(http::header::LAST_MODIFIED);
            let content_type = header(http::header::CONTENT_TYPE);
            let body = match crate::upstream::read_limited(
                resp,
                self.inner.config.max_document_bytes,
                "document",
            )
            .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%url, error = %e, "upstream document body failed");
                    failures.push(e.to_string());
                    continue;
                }
            };
            let sha256 = Digests::of(&body).sha256_hex();
            let row = CachedDocument {
                sha256,
                size: body.len() as u64,
                etag,
                last_modified,
                content_type: content_type.clone(),
                upstream: u32::try_from(i).unwrap_or(u32::MAX),
                fetched_at: self.now(),
            };
            let doc = Document::cached(row.clone(), body, false);
            self.remember_body(&doc);
            return Ok(Refreshed::New(doc, row));
        }
        if failures.is_empty() && not_found > 0 {
            self.remember_absent(key);
            return Ok(Refreshed::Known(None));
        }
        if let Some(c) = cached
            && let Some(body) = self.document_body(&c.sha256).await?
        {
            tracing::warn!(registry = %self.name(), key, ?failures, "every upstream failed; serving stale copy");
            return Ok(Refreshed::Known(Some(Document::cached(c, body, true))));
        }
        tracing::warn!(registry = %self.name(), key, ?failures, "every upstream failed");
        Err(Error::Upstream(format!(
            "every upstream of `{}` failed and nothing is cached",
            self.name()
        )))
    }

    /// Stores a document read from an upstream: its blob first, then the index row naming it.
    async fn store_document(&self, key: &str, doc: &Document, row: &CachedDocument) -> Result<()> {
        self.commit_with_blobs(
            &[(row.sha256.clone(), Source::Bytes(&doc.body))],
            self.index().put_cached_document(self.name(), key, row),
        )
        .await
    }

    // ---- upstream artifacts -----------------------------------------------------------

    /// An artifact already in the cache, if any.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn cached_artifact(&self, key: &str) -> Result<Option<Artifact>> {
        let Some(cached) = self.index().cached_artifact(self.name(), key).await? else {
            return Ok(None);
        };
        match self.read_blob(&cached.sha256).await? {
            Some(artifact) => Ok(Some(artifact)),
            None => {
                tracing::warn!(registry = %self.name(), key, "cached artifact's blob is missing; refetching");
                Ok(None)
            }
        }
    }

    /// Serves an upstream artifact through the cache.
    ///
    /// On a miss the artifact is downloaded once, however many clients ask at the same
    /// time: the first client receives the bytes as they stream (the last chunk is held
    /// back until the digest is checked), the others wait and are served from the cache.
    /// The download never waits for a client: it spools to storage at the upstream's pace,
    /// and a client that falls more than a few chunks behind (or stops reading) is served
    /// the rest from the stored blob once the download is committed, so one slow reader
    /// cannot stall a shared download.
    /// The bytes are hashed while streaming and compared with `expected`; a mismatch is
    /// never cached and fails the transfer. Without an `expected` digest nothing can be
    /// verified: the artifact is refused (fail closed), or with
    /// [`RegistryConfig::allow_unverified`](super::RegistryConfig::allow_unverified) streamed
    /// through uncached and marked [`Artifact::unverified`]. `url` must be within the
    /// upstream's allowed origins.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upstream 404, [`Error::Upstream`] (also for a missing
    /// digest), [`Error::Integrity`].
    pub async fn upstream_artifact(
        &self,
        key: &str,
        url: Url,
        expected: Option<ExpectedDigest>,
    ) -> Result<Artifact> {
        self.upstream_artifact_with(key, url, expected, None).await
    }

    /// [`upstream_artifact`](Self::upstream_artifact) for an artifact whose content is
    /// checked as a whole once downloaded (`check`, beside or instead of an `expected`
    /// digest of its bytes): the download is spooled to a temporary file, checked, and
    /// cached; only then is it served, so a refused artifact is answered with
    /// [`Error::Upstream`] and the check's reason, never with part of its bytes. Memory stays
    /// flat in the artifact's size; the first byte waits for the last.
    ///
    /// # Errors
    /// As [`upstream_artifact`](Self::upstream_artifact); [`Error::Upstream`] with the reason
    /// when `check` refuses the content.
    pub async fn upstream_artifact_checked(
        &self,
        key: &str,
        url: Url,
        expected: Option<ExpectedDigest>,
        check: Arc<dyn ContentCheck>,
    ) -> Result<Artifact> {
        self.upstream_artifact_with(key, url, expected, Some(check))
            .await
    }

    async fn upstream_artifact_with(
        &self,
        key: &str,
        url: Url,
        expected: Option<ExpectedDigest>,
        check: Option<Arc<dyn ContentCheck>>,
    ) -> Result<Artifact> {
        let client = self.upstream_client()?;
        client.check_url(&url)?;
        if let Some(hit) = self.cached_artifact(key).await? {
            return Ok(hit);
        }
        let checked = check.is_some();
        if expected.is_none() && !checked {
            if !self.inner.config.allow_unverified {
                tracing::warn!(registry = %self.name(), key, "upstream published no digest; refused");
                return Err(Error::Upstream(format!(
                    "the upstream published no digest for {key}, so its bytes cannot be verified; refusing them (a registry may set allow_unverified)"
                )));
            }
            return self.unverified(key, url).await;
        }
        enum Role {
            Leader(
                mpsc::Receiver<Feed>,
                oneshot::Receiver<Result<Head>>,
                ArtifactFlight,
            ),
            Follower(ArtifactFlight),
        }
        let role = {
            let mut flights = self.inner.artifact_flights.lock();
            if let Some(f) = flights.get(key) {
                Role::Follower(f.clone())
            } else {
                let (tx, rx) = mpsc::channel(LEADER_CHUNKS);
                let (head_tx, head_rx) = oneshot::channel();
                let (done_tx, done_rx) = oneshot::channel::<Result<CachedArtifact>>();
                let flight: ArtifactFlight = async move {
                    done_rx
                        .await
                        .unwrap_or_else(|_| Err(Error::internal("artifact download task vanished")))
                }
                .boxed()
                .shared();
                flights.insert(key.to_owned(), flight.clone());
                let this = self.clone();
                let key = key.to_owned();
                self.inner.storage.background.spawn(async move {
                    let verify = Verify { expected, check };
                    let out = this.download(&key, url, verify, tx, head_tx).await;
                    this.inner.artifact_flights.lock().remove(&key);
                    let _ = done_tx.send(out);
                });
                Role::Leader(rx, head_rx, flight)
            }
        };
        match role {
            // Checked content is served once the whole of it passed, from the cache.
            Role::Leader(_, _, flight) if checked => self.after_flight(key, flight).await,
            Role::Leader(rx, head_rx, flight) => {
                let head = head_rx
                    .await
                    .map_err(|_| Error::internal("download task ended early"))??;
                let size = match head {
                    Head::Streaming(size) => size,
                    // Another replica downloaded it meanwhile.
                    Head::Stored => return self.after_flight(key, flight).await,
                };
                let tail = Tail::Channel {
                    rx,
                    got: 0,
                    flight,
                    registry: self.clone(),
                };
                Ok(Artifact {
                    size,
                    sha256: None,
                    body: body::from_stream(futures::stream::unfold(tail, Tail::next)),
                    unverified: false,
                })
            }
            Role::Follower(flight) => self.after_flight(key, flight).await,
        }
    }

    /// The cached artifact once `flight` has stored it.
    async fn after_flight(&self, key: &str, flight: ArtifactFlight) -> Result<Artifact> {
        flight.await?;
        self.cached_artifact(key)
            .await?
            .ok_or_else(|| Error::internal("artifact vanished from cache after download"))
    }

    /// Waits until this process may download `key`: at once on an index that serves one
    /// process; with replicas sharing the index, once it holds the download's lease, or
    /// until the replica holding it has stored the artifact. A replica that dies holding
    /// the lease delays the others by at most [`LEASE_TTL`].
    async fn download_lease(&self, key: &str) -> Result<Leased> {
        let index = self.index();
        let scope = format!("download:{}", self.name());
        let holder = uuid::Uuid::new_v4().simple().to_string();
        loop {
            let now = self.now();
            match index
                .try_lease(&scope, key, &holder, now, now + LEASE_TTL)
                .await?
            {
                Lease::Taken => {
                    // Another replica may have stored it since this one looked.
                    if let Some(cached) = index.cached_artifact_now(self.name(), key).await? {
                        index.release_lease(&scope, key, &holder).await?;
                        return Ok(Leased::Stored(cached));
                    }
                    return Ok(Leased::Go(Some(HeldLease {
                        scope,
                        holder,
                        renewed: std::time::Instant::now(),
                    })));
                }
                Lease::Busy => {
                    tokio::time::sleep(LEASE_POLL).await;
                    if let Some(cached) = index.cached_artifact_now(self.name(), key).await? {
                        return Ok(Leased::Stored(cached));
                    }
                }
                _ => return Ok(Leased::Go(None)),
            }
        }
    }

    /// Renews a download's lease when a third of it has passed.
    async fn renew_lease(&self, key: &str, lease: &mut Option<HeldLease>) {
        let Some(held) = lease else { return };
        if held.renewed.elapsed() < LEASE_TTL / 3 {
            return;
        }
        held.renewed = std::time::Instant::now();
        let now = self.now();
        match self
            .index()
            .try_lease(&held.scope, key, &held.holder, now, now + LEASE_TTL)
            .await
        {
            Ok(Lease::Busy) => {
                tracing::warn!(registry = %self.name(), key, "download lease taken over by another replica");
            }
            Err(e) => {
                tracing::warn!(registry = %self.name(), key, error = %e, "could not renew a download lease")
            }
            Ok(_) => {}
        }
    }

    /// Streams an upstream artifact that cannot be verified straight through, uncached.
    async fn unverified(&self, key: &str, url: Url) -> Result<Artifact> {
        tracing::warn!(registry = %self.name(), key, "upstream published no digest; serving unverified, uncached");
        let resp = self.upstream_client()?.get(url, HeaderMap::new()).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(Error::NotFound(format!(
                "upstream has no artifact for {key}"
            )));
        }
        if !status.is_success() {
            return Err(Error::Upstream(format!(
                "upstream answered {status} for {key}"
            )));
        }
        let limit = self.inner.config.max_artifact_bytes;
        let size = resp.content_length();
        if size.is_some_and(|l| l > limit) {
            return Err(Error::Upstream(format!(
                "upstream artifact {key} is larger than {limit} bytes"
            )));
        }
        let mut seen = 0u64;
        let stream = resp.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(std::io::Error::other)?;
            seen += chunk.len() as u64;
            if seen > limit {
                return Err(std::io::Error::other(
                    "upstream artifact exceeds the size limit",
                ));
            }
            Ok(chunk)
        });
        Ok(Artifact {
            size,
            sha256: None,
            body: body::from_stream(stream),
            unverified: true,
        })
    }

    /// Downloads `key` once across replicas (see [`Registry::download_lease`]).
    async fn download(
        &self,
        key: &str,
        url: Url,
        verify: Verify,
        tx: mpsc::Sender<Feed>,
        head_tx: oneshot::Sender<Result<Head>>,
    ) -> Result<CachedArtifact> {
        let mut lease = match self.download_lease(key).await {
            Ok(Leased::Go(lease)) => lease,
            Ok(Leased::Stored(cached)) => {
                let _ = head_tx.send(Ok(Head::Stored));
                return Ok(cached);
            }
            Err(e) => {
                let _ = head_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let out = self
            .download_leased(key, url, verify, tx, head_tx, &mut lease)
            .await;
        if let Some(held) = lease
            && let Err(e) = self
                .index()
                .release_lease(&held.scope, key, &held.holder)
                .await
        {
            tracing::warn!(registry = %self.name(), key, error = %e, "could not release a download lease");
        }
        out
    }

    async fn download_leased(
        &self,
        key: &str,
        url: Url,
        verify: Verify,
        tx: mpsc::Sender<Feed>,
        head_tx: oneshot::Sender<Result<Head>>,
        lease: &mut Option<HeldLease>,
    ) -> Result<CachedArtifact> {
        let Verify { expected, check } = verify;
        // The client's channel, while it keeps up; `None` once it fell behind or left (it
        // then reads the rest from the stored blob, or the error from the flight).
        let mut tx = Some(tx);
        let feed = |tx: &mut Option<mpsc::Sender<Feed>>, item: Feed| {
            if let Some(t) = tx
                && t.try_send(item).is_err()
            {
                *tx = None;
            }
        };
        let client = self.upstream_client()?.clone();
        let resp = match client.get(url.clone(), HeaderMap::new()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = head_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let e = if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                Error::NotFound(format!("upstream has no artifact for {key}"))
            } else {
                tracing::warn!(%url, %status, "upstream artifact request failed");
                Error::Upstream(format!("upstream answered {status} for {key}"))
            };
            let _ = head_tx.send(Err(e.clone()));
            return Err(e);
        }
        let limit = self.inner.config.max_artifact_bytes;
        let length = resp.content_length();
        if length.is_some_and(|l| l > limit) {
            let e = Error::Upstream(format!(
                "upstream artifact {key} is larger than {limit} bytes"
            ));
            let _ = head_tx.send(Err(e.clone()));
            return Err(e);
        }
        let blobs = &self.inner.storage.blobs;
        let temp = format!("tmp/{}", uuid::Uuid::new_v4());
        let mut writer = match blobs.writer(&temp).await {
            Ok(w) => w,
            Err(e) => {
                let _ = head_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        // Content to check is also spooled to a local file, for the check to read at will.
        let mut spool = match check.as_ref().map(|_| tempfile::tempfile()).transpose() {
            Ok(file) => file.map(tokio::fs::File::from_std),
            Err(e) => {
                let _ = writer.abort().await;
                let e = Error::internal(format!("could not create a spool file: {e}"));
                let _ = head_tx.send(Err(e.clone()));
                return Err(e);
            }
        };
        let _ = head_tx.send(Ok(Head::Streaming(length)));
        let mut hasher = MultiHasher::default();
        let mut pending: Option<Bytes> = None;
        let mut stream = resp.bytes_stream();
        let fail = |msg: String| std::io::Error::other(msg);
        let result: Result<()> = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    tracing::warn!(%url, error = %e, "upstream artifact stream broke");
                    Error::Upstream(format!("upstream transfer of {key} broke"))
                })?;
                hasher.update(&chunk);
                if hasher.size() > limit {
                    return Err(Error::Upstream(format!(
                        "upstream artifact {key} is larger than {limit} bytes"
                    )));
                }
                if let Some(file) = spool.as_mut() {
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| Error::internal(format!("spool write failed: {e}")))?;
                }
                writer.write(chunk.clone()).await?;
                if let Some(prev) = pending.replace(chunk) {
                    feed(&mut tx, Feed::Chunk(prev));
                }
                self.renew_lease(key, lease).await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            let _ = blobs.delete(&temp).await;
            feed(&mut tx, Feed::Failed(fail(e.to_string())));
            return Err(e);
        }
        let digests = hasher.finish();
        if let Some(exp) = &expected
            && !exp.matches(&digests)
        {
            let _ = writer.abort().await;
            let _ = blobs.delete(&temp).await;
            tracing::error!(
                registry = %self.name(), key, %url, sha256 = %digests.sha256_hex(),
                "integrity check failed: upstream bytes do not match the published digest; not cached"
            );
            let e = Error::Integrity {
                key: key.to_owned(),
            };
            feed(&mut tx, Feed::Failed(fail(e.to_string())));
            return Err(e);
        }
        if let (Some(check), Some(file)) = (check, spool.take()) {
            let verdict = async {
                let mut file = file;
                file.flush()
                    .await
                    .map_err(|e| format!("could not spool the download: {e}"))?;
                let mut file = file.into_std().await;
                tokio::task::spawn_blocking(move || {
                    use std::io::Seek as _;
                    file.rewind()
                        .map_err(|e| format!("could not read the download back: {e}"))?;
                    check.check(&mut file)
                })
                .await
                .unwrap_or_else(|e| Err(format!("the check failed: {e}")))
            }
            .await;
            if let Err(reason) = verdict {
                let _ = writer.abort().await;
                let _ = blobs.delete(&temp).await;
                tracing::error!(registry = %self.name(), key, %url, %reason, "integrity check of an upstream artifact's content failed; not cached");
                let e = Error::Upstream(format!(
                    "integrity check failed for {key}: {reason}; not cached"
                ));
                feed(&mut tx, Feed::Failed(fail(e.to_string())));
                return Err(e);
            }
        }
        // Verified: the first client has every byte now, while the blob and its index row
        // are committed (followers wait for that, and a client that fell behind reads the
        // rest from the committed blob).
        if let Some(last) = pending.take() {
            feed(&mut tx, Feed::Chunk(last));
            feed(&mut tx, Feed::End);
        }
        let commit: Result<CachedArtifact> = async {
            writer.close().await?;
            let cached = CachedArtifact {
                sha256: digests.sha256_hex(),
                size: digests.size,
                fetched_at: self.now(),
            };
            self.commit_with_blobs(
                &[(cached.sha256.clone(), Source::Temp(&temp))],
                self.index().put_cached_artifact(self.name(), key, &cached),
            )
            .await?;
            Ok(cached)
        }
        .await;
        match commit {
            Ok(cached) => Ok(cached),
            Err(e) => {
                tracing::warn!(registry = %self.name(), key, error = %e, "could not cache a verified upstream artifact");
                let _ = blobs.delete(&temp).await;
                feed(&mut tx, Feed::Failed(fail(e.to_string())));
                Err(e)
            }
        }
    }
}

/// What a download is checked against: a digest of its bytes, a check of its content.
struct Verify {
    expected: Option<ExpectedDigest>,
    check: Option<Arc<dyn ContentCheck>>,
}

/// How long a replica's lease on a download lasts; renewed while the download runs.
const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15);

/// How often a replica waiting on another's download looks for its result.
const LEASE_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A download's lease, held by this process.
struct HeldLease {
    scope: String,
    holder: String,
    renewed: std::time::Instant,
}

/// What waiting for a download's lease gave.
enum Leased {
    /// Download it (holding the lease, or on an index that needs none).
    Go(Option<HeldLease>),
    /// Another replica stored it meanwhile.
    Stored(CachedArtifact),
}

/// What a download tells its first client before the bytes.
enum Head {
    /// The upstream's bytes follow on the channel (their length, when announced).
    Streaming(Option<u64>),
    /// Nothing follows: another replica stored the artifact; read it from the cache.
    Stored,
}

/// What a download sends its first client.
enum Feed {
    Chunk(Bytes),
    /// Every byte was sent and matched the expected digest: the body is complete.
    End,
    Failed(std::io::Error),
}

/// How many chunks a download runs ahead of its first client before that client is left to
/// read the rest from storage.
const LEADER_CHUNKS: usize = 32;

/// The first client's body: chunks from the download while it keeps up, then the rest of
/// the stored blob from where it stopped.
enum Tail {
    Channel {
        rx: mpsc::Receiver<Feed>,
        got: u64,
        flight: ArtifactFlight,
        registry: Registry,
    },
    Blob(crate::store::ByteStream),
    Done,
}

impl Tail {
    async fn next(self) -> Option<(std::io::Result<Bytes>, Self)> {
        let (flight, got, registry) = match self {
            Self::Channel {
                mut rx,
                got,
                flight,
                registry,
            } => match rx.recv().await {
                Some(Feed::Chunk(chunk)) => {
                    let got = got + chunk.len() as u64;
                    let next = Self::Channel {
                        rx,
                        got,
                        flight,
                        registry,
                    };
                    return Some((Ok(chunk), next));
                }
                Some(Feed::End) => return None,
                Some(Feed::Failed(e)) => return Some((Err(e), Self::Done)),
                // The download finished, or left this client behind.
                None => (flight, got, registry),
            },
            Self::Blob(mut stream) => {
                return stream.next().await.map(|item| (item, Self::Blob(stream)));
            }
            Self::Done => return None,
        };
        let io = |e: Error| std::io::Error::other(e.to_string());
        let cached = match flight.await {
            Ok(cached) if got >= cached.size => return None,
            Ok(cached) => cached,
            Err(e) => return Some((Err(io(e)), Self::Done)),
        };
        let path = blob_path(&cached.sha256);
        let mut stream = match registry.inner.storage.blobs.reader_from(&path, got).await {
            Ok(Some(reader)) => reader.stream,
            Ok(None) => {
                return Some((
                    Err(io(Error::storage("downloaded blob vanished"))),
                    Self::Done,
                ));
            }
            Err(e) => return Some((Err(io(e)), Self::Done)),
        };
        match stream.next().await {
            Some(item) => Some((item, Self::Blob(stream))),
            None => Some((
                Err(io(Error::storage("downloaded blob is short"))),
                Self::Done,
            )),
        }
    }
}
