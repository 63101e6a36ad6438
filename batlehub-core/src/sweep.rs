//! The orphan sweep: deletes blobs nothing refers to, long after they became orphans.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::clock::Clock;
use crate::error::Result;
use crate::store::Storage;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Blobs deleted (content-addressed blobs and abandoned uploads).
    pub deleted: usize,
    /// Unreferenced blobs seen but not yet old enough to delete.
    pub pending: usize,
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
/// 15 minutes); clones share what they have seen.
///
/// [`Index::referenced_blobs`]: crate::store::Index::referenced_blobs
#[derive(Debug, Clone)]
pub struct BlobSweeper {
    storage: Storage,
    clock: Arc<dyn Clock>,
    grace: Duration,
    upload_grace: Duration,
    seen: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
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
        }
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
        };
        // Ask again right before deleting: a publish may have referred to a blob since the
        // listing.
        let referenced = if due.is_empty() {
            referenced
        } else {
            self.storage.index.referenced_blobs().await?
        };
        for path in due {
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
        Ok(report)
    }
}
