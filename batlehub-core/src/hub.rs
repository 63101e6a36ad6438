//! The hub: shared storage, clock and default policy from which registry instances are built.

use std::sync::Arc;

use crate::audit::AuditSink;
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::policy::{DefaultPolicy, Policy};
use crate::registry::{Registry, RegistryConfig};
use crate::store::Storage;

/// Shared state of every registry instance of one server.
///
/// # Examples
/// ```no_run
/// # async fn demo(storage: batlehub_core::Storage) -> Result<(), batlehub_core::ConfigError> {
/// use batlehub_core::{Hub, Mode, RegistryConfig};
/// let hub = Hub::builder().storage(storage).build()?;
/// let npm = hub.registry(RegistryConfig::new("npm", Mode::Local))?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Hub {
    storage: Storage,
    clock: Arc<dyn Clock>,
    policy: Arc<dyn Policy>,
    audit: AuditSink,
}

/// Builds a [`Hub`].
#[derive(Debug, Default)]
#[must_use]
pub struct HubBuilder {
    storage: Option<Storage>,
    clock: Option<Arc<dyn Clock>>,
    policy: Option<Arc<dyn Policy>>,
}

impl HubBuilder {
    /// The storage (required).
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The policy registries get unless they are given their own (default: anonymous read,
    /// users publish, admins everything).
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Builds the hub.
    ///
    /// # Errors
    /// When no storage was given.
    pub fn build(self) -> Result<Hub, ConfigError> {
        let storage = self
            .storage
            .ok_or_else(|| ConfigError::new("Hub needs a storage"))?;
        Ok(Hub {
            audit: AuditSink::new(storage.index.clone()),
            storage,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            policy: self.policy.unwrap_or_else(|| Arc::new(DefaultPolicy)),
        })
    }
}

impl Hub {
    /// Starts a builder.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// The storage.
    #[must_use]
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Waits for the work requests left running (see [`Storage::settle`]), then for every
    /// audit event queued so far to be written: call it when shutting down.
    pub async fn settle(&self) {
        self.storage.settle().await;
        self.audit.flush().await;
    }

    /// The audit log writer shared by every registry of this hub.
    #[must_use]
    pub fn audit(&self) -> &AuditSink {
        &self.audit
    }

    /// A registry instance with the hub's default policy.
    ///
    /// # Errors
    /// As [`Registry::new`].
    pub fn registry(&self, config: RegistryConfig) -> Result<Registry, ConfigError> {
        Registry::new(
            config,
            self.storage.clone(),
            self.policy.clone(),
            self.clock.clone(),
            self.audit.clone(),
        )
    }

    /// A registry instance with its own policy and storage (usually
    /// [`Storage::with_blobs`] of the hub's: the same index, other blobs).
    ///
    /// # Errors
    /// As [`Registry::new`].
    pub fn registry_on(
        &self,
        config: RegistryConfig,
        policy: Arc<dyn Policy>,
        storage: Storage,
    ) -> Result<Registry, ConfigError> {
        Registry::new(
            config,
            storage,
            policy,
            self.clock.clone(),
            self.audit.clone(),
        )
    }

    /// A registry instance with its own policy.
    ///
    /// # Errors
    /// As [`Registry::new`].
    pub fn registry_with_policy(
        &self,
        config: RegistryConfig,
        policy: Arc<dyn Policy>,
    ) -> Result<Registry, ConfigError> {
        Registry::new(
            config,
            self.storage.clone(),
            policy,
            self.clock.clone(),
            self.audit.clone(),
        )
    }
}
