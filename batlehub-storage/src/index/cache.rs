//! The index's read cache: policy state and cache rows read on every request, held in
//! memory and invalidated by the writes that change them.
//!
//! Every write through a [`SqlIndex`](super::SqlIndex) clears the entries it affects once
//! its transaction has committed. Each map carries a generation counter: a read that
//! started before an invalidation never stores what it read, so an entry is never older
//! than the last write this process saw. With PostgreSQL, writes are also announced with
//! `NOTIFY` and every replica's listener clears the same entries (and everything, when its
//! listening connection drops and returns), so a block or visibility change made on one
//! replica applies on the others as soon as the notification arrives. A SQLite file is
//! expected to be opened by one process.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use batlehub_core::Result;
use batlehub_core::model::{
    Block, CachedArtifact, CachedDocument, LocalPackage, Namespace, VersionRecord, Visibility,
};
use parking_lot::Mutex;

/// Entries per map before the map is emptied and refilled from the database.
const MAX_ENTRIES: usize = 65_536;

/// Entries of the maps holding whole packages (a package can hold thousands of versions).
const MAX_PACKAGES: usize = 1024;

/// How long a missing cache row is remembered: another replica may add it meanwhile (this
/// process's own writes clear it at once).
const MISSING_TTL: Duration = Duration::from_secs(2);

/// The `NOTIFY` channel writes are announced on.
pub(crate) const CHANNEL: &str = "batlehub_index";

/// One memoised query: keys to values, with a generation bumped on every invalidation.
#[derive(Debug)]
pub(crate) struct Memo<V> {
    generation: AtomicU64,
    map: Mutex<HashMap<String, (V, Option<Instant>)>>,
    capacity: usize,
    /// Whether values may be kept: false while a replica's change listener is not
    /// listening (other replicas' writes would go unheard), so reads go to the database.
    live: AtomicBool,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

impl<V> Memo<V> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            map: Mutex::new(HashMap::new()),
            capacity,
            live: AtomicBool::new(true),
        }
    }
}

impl<V: Clone> Memo<V> {
    /// The cached value of `key`, or `load`'s result (stored unless an invalidation ran
    /// while it loaded).
    pub(crate) async fn get_or<F>(&self, key: String, load: F) -> Result<V>
    where
        F: Future<Output = Result<V>>,
    {
        self.get_or_for(key, load, |_| None).await
    }

    /// Like `get_or`; `ttl` says how long a value may be kept (`None`: until invalidated).
    async fn get_or_for<F>(
        &self,
        key: String,
        load: F,
        ttl: fn(&V) -> Option<Duration>,
    ) -> Result<V>
    where
        F: Future<Output = Result<V>>,
    {
        if !self.live.load(Ordering::Acquire) {
            return load.await;
        }
        if let Some((v, expires)) = self.map.lock().get(&key)
            && expires.is_none_or(|e| e > Instant::now())
        {
            return Ok(v.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let value = load.await?;
        let expires = ttl(&value).map(|t| Instant::now() + t);
        let mut map = self.map.lock();
        if self.generation.load(Ordering::Acquire) == generation {
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key, (value.clone(), expires));
        }
        Ok(value)
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &str) {
        let mut map = self.map.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(key);
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        let mut map = self.map.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Keeps values (`true`) or reads through (`false`, forgetting everything).
    fn set_live(&self, live: bool) {
        if !live {
            self.live.store(false, Ordering::Release);
            self.clear();
        } else {
            self.clear();
            self.live.store(true, Ordering::Release);
        }
    }
}

impl<T: Clone> Memo<Option<T>> {
    /// Like [`Memo::get_or`], remembering a missing row for [`MISSING_TTL`] only: a row
    /// another replica adds is seen soon after.
    pub(crate) async fn get_some_or<F>(&self, key: String, load: F) -> Result<Option<T>>
    where
        F: Future<Output = Result<Option<T>>>,
    {
        self.get_or_for(key, load, |v| v.is_none().then_some(MISSING_TTL))
            .await
    }
}

/// The key of a registry's entry.
pub(crate) fn key(registry: &str, name: &str) -> String {
    let mut k = String::with_capacity(registry.len() + name.len() + 1);
    k.push_str(registry);
    k.push('\0');
    k.push_str(name);
    k
}

/// What a write changed, as announced to other replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Packages, versions, files, tags.
    Packages,
    /// Blocks.
    Blocks,
    /// Visibility.
    Visibility,
    /// Namespaces.
    Namespaces,
    /// Tokens (a revocation).
    Tokens,
    /// Anything (after a lost notification connection).
    All,
}

impl Change {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Packages => "packages",
            Self::Blocks => "blocks",
            Self::Visibility => "visibility",
            Self::Namespaces => "namespaces",
            Self::Tokens => "tokens",
            Self::All => "all",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "packages" => Self::Packages,
            "blocks" => Self::Blocks,
            "visibility" => Self::Visibility,
            "namespaces" => Self::Namespaces,
            "tokens" => Self::Tokens,
            _ => Self::All,
        }
    }
}

