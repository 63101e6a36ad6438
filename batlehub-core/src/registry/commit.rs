//! Putting blobs at their content addresses and committing the index rows that name them,
//! safe against the orphan sweep of this process and of other replicas.
//!
//! The danger: a blob left by a failed publish is an orphan; an hour later a publish of the
//! same bytes finds it in place, keeps it instead of its own copy, and commits a row naming
//! it, while the sweep, having checked that nothing names it, deletes it. In one process the
//! sweep's check-and-delete and a commit exclude each other ([`Storage::blob_gate`]).
//! Across replicas the sweep first takes a lease on each blob it may delete and only then
//! checks the references ([`BlobSweeper`](crate::sweep::BlobSweeper)); a commit that kept
//! a blob already in place takes the same lease afterwards and puts the blob back if a sweep
//! deleted it meanwhile. Whichever comes first, the other sees it: either the sweep sees the
//! new reference, or the commit sees the blob gone (and still holds its own bytes).

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::policy::{Caller, CommitFacts};
use crate::store::{BlobStore, Lease, blob_path};

use super::Registry;

/// The lease scope of blobs being deleted or confirmed.
pub(crate) const BLOB_LEASE_SCOPE: &str = "blob";

/// How long a blob's lease lasts (it is held for a stat and a delete or a rename).
pub(crate) const BLOB_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The lease scope of a principal's commits while [`Policy::commit`](crate::Policy::commit)
/// limits are checked (per registry).
const COMMIT_LEASE_SCOPE: &str = "commit";

/// How long a commit's lease lasts: it is held for a usage query and an index transaction.
const COMMIT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a blob's bytes are when it has to be put in place.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A complete temporary blob (an upload or a download), moved into place.
    Temp(&'a str),
    /// Bytes in memory (an upstream document), written into place.
    Bytes(&'a Bytes),
}

impl Source<'_> {
    async fn place(self, blobs: &dyn BlobStore, path: &str) -> Result<()> {
        match self {
            Source::Temp(temp) => blobs.rename(temp, path).await,
            Source::Bytes(bytes) => {
                let mut w = blobs.writer(path).await?;
                w.write(bytes.clone()).await?;
                w.close().await
            }
        }
    }

    /// Deletes a temporary blob that was not needed (its content was in place already).
    async fn drop_unused(self, blobs: &dyn BlobStore) {
        if let Source::Temp(temp) = self
            && let Err(e) = blobs.delete(temp).await
        {
            tracing::warn!(temp, error = %e, "could not delete a temporary blob");
        }
    }
}

impl Registry {
    /// Puts each `(sha256, source)` at its content address (keeping a blob already there),
    /// then runs `commit`, the index write naming them. A blob is never deleted here: when
    /// `commit` fails, blobs put in place stay for the orphan sweep, as another commit may
    /// name the same content. Temporary sources end up moved or deleted.
    ///
    /// # Errors
    /// Storage errors putting a blob in place (nothing is committed then), and `commit`'s.
    pub(crate) async fn commit_with_blobs<T>(
        &self,
        blobs_in: &[(String, Source<'_>)],
        commit: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let blobs = &*self.inner.storage.blobs;
        let mut kept = Vec::new();
        let out = {
            // No sweep of this process checks and deletes between the stat and the commit.
            let _gate = self.inner.storage.blob_gate.read().await;
            for (sha256, source) in blobs_in {
                let path = blob_path(sha256);
                if blobs.stat(&path).await?.is_some() {
                    kept.push((sha256, *source));
                } else {
                    source.place(blobs, &path).await?;
                }
            }
            commit.await
        };
        for (sha256, source) in kept {
            if out.is_ok()
                && let Err(e) = self.confirm_blob(sha256, source).await
            {
                // The row is committed; the next read finds the blob missing and says so
                // (a proxy refetches it).
                tracing::error!(registry = %self.name(), sha256, error = %e, "could not confirm a kept blob after its commit");
            }
            source.drop_unused(blobs).await;
        }
        out
    }

    /// Runs `commit` (index writes) after the policy's commit-time limits
    /// ([`Policy::commit`](crate::Policy::commit)) passed, with the caller's commits to this
    /// registry serialized while both run: in this process by a lock, and across replicas
    /// sharing the index by a lease, so a quota is checked and used in one step. Without
    /// such limits, or for an anonymous caller, `commit` runs at once.
    ///
    /// # Errors
    /// The policy's refusal (nothing is committed then), index errors, and `commit`'s.
    pub(crate) async fn commit_checked<T>(
        &self,
        caller: &Caller,
        facts: CommitFacts,
        commit: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(who) = caller.identity.principal().map(|p| p.key().into_owned()) else {
            return commit.await;
        };
        // The check is a future that runs only when awaited: under the lock, below.
        let Some(check) = self.inner.policy.commit(self.cx(caller), &facts) else {
            return commit.await;
        };
        let lock = self
            .inner
            .commit_locks
            .lock()
            .entry(who.clone())
            .or_default()
            .clone();
        let out = {
            let _local = lock.lock().await;
            let index = self.index();
            let scope = format!("{COMMIT_LEASE_SCOPE}:{}", self.name());
            let holder = uuid::Uuid::new_v4().simple().to_string();
            let lease = loop {
                let now = self.now();
                match index
                    .try_lease(&scope, &who, &holder, now, now + COMMIT_LEASE)
                    .await?
                {
                    Lease::Busy => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    lease => break lease,
                }
            };
            let out = async {
                check.await?;
                commit.await
            }
            .await;
            if lease == Lease::Taken
                && let Err(e) = index.release_lease(&scope, &who, &holder).await
            {
                tracing::warn!(registry = %self.name(), error = %e, "could not release a commit lease; it expires");
            }
            out
        };
        let mut locks = self.inner.commit_locks.lock();
        drop(lock);
        if locks.get(&who).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(&who);
        }
        out
    }

    /// After a commit named a blob that was already in place: waits for any other replica's
    /// sweep holding the blob's lease, then puts the blob back from `source` if that sweep
    /// deleted it.
    async fn confirm_blob(&self, sha256: &str, source: Source<'_>) -> Result<()> {
        let index = self.index();
        let holder = uuid::Uuid::new_v4().simple().to_string();
        let lease = loop {
            let now = self.now();
            match index
                .try_lease(BLOB_LEASE_SCOPE, sha256, &holder, now, now + BLOB_LEASE)
                .await?
            {
                Lease::Busy => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                lease => break lease,
            }
        };
        if lease != Lease::Taken {
            // One process: the gate already kept its sweep out.
            return Ok(());
        }
        let blobs = &*self.inner.storage.blobs;
        let path = blob_path(sha256);
        let out = async {
            if blobs.stat(&path).await?.is_none() {
                tracing::warn!(registry = %self.name(), sha256, "a sweep deleted a blob as it was committed; put back");
                source.place(blobs, &path).await?;
            }
            Ok(())
        }
        .await;
        index
            .release_lease(BLOB_LEASE_SCOPE, sha256, &holder)
            .await?;
        out
    }
}
