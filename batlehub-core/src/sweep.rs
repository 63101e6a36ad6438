//! The orphan sweep: deletes blobs nothing refers to, long after they became orphans.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::error::Result;
use crate::registry::commit::{BLOB_LEASE, BLOB_LEASE_SCOPE};
use crate::store::{Lease, Storage};

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Blobs deleted (content-addressed blobs and abandoned uploads).
    pub deleted: usize,
    /// Unreferenced blobs seen but not yet old enough to delete.
    pub pending: usize,
    /// Another replica holds the sweep's lease: this one did nothing.
    pub skipped: bool,
}

/// Deletes content-addressed blobs no index row refers to ([`Index::referenced_blobs`]:
/// files of published versions, cached documents, cached artifacts) and abandoned
/// uploads under `tmp/`.
///
/// Blobs are deleted only on failure-free evidence gathered over time, never on a failure
/// path: a blob must be seen unreferenced by sweeps spanning at least the grace period
/// (one hour for content-addressed blobs, a day for `tmp/` uploads, which may be a slow
/// client still sending). Publishing never deletes a blob when its commit fails (another
/// publish may share the content), so failed publishes, unpublished versions and evicted
/// cache entries leave orphans, and this is what removes them. A blob referenced again
/// meanwhile starts over.
///
/// Run [`sweep`](Self::sweep) periodically from one task (the reference server does, every
/// 15 minutes); clones share what they have seen. Replicas sharing one index sweep one at a
/// time: a sweep first takes the lease [`named`](Self::named) by the store it sweeps
/// ([`Index::try_lease`](crate::store::Index::try_lease)), which its holder keeps while it goes on sweeping; the others
/// skip until it lapses.
///
/// [`Index::referenced_blobs`]: crate::store::Index::referenced_blobs
#[derive(Debug, Clone)]
pub struct BlobSweeper {
    storage: Storage,
    clock: Arc<dyn Clock>,
    grace: Duration,
    upload_grace: Duration,
    seen: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    lease_name: String,
    lease_for: Duration,
    holder: String,
}

/// The prefix of content-addressed blobs.
const CONTENT: &str = "sha256/";
/// The prefix of uploads and downloads being written.
const TEMP: &str = "tmp/";

impl BlobSweeper {
    /// A sweeper with the default grace periods (1 h for blobs, 24 h for `tmp/`).
    #[must_use]
    pub fn new(storage: Storage, clock: Arc<dyn Clock>) -> Self {
        Self {
            storage,
            clock,
            grace: Duration::from_secs(3600),
            upload_grace: Duration::from_secs(24 * 3600),
            seen: Arc::default(),
            lease_name: "blobs".into(),
            lease_for: Duration::from_secs(3600),
            holder: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Names the store swept, for the lease replicas share (default `blobs`): sweepers of
    /// different stores need different names.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.lease_name = name.into();
        self
    }

    /// How long a sweep's lease lasts (default an hour): longer than the time between
    /// sweeps, so that the replica sweeping keeps it; after its holder stops, another
    /// replica takes over when it lapses.
    #[must_use]
    pub fn lease_for(mut self, lease: Duration) -> Self {
        self.lease_for = lease;
        self
    }

    /// How long a content-addressed blob must stay unreferenced before it is deleted.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long an upload under `tmp/` must be seen before it counts as abandoned.
    #[must_use]
    pub fn upload_grace(mut self, grace: Duration) -> Self {
        self.upload_grace = grace;
        self
    }

    /// One pass: notes unreferenced blobs, deletes those noted longer ago than the grace.
    ///
    /// # Errors
    /// Storage errors; nothing is deleted when the index cannot list its references.
    pub async fn sweep(&self) -> Result<SweepReport> {
        let now = self.clock.now();
        let until =
            now + chrono::Duration::from_std(self.lease_for).unwrap_or(chrono::Duration::MAX);
        if self
            .storage
            .index
            .try_lease("sweep", &self.lease_name, &self.holder, now, until)
            .await?
            == Lease::Busy
        {
            return Ok(SweepReport {
                skipped: true,
                ..SweepReport::default()
            });
        }
        let blobs = &self.storage.blobs;
        let referenced = self.storage.index.referenced_blobs().await?;
        let mut candidates: Vec<(String, Duration)> = blobs
            .list(CONTENT)
            .await?
            .into_iter()
            .filter(|path| {
                let sha = path.rsplit('/').next().unwrap_or_default();
                !referenced.contains(sha)
            })
            .map(|path| (path, self.grace))
            .collect();
        candidates.extend(
            blobs
                .list(TEMP)
                .await?
                .into_iter()
                .map(|path| (path, self.upload_grace)),
        );
        let now = self.clock.now();
        let mut due = Vec::new();
        {
            let mut seen = self.seen.lock();
            let mut still = HashMap::with_capacity(candidates.len());
            for (path, grace) in candidates {
                let first = seen.get(&path).copied().unwrap_or(now);
                let age = (now - first).to_std().unwrap_or_default();
                if age >= grace {
                    due.push(path);
                } else {
                    still.insert(path, first);
                }
            }
            *seen = still;
        }
        let mut report = SweepReport {
            deleted: 0,
            pending: self.seen.lock().len(),
            skipped: false,
        };
        // This process's commits wait while the due blobs are checked and deleted; other
        // replicas' commits that kept one of them wait for its lease (see
        // `registry::commit`). The leases are taken before the references are read again,
        // so a commit either is seen here or sees the blob gone and puts it back.
        let _gate = self.storage.blob_gate.write().await;
        let index = &self.storage.index;
        let mut held = Vec::new();
        let mut deletable = Vec::new();
        for path in due {
            let Some(sha) = path
                .strip_prefix(CONTENT)
                .and_then(|p| p.rsplit('/').next())
            else {
                deletable.push(path);
                continue;
            };
            let now = self.clock.now();
            match index
                .try_lease(BLOB_LEASE_SCOPE, sha, &self.holder, now, now + BLOB_LEASE)
                .await
            {
                // A commit naming it is confirming it: not now.
                Ok(Lease::Busy) => {}
                Ok(Lease::Taken) => {
                    held.push(sha.to_owned());
                    deletable.push(path);
                }
                Ok(_) => deletable.push(path),
                Err(e) => tracing::warn!(path, error = %e, "could not lease an orphan blob"),
            }
        }
        let referenced = if deletable.is_empty() {
            Ok(referenced)
        } else {
            index.referenced_blobs().await
        };
        if let Ok(referenced) = &referenced {
            for path in deletable {
                if let Some(sha) = path
                    .strip_prefix(CONTENT)
                    .and_then(|p| p.rsplit('/').next())
                    && referenced.contains(sha)
                {
                    continue;
                }
                match blobs.delete(&path).await {
                    Ok(()) => {
                        report.deleted += 1;
                        tracing::info!(path, "orphan blob deleted");
                    }
                    Err(e) => tracing::warn!(path, error = %e, "could not delete an orphan blob"),
                }
            }
        }
        for sha in held {
            if let Err(e) = index
                .release_lease(BLOB_LEASE_SCOPE, &sha, &self.holder)
                .await
            {
                tracing::warn!(sha, error = %e, "could not release an orphan blob's lease");
            }
        }
        referenced?;
        Ok(report)
    }
}
