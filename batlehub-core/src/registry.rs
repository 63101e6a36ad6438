//! The registry engine: one instance per configured registry, shared by its protocol service.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::{BoxFuture, FutureExt as _, Shared};
use futures::{Stream, StreamExt as _};
use http::{HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::audit::AuditSink;
use crate::body::{self, Body};
use crate::clock::Clock;
use crate::digest::{Digests, ExpectedDigest, MultiHasher};
use crate::error::{Error, Result};
use crate::memo::MemoCache;
use crate::model::{
    Access, AuditEvent, CachedArtifact, CachedDocument, Decision, Identity, LocalPackage, Mode,
    NewVersion, Owner, Permission,
};
use crate::policy::{Caller, Outcome, Policy, PolicyCx, PublishFacts, VersionFacts};
use crate::store::{Index, Storage, blob_path};
use crate::upstream::{UpstreamClient, UpstreamOptions};

/// Blobs up to this size are kept in the storage's memory cache once read.
pub const SMALL_BLOB_BYTES: u64 = 1024 * 1024;

/// Configuration of one registry instance.
#[derive(Debug, Clone)]
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
}

/// An artifact ready to stream to a client.
pub struct Artifact {
    /// Size when known (sets `Content-Length`).
    pub size: Option<u64>,
    /// sha256 hex when known.
    pub sha256: Option<String>,
    /// The bytes.
    pub body: Body,
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
#[derive(Debug, Clone)]
pub struct Staged {
    temp: String,
    /// Digests of the bytes.
    pub digests: Digests,
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
    doc_flights: Mutex<HashMap<String, DocFlight>>,
    artifact_flights: Mutex<HashMap<String, ArtifactFlight>>,
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
    ) -> std::result::Result<Self, String> {
        crate::coords::check_segment("registry name", &config.name).map_err(|e| e.to_string())?;
        let upstream = if config.mode.has_upstreams() {
            if config.upstream.urls.is_empty() {
                return Err(format!(
                    "registry `{}` is in {} mode and needs at least one upstream",
                    config.name, config.mode
                ));
            }
            Some(UpstreamClient::new(&config.upstream)?)
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
                artifact_flights: Mutex::new(HashMap::new()),
                config,
            }),
        })
    }

    /// The in-memory cache of values derived from content (documents, parsed and rendered
    /// metadata). Key entries by content digest so that they never go stale.
    #[must_use]
    pub fn memo(&self) -> &MemoCache {
        &self.inner.storage.memo
    }

    /// A stored document's bytes, from memory when recently read.
    async fn document_body(&self, sha256: &str) -> Result<Option<Bytes>> {
        let key = format!("doc:{sha256}");
        if let Some(hit) = self.memo().get::<Bytes>(&key) {
            return Ok(Some(Bytes::clone(&hit)));
        }
        let body = self
            .inner
            .storage
            .blobs
            .read_all(&blob_path(sha256))
            .await?;
        if let Some(b) = &body {
            self.memo().insert(key, Arc::new(b.clone()), b.len());
        }
        Ok(body)
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

    /// Checks that `identity` may do what needs `permission` (on `package`).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for invalid credentials, or when anonymous callers are refused;
    /// [`Error::Forbidden`] / [`Error::Denied`] for known callers refused by policy.
    pub fn authorize(
        &self,
        identity: &Identity,
        permission: Permission,
        package: Option<&str>,
    ) -> Result<()> {
        if let Identity::Invalid(reason) = identity {
            return Err(Error::Unauthorized(reason.clone()));
        }
        let access = Access {
            registry: self.name(),
            permission,
            package,
        };
        match self.inner.policy.decide(identity, &access) {
            Decision::Allow => Ok(()),
            Decision::Deny(denial) => match identity {
                Identity::Anonymous if denial.rule == "rbac" => Err(Error::Unauthorized(format!(
                    "authentication required: anonymous access to `{}` lacks {}",
                    self.name(),
                    permission
                ))),
                _ => Err(Error::Denied(denial)),
            },
        }
    }

    /// Refuses publishing in proxy mode.
    ///
    /// # Errors
    /// [`Error::MethodNotAllowed`] in proxy mode.
    pub fn ensure_publishable(&self) -> Result<()> {
        if self.mode().accepts_publish() {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed(format!(
                "registry `{}` is a proxy; publish to a local or hybrid registry",
                self.name()
            )))
        }
    }

    // ---- policy -------------------------------------------------------------------------

    fn cx<'a>(&'a self, caller: &'a Caller) -> PolicyCx<'a> {
        PolicyCx {
            registry: self.name(),
            caller,
            index: self.index(),
            now: self.now(),
        }
    }

    /// Records an audit event for this registry (queued; written in batches).
    pub fn audit(
        &self,
        caller: &Caller,
        action: &str,
        package: Option<&str>,
        version: Option<&str>,
        outcome: std::result::Result<(), &Error>,
    ) {
        let (outcome, rule, reason) = match outcome {
            Ok(()) => ("allow", None, None),
            Err(Error::Denied(d)) => ("deny", Some(d.rule.clone()), Some(d.reason.clone())),
            Err(e) => (
                "deny",
                Some(rule_of(e).to_owned()),
                Some(e.client_message()),
            ),
        };
        self.inner.audit.record(AuditEvent {
            at: self.now(),
            registry: self.name().to_owned(),
            action: action.to_owned(),
            package: package.map(str::to_owned),
            version: version.map(str::to_owned),
            principal: caller.identity.name().to_owned(),
            outcome: outcome.to_owned(),
            rule,
            reason,
            client_ip: caller.client_ip.map(|ip| ip.to_string()),
        });
    }

    /// Admits a request (rate limits), returning headers to add to the response.
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when a limit is exhausted.
    pub async fn admit(&self, caller: &Caller) -> Result<Outcome> {
        self.inner.policy.admit(self.cx(caller)).await
    }

    /// Package-level access: RBAC, then visibility and whole-package blocks.
    ///
    /// # Errors
    /// [`Error::Unauthorized`]/[`Error::Denied`] from RBAC or a block; [`Error::NotFound`] when
    /// the package is hidden from this caller.
    pub async fn check_package(
        &self,
        caller: &Caller,
        permission: Permission,
        package: &str,
    ) -> Result<()> {
        self.authorize(&caller.identity, permission, Some(package))?;
        self.inner.policy.package(self.cx(caller), package).await
    }

    /// The local package `name` if it has at least one version, shared: the index hands
    /// out the same `Arc` until the package changes (see [`Index::package_shared`]).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn local_package(&self, name: &str) -> Result<Option<Arc<LocalPackage>>> {
        Ok(self
            .index()
            .package_shared(self.name(), name)
            .await?
            .filter(|p| !p.versions.is_empty()))
    }

    /// Whether this registry's policy decides on publish times (a release-age gate): when
    /// not, protocol services need not work out when upstream versions were published.
    #[must_use]
    pub fn uses_publish_times(&self) -> bool {
        self.inner.policy.uses_publish_times()
    }

    /// One decision per version; denied versions are hidden from listings.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn version_decisions(
        &self,
        caller: &Caller,
        package: &str,
        versions: &[VersionFacts],
    ) -> Result<Vec<Decision>> {
        self.inner
            .policy
            .versions(self.cx(caller), package, versions)
            .await
    }

    /// Whether `version` may be downloaded: RBAC, package access, version rules. The
    /// decision is audited.
    ///
    /// # Errors
    /// As [`Registry::check_package`], plus [`Error::Denied`] from version rules.
    pub async fn check_download(
        &self,
        caller: &Caller,
        permission: Permission,
        package: &str,
        version: &VersionFacts,
    ) -> Result<()> {
        let outcome: Result<()> = async {
            self.check_package(caller, permission, package).await?;
            let decisions = self
                .version_decisions(caller, package, std::slice::from_ref(version))
                .await?;
            match decisions.into_iter().next() {
                Some(Decision::Deny(d)) => Err(Error::Denied(d)),
                _ => Ok(()),
            }
        }
        .await;
        match &outcome {
            Err(Error::NotFound(_)) => {}
            other => self.audit(
                caller,
                "download",
                Some(package),
                Some(&version.version),
                other.as_ref().map(|_| ()),
            ),
        }
        outcome
    }

    /// A request naming a tag instead of a version.
    ///
    /// # Errors
    /// [`Error::Denied`] when tags are refused.
    pub fn check_tag(&self, caller: &Caller, package: &str, tag: &str) -> Result<()> {
        match self.inner.policy.tag(self.cx(caller), package, tag) {
            Decision::Allow => Ok(()),
            Decision::Deny(d) => Err(Error::Denied(d)),
        }
    }

    /// Whether a publish may go ahead: mode, RBAC, then ownership, namespaces, versioning,
    /// signing and quota. Refusals are audited.
    ///
    /// # Errors
    /// [`Error::MethodNotAllowed`] in proxy mode; RBAC errors; the policy's refusal.
    pub async fn check_publish(&self, caller: &Caller, facts: &PublishFacts) -> Result<Outcome> {
        let outcome: Result<Outcome> = async {
            self.ensure_publishable()?;
            self.authorize(&caller.identity, Permission::Publish, Some(&facts.package))?;
            self.inner.policy.publish(self.cx(caller), facts).await
        }
        .await;
        if let Err(e) = &outcome {
            self.audit(
                caller,
                "publish",
                Some(&facts.package),
                Some(&facts.version),
                Err(e),
            );
        }
        outcome
    }

    /// Whether `caller` may change an existing package (`action`: yank, deprecate, tag,
    /// unpublish, owners). The decision is audited.
    ///
    /// # Errors
    /// RBAC errors; [`Error::Denied`] when the caller is not an owner.
    pub async fn check_manage(&self, caller: &Caller, package: &str, action: &str) -> Result<()> {
        let outcome: Result<()> = async {
            self.ensure_publishable()?;
            self.authorize(&caller.identity, Permission::Publish, Some(package))?;
            self.inner.policy.manage(self.cx(caller), package).await
        }
        .await;
        self.audit(
            caller,
            action,
            Some(package),
            None,
            outcome.as_ref().map(|_| ()),
        );
        outcome
    }

    // ---- local blobs ----------------------------------------------------------------

    /// Streams an upload into a temporary blob, hashing it, refusing more than
    /// `max_upload_bytes`.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`], [`Error::BadRequest`] for a broken stream, storage errors.
    pub async fn stage<S, E>(&self, mut stream: S) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let temp = format!("tmp/{}", uuid::Uuid::new_v4());
        let mut writer = self.inner.storage.blobs.writer(&temp).await?;
        let mut hasher = MultiHasher::default();
        let limit = self.inner.config.max_upload_bytes;
        let outcome: Result<()> = async {
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| Error::BadRequest(format!("upload interrupted: {e}")))?;
                hasher.update(&chunk);
                if hasher.size() > limit {
                    return Err(Error::PayloadTooLarge(format!(
                        "upload exceeds the limit of {limit} bytes"
                    )));
                }
                writer.write(chunk).await?;
            }
            writer.close().await
        }
        .await;
        if let Err(e) = outcome {
            let _ = writer.abort().await;
            let _ = self.inner.storage.blobs.delete(&temp).await;
            return Err(e);
        }
        Ok(Staged {
            temp,
            digests: hasher.finish(),
        })
    }

    /// [`Registry::stage`] for bytes already in memory.
    ///
    /// # Errors
    /// As [`Registry::stage`].
    pub async fn stage_bytes(&self, bytes: Bytes) -> Result<Staged> {
        self.stage(futures::stream::iter([Ok::<_, std::convert::Infallible>(
            bytes,
        )]))
        .await
    }

    /// Deletes a staged upload that will not be published.
    pub async fn discard(&self, staged: Staged) {
        if let Err(e) = self.inner.storage.blobs.delete(&staged.temp).await {
            tracing::warn!(error = %e, temp = %staged.temp, "could not delete staged upload");
        }
    }

    /// Publishes a version atomically: staged blobs become content-addressed blobs, then
    /// the index row, files and tags are committed in one transaction. If the commit fails
    /// (a version published twice), blobs this call created are removed again.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the version exists; storage errors.
    pub async fn publish(
        &self,
        caller: &Caller,
        new: NewVersion,
        staged: Vec<Staged>,
    ) -> Result<()> {
        let out = self.publish_inner(new.clone(), staged).await;
        self.audit(
            caller,
            "publish",
            Some(&new.version.package),
            Some(&new.version.version),
            out.as_ref().map(|_| ()),
        );
        out
    }

    /// Moves staged uploads to their content addresses; returns the blobs this created.
    async fn commit_blobs(&self, staged: &[Staged]) -> Result<Vec<String>> {
        let blobs = &self.inner.storage.blobs;
        let mut created = Vec::new();
        for s in staged {
            let path = blob_path(&s.digests.sha256_hex());
            if blobs.stat(&path).await?.is_some() {
                blobs.delete(&s.temp).await?;
            } else {
                blobs.rename(&s.temp, &path).await?;
                created.push(path);
            }
        }
        Ok(created)
    }

    /// Adds a file to an existing version (a wheel beside an sdist, a Maven classifier):
    /// the staged blob becomes content-addressed, then the file row is committed. If the
    /// commit fails (the file exists, the version does not), a blob this call created is
    /// removed again. The outcome is audited as `publish`.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the file exists; [`Error::NotFound`] when the version does
    /// not; storage errors.
    pub async fn add_file(
        &self,
        caller: &Caller,
        package: &str,
        version: &str,
        file: crate::model::FileRecord,
        staged: Staged,
    ) -> Result<()> {
        let created = self.commit_blobs(std::slice::from_ref(&staged)).await?;
        let out = match self
            .index()
            .add_file(self.name(), package, version, &file)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound(format!(
                "{package} {version} does not exist"
            ))),
            Err(e) => Err(e),
        };
        if out.is_err() {
            for path in created {
                let _ = self.inner.storage.blobs.delete(&path).await;
            }
        }
        self.audit(
            caller,
            "publish",
            Some(package),
            Some(version),
            out.as_ref().map(|_| ()),
        );
        out
    }

    async fn publish_inner(&self, new: NewVersion, staged: Vec<Staged>) -> Result<()> {
        let blobs = &self.inner.storage.blobs;
        let created = self.commit_blobs(&staged).await?;
        match self.index().publish(&new).await {
            Ok(()) => {
                let package = &new.version.package;
                if let Some(publisher) = &new.version.publisher
                    && self.index().owners(self.name(), package).await?.is_empty()
                {
                    self.index()
                        .add_owner(self.name(), package, &Owner::User(publisher.clone()))
                        .await?;
                }
                Ok(())
            }
            Err(e) => {
                for path in created {
                    let _ = blobs.delete(&path).await;
                }
                Err(e)
            }
        }
    }

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
        }))
    }

    // ---- upstream documents -----------------------------------------------------------

    fn upstream_client(&self) -> Result<&UpstreamClient> {
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
    /// Returns `None` when every upstream answers 404.
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
        let index = self.index();
        if let Some(cached) = index.cached_document(self.name(), key).await? {
            let age = self.now().signed_duration_since(cached.fetched_at);
            let ttl =
                chrono::Duration::from_std(self.inner.config.metadata_ttl).unwrap_or_default();
            if age < ttl
                && let Some(body) = self.document_body(&cached.sha256).await?
            {
                return Ok(Some(Document {
                    body,
                    content_type: cached.content_type,
                    stale: false,
                    upstream: cached.upstream as usize,
                    fetched_at: cached.fetched_at,
                    sha256: cached.sha256,
                }));
            }
        }
        let flight = {
            let mut flights = self.inner.doc_flights.lock();
            if let Some(f) = flights.get(key) {
                f.clone()
            } else {
                let this = self.clone();
                let k = key.to_owned();
                let p = path.to_owned();
                let fut = async move {
                    let out = this.refresh_document(&k, &p, accept).await;
                    this.inner.doc_flights.lock().remove(&k);
                    out
                }
                .boxed()
                .shared();
                flights.insert(key.to_owned(), fut.clone());
                fut
            }
        };
        flight.await
    }

    async fn refresh_document(
        &self,
        key: &str,
        path: &str,
        accept: &'static str,
    ) -> Result<Option<Document>> {
        let client = self.upstream_client()?;
        let index = self.index();
        let blobs = &self.inner.storage.blobs;
        let cached = index.cached_document(self.name(), key).await?;
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
                    return Ok(Some(Document {
                        body,
                        content_type: c.content_type.clone(),
                        stale: false,
                        upstream: i,
                        fetched_at: now,
                        sha256: c.sha256.clone(),
                    }));
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
            let body = match read_limited(resp, self.inner.config.max_document_bytes).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%url, error = %e, "upstream document body failed");
                    failures.push(e.to_string());
                    continue;
                }
            };
            let digests = Digests::of(&body);
            let sha256 = digests.sha256_hex();
            let path = blob_path(&sha256);
            if blobs.stat(&path).await?.is_none() {
                let mut w = blobs.writer(&path).await?;
                w.write(body.clone()).await?;
                w.close().await?;
            }
            let now = self.now();
            let doc = CachedDocument {
                sha256: sha256.clone(),
                size: body.len() as u64,
                etag,
                last_modified,
                content_type: content_type.clone(),
                upstream: u32::try_from(i).unwrap_or(u32::MAX),
                fetched_at: now,
            };
            index.put_cached_document(self.name(), key, &doc).await?;
            return Ok(Some(Document {
                body,
                content_type,
                stale: false,
                upstream: i,
                fetched_at: now,
                sha256,
            }));
        }
        if failures.is_empty() && not_found > 0 {
            return Ok(None);
        }
        if let Some(c) = cached
            && let Some(body) = self.document_body(&c.sha256).await?
        {
            tracing::warn!(registry = %self.name(), key, ?failures, "every upstream failed; serving stale copy");
            return Ok(Some(Document {
                body,
                content_type: c.content_type,
                stale: true,
                upstream: c.upstream as usize,
                fetched_at: c.fetched_at,
                sha256: c.sha256,
            }));
        }
        tracing::warn!(registry = %self.name(), key, ?failures, "every upstream failed");
        Err(Error::Upstream(format!(
            "every upstream of `{}` failed and nothing is cached",
            self.name()
        )))
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
    /// The bytes are hashed while streaming and compared with `expected`; a mismatch is
    /// never cached and fails the transfer. `url` must be within the upstream's allowed
    /// origins.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an upstream 404, [`Error::Upstream`], [`Error::Integrity`].
    pub async fn upstream_artifact(
        &self,
        key: &str,
        url: Url,
        expected: Option<ExpectedDigest>,
    ) -> Result<Artifact> {
        let client = self.upstream_client()?;
        client.check_url(&url)?;
        if let Some(hit) = self.cached_artifact(key).await? {
            return Ok(hit);
        }
        enum Role {
            Leader(
                mpsc::Receiver<std::io::Result<Bytes>>,
                oneshot::Receiver<Result<Option<u64>>>,
            ),
            Follower(ArtifactFlight),
        }
        let role = {
            let mut flights = self.inner.artifact_flights.lock();
            if let Some(f) = flights.get(key) {
                Role::Follower(f.clone())
            } else {
                let (tx, rx) = mpsc::channel(8);
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
                tokio::spawn(async move {
                    let out = this.download(&key, url, expected, tx, head_tx).await;
                    this.inner.artifact_flights.lock().remove(&key);
                    let _ = done_tx.send(out);
                });
                Role::Leader(rx, head_rx)
            }
        };
        match role {
            Role::Leader(rx, head_rx) => {
                let size = head_rx
                    .await
                    .map_err(|_| Error::internal("download task ended early"))??;
                let stream = futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                });
                Ok(Artifact {
                    size,
                    sha256: None,
                    body: body::from_stream(stream),
                })
            }
            Role::Follower(flight) => {
                flight.await?;
                self.cached_artifact(key)
                    .await?
                    .ok_or_else(|| Error::internal("artifact vanished from cache after download"))
            }
        }
    }

    async fn download(
        &self,
        key: &str,
        url: Url,
        expected: Option<ExpectedDigest>,
        tx: mpsc::Sender<std::io::Result<Bytes>>,
        head_tx: oneshot::Sender<Result<Option<u64>>>,
    ) -> Result<CachedArtifact> {
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
        let _ = head_tx.send(Ok(length));
        let mut hasher = MultiHasher::default();
        let mut pending: Option<Bytes> = None;
        let mut client_gone = false;
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
                writer.write(chunk.clone()).await?;
                if let Some(prev) = pending.replace(chunk)
                    && !client_gone
                    && tx.send(Ok(prev)).await.is_err()
                {
                    client_gone = true;
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            let _ = blobs.delete(&temp).await;
            let _ = tx.send(Err(fail(e.to_string()))).await;
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
            let _ = tx.send(Err(fail(e.to_string()))).await;
            return Err(e);
        }
        if expected.is_none() {
            tracing::warn!(registry = %self.name(), key, "upstream published no digest; caching unverified");
        }
        let commit: Result<CachedArtifact> = async {
            writer.close().await?;
            let sha256 = digests.sha256_hex();
            let path = blob_path(&sha256);
            if blobs.stat(&path).await?.is_some() {
                blobs.delete(&temp).await?;
            } else {
                blobs.rename(&temp, &path).await?;
            }
            let cached = CachedArtifact {
                sha256,
                size: digests.size,
                fetched_at: self.now(),
            };
            self.index()
                .put_cached_artifact(self.name(), key, &cached)
                .await?;
            Ok(cached)
        }
        .await;
        match commit {
            Ok(cached) => {
                if let Some(last) = pending
                    && !client_gone
                {
                    let _ = tx.send(Ok(last)).await;
                }
                Ok(cached)
            }
            Err(e) => {
                let _ = blobs.delete(&temp).await;
                let _ = tx.send(Err(fail(e.to_string()))).await;
                Err(e)
            }
        }
    }
}

async fn read_limited(resp: reqwest::Response, limit: u64) -> Result<Bytes> {
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(Error::Upstream(format!(
            "upstream document larger than {limit} bytes"
        )));
    }
    let mut stream = resp.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Upstream(format!("upstream body broke: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(Error::Upstream(format!(
                "upstream document larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The rule id recorded for refusals that are not policy denials.
fn rule_of(e: &Error) -> &'static str {
    match e {
        Error::Unauthorized(_) => "authentication",
        Error::Forbidden(_) => "rbac",
        Error::TooManyRequests { .. } => "rate_limit",
        Error::Unprocessable(_) => "versioning",
        Error::BadRequest(_) => "validation",
        Error::Conflict(_) => "immutable",
        Error::PayloadTooLarge(_) => "size_limit",
        Error::MethodNotAllowed(_) => "mode",
        _ => "error",
    }
}
