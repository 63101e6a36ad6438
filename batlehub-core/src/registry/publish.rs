//! Staging uploads and publishing versions and files.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use super::commit::Source;
use super::{Registry, Staged, TempBlob};
use crate::digest::MultiHasher;
use crate::error::{Error, Result};
use crate::model::{NewVersion, Owner};
use crate::policy::{Caller, CommitFacts};

impl Registry {
    /// Streams an upload into a temporary blob, hashing it, refusing more than
    /// `max_upload_bytes`.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`], [`Error::BadRequest`] for a broken stream, storage errors.
    pub async fn stage<S, E>(&self, stream: S) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        self.stage_into(stream, None).await
    }

    /// [`Registry::stage`], also writing the upload to a temporary file (gone once dropped),
    /// for a protocol that must read it at will (an archive, whose index is at its end)
    /// without holding it in memory.
    ///
    /// # Errors
    /// As [`Registry::stage`]; storage errors writing the file.
    pub async fn stage_spooled<S, E>(&self, stream: S) -> Result<(Staged, std::fs::File)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        use tokio::io::AsyncWriteExt as _;
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(Error::internal)?
            .map_err(Error::storage)?;
        let mut file = tokio::fs::File::from_std(file);
        let staged = self.stage_into(stream, Some(&mut file)).await?;
        match file.flush().await {
            Ok(()) => Ok((staged, file.into_std().await)),
            Err(e) => {
                self.discard(staged).await;
                Err(Error::storage(format!("spooling an upload failed: {e}")))
            }
        }
    }

    async fn stage_into<S, E>(
        &self,
        mut stream: S,
        mut spool: Option<&mut tokio::fs::File>,
    ) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        use tokio::io::AsyncWriteExt as _;
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
                if let Some(file) = spool.as_deref_mut() {
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| Error::storage(format!("spooling an upload failed: {e}")))?;
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
            temp: Arc::new(TempBlob {
                path: temp,
                blobs: self.inner.storage.blobs.clone(),
                settled: AtomicBool::new(false),
            }),
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
        if let Err(e) = self.inner.storage.blobs.delete(&staged.temp.path).await {
            tracing::warn!(error = %e, temp = %staged.temp.path, "could not delete staged upload");
        }
        staged.temp.settle();
    }

    /// Publishes a version atomically: staged blobs become content-addressed blobs, then
    /// the index row, files and tags are committed in one transaction. If the commit fails
    /// (a version published twice), the blobs stay: another publish may have committed a
    /// version referring to the same content meanwhile, so a blob is never deleted on a
    /// failure path; the orphan sweep ([`BlobSweeper`](crate::sweep::BlobSweeper)) removes
    /// blobs nothing refers to.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the version exists; storage errors.
    pub async fn publish(
        &self,
        caller: &Caller,
        new: NewVersion,
        staged: Vec<Staged>,
    ) -> Result<()> {
        let out = self.publish_inner(caller, new.clone(), staged).await;
        self.audit(
            caller,
            "publish",
            Some(&new.version.package),
            Some(&new.version.version),
            out.as_ref().map(|_| ()),
        );
        out
    }

    /// Moves staged uploads to their content addresses, then runs `commit` (see
    /// [`Registry::commit_with_blobs`]). The staged uploads are settled when it succeeds;
    /// otherwise what is left of them is deleted when they are dropped.
    async fn commit_staged<T>(
        &self,
        staged: &[Staged],
        commit: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let blobs: Vec<(String, Source<'_>)> = staged
            .iter()
            .map(|s| (s.digests.sha256_hex(), Source::Temp(&s.temp.path)))
            .collect();
        let out = self.commit_with_blobs(&blobs, commit).await;
        if out.is_ok() {
            for s in staged {
                s.temp.settle();
            }
        }
        out
    }

    /// Adds a file to an existing version (a wheel beside an sdist, a Maven classifier):
    /// the staged blob becomes content-addressed, then the file row is committed. If the
    /// commit fails (the file exists, the version does not), the blob stays for the orphan
    /// sweep, as in [`publish`](Self::publish). The outcome is audited as `publish`.
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
        let out = self
            .commit_staged(
                std::slice::from_ref(&staged),
                self.commit_checked(caller, CommitFacts::new(package, file.size), async {
                    match self
                        .index()
                        .add_file(self.name(), package, version, &file)
                        .await?
                    {
                        true => Ok(()),
                        false => Err(Error::NotFound(format!(
                            "{package} {version} does not exist"
                        ))),
                    }
                }),
            )
            .await;
        self.audit(
            caller,
            "publish",
            Some(package),
            Some(version),
            out.as_ref().map(|_| ()),
        );
        out
    }

    async fn publish_inner(
        &self,
        caller: &Caller,
        new: NewVersion,
        staged: Vec<Staged>,
    ) -> Result<()> {
        let size = new.version.files.iter().map(|f| f.size).sum();
        let facts = CommitFacts::new(new.version.package.clone(), size);
        self.commit_staged(
            &staged,
            self.commit_checked(caller, facts, async {
                // The publisher of a new name becomes its owner, atomically: of two first
                // publishes racing past the policy check, one claims the name and the other is
                // checked again, now against the winner's ownership.
                let package = &new.version.package;
                if let Some(publisher) = &new.version.publisher
                    && !self
                        .index()
                        .claim_package(self.name(), package, &Owner::User(publisher.clone()))
                        .await?
                {
                    self.inner.policy.manage(self.cx(caller), package).await?;
                }
                self.index().publish(&new).await
            }),
        )
        .await
    }
}
