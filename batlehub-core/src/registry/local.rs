//! [`LocalIndex`]: the index as one registry sees it, so handlers never pass the registry
//! name themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::Result;
use crate::model::{CachedDocument, LocalPackage, Owner, PackageSummary, VersionRecord};
use crate::store::Index;

use super::Registry;

/// The metadata index scoped to one registry instance ([`Registry::local`]).
#[derive(Debug, Clone, Copy)]
pub struct LocalIndex<'a> {
    index: &'a dyn Index,
    registry: &'a str,
}

impl Registry {
    /// This registry's part of the metadata index: its local packages, versions, tags,
    /// owners and cached upstream documents.
    #[must_use]
    pub fn local(&self) -> LocalIndex<'_> {
        LocalIndex {
            index: self.inner.storage.index.as_ref(),
            registry: &self.inner.config.name,
        }
    }
}

impl LocalIndex<'_> {
    /// Whether a local package is stored under `key`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn package_exists(&self, key: &str) -> Result<bool> {
        self.index.package_exists(self.registry, key).await
    }

    /// The local package stored under `key`, with its versions and tags.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn package(&self, key: &str) -> Result<Option<LocalPackage>> {
        self.index.package(self.registry, key).await
    }

    /// Like [`package`](Self::package), shared: the same `Arc` until the package changes
    /// ([`Index::package_shared`]).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn package_shared(&self, key: &str) -> Result<Option<Arc<LocalPackage>>> {
        self.index.package_shared(self.registry, key).await
    }

    /// One local version.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn version(&self, key: &str, version: &str) -> Result<Option<VersionRecord>> {
        self.index.version(self.registry, key, version).await
    }

    /// Sets or clears a version's yanked flag; `false` when it does not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn set_yanked(&self, key: &str, version: &str, yanked: bool) -> Result<bool> {
        self.index
            .set_yanked(self.registry, key, version, yanked)
            .await
    }

    /// Sets or clears a version's deprecation message; `false` when it does not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn set_deprecated(
        &self,
        key: &str,
        version: &str,
        message: Option<&str>,
    ) -> Result<bool> {
        self.index
            .set_deprecated(self.registry, key, version, message)
            .await
    }

    /// Removes a version; `false` when it did not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_version(&self, key: &str, version: &str) -> Result<bool> {
        self.index.delete_version(self.registry, key, version).await
    }

    /// Removes a package with every version and tag; `false` when it did not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_package(&self, key: &str) -> Result<bool> {
        self.index.delete_package(self.registry, key).await
    }

    /// The tags of a package.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn tags(&self, key: &str) -> Result<BTreeMap<String, String>> {
        self.index.tags(self.registry, key).await
    }

    /// Points `tag` at `version`; `false` when the version does not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn set_tag(&self, key: &str, tag: &str, version: &str) -> Result<bool> {
        self.index.set_tag(self.registry, key, tag, version).await
    }

    /// Removes a tag; `false` when it did not exist.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn remove_tag(&self, key: &str, tag: &str) -> Result<bool> {
        self.index.remove_tag(self.registry, key, tag).await
    }

    /// Local packages whose name contains `text`, newest change first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn search(&self, text: &str, offset: u32, limit: u32) -> Result<Vec<PackageSummary>> {
        self.index.search(self.registry, text, offset, limit).await
    }

    /// The owners of a package.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn owners(&self, key: &str) -> Result<Vec<Owner>> {
        self.index.owners(self.registry, key).await
    }

    /// Adds an owner; `false` when already one.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn add_owner(&self, key: &str, owner: &Owner) -> Result<bool> {
        self.index.add_owner(self.registry, key, owner).await
    }

    /// Removes an owner; `false` when not one.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn remove_owner(&self, key: &str, owner: &Owner) -> Result<bool> {
        self.index.remove_owner(self.registry, key, owner).await
    }

    /// A cached upstream document.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn cached_document(&self, key: &str) -> Result<Option<CachedDocument>> {
        self.index.cached_document(self.registry, key).await
    }
}