/// The cached reads of one index.
#[derive(Debug)]
pub(crate) struct ReadCache {
    pub(crate) exists: Memo<bool>,
    pub(crate) packages: Memo<Option<std::sync::Arc<LocalPackage>>>,
    pub(crate) versions: Memo<Option<VersionRecord>>,
    pub(crate) blocks: Memo<Vec<Block>>,
    pub(crate) visibility: Memo<Visibility>,
    pub(crate) namespaces: Memo<Vec<Namespace>>,
    pub(crate) documents: Memo<Option<CachedDocument>>,
    pub(crate) artifacts: Memo<Option<CachedArtifact>>,
    /// Bumped by every token revocation heard of (see `Index::tokens_generation`).
    pub(crate) tokens: AtomicU64,
    /// Stops the PostgreSQL listener when the last handle of the index is dropped.
    pub(crate) listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            exists: Memo::default(),
            packages: Memo::with_capacity(MAX_PACKAGES),
            versions: Memo::default(),
            blocks: Memo::default(),
            visibility: Memo::default(),
            namespaces: Memo::default(),
            documents: Memo::default(),
            artifacts: Memo::default(),
            tokens: AtomicU64::new(0),
            listener: Mutex::new(None),
        }
    }
}

impl ReadCache {
    /// Keeps read values (`true`) or reads every value from the database (`false`), for
    /// as long as this replica cannot hear other replicas' writes.
    pub(crate) fn set_live(&self, live: bool) {
        self.exists.set_live(live);
        self.packages.set_live(live);
        self.versions.set_live(live);
        self.blocks.set_live(live);
        self.visibility.set_live(live);
        self.namespaces.set_live(live);
        self.documents.set_live(live);
        self.artifacts.set_live(live);
    }

    /// Forgets what `change` may have changed.
    pub(crate) fn invalidate(&self, change: Change) {
        match change {
            Change::Packages => {
                self.exists.clear();
                self.packages.clear();
                self.versions.clear();
            }
            Change::Blocks => self.blocks.clear(),
            Change::Visibility => self.visibility.clear(),
            Change::Namespaces => self.namespaces.clear(),
            Change::Tokens => {
                self.tokens.fetch_add(1, Ordering::SeqCst);
            }
            Change::All => {
                self.tokens.fetch_add(1, Ordering::SeqCst);
                self.exists.clear();
                self.packages.clear();
                self.versions.clear();
                self.blocks.clear();
                self.visibility.clear();
                self.namespaces.clear();
                self.documents.clear();
                self.artifacts.clear();
            }
        }
    }
}

impl Drop for ReadCache {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get_mut().take() {
            task.abort();
        }
    }
}

/// Listens for other replicas' writes and clears what they changed, until the cache is
/// dropped. Nothing is kept until the listener is listening, and while its connection is
/// down (notifications may be missed then): reads go to the database.
pub(crate) fn listen(pool: sqlx::PgPool, cache: &std::sync::Arc<ReadCache>) {
    cache.set_live(false);
    let weak = std::sync::Arc::downgrade(cache);
    // A connection of its own, outside the index's pool, for as long as the index lives.
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(pool.connect_options().as_ref().clone());
    drop(pool);
    let task = tokio::spawn(async move {
        let mut listener = loop {
            match sqlx::postgres::PgListener::connect_with(&own).await {
                Ok(mut l) => match l.listen(CHANNEL).await {
                    Ok(()) => break l,
                    Err(e) => tracing::warn!(error = %e, "index change listener: LISTEN failed"),
                },
                Err(e) => tracing::warn!(error = %e, "index change listener: connect failed"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        };
        match weak.upgrade() {
            Some(cache) => cache.set_live(true),
            None => return,
        }
        let mut live = true;
        loop {
            let received = listener.try_recv().await;
            let Some(cache) = weak.upgrade() else {
                return;
            };
            match received {
                Ok(Some(_)) if !live => {
                    // Back after a failure: anything may have been missed.
                    cache.set_live(true);
                    live = true;
                }
                Ok(Some(n)) => cache.invalidate(Change::parse(n.payload())),
                Ok(None) => {
                    // Reconnected: what was sent meanwhile is lost.
                    tracing::warn!("index change listener reconnected; clearing the read cache");
                    cache.set_live(true);
                    live = true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "index change listener failed; reading through until it is back");
                    cache.set_live(false);
                    live = false;
                    drop(cache);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    *cache.listener.lock() = Some(task);
}
