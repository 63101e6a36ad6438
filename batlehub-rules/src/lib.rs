#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod matching;
mod policy;
mod rbac;

pub use config::{
    Enforcement, GroupPool, PolicyConfig, QuotaConfig, RateLimitConfig, RuleConfig, SigningConfig,
    VersioningConfig,
};
pub use matching::{VersionSpec, glob_match, group_matches, version_matches};
pub use policy::RegistryPolicy;
pub use rbac::{Rbac, RbacConfig};

/// Errors in policy configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An entry is invalid (unknown permission, bad regex, bad key, ...).
    #[error("{path}: {reason}")]
    InvalidPermission {
        /// Where in the configuration (`rbac.user[1]`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}
